"""`sqlfoundry ui`: the playground (the same Gradio UI the Serve app mounts at /ui), served on this
machine against a remote endpoint's /v1 API."""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from urllib.parse import urlparse

LOGIN_USER = "sqlfoundry"  # the login's user name; the one-time password is what proves anything


def cmd_ui(args) -> int:
    endpoint = args.endpoint.rstrip("/")
    parsed = urlparse(endpoint)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        print(f"error: --endpoint: {args.endpoint!r} is not an http(s) URL, e.g. http://127.0.0.1:8000",
              file=sys.stderr)
        return 2
    key = None
    if args.api_key_env:
        key = os.environ.get(args.api_key_env, "").strip()
        if not key:
            print(f"error: --api-key-env: ${args.api_key_env} is not set or empty; export the key there "
                  "(the key never goes on the command line, where other users and shell history see it)",
                  file=sys.stderr)
            return 2

    from sqlfoundry.playground.blocks import THEME, build_blocks
    from sqlfoundry.playground.client import ApiClient

    client = ApiClient(endpoint, key)
    blocks = build_blocks(lambda _request: client, title=f"sqlfoundry playground: {parsed.netloc}")
    # Loopback only: this UI answers with the key it holds, so nobody else may reach it.
    print(f"playground for {endpoint} at http://127.0.0.1:{args.port}/ (Ctrl-C stops it)", flush=True)
    auth = None
    if key:
        # Loopback is not enough with a key: every local user reaches 127.0.0.1. Gradio's login
        # (its page, config and queue routes all need the session it sets) with a random password
        # made now and shown only here, never stored; it ends with this process.
        password = secrets.token_urlsafe(24)
        auth = (LOGIN_USER, password)
        print(f"sign in as {LOGIN_USER} with the one-time password {password}", flush=True)
    blocks.launch(server_name="127.0.0.1", server_port=args.port, theme=THEME, ssr_mode=False,
                  footer_links=["gradio"], quiet=True, show_error=True, auth=auth,
                  auth_message="The one-time password is printed on the console where sqlfoundry ui runs.")
    return 0


def register(commands) -> None:
    ui = commands.add_parser(
        "ui", help="open the playground (Gradio) against a remote sqlfoundry endpoint",
        description="Serve the playground on 127.0.0.1:PORT, talking to ENDPOINT's /v1 API over HTTP: "
                    "Ask (SQL for a question, its checks and result rows), Compare (two adapters side by "
                    "side) and Adapters (the registry, metrics and training curves). The Serve app itself "
                    "mounts the same UI at /ui. With --api-key-env the page asks for a login: user "
                    f"{LOGIN_USER}, a one-time password printed at start.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    ui.add_argument("--endpoint", required=True, help="the API's base URL, e.g. http://127.0.0.1:8000")
    ui.add_argument("--api-key-env", metavar="VAR",
                    help="environment variable holding the endpoint's API key (sent as Authorization: Bearer)")
    ui.add_argument("--port", type=int, default=7860, help="local port of the playground")
    ui.set_defaults(func=cmd_ui)

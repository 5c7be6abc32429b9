"""Deploy a serve_configs/*.yaml file the way `serve run FILE` does, plus `--set` overrides of the
application's args and a wait until it is RUNNING (or a clear failure)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import yaml

from sqlfoundry.config.loader import ConfigError, apply_overrides
from sqlfoundry.serving.config import parse_serve_config
from sqlfoundry.storage.backends import absolute_local_path

log = logging.getLogger(__name__)

APP_IMPORT_PATH = "sqlfoundry.serving.app:build_app"


def load_serve_file(path: str | Path, overrides: list[str] | None = None) -> dict:
    """The Serve config in `path` with `overrides` (KEY.PATH=VALUE under the sqlfoundry app's args)
    applied, local paths made absolute, and the args validated before anything starts."""
    try:
        config = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"cannot read serve config {path}: {err}") from None
    apps = [a for a in config.get("applications", []) if a.get("import_path") == APP_IMPORT_PATH]
    if len(apps) != 1:
        raise ConfigError(f"{path}: expected one application with import_path {APP_IMPORT_PATH}")
    args = apply_overrides(apps[0].get("args") or {}, overrides or [])
    # Replicas do not share the caller's working directory.
    args["registry"] = absolute_local_path(args.get("registry"))
    if isinstance(args.get("model"), dict):
        args["model"]["name_or_path"] = absolute_local_path(args["model"].get("name_or_path"), only_if_exists=True)
    parse_serve_config(args)  # raises ServeConfigError naming the field
    apps[0]["args"] = args
    return config


def deploy(config: dict, timeout_s: float = 600) -> str:
    """Start Serve on the connected Ray (HTTP options from the file), deploy, wait for RUNNING.
    Returns the application's base URL."""
    from ray import serve
    from ray.serve._private import api as serve_api
    from ray.serve.schema import ServeDeploySchema

    schema = ServeDeploySchema.model_validate(config)
    client = serve_api.serve_start(http_options=schema.http_options.model_dump(),
                                   proxy_location=schema.proxy_location)
    client.deploy_apps(schema, _blocking=False)
    names = [app.name for app in schema.applications]
    deadline = time.monotonic() + timeout_s
    while True:
        status = serve.status().applications
        states = {name: status[name].status if name in status else "NOT_STARTED" for name in names}
        failed = {n: status[n].message for n, s in states.items() if s in ("DEPLOY_FAILED", "UNHEALTHY")}
        if failed:
            raise RuntimeError(f"serve deployment failed: {failed}")
        if all(s == "RUNNING" for s in states.values()):
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"applications not RUNNING after {timeout_s:.0f}s: {states}")
        time.sleep(1)
    host, port = schema.http_options.host, schema.http_options.port
    route = schema.applications[0].route_prefix or "/"
    url = f"http://{host}:{port}{route.rstrip('/')}"
    log.info("serving at %s", url)
    return url


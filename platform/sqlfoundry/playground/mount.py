"""The playground on the Serve app: Gradio at /ui, its login form, and GET /v1/adapters.

`mount_playground(app)` is called once on the ingress's FastAPI app (serving/app.py). The request
guard (serving/guard.py) lets /ui through with a bearer key or the session cookie set here
(session.py); without keys configured (loopback development) there is no login at all.

The mounted Blocks call the public /v1 routes of the same app in-process (httpx's ASGI transport):
the same routes, guard and key checks as a remote client, with no host or port to guess (the proxy
may listen on another node or behind a route prefix).
"""

# No `from __future__ import annotations`: FastAPI must see the real types of the routes'
# parameters (after Serve's pickling, a string annotation no longer resolves).
import asyncio
import html
from urllib.parse import parse_qs

import httpx
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from sqlfoundry.playground.client import ApiClient
from sqlfoundry.playground.session import COOKIE, LOGIN_PATH, MAX_AGE_S, UI_PREFIX, session_key, session_value
from sqlfoundry.serving.guard import key_is_valid

LOGIN_FORM = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>sqlfoundry playground: sign in</title>
<style>body{{font-family:system-ui,sans-serif;max-width:28rem;margin:6rem auto;padding:0 1rem}}
input{{width:100%;padding:.5rem;margin:.5rem 0;box-sizing:border-box}}button{{padding:.5rem 1.5rem}}
.error{{color:#b00020}}</style></head>
<body><h1>sqlfoundry playground</h1>
<p>This endpoint needs an API key (one of SQLFOUNDRY_API_KEYS).</p>{message}
<form method="post" action="login"><label for="key">API key</label>
<input id="key" name="key" type="password" autocomplete="current-password" required autofocus>
<button type="submit" id="login">Sign in</button></form></body></html>"""


def _root(request: Request) -> str:
    return request.scope.get("root_path", "").rstrip("/")


def _secure(request: Request) -> bool:
    return request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https"


def _login_page(message: str = "", status: int = 200) -> HTMLResponse:
    note = f'<p class="error" id="login-error">{html.escape(message)}</p>' if message else ""
    return HTMLResponse(LOGIN_FORM.format(message=note), status_code=status, headers={"Cache-Control": "no-store"})


def _registry():
    """The ingress replica's registry (SQLIngress.registry); None outside a replica or without one."""
    try:
        from ray import serve

        return getattr(serve.get_replica_context().servable_object, "registry", None)
    except Exception:  # not inside a Serve replica (no replica context)
        return None


def playground_router() -> APIRouter:
    router = APIRouter()

    @router.get(LOGIN_PATH, include_in_schema=False)
    async def login_form(request: Request):
        if not getattr(request.app.state, "api_keys", None):  # no keys: nothing to sign in to
            return RedirectResponse(f"{_root(request)}{UI_PREFIX}/", 303)
        return _login_page()

    @router.post(LOGIN_PATH, include_in_schema=False)
    async def login(request: Request):
        keys = getattr(request.app.state, "api_keys", None)
        if not keys:
            return RedirectResponse(f"{_root(request)}{UI_PREFIX}/", 303)
        # The guard has already capped the body at limits.max_body_bytes.
        form = parse_qs((await request.body()).decode("utf-8", errors="replace"))
        key = (form.get("key") or [""])[0]
        if not key_is_valid(f"Bearer {key}", keys):
            return _login_page("That key is not one of this endpoint's API keys.", 401)
        response = RedirectResponse(f"{_root(request)}{UI_PREFIX}/", 303)
        response.set_cookie(COOKIE, session_value(key), max_age=MAX_AGE_S, path=f"{_root(request)}{UI_PREFIX}",
                            httponly=True, samesite="strict", secure=_secure(request))
        return response

    @router.post(f"{UI_PREFIX}/logout", include_in_schema=False)
    async def logout(request: Request):
        response = RedirectResponse(f"{_root(request)}{LOGIN_PATH}", 303)
        response.delete_cookie(COOKIE, path=f"{_root(request)}{UI_PREFIX}", httponly=True, samesite="strict")
        return response

    @router.get("/v1/adapters")
    async def adapters() -> dict:
        """The registry's adapters: versions (newest 10), aliases, manifest metrics, training curves."""
        from sqlfoundry.playground.adapters import list_adapters

        return await asyncio.to_thread(list_adapters, _registry())

    return router


class LazyPlayground:
    """The ASGI app mounted at /ui. It builds the Gradio app on its first request, inside the
    ingress replica: `serve.ingress` pickles the FastAPI app at import, and Gradio's objects cannot
    be pickled (nor should every process that imports serving.app build a UI)."""

    def __init__(self):
        self._ui = None
        self._lock = None
        self._lifespan = None

    async def __call__(self, scope, receive, send) -> None:
        if self._ui is None:
            if self._lock is None:  # no await since the check: one lock per replica
                self._lock = asyncio.Lock()
            async with self._lock:
                if self._ui is None:
                    await self._build(scope["app"])
        await self._ui(scope, receive, send)

    async def _build(self, served: FastAPI) -> None:
        import contextlib

        import gradio as gr

        from sqlfoundry.playground.blocks import THEME, build_blocks

        transport = httpx.ASGITransport(app=served)  # the served app itself: guard, routes, keys

        def client_for(request: gr.Request) -> ApiClient:
            keys = getattr(served.state, "api_keys", None)
            # The guard let this request in: with keys set, its cookie (or bearer key) is valid.
            key = session_key(request.cookies.get(COOKIE, ""), keys) if keys else None
            if keys and key is None:
                scheme, _, token = request.headers.get("authorization", "").partition(" ")
                key = token if scheme.lower() == "bearer" else None
            return ApiClient("http://ingress.internal", key, transport)

        holder = FastAPI()  # mount_gradio_app wants a parent; requests reach Gradio's app directly
        gr.mount_gradio_app(holder, build_blocks(client_for), path=UI_PREFIX, theme=THEME, ssr_mode=False,
                            footer_links=["gradio"])
        # Gradio's startup (its queue) runs in the parent's lifespan, which Serve ran long ago:
        # enter it now and keep it open for the replica's life.
        self._lifespan = contextlib.AsyncExitStack()
        await self._lifespan.enter_async_context(holder.router.lifespan_context(holder))
        self._ui = holder.routes[-1].app


def mount_playground(app: FastAPI) -> None:
    """The login routes and /v1/adapters, then the UI at /ui (routes first: the /ui mount would
    otherwise answer /ui/login itself)."""
    app.include_router(playground_router())
    app.mount(UI_PREFIX, LazyPlayground())

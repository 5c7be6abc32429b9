"""The ingress's first look at every HTTP request, before FastAPI reads a byte of its body.

A pure ASGI middleware (not `@app.middleware("http")`, whose `request.body()` buffers the whole
upload): the API key is checked from the headers alone, then the body is read chunk by chunk and
refused with 413 as soon as it passes `limits.max_body_bytes`, so neither an unauthenticated client
nor a chunked upload without Content-Length can make the ingress hold more than the limit. The
accepted body (at most the limit) is replayed to the application. Websocket connections are
refused outright, with or without a key.
"""

from __future__ import annotations

import hmac
from typing import Callable

from starlette._utils import get_route_path
from starlette.datastructures import Headers
from starlette.responses import JSONResponse, RedirectResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocketClose

from sqlfoundry.playground.session import LOGIN_PATH, is_ui_path, ui_request_allowed
from sqlfoundry.serving.api import ApiError

PUBLIC_PATHS = {"/healthz"}  # everything else, /docs and /openapi.json included, needs a key when keys are set


def error_response(request_id: str, err: ApiError) -> JSONResponse:
    body = {"error": {"message": err.message, "type": err.kind, "param": err.param, "code": err.status},
            "request_id": request_id}
    return JSONResponse(body, status_code=err.status, headers=err.headers)


def key_is_valid(authorization: str, keys: list[str]) -> bool:
    scheme, _, token = authorization.partition(" ")
    # compare_digest against every key: the time taken does not tell which prefix matched
    return scheme.lower() == "bearer" and any(hmac.compare_digest(token.encode(), k.encode()) for k in keys)


class RequestGuard:
    """Request id, API key, body limit. Reads `api_keys` and `max_body_bytes` from the app's state
    (set by the ingress at start) and puts the request id in `request.state.request_id`."""

    def __init__(self, app: ASGIApp, request_id: Callable[[Headers], str]):
        self.app = app
        self.request_id = request_id

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            # Nothing here speaks websocket (the API is HTTP; Gradio 6 streams over server-sent
            # events), so none is let through, key or not: a later websocket route cannot open
            # unguarded. Closed before accept, the server answers the handshake with 403.
            await WebSocketClose(code=1008, reason="websockets are not served")(scope, receive, send)
            return
        if scope["type"] != "http":  # lifespan
            await self.app(scope, receive, send)
            return
        state = scope["app"].state
        headers = Headers(scope=scope)
        request_id = self.request_id(headers)
        scope.setdefault("state", {})["request_id"] = request_id
        # Refusals before the body is read say Connection: close, so the server stops reading the
        # rest of the upload instead of draining it.
        close = {"Connection": "close"}
        path = get_route_path(scope)
        # /ui (the playground) also takes its login cookie; the API never does.
        if state.api_keys and path not in PUBLIC_PATHS \
                and not key_is_valid(headers.get("authorization", ""), state.api_keys) \
                and not ui_request_allowed(path, headers, state.api_keys):
            if is_ui_path(path) and scope["method"] == "GET":  # a browser: to the login form
                login = scope.get("root_path", "").rstrip("/") + LOGIN_PATH
                await RedirectResponse(login, 303, headers=close)(scope, receive, send)
                return
            await error_response(request_id, ApiError(
                401, "missing or wrong API key: send Authorization: Bearer <key>", "authorization",
                kind="authentication_error", headers={"WWW-Authenticate": "Bearer", **close}))(scope, receive, send)
            return
        limit = state.max_body_bytes
        too_big = ApiError(413, f"request body is larger than {limit} bytes (limits.max_body_bytes)", "body",
                           headers=close)
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:  # refused unread
            await error_response(request_id, too_big)(scope, receive, send)
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client went away; nobody to answer
            body += message.get("body", b"")
            if len(body) > limit:
                await error_response(request_id, too_big)(scope, receive, send)
                return
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay(bytes(body), receive), send)


def _replay(body: bytes, receive: Receive) -> Receive:
    """The whole (already checked) body as one message; after it, the real stream, so the app still
    sees http.disconnect."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def replayed() -> Message:
        return pending.pop() if pending else await receive()

    return replayed

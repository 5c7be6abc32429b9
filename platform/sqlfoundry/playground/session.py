"""The playground's browser session: a browser cannot send `Authorization: Bearer`, so /ui/login
checks the API key once and sets a cookie that the request guard accepts for /ui paths only.

The cookie never holds the key: it is `<expiry>.<HMAC-SHA256(key, expiry)>`, so a copied cookie
stops working at its expiry or when the key is removed from SQLFOUNDRY_API_KEYS, and the key cannot
be read back from it. It is HttpOnly (page scripts cannot read it) and SameSite=Strict (another site
cannot make the browser send it), and scoped to the /ui path; the /v1 API never accepts it.
"""

from __future__ import annotations

import hashlib
import hmac
import time

from starlette.datastructures import Headers

UI_PREFIX = "/ui"
LOGIN_PATH = "/ui/login"
COOKIE = "sqlfoundry_ui"
MAX_AGE_S = 12 * 3600


def is_ui_path(path: str) -> bool:
    return path == UI_PREFIX or path.startswith(UI_PREFIX + "/")


def _mac(key: str, expires: int) -> str:
    return hmac.new(key.encode(), f"sqlfoundry-ui:{expires}".encode(), hashlib.sha256).hexdigest()


def session_value(key: str, now: float | None = None) -> str:
    expires = int(now if now is not None else time.time()) + MAX_AGE_S
    return f"{expires}.{_mac(key, expires)}"


def session_key(value: str, keys: list[str], now: float | None = None) -> str | None:
    """The API key a session cookie was made from, or None (expired, malformed, or no such key)."""
    stamp, _, mac = value.partition(".")
    if not stamp.isdigit() or len(stamp) > 12:
        return None
    expires, now = int(stamp), now if now is not None else time.time()
    if not now < expires <= now + MAX_AGE_S:
        return None
    found = None
    for key in keys:  # every key compared, in constant time: the timing says nothing about which
        if hmac.compare_digest(_mac(key, expires), mac):
            found = key
    return found


def cookie_from(headers: Headers) -> str:
    """The session cookie's value in a request's Cookie header ("" when absent)."""
    for part in headers.get("cookie", "").split(";"):
        name, _, value = part.strip().partition("=")
        if name == COOKIE:
            return value
    return ""


def ui_request_allowed(path: str, headers: Headers, keys: list[str]) -> bool:
    """A /ui request without a bearer key: the login form always, the rest with a valid session."""
    if not is_ui_path(path):
        return False
    return path == LOGIN_PATH or session_key(cookie_from(headers), keys) is not None

"""The app's guard: every request passes here before a route sees it.

- Host header on an allow-list (loopback names, plus --allow-host) and the server's port: a DNS
  rebinding page cannot talk to the app;
- a session token: `?token=T` from the printed URL is checked, set as an HttpOnly SameSite=Strict
  cookie and dropped from the URL by a redirect; every other request needs the cookie;
- every non-GET: an Origin of an allowed host, a JSON content type, a declared body size under the
  limit (and the body really that small); only GET, HEAD and POST exist (no CORS preflight);
- every response: a strict Content-Security-Policy (no inline script), nosniff, no referrer.

What this module does not do: routing, validating JSON fields (app.py), or files (StaticFiles with
follow_symlink=False serves the site folder).
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import re
import secrets
from http.cookies import SimpleCookie
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

COOKIE = "visualizer_session"
MAX_BODY_BYTES = 320 * 1024  # a probe may be 256 KiB (config.MAX_PROBE_BYTES) plus its JSON
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
JOB_ID = re.compile(r"[0-9a-f]{16}")

# the app page: nothing but its own files; reports under /site/ keep their inline style attributes
APP_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
           "frame-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'; object-src 'none'")
SITE_CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
            "connect-src 'self'; frame-ancestors 'self'; base-uri 'none'; form-action 'none'; object-src 'none'")


def new_token() -> str:
    return secrets.token_urlsafe(24)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def split_host(value: str) -> tuple[str, int | None]:
    """'name:port' -> (name lower-cased, port); '[::1]:80' keeps its brackets; a bad port is -1."""
    value = value.strip().lower()
    if value.startswith("["):
        name, _, rest = value.partition("]")
        name += "]"
        port = rest[1:] if rest.startswith(":") else ""
    else:
        name, _, port = value.partition(":")
    if not port:
        return name, None
    return name, int(port) if port.isdigit() and len(port) <= 5 else -1


class Guard:
    """ASGI middleware: refuses before the app sees anything it should not."""

    def __init__(self, app, token: str, allowed_hosts: tuple[str, ...] = (), port: int | None = None):
        self.app = app
        self.token = token
        self.names = {n.lower() for n in (*LOOPBACK_NAMES, *allowed_hosts)}
        self.port = port  # set once the socket is bound

    def host_ok(self, value: str | None) -> bool:
        if not value:
            return False
        name, port = split_host(value)
        return name in self.names and (self.port is None or port == self.port)

    def origin_ok(self, origin: str | None) -> bool:
        if not origin:
            return False
        parts = urlsplit(origin)
        return parts.scheme == "http" and not parts.path and self.host_ok(parts.netloc)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        method = scope["method"]
        path = scope["path"]
        csp = SITE_CSP if path.startswith("/site/") else APP_CSP
        send = with_headers(send, csp)
        if not self.host_ok(headers.get("host")):
            return await refuse(send, 421, "this host name is not allowed (DNS rebinding guard)")
        if method not in ("GET", "HEAD", "POST"):
            return await refuse(send, 405, "method not allowed")
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True))
        if "token" in query and method == "GET":
            if not hmac.compare_digest(query["token"].encode(), self.token.encode()):
                return await refuse(send, 403, "wrong token: use the URL the serve command printed")
            rest = urlencode({k: v for k, v in query.items() if k != "token"})
            local = "/" + quote(path.lstrip("/"))  # never '//host': the redirect stays on this app
            return await redirect(send, local + ("?" + rest if rest else ""), self.token)
        cookie = SimpleCookie()
        try:
            cookie.load(headers.get("cookie", ""))
        except Exception:  # noqa: BLE001 - a malformed cookie header is no session
            cookie = SimpleCookie()
        given = cookie[COOKIE].value if COOKIE in cookie else ""
        if not hmac.compare_digest(given.encode(), self.token.encode()):
            return await refuse(send, 401, "no session: open the URL the serve command printed")
        if method == "POST":
            if not self.origin_ok(headers.get("origin")):
                return await refuse(send, 403, "cross-origin request refused")
            if headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
                return await refuse(send, 415, "send JSON (Content-Type: application/json)")
            length = headers.get("content-length")
            if length is None or not length.isdigit():
                return await refuse(send, 411, "a Content-Length is required")
            if int(length) > MAX_BODY_BYTES:
                return await refuse(send, 413, f"body larger than {MAX_BODY_BYTES} bytes")
            receive = capped(receive, MAX_BODY_BYTES)
        return await self.app(scope, receive, send)


def capped(receive, limit: int):
    """The body as received, cut off (the request ends there) past `limit` bytes."""
    seen = 0

    async def wrapped():
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                return {"type": "http.disconnect"}
        return message

    return wrapped


def with_headers(send, csp: str):
    extra = [(b"content-security-policy", csp.encode()), (b"x-content-type-options", b"nosniff"),
             (b"referrer-policy", b"no-referrer"), (b"cross-origin-resource-policy", b"same-origin"),
             (b"cache-control", b"no-store")]

    async def wrapped(message):
        if message["type"] == "http.response.start":
            names = {k.lower() for k, _ in message.get("headers", [])}
            message = {**message, "headers": [*message.get("headers", []), *(h for h in extra if h[0] not in names)]}
        await send(message)

    return wrapped


async def refuse(send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def redirect(send, location: str, token: str) -> None:
    cookie = f"{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/"
    await send({"type": "http.response.start", "status": 303,
                "headers": [(b"location", location.encode("latin-1")), (b"set-cookie", cookie.encode()),
                            (b"content-length", b"0")]})
    await send({"type": "http.response.body", "body": b""})

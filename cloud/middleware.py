"""What every HTTP response and request passes through, whatever route (or none) answers it:
security headers on every response, and a bound on every request body.

Both are plain ASGI middleware, so they hold for the API's JSON, the dashboard's pages, static
files, error pages, redirects and the server-sent-events stream alike.

- **Headers.** A Content-Security-Policy that allows no inline script and no other origin
  (scripts, styles, images and connections come from this app only) and forbids framing;
  X-Frame-Options, X-Content-Type-Options, Referrer-Policy, Cross-Origin-Opener-Policy and
  Permissions-Policy; Strict-Transport-Security when the request came over https. The API
  reference (/redoc) also needs inline styles and a worker; SVG images need their inline styles
  and nothing else. Every answer but the app's own files (scripts, styles, icons, the API
  reference's assets) is `Cache-Control: no-store`, unless its route chose otherwise: pages,
  JSON, bills and exports hold someone's data, and a browser keeps none of it, so Back after
  signing out (or after a form was sent) asks the server again rather than showing a copy.
- **Bodies.** A request that declares a longer body than its route's bound is answered 413 before
  any of it is read; one that streams more is cut off at the bound with the same answer. Ingest
  has its own, larger bound (`shared.MAX_BODY_BYTES`), and so has a software release's wheel
  (50 MB; the console's upload form a little more, for the form around the file), each checked
  again by its route.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.exceptions import HTTPException

from shared import MAX_BODY_BYTES

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_STRICT = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
    " font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none';"
    " form-action 'self'; frame-ancestors 'none'"
)
_REDOC = _STRICT.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'") + (
    "; worker-src 'self' blob:"
)
_SVG = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"
_COMMON = [
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), payment=()"),
]
HSTS = b"max-age=31536000; includeSubDomains"
INGEST_PREFIX = "/api/v1/ingest/"
WHEEL_UPLOAD_PATH = "/api/v1/software/wheels"
DASHBOARD_WHEEL_PATH = "/dashboard/software/wheels"  # the same wheel as a multipart form's file
# the app's own files, no one's data: the dashboard's, the API reference's and its start script
CACHEABLE_PREFIXES = ("/dashboard/static/", "/docs/assets/", "/docs/local/")
MAX_WHEEL_BYTES = 50 * 1024 * 1024
MULTIPART_MARGIN_BYTES = 64 * 1024  # the form's boundaries, headers, CSRF token and notes


def _policy(path: str, content_type: bytes) -> bytes:
    if content_type.startswith(b"image/svg+xml"):
        return _SVG.encode()
    if path == "/redoc":
        return _REDOC.encode()
    return _STRICT.encode()


class SecurityHeaders:
    """Adds the security headers to every HTTP response (see the module doc)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        secure = scope.get("scheme") == "https"
        cacheable = scope["path"].startswith(CACHEABLE_PREFIXES)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v)
                    for k, v in message.get("headers", [])
                    if k.lower() != b"content-security-policy"
                ]
                content_type = next(
                    (v for k, v in headers if k.lower() == b"content-type"), b""
                ).lower()
                present = {k.lower() for k, _ in headers}
                headers.append((b"content-security-policy", _policy(scope["path"], content_type)))
                headers.extend((k, v) for k, v in _COMMON if k not in present)
                if b"cache-control" not in present and not cacheable:
                    headers.append((b"cache-control", b"no-store"))
                if secure:
                    headers.append((b"strict-transport-security", HSTS))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


class BodyLimit:
    """Refuses request bodies over `limit` bytes (ingest: over `shared.MAX_BODY_BYTES`)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = MAX_BODY_BYTES if scope["path"].startswith(INGEST_PREFIX) else self.limit
        if scope["path"] == WHEEL_UPLOAD_PATH:  # a software release: checked again by its route
            limit = MAX_WHEEL_BYTES
        elif scope["path"] == DASHBOARD_WHEEL_PATH:
            limit = MAX_WHEEL_BYTES + MULTIPART_MARGIN_BYTES
        declared = next(
            (v for k, v in scope.get("headers", []) if k.lower() == b"content-length"), None
        )
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await _refuse(send, f"the request body is over the limit of {limit} bytes")
            return
        seen = 0

        async def bounded_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise HTTPException(413, f"the request body is over the limit of {limit} bytes")
            return message

        await self.app(scope, bounded_receive, send)


async def _refuse(send: Send, detail: str) -> None:
    body = ('{"detail": "%s", "errors": []}' % detail).encode()  # noqa: UP031 - fixed text
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})

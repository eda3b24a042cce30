"""The rate limit every request passes before any route (`cloud.services.rate_limits`): one
ASGI middleware, so no route can be left out.

A request counts against its user (a session's access token or an API key), and an API key's
against the key as well; a request without valid credentials counts against its client address.
An access token's signature is enough to name its user here (whether its session still stands is
the route's question); a key is looked up, and the answer left on the request for the route's
own authentication (`deps.authenticate_key`), so a key costs one lookup, not two.

Not counted: ingest (gateways, which have their own limits and signatures), `/health`,
`/metrics` and the web app's static files.
"""

from __future__ import annotations

from fastapi import Request

from ..errors import Unauthorized
from ..middleware import ASGIApp, Receive, Scope, Send
from ..services.api_keys import is_key, principal_for_key
from ..services.auth import decode_access
from ..services.rate_limits import RateLimits, Refusal, count
from .deps import ACCESS_COOKIE, bearer_token, client_address

EXEMPT_PREFIXES = ("/api/v1/ingest/", "/dashboard/static/")
EXEMPT_PATHS = frozenset({"/health", "/metrics"})
_WHOSE = {"user": "your account", "key": "this API key", "address": "your address"}


def exempt(path: str) -> bool:
    return path in EXEMPT_PATHS or path.startswith(EXEMPT_PREFIXES)


async def subjects(request: Request) -> list[str]:
    """What this request counts against (see the module doc)."""
    state = request.app.state
    token = bearer_token(request)
    if token is not None and is_key(token):
        try:
            principal = await principal_for_key(token, pool=state.pool, cache=state.api_keys)
        except Unauthorized as refused:
            request.state.api_key = (token, refused)
        else:
            request.state.api_key = (token, principal)
            return [f"key:{principal.api_key_id}", f"user:{principal.user_id}"]
    else:
        token = token or request.cookies.get(ACCESS_COOKIE)
        if token:
            try:
                return [f"user:{decode_access(token, state.jwt_secret).principal.user_id}"]
            except Unauthorized:
                pass
    return [f"address:{client_address(request)}"]


class RateLimit:
    """Refuses a request over its limits with 429 and Retry-After (see the module doc)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or exempt(scope["path"]):
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        limits: RateLimits = request.app.state.rate_limits
        refusal = await count(request.app.state.pool, await subjects(request), limits)
        if refusal is None:
            await self.app(scope, receive, send)
            return
        await _refuse(send, refusal, limits)


async def _refuse(send: Send, refusal: Refusal, limits: RateLimits) -> None:
    whose = _WHOSE[refusal.subject.partition(":")[0]]
    detail = (
        f"too many requests for {whose}: {refusal.limit} per {limits.window_s} s;"
        f" try again in {refusal.retry_after_s} s"
    )
    body = ('{"detail": "%s", "errors": []}' % detail).encode()  # noqa: UP031 - fixed text
    await send(
        {
            "type": "http.response.start",
            "status": 429,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", str(refusal.retry_after_s).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})

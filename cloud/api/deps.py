"""Dependencies shared by the routes, as Annotated aliases so handlers read like signatures."""

from __future__ import annotations

import hmac
import ipaddress
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from psycopg_pool import AsyncConnectionPool

from ..access import Permission, Principal, allowed
from ..errors import Forbidden, Unauthorized
from ..metrics import Metrics
from ..services.sessions import principal_for
from ..settings import CloudSettings


def _pool(request: Request) -> AsyncConnectionPool:
    return request.app.state.pool


def _settings(request: Request) -> CloudSettings:
    return request.app.state.settings


def _metrics(request: Request) -> Metrics:
    return request.app.state.metrics


PoolDep = Annotated[AsyncConnectionPool, Depends(_pool)]
SettingsDep = Annotated[CloudSettings, Depends(_settings)]
MetricsDep = Annotated[Metrics, Depends(_metrics)]


_bearer = HTTPBearer(auto_error=False)


def jwt_secret(request: Request) -> str:
    return request.app.state.jwt_secret


ACCESS_COOKIE = "gg_access"
REFRESH_COOKIE = "gg_refresh"
CSRF_COOKIE = "gg_csrf"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


async def authenticate(request: Request, token: str) -> Principal:
    """The caller named by an access token whose session still stands (Unauthorized if not);
    kept on the request for the scope check (`cloud.api.scoped_route`)."""
    principal = await principal_for(
        token,
        secret=jwt_secret(request),
        pool=request.app.state.pool,
        cache=request.app.state.sessions,
    )
    request.state.principal = principal
    return principal


def client_address(request: Request) -> str:
    """The caller's IP address (as the proxies in GRIDGATE_FORWARDED_ALLOW_IPS report it), in
    canonical form; anything else a forwarded header carried counts as one unknown address."""
    host = request.client.host if request.client else ""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return "unknown"


def bearer_or_cookie(request: Request) -> str:
    """The access token a request carries (Authorization: Bearer, else the session cookie)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token:
        return token
    cookie = request.cookies.get(ACCESS_COOKIE)
    if cookie is None:
        raise Unauthorized("an access token is required (Authorization: Bearer ...)")
    return cookie


async def current_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The caller, from a bearer token (API clients) or the dashboard's session cookie. A
    cookie-borne change must also carry the CSRF token (double submit), so another site cannot
    make a logged-in browser act."""
    if credentials is not None:
        return await authenticate(request, credentials.credentials)
    token = request.cookies.get(ACCESS_COOKIE)
    if token is None:
        raise Unauthorized("an access token is required (Authorization: Bearer ...)")
    if request.method not in SAFE_METHODS:
        expected = request.cookies.get(CSRF_COOKIE)
        given = request.headers.get(CSRF_HEADER)
        if not expected or not given or not hmac.compare_digest(expected, given):
            raise Forbidden("a change made with the session cookie needs the X-CSRF-Token header")
    return await authenticate(request, token)


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def require(permission: Permission) -> Any:
    """A dependency: the caller, if their role has `permission`; 403 otherwise."""

    def check(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        if not allowed(principal.role, permission):
            raise Forbidden(f"role {principal.role} may not {permission.value}")
        return principal

    return Depends(check)

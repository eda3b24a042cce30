"""Dependencies shared by the routes, as Annotated aliases so handlers read like signatures."""

from __future__ import annotations

import hmac
import ipaddress
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from psycopg_pool import AsyncConnectionPool

from ..access import ROLE_PERMISSIONS, Permission, Principal
from ..errors import Forbidden, Unauthorized
from ..metrics import Metrics
from ..services.api_keys import is_key, principal_for_key
from ..services.sessions import principal_for
from ..settings import CloudSettings


def _pool(request: Request) -> AsyncConnectionPool:
    return request.app.state.pool


def _read_pool(request: Request) -> AsyncConnectionPool:
    return request.app.state.read_pool


def _settings(request: Request) -> CloudSettings:
    return request.app.state.settings


def _metrics(request: Request) -> Metrics:
    return request.app.state.metrics


PoolDep = Annotated[AsyncConnectionPool, Depends(_pool)]
# the charts' and readings' reads: the replica's pool when GRIDGATE_REPLICA_URL is set (a little
# behind the primary: never for what a request has just written, nor for any write)
ReadPoolDep = Annotated[AsyncConnectionPool, Depends(_read_pool)]
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


async def authenticate_key(request: Request, token: str) -> Principal:
    """The caller an API key names (Unauthorized if none). The rate limit
    (`cloud.api.limits`) has usually looked the key up for this request already: its answer
    is used once, not asked again."""
    checked = getattr(request.state, "api_key", None)
    if checked is not None and checked[0] == token:
        del request.state.api_key
        outcome = checked[1]
        if isinstance(outcome, Unauthorized):
            raise outcome
    else:
        outcome = await principal_for_key(
            token, pool=request.app.state.pool, cache=request.app.state.api_keys
        )
    request.state.principal = outcome
    return outcome


async def authenticate_bearer(request: Request, token: str) -> Principal:
    """The caller a bearer credential names: an API key (`ggk_...`) or an access token."""
    if is_key(token):
        return await authenticate_key(request, token)
    return await authenticate(request, token)


def client_address(request: Request) -> str:
    """The caller's IP address (as the proxies in GRIDGATE_FORWARDED_ALLOW_IPS report it), in
    canonical form; anything else a forwarded header carried counts as one unknown address."""
    host = request.client.host if request.client else ""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return "unknown"


def bearer_token(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token if scheme.lower() == "bearer" and token else None


async def reauthenticate(request: Request) -> Principal:
    """The caller again, from the credential the request came with (a long-lived stream checks
    that its session or key still stands)."""
    token = bearer_token(request)
    if token is not None:
        return await authenticate_bearer(request, token)
    cookie = request.cookies.get(ACCESS_COOKIE)
    if cookie is None:
        raise Unauthorized("an access token is required (Authorization: Bearer ...)")
    return await authenticate(request, cookie)


async def current_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The caller, from a bearer token or API key (API clients) or the dashboard's session
    cookie (never a key). A cookie-borne change must also carry the CSRF token (double submit),
    so another site cannot make a logged-in browser act."""
    if credentials is not None:
        return await authenticate_bearer(request, credentials.credentials)
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


def _in_person(principal: CurrentPrincipal) -> Principal:
    """The caller, signed in themselves: a request made with an API key is refused (403). For
    what a key must never do — manage keys, change its owner's password, e-mail, profile,
    consents or preferences."""
    if principal.by_key:
        raise Forbidden("an API key cannot do this; sign in as its owner")
    return principal


InPerson = Annotated[Principal, Depends(_in_person)]


def require(permission: Permission) -> Any:
    """A dependency: the caller, if their role has `permission` (and their API key carries it,
    when they call with one); 403 otherwise."""

    def check(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        if not principal.may(permission):
            if principal.by_key and permission in ROLE_PERMISSIONS.get(principal.role, ()):
                raise Forbidden(f"this API key does not carry {permission.value}")
            raise Forbidden(f"role {principal.role} may not {permission.value}")
        return principal

    return Depends(check)


def _public_base(request: Request) -> str:
    """Where people reach this service, for links in messages: GRIDGATE_PUBLIC_URL, never the
    request's Host header (a caller chooses that)."""
    settings = request.app.state.settings
    return (settings.public_url or f"http://{settings.host}:{settings.port}").rstrip("/")


PublicBase = Annotated[str, Depends(_public_base)]

"""Dependencies shared by the routes, as Annotated aliases so handlers read like signatures."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from psycopg_pool import AsyncConnectionPool

from ..errors import Forbidden, Unauthorized
from ..metrics import Metrics
from ..permissions import Permission, allowed
from ..services.auth import Principal, decode_access
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


def current_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None:
        raise Unauthorized("an access token is required (Authorization: Bearer ...)")
    return decode_access(credentials.credentials, jwt_secret(request))


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def require(permission: Permission) -> Any:
    """A dependency: the caller, if their role has `permission`; 403 otherwise."""

    def check(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        if not allowed(principal.role, permission):
            raise Forbidden(f"role {principal.role} may not {permission.value}")
        return principal

    return Depends(check)

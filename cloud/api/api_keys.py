"""The caller's own API keys under `/api/v1/users/me/api-keys`: create (the secret is in this
answer and nowhere else, ever), list, revoke.

Any signed-in user may hold keys, each carrying some of the permissions they hold; a request
made with a key may not manage keys (403), and a key id of anybody else's is not found (404).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Request, status
from pydantic import BaseModel, ConfigDict, Field

from ..access import Permission
from ..access.ids import ApiKeyId
from ..services import api_keys
from .deps import InPerson, PoolDep, SettingsDep
from .scoped_route import ScopedRoute
from .types import Instant, text

router = APIRouter(prefix="/api/v1/users/me/api-keys", tags=["api keys"], route_class=ScopedRoute)


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: text(80, min_length=1)  # type: ignore[valid-type]
    permissions: Annotated[list[Permission], Field(min_length=1, max_length=len(Permission))]
    expires_at: Instant


class ApiKey(BaseModel):
    id: int
    name: str
    prefix: str
    permissions: list[str]
    created_at: datetime
    expires_at: datetime
    last_used_at: datetime | None


class NewApiKey(ApiKey):
    key: str = Field(description="the key itself: shown in this answer only, never again")


class ApiKeys(BaseModel):
    items: list[ApiKey]
    grantable: list[str] = Field(description="the permissions a key of yours may carry")


@router.get("", response_model=ApiKeys)
async def list_keys(pool: PoolDep, principal: InPerson) -> ApiKeys:
    async with pool.connection() as conn:
        rows = await api_keys.owned(conn, principal)
    return ApiKeys(
        items=[ApiKey(**row) for row in rows],
        grantable=sorted(p.value for p in api_keys.grantable(principal)),
    )


@router.post("", response_model=NewApiKey, status_code=status.HTTP_201_CREATED)
async def create_key(
    body: ApiKeyCreate, pool: PoolDep, settings: SettingsDep, principal: InPerson
) -> NewApiKey:
    """A key with some of your permissions, until `expires_at` (at most
    `GRIDGATE_API_KEY_MAX_DAYS` ahead). Use it as `Authorization: Bearer <key>`."""
    async with pool.connection() as conn:
        row = await api_keys.create(
            conn,
            principal,
            name=body.name,
            permissions=body.permissions,
            expires_at=body.expires_at,
            max_days=settings.api_key_max_days,
            per_user=settings.api_keys_per_user,
        )
    return NewApiKey(**row)


@router.delete("/{key_id}", response_model=ApiKey)
async def revoke_key(
    key_id: ApiKeyId, request: Request, pool: PoolDep, principal: InPerson
) -> ApiKey:
    """Revoke one of your keys: refused at once by this process, within
    `GRIDGATE_SESSION_CHECK_S` by the others."""
    async with pool.connection() as conn:
        row = await api_keys.revoke(conn, principal, key_id)
    request.app.state.api_keys.forget(row["prefix"].removeprefix(api_keys.PREFIX))
    return ApiKey(**row)

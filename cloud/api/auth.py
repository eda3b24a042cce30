"""Login, refresh, logout, and who am I."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request, status
from pydantic import BaseModel, ConfigDict, Field

from ..services import auth
from .deps import CurrentPrincipal, PoolDep, SettingsDep, client_address, jwt_secret
from .scoped_route import ScopedRoute
from .types import text

router = APIRouter(prefix="/api/v1/auth", tags=["auth"], route_class=ScopedRoute)


class LoginRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: text(254, min_length=3)  # type: ignore[valid-type]
    password: text(256, min_length=1)  # type: ignore[valid-type]


class RefreshRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    refresh_token: Annotated[str, Field(min_length=16, max_length=128)]


class TokenResponse(BaseModel):
    access_token: str
    refresh_token: str
    expires_in: int
    token_type: str


class Me(BaseModel):
    user_id: int
    role: str
    state_id: int | None
    board_id: int | None
    consumer_id: int | None


@router.post("/login", response_model=TokenResponse)
async def login(
    body: LoginRequest, request: Request, pool: PoolDep, settings: SettingsDep
) -> auth.TokenPair:
    client_ip = client_address(request)
    return await auth.login(
        pool,
        email=body.email,
        password=body.password,
        client_ip=client_ip,
        settings=settings,
        secret=jwt_secret(request),
    )


@router.post("/refresh", response_model=TokenResponse)
async def refresh(
    body: RefreshRequest, request: Request, pool: PoolDep, settings: SettingsDep
) -> auth.TokenPair:
    async with pool.connection() as conn:
        return await auth.refresh(
            conn, refresh_token=body.refresh_token, settings=settings, secret=jwt_secret(request)
        )


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(body: RefreshRequest, pool: PoolDep) -> None:
    async with pool.connection() as conn:
        await auth.logout(conn, refresh_token=body.refresh_token)


@router.get("/me", response_model=Me)
async def me(principal: CurrentPrincipal) -> Me:
    return Me(
        user_id=principal.user_id,
        role=principal.role,
        state_id=principal.state_id,
        board_id=principal.board_id,
        consumer_id=principal.consumer_id,
    )

"""Users under `/api/v1/users`: managed by super and state admins, inside their scope.

A new user is invited by e-mail and chooses their own password; an administrator can end a
user's sessions and send them a reset link, never set a password. Users are deactivated, never
deleted (`DELETE` deactivates), so the audit log keeps naming real accounts.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request, status
from pydantic import BaseModel, ConfigDict

from ..access import Permission
from ..access.ids import BoardId, ConsumerId, StateId, UserId
from ..services import users
from ..services.auth import ROLES, Principal
from ..services.scoped import USERS
from .account import account_context
from .deps import PoolDep, require
from .paging import Limit, Offset, Order, Page, one, page
from .scoped_route import ScopedRoute
from .types import Email, Patch, text

router = APIRouter(prefix="/api/v1/users", tags=["users"], route_class=ScopedRoute)

Role = Literal[ROLES]  # type: ignore[valid-type]


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: Email
    name: text(200, min_length=1) | None = None  # type: ignore[valid-type]
    role: Role
    state_id: StateId | None = None
    board_id: BoardId | None = None
    consumer_id: ConsumerId | None = None


class UserUpdate(Patch):
    role: Role | None = None
    state_id: StateId | None = None
    board_id: BoardId | None = None
    active: bool | None = None


@router.get("", response_model=Page)
async def list_users(
    pool: PoolDep,
    principal: Principal = require(Permission.USER_READ),
    role: Role | None = None,
    board_id: BoardId | None = None,
    active: bool | None = None,
    sort: Literal["id", "email", "created_at"] = "id",
    order: Order = "asc",
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page:
    filters = {"role": role, "board_id": board_id, "active": active}
    return await page(pool, principal, USERS, filters, sort, order, limit, offset)


@router.get("/{user_id}")
async def get_user(
    user_id: UserId, pool: PoolDep, principal: Principal = require(Permission.USER_READ)
) -> dict:
    return await one(pool, principal, USERS, user_id)


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_user(
    body: UserCreate,
    request: Request,
    pool: PoolDep,
    principal: Principal = require(Permission.USER_MANAGE),
) -> dict:
    """Invite a user with a role you may grant, scoped to a state, board or consumer of yours;
    they receive a link (single use, 72 hours) to choose their password."""
    async with pool.connection() as conn:
        return await users.create(conn, principal, account_context(request), **body.model_dump())


@router.patch("/{user_id}")
async def update_user(
    user_id: UserId,
    body: UserUpdate,
    pool: PoolDep,
    principal: Principal = require(Permission.USER_MANAGE),
) -> dict:
    """Change role, move the user to another state or board of yours (`state_id`, `board_id`),
    or (de)activate; each ends the user's sessions."""
    changes = body.model_dump(exclude_unset=True)
    async with pool.connection() as conn:
        return await users.update(conn, principal, user_id, changes)


@router.delete("/{user_id}")
async def deactivate_user(
    user_id: UserId, pool: PoolDep, principal: Principal = require(Permission.USER_MANAGE)
) -> dict:
    async with pool.connection() as conn:
        return await users.deactivate(conn, principal, user_id)


@router.post("/{user_id}/invitation", status_code=status.HTTP_202_ACCEPTED)
async def resend_invitation(
    user_id: UserId,
    request: Request,
    pool: PoolDep,
    principal: Principal = require(Permission.USER_MANAGE),
) -> dict:
    """Send a new invitation link (earlier ones stop working) to a user without a password."""
    async with pool.connection() as conn:
        return await users.resend_invitation(conn, principal, account_context(request), user_id)


@router.post("/{user_id}/password-reset", status_code=status.HTTP_202_ACCEPTED)
async def send_password_reset(
    user_id: UserId,
    request: Request,
    pool: PoolDep,
    principal: Principal = require(Permission.USER_MANAGE),
) -> dict:
    """End every session of the user and e-mail them a link to choose a new password."""
    async with pool.connection() as conn:
        return await users.send_password_reset(conn, principal, account_context(request), user_id)

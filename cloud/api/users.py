"""Users under `/api/v1/users`: managed by super and state admins, inside their scope.

Users are deactivated, never deleted (`DELETE` deactivates), so the audit log keeps naming
real accounts. Passwords are write-only.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, status
from pydantic import BaseModel, ConfigDict, Field

from ..access import Permission
from ..access.ids import BoardId, ConsumerId, StateId, UserId
from ..services import users
from ..services.auth import ROLES, Principal
from ..services.scoped import USERS
from .deps import PoolDep, require
from .paging import Limit, Offset, Order, Page, one, page
from .scoped_route import ScopedRoute
from .types import Patch

router = APIRouter(prefix="/api/v1/users", tags=["users"], route_class=ScopedRoute)

Role = Literal[ROLES]  # type: ignore[valid-type]
Email = Annotated[
    str, Field(min_length=3, max_length=254, pattern=r"^[^@\s\x00-\x1f]+@[^@\s\x00-\x1f]+$")
]
Password = Annotated[str, Field(min_length=10, max_length=256)]


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: Email
    password: Password
    role: Role
    state_id: StateId | None = None
    board_id: BoardId | None = None
    consumer_id: ConsumerId | None = None


class UserUpdate(Patch):
    role: Role | None = None
    password: Password | None = None
    active: bool | None = None


@router.get("", response_model=Page)
async def list_users(
    pool: PoolDep,
    principal: Principal = require(Permission.USER_MANAGE),
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
    user_id: UserId, pool: PoolDep, principal: Principal = require(Permission.USER_MANAGE)
) -> dict:
    return await one(pool, principal, USERS, user_id)


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_user(
    body: UserCreate, pool: PoolDep, principal: Principal = require(Permission.USER_MANAGE)
) -> dict:
    """Create a user with a role you may grant, scoped to a state, board or consumer of yours."""
    async with pool.connection() as conn:
        return await users.create(conn, principal, **body.model_dump())


@router.patch("/{user_id}")
async def update_user(
    user_id: UserId,
    body: UserUpdate,
    pool: PoolDep,
    principal: Principal = require(Permission.USER_MANAGE),
) -> dict:
    """Change role, reset the password (ends the user's sessions) or (de)activate."""
    changes = body.model_dump(exclude_unset=True)
    async with pool.connection() as conn:
        return await users.update(conn, principal, user_id, changes)


@router.delete("/{user_id}")
async def deactivate_user(
    user_id: UserId, pool: PoolDep, principal: Principal = require(Permission.USER_MANAGE)
) -> dict:
    async with pool.connection() as conn:
        return await users.deactivate(conn, principal, user_id)

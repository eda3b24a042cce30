"""States and boards under `/api/v1`, and a board's aggregated readings.

States are created by super admins; boards by super admins and the admins of their state. Each
fetch, list and change goes through the scope filter: outside it, a state or board is not found.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, status
from pydantic import BaseModel, ConfigDict, Field

from ..access import Permission, Principal
from ..access.ids import BoardId, StateId
from ..services import fleet, readings, retention
from ..services.scoped import BOARDS, STATES, actor, delete_row, update_row
from .deps import PoolDep, ReadPoolDep, require
from .paging import Limit, Offset, Order, Page, one, page
from .scoped_route import ScopedRoute
from .types import PLAIN_TEXT, Instant, Patch, text

router = APIRouter(prefix="/api/v1", tags=["states and boards"], route_class=ScopedRoute)

StateCode = Annotated[str, Field(pattern=r"^[A-Z]{2,3}$")]
BoardCode = Annotated[str, Field(pattern=r"^[A-Z0-9_-]{2,32}$")]
TimeZone = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_+/-]+$")]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
Capacity = Annotated[Decimal, Field(gt=0, le=10**10, max_digits=14, decimal_places=3)]


class StateCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: StateCode
    name: text(200, min_length=1)  # type: ignore[valid-type]


class StateUpdate(Patch):
    name: text(200, min_length=1)  # type: ignore[valid-type]


class BoardUpdate(Patch):
    NULLABLE = frozenset({"capacity_kw"})
    name: text(200, min_length=1) | None = None  # type: ignore[valid-type]
    time_zone: TimeZone | None = None
    currency: Currency | None = None
    capacity_kw: Capacity | None = None


class BoardCreate(BoardUpdate):
    state_id: StateId
    code: BoardCode
    name: text(200, min_length=1)  # type: ignore[valid-type]
    time_zone: TimeZone = "Asia/Kolkata"
    currency: Currency = "INR"


@router.get("/states", response_model=Page)
async def list_states(
    pool: PoolDep,
    principal: Principal = require(Permission.BOARD_READ),
    sort: Literal["id", "code", "name"] = "id",
    order: Order = "asc",
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page:
    return await page(pool, principal, STATES, {}, sort, order, limit, offset)


@router.get("/states/{state_id}")
async def get_state(
    state_id: StateId, pool: PoolDep, principal: Principal = require(Permission.BOARD_READ)
) -> dict:
    return await one(pool, principal, STATES, state_id)


@router.post("/states", status_code=status.HTTP_201_CREATED)
async def create_state(
    body: StateCreate, pool: PoolDep, principal: Principal = require(Permission.STATE_MANAGE)
) -> dict:
    async with pool.connection() as conn:
        return await fleet.create_state(
            conn, code=body.code, name=body.name, actor=actor(principal)
        )


@router.patch("/states/{state_id}")
async def update_state(
    state_id: StateId,
    body: StateUpdate,
    pool: PoolDep,
    principal: Principal = require(Permission.STATE_MANAGE),
) -> dict:
    async with pool.connection() as conn:
        return await update_row(conn, principal, STATES, state_id, body.model_dump())


@router.delete("/states/{state_id}")
async def delete_state(
    state_id: StateId, pool: PoolDep, principal: Principal = require(Permission.STATE_MANAGE)
) -> dict:
    """Delete an empty state; one with boards or users answers 409."""
    async with pool.connection() as conn:
        return await delete_row(conn, principal, STATES, state_id)


@router.get("/boards", response_model=Page)
async def list_boards(
    pool: PoolDep,
    principal: Principal = require(Permission.BOARD_READ),
    state_id: StateId | None = None,
    sort: Literal["id", "code", "name"] = "id",
    order: Order = "asc",
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page:
    return await page(pool, principal, BOARDS, {"state_id": state_id}, sort, order, limit, offset)


@router.get("/boards/{board_id}")
async def get_board(
    board_id: BoardId, pool: PoolDep, principal: Principal = require(Permission.BOARD_READ)
) -> dict:
    return await one(pool, principal, BOARDS, board_id)


@router.post("/boards", status_code=status.HTTP_201_CREATED)
async def create_board(
    body: BoardCreate, pool: PoolDep, principal: Principal = require(Permission.BOARD_MANAGE)
) -> dict:
    async with pool.connection() as conn:
        return await fleet.add_board(conn, principal, **body.model_dump())  # 404 outside scope


@router.patch("/boards/{board_id}")
async def update_board(
    board_id: BoardId,
    body: BoardUpdate,
    pool: PoolDep,
    principal: Principal = require(Permission.BOARD_MANAGE),
) -> dict:
    changes = body.model_dump(exclude_unset=True)
    if "time_zone" in changes:
        fleet.check_time_zone(changes["time_zone"])
    async with pool.connection() as conn:
        return await update_row(conn, principal, BOARDS, board_id, changes)


@router.delete("/boards/{board_id}")
async def delete_board(
    board_id: BoardId, pool: PoolDep, principal: Principal = require(Permission.BOARD_MANAGE)
) -> dict:
    """Delete an empty board; one with consumers, meters, gateways or users answers 409."""
    async with pool.connection() as conn:
        return await delete_row(conn, principal, BOARDS, board_id)


@router.get("/boards/{board_id}/readings")
async def get_board_readings(
    board_id: BoardId,
    pool: ReadPoolDep,
    start: Annotated[Instant, Query(alias="from")],
    end: Annotated[Instant, Query(alias="to")],
    quantity: str = Query(..., max_length=16, pattern=PLAIN_TEXT),
    interval: Literal["15min", "hour", "day"] = "hour",
    principal: Principal = require(Permission.READING_READ),
) -> dict:
    """The board's energy per bucket, or its meters' min/mean/max and summed means."""
    async with pool.connection() as conn:
        return await readings.board_readings(
            conn, principal, board_id, quantity=quantity, start=start, end=end, interval=interval
        )


Days = Annotated[int, Field(ge=1, le=36500)]


class RetentionUpdate(Patch):
    """Days to keep each kind of data; null returns a field to what is inherited."""

    NULLABLE = frozenset(retention.DEFAULTS)
    raw_readings_days: Annotated[int, Field(ge=31, le=36500)] | None = None
    aggregates_days: Annotated[int, Field(ge=31, le=36500)] | None = None
    alerts_days: Days | None = None
    reports_days: Days | None = None
    audit_days: Annotated[int, Field(ge=365, le=36500)] | None = None


@router.get("/boards/{board_id}/retention")
async def get_retention(
    board_id: BoardId, pool: PoolDep, principal: Principal = require(Permission.BOARD_READ)
) -> dict:
    """How long the board keeps raw readings, daily aggregates, alerts, reports and audit."""
    async with pool.connection() as conn:
        return await retention.policy(conn, principal, board_id)


@router.patch("/boards/{board_id}/retention")
async def set_retention(
    board_id: BoardId,
    body: RetentionUpdate,
    pool: PoolDep,
    principal: Principal = require(Permission.BOARD_MANAGE),
) -> dict:
    async with pool.connection() as conn:
        return await retention.set_policy(
            conn, principal, board_id, body.model_dump(exclude_unset=True)
        )


@router.get("/states/{state_id}/retention")
async def get_state_retention(
    state_id: StateId, pool: PoolDep, principal: Principal = require(Permission.BOARD_READ)
) -> dict:
    """The retention defaults the state gives its boards (null: the service's default)."""
    async with pool.connection() as conn:
        return await retention.state_defaults(conn, principal, state_id)


@router.patch("/states/{state_id}/retention")
async def set_state_retention(
    state_id: StateId,
    body: RetentionUpdate,
    pool: PoolDep,
    principal: Principal = require(Permission.BOARD_MANAGE),
) -> dict:
    """Set the defaults every board of the state inherits where it set nothing of its own."""
    async with pool.connection() as conn:
        return await retention.set_state_defaults(
            conn, principal, state_id, body.model_dump(exclude_unset=True)
        )


@router.post("/retention/run")
async def run_retention(
    request: Request, pool: PoolDep, principal: Principal = require(Permission.JOBS_RUN)
) -> dict:
    """Run the retention cleanup now (it also runs hourly with the periodic jobs)."""
    async with pool.connection() as conn:
        return await retention.run(
            conn, datetime.now(UTC), request.app.state.report_storage, by=actor(principal)
        )

"""The console's figures under `/api/v1/analytics`, and a consumer's own usage and tariff: all read
from aggregates kept as readings arrive (`cloud.services.aggregates`), scoped like every route.
The figures read from the replica when there is one (`ReadPoolDep`); the tariff, which bills,
from the primary."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import StringConstraints

from ..access import Permission, Principal
from ..access.ids import BoardId, ConsumerId
from ..services import analytics, energy_balance, tariffs
from .deps import PoolDep, ReadPoolDep, require
from .paging import Limit, Offset
from .scoped_route import ScopedRoute
from .types import Day, Instant

router = APIRouter(prefix="/api/v1", tags=["analytics"], route_class=ScopedRoute)
Month = Annotated[str, StringConstraints(pattern=r"^20\d\d-(0[1-9]|1[0-2])$")]


@router.get("/analytics/overview")
async def overview(
    board_id: BoardId, pool: ReadPoolDep, principal: Principal = require(Permission.BOARD_READ)
) -> dict:
    """One board at a glance: load now, energy today against yesterday and last week (up to
    the same time of day), meters and gateways by health, open alerts by severity with the
    week's trend, and the last month's billing (sections the caller's role may read)."""
    async with pool.connection() as conn:
        return await analytics.overview(conn, principal, board_id)


@router.get("/analytics/boards")
async def boards(pool: ReadPoolDep, principal: Principal = require(Permission.BOARD_READ)) -> list:
    """Every board in scope side by side: energy today and yesterday, load, meters online,
    open alerts."""
    async with pool.connection() as conn:
        return await analytics.boards(conn, principal)


@router.get("/analytics/load")
async def load(
    board_id: BoardId,
    pool: ReadPoolDep,
    start: Annotated[Instant, Query(alias="from")],
    end: Annotated[Instant, Query(alias="to")],
    interval: Literal["15min", "hour", "day"] = "15min",
    principal: Principal = require(Permission.READING_READ),
) -> dict:
    """The board's energy (kWh) and mean load (kW) per 15 minutes, hour or local day, with its
    capacity. A bucket with no readings is absent (a gap, not a zero)."""
    async with pool.connection() as conn:
        return await analytics.load(
            conn, principal, board_id, start=start, end=end, interval=interval
        )


@router.get("/analytics/consumption")
async def consumption(
    pool: ReadPoolDep,
    start: Annotated[Day, Query(alias="from")],
    end: Annotated[Day, Query(alias="to")],
    group_by: Literal["board", "category", "consumer"] = "consumer",
    board_id: BoardId | None = None,
    limit: Limit = 20,
    offset: Offset = 0,
    principal: Principal = require(Permission.READING_READ),
) -> dict:
    """Consumers' energy over [from, to) (local days) per board, category or consumer, largest
    first, beside the span just before and the same span a year earlier: top consumers are the
    first page of `group_by=consumer`."""
    async with pool.connection() as conn:
        return await analytics.consumption(
            conn,
            principal,
            board_id=board_id,
            group_by=group_by,
            start=start,
            end=end,
            limit=limit,
            offset=offset,
        )


@router.get("/analytics/profile")
async def profile(
    board_id: BoardId,
    pool: ReadPoolDep,
    start: Annotated[Day, Query(alias="from")],
    end: Annotated[Day, Query(alias="to")],
    principal: Principal = require(Permission.READING_READ),
) -> dict:
    """The board's mean load by local hour of the day, weekdays and weekends apart."""
    async with pool.connection() as conn:
        return await analytics.profile(conn, principal, board_id, start=start, end=end)


def _month(text: str | None) -> date | None:
    if text is None:
        return None
    year, month = (int(part) for part in text.split("-"))
    return date(year, month, 1)


@router.get("/consumers/{consumer_id}/usage")
async def usage(
    consumer_id: ConsumerId,
    pool: ReadPoolDep,
    month: Annotated[Month | None, Query(description="YYYY-MM; this month when left out")] = None,
    principal: Principal = require(Permission.READING_READ),
) -> dict:
    """The consumer's energy per day over a month, with the month before and the same month a
    year earlier."""
    async with pool.connection() as conn:
        return await analytics.usage(conn, principal, consumer_id, month=_month(month))


@router.get("/consumers/{consumer_id}/energy-balance")
async def consumer_energy_balance(
    consumer_id: ConsumerId,
    pool: ReadPoolDep,
    start: Annotated[
        Day | None, Query(alias="from", description="first local day; 30 days ago if left out")
    ] = None,
    end: Annotated[
        Day | None, Query(alias="to", description="local day after the last; at most 92 days")
    ] = None,
    principal: Principal = require(Permission.READING_READ),
) -> dict:
    """Generation, import, export and self-consumption per local day of the board, in kWh:
    import and export from the consumer's meters, generation from its generation meter (none
    when it has none: never estimated), self-consumption as generation less export."""
    async with pool.connection() as conn:
        return await energy_balance.daily(conn, principal, consumer_id, start=start, end=end)


@router.get("/consumers/{consumer_id}/tariff")
async def consumer_tariff(
    consumer_id: ConsumerId, pool: PoolDep, principal: Principal = require(Permission.BILLING_READ)
) -> dict:
    """The tariff the consumer is billed under this month, and how much they have used so far
    (to see which slab they stand in)."""
    async with pool.connection() as conn:
        return await tariffs.for_consumer(conn, principal, consumer_id)

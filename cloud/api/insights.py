"""A consumer's cycle ahead under `/api/v1/consumers/{id}`: the bill it is heading for, with
its range, and costed ways to pay less. Both need `billing:read` and the consumer in scope (a
consumer reaches only their own)."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter

from ..access import Permission, Principal
from ..access.ids import ConsumerId
from ..errors import InvalidInput
from ..services import insights
from .deps import PoolDep, require
from .scoped_route import ScopedRoute
from .types import Instant

router = APIRouter(prefix="/api/v1", tags=["billing"], route_class=ScopedRoute)
EARLIEST_AS_OF = datetime(2000, 1, 1, tzinfo=UTC)


def _moment(as_of: datetime | None) -> datetime:
    now = datetime.now(UTC)
    if as_of is not None and not EARLIEST_AS_OF <= as_of <= now:
        raise InvalidInput(
            f"as_of must lie between {EARLIEST_AS_OF:%Y-%m-%d} and now",
            errors=[("as_of", as_of.isoformat())],
        )
    return as_of or now


@router.get("/consumers/{consumer_id}/forecast")
async def consumer_forecast(
    consumer_id: ConsumerId,
    pool: PoolDep,
    as_of: Instant | None = None,
    principal: Principal = require(Permission.BILLING_READ),
) -> dict:
    """The bill this billing period (the board's cycle, else the calendar month) is heading
    for: the units so far, the rest expected from the household's last four weeks (weekdays and
    weekends apart), priced by the billing engine, with an 80 % range; `as_of` (a past instant,
    with its zone) asks how it looked then."""
    async with pool.connection() as conn:
        return await insights.forecast(conn, principal, consumer_id, now=_moment(as_of))


@router.get("/consumers/{consumer_id}/recommendations")
async def consumer_recommendations(
    consumer_id: ConsumerId,
    pool: PoolDep,
    as_of: Instant | None = None,
    principal: Principal = require(Permission.BILLING_READ),
) -> dict:
    """Ways to pay less this billing period, best first, each saving the difference of two
    bills the engine makes: shifting use from the dearest time-of-day period to the cheapest,
    staying below the slab the period reaches, cutting the standing load at night."""
    async with pool.connection() as conn:
        return await insights.recommendations(conn, principal, consumer_id, now=_moment(as_of))

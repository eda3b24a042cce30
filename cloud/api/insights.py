"""A consumer's cycle ahead under `/api/v1/consumers/{id}`: the bill it is heading for, with
its range, and the next period's; and costed ways to pay less, stored with the consumer's
answer to each under `/api/v1/recommendations/{id}`.

Reading needs `billing:read` and the consumer in scope (a consumer reaches only their own);
generating needs `recommendation:generate` (the consumer, and the admins who may bill);
answering needs `recommendation:respond` (the consumer alone)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict

from ..access import Permission, Principal
from ..access.ids import ConsumerId, RecommendationId
from ..errors import InvalidInput
from ..services import insights
from ..services import recommendations as stored
from .deps import PoolDep, require
from .paging import Limit, Offset
from .scoped_route import ScopedRoute
from .types import Instant

router = APIRouter(prefix="/api/v1", tags=["billing"], route_class=ScopedRoute)
EARLIEST_AS_OF = datetime(2000, 1, 1, tzinfo=UTC)
Status = Literal["new", "seen", "done", "dismissed"]


def _moment(as_of: datetime | None) -> datetime:
    now = datetime.now(UTC)
    if as_of is not None and not EARLIEST_AS_OF <= as_of <= now:
        raise InvalidInput(
            f"as_of must lie between {EARLIEST_AS_OF:%Y-%m-%d} and now",
            errors=[("as_of", as_of.isoformat())],
        )
    return as_of or now


class Generate(BaseModel):
    """`as_of`: work them out as things stood then (a past instant with its zone); now if
    left out."""

    model_config = ConfigDict(extra="forbid")
    as_of: Instant | None = None


class Answer(BaseModel):
    """The consumer's answer to a recommendation."""

    model_config = ConfigDict(extra="forbid")
    status: Literal["seen", "done", "dismissed"]


@router.get("/consumers/{consumer_id}/forecast")
async def consumer_forecast(
    consumer_id: ConsumerId,
    pool: PoolDep,
    as_of: Instant | None = None,
    principal: Principal = require(Permission.BILLING_READ),
) -> dict:
    """The bill this billing period (the board's cycle, else the calendar month) is heading
    for: the units so far, the rest expected from the household's last four weeks (weekdays and
    weekends apart), priced by the billing engine, with an 80 % range; and `next`, the period
    after it, from the same weeks and, with a year of history, the season. `as_of` (a past
    instant, with its zone) asks how it looked then."""
    async with pool.connection() as conn:
        return await insights.forecast(conn, principal, consumer_id, now=_moment(as_of))


@router.get("/consumers/{consumer_id}/recommendations")
async def consumer_recommendations(
    consumer_id: ConsumerId,
    pool: PoolDep,
    status: Status | None = None,
    period_start: date | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
    principal: Principal = require(Permission.BILLING_READ),
) -> dict:
    """The consumer's stored ways to pay less (as the last generation left them), latest
    period first and the biggest saving first, each with its saving, figures, assumption and
    status (new, seen, done, dismissed); `status` and `period_start` narrow them."""
    async with pool.connection() as conn:
        items, total = await stored.list_for(
            conn,
            principal,
            consumer_id,
            status=status,
            period_start=period_start,
            limit=limit,
            offset=offset,
        )
    return {
        "consumer_id": consumer_id,
        "items": items,
        "total": total,
        "limit": limit,
        "offset": offset,
    }


@router.post("/consumers/{consumer_id}/recommendations/generate")
async def generate_recommendations(
    consumer_id: ConsumerId,
    pool: PoolDep,
    body: Generate | None = None,
    principal: Principal = require(Permission.RECOMMENDATION_GENERATE),
) -> dict:
    """Work the consumer's ways to pay less this billing period out again and store them:
    shifting use from the dearest time-of-day period to the cheapest, staying below the slab
    the period reaches, cutting the standing load at night, a sanctioned load nearer the
    year's highest demand, a better power factor (kVAh billing) — each saving the difference
    of two bills the engine makes. An answered one (done, dismissed) keeps its answer; an open
    one takes the new figures, or is withdrawn when the period no longer offers it."""
    as_of = _moment(body.as_of if body else None)
    async with pool.connection() as conn:
        return await stored.generate(conn, principal, consumer_id, now=as_of)


@router.get("/recommendations/{recommendation_id}")
async def get_recommendation(
    recommendation_id: RecommendationId,
    pool: PoolDep,
    principal: Principal = require(Permission.BILLING_READ),
) -> dict:
    """One stored recommendation."""
    async with pool.connection() as conn:
        return await stored.get(conn, principal, recommendation_id)


@router.patch("/recommendations/{recommendation_id}")
async def answer_recommendation(
    recommendation_id: RecommendationId,
    body: Answer,
    pool: PoolDep,
    principal: Principal = require(Permission.RECOMMENDATION_RESPOND),
) -> dict:
    """The consumer's answer: `seen`, `done` or `dismissed` (not for me). The same answer
    again changes nothing; `seen` after done or dismissed is refused (409)."""
    async with pool.connection() as conn:
        return await stored.set_status(conn, principal, recommendation_id, body.status)

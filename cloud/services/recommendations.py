"""Stored recommendations and the consumer's answer to each: new -> seen -> done / dismissed.

`generate` works the consumer's ways to pay less out again (`cloud.services.insights`) and
stores them, one row per kind and billing period, in one statement per row that cannot undo an
answer: an open one (new or seen) takes the new figures, a done or dismissed one keeps its
status and the figures it was answered on, and an open one the period no longer offers (the
slab's boundary out of reach, a tariff changed) is withdrawn. Rows whose figures did not move
are not touched, so generating again is cheap and writes nothing. Every row created, changed or
withdrawn is audited, and so is every change of status.

Who may do what (`cloud.access.permissions`): `billing:read` reads them (a consumer their own);
`recommendation:generate` generates them (the consumer for themselves, and the board, state and
super admins who may bill); `recommendation:respond` answers one — the consumer alone, since an
answer says what the household did.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

from psycopg import AsyncConnection, sql

from ..access import Principal, scope_filter
from ..errors import Conflict, NotFound
from . import audit, insights
from .preferences import household_consents
from .scoped import CONSUMERS, actor, get_row

STATUSES = ("new", "seen", "done", "dismissed")
OPEN = ("new", "seen")
# what an answer may become: seen only what was not yet answered; done and dismissed anything
# (a household changes its mind)
MAY_BECOME = {"seen": ("new", "seen"), "done": STATUSES, "dismissed": STATUSES}
COLUMNS = (
    "id",
    "board_id",
    "consumer_id",
    "kind",
    "category",
    "period_start",
    "period_end",
    "currency",
    "energy_unit",
    "saving",
    "units",
    "units_per_day",
    "figures",
    "assumption",
    "status",
    "as_of",
    "created_at",
    "updated_at",
    "status_changed_at",
    "status_changed_by",
)
_SELECT = sql.SQL(", ").join(sql.Identifier("t", c) for c in COLUMNS)

_UPSERT = sql.SQL(
    "INSERT INTO recommendations AS t (board_id, consumer_id, kind, category, period_start,"
    " period_end, currency, energy_unit, saving, units, units_per_day, figures, assumption, as_of)"
    " VALUES (%(board)s, %(consumer)s, %(kind)s, %(category)s, %(start)s, %(end)s, %(currency)s,"
    " %(unit)s, %(saving)s, %(units)s, %(per_day)s, %(figures)s, %(assumption)s, %(as_of)s)"
    " ON CONFLICT (consumer_id, kind, period_start) DO UPDATE SET"
    " category = excluded.category, period_end = excluded.period_end,"
    " currency = excluded.currency, energy_unit = excluded.energy_unit,"
    " saving = excluded.saving, units = excluded.units, units_per_day = excluded.units_per_day,"
    " figures = excluded.figures, assumption = excluded.assumption, as_of = excluded.as_of,"
    " updated_at = now()"
    " WHERE t.status IN ('new', 'seen') AND (t.saving, t.units, t.units_per_day, t.figures,"
    " t.assumption, t.period_end) IS DISTINCT FROM (excluded.saving, excluded.units,"
    " excluded.units_per_day, excluded.figures, excluded.assumption, excluded.period_end)"
    " RETURNING {cols}, (xmax = 0) AS _inserted"
).format(cols=_SELECT)


def _jsonable(figures: dict[str, Any]) -> str:
    return json.dumps(figures, default=str, sort_keys=True)


async def generate(
    conn: AsyncConnection, principal: Principal, consumer_id: int, *, now: datetime
) -> dict[str, Any]:
    """Work the consumer's recommendations out as of `now` and store them; what was created,
    updated and withdrawn, and the period's stored recommendations."""
    advice = await insights.recommendations(conn, principal, consumer_id, now=now)
    return await store(conn, principal, consumer_id, advice)


async def store(
    conn: AsyncConnection, principal: Principal, consumer_id: int, advice: dict[str, Any]
) -> dict[str, Any]:
    """Store recommendations worked out already (`insights.recommendations`, or the portal's
    `insights.cycle_and_advice`), as `generate` does."""
    if not await household_consents(conn, consumer_id, insights.INSIGHTS_CONSENT):
        raise Conflict(insights.NO_INSIGHTS_CONSENT)  # withdrawn since they were worked out
    start, end = advice["period_start"], advice["period_end"]
    created, updated = [], []
    async with conn.transaction():
        for item in advice["items"]:
            before = await _by_kind(conn, consumer_id, item["kind"], start)
            cursor = await conn.execute(
                _UPSERT,
                {
                    "board": advice["board_id"],
                    "consumer": consumer_id,
                    "kind": item["kind"],
                    "category": item["category"],
                    "start": start,
                    "end": end,
                    "currency": advice["currency"],
                    "unit": advice["energy_unit"],
                    "saving": item["saving"],
                    "units": item["units"],
                    "per_day": item["units_per_day"],
                    "figures": _jsonable(item["figures"]),
                    "assumption": item["assumption"],
                    "as_of": advice["as_of"],
                },
            )
            row = await cursor.fetchone()
            if row is None:
                continue  # answered already, or nothing moved
            inserted = row.pop("_inserted")
            (created if inserted else updated).append(row["id"])
            await audit.record(
                conn,
                actor=actor(principal),
                action="create" if inserted else "update",
                entity="recommendation",
                entity_id=row["id"],
                before=before,
                after=row,
            )
        kinds = [item["kind"] for item in advice["items"]]
        cursor = await conn.execute(
            sql.SQL(
                "DELETE FROM recommendations t WHERE t.consumer_id = %s AND t.period_start = %s"
                " AND t.status IN ('new', 'seen') AND NOT (t.kind = ANY(%s)) RETURNING {}"
            ).format(_SELECT),
            (consumer_id, start, kinds),
        )
        withdrawn = await cursor.fetchall()
        for row in withdrawn:
            await audit.record(
                conn,
                actor=actor(principal),
                action="withdraw",
                entity="recommendation",
                entity_id=row["id"],
                before=row,
            )
    stored, _ = await list_for(
        conn, principal, consumer_id, status=None, period_start=start, limit=50, offset=0
    )
    return {
        "consumer_id": consumer_id,
        "period_start": start,
        "period_end": end,
        "as_of": advice["as_of"],
        "time_zone": advice["time_zone"],
        "currency": advice["currency"],
        "energy_unit": advice["energy_unit"],
        "forecast": advice["forecast"],
        "standby_kw": advice["standby_kw"],
        "created": created,
        "updated": updated,
        "withdrawn": [row["id"] for row in withdrawn],
        "items": stored,
    }


async def _by_kind(
    conn: AsyncConnection, consumer_id: int, kind: str, start: date
) -> dict[str, Any] | None:
    cursor = await conn.execute(
        sql.SQL(
            "SELECT {} FROM recommendations t WHERE t.consumer_id = %s AND t.kind = %s"
            " AND t.period_start = %s"
        ).format(_SELECT),
        (consumer_id, kind, start),
    )
    return await cursor.fetchone()


async def list_for(
    conn: AsyncConnection,
    principal: Principal,
    consumer_id: int,
    *,
    status: str | None,
    period_start: date | None,
    limit: int,
    offset: int,
) -> tuple[list[dict[str, Any]], int]:
    """The consumer's stored recommendations in scope, latest period first and the biggest
    saving first within it; and how many there are in all."""
    await get_row(conn, principal, CONSUMERS, consumer_id)  # 404 outside the scope
    condition, params = scope_filter(principal, "recommendation", "t")
    clauses = [condition, sql.SQL("t.consumer_id = %s")]
    params.append(consumer_id)
    if status is not None:
        clauses.append(sql.SQL("t.status = %s"))
        params.append(status)
    if period_start is not None:
        clauses.append(sql.SQL("t.period_start = %s"))
        params.append(period_start)
    cursor = await conn.execute(
        sql.SQL(
            "SELECT {cols}, count(*) OVER () AS _in_all FROM recommendations t WHERE {where}"
            " ORDER BY t.period_start DESC, t.saving DESC, t.id LIMIT %s OFFSET %s"
        ).format(cols=_SELECT, where=sql.SQL(" AND ").join(clauses)),
        [*params, limit, offset],
    )
    rows = await cursor.fetchall()
    total = rows[0]["_in_all"] if rows else 0
    return [{k: v for k, v in row.items() if k != "_in_all"} for row in rows], total


async def get(conn: AsyncConnection, principal: Principal, recommendation_id: int) -> dict:
    """One stored recommendation in scope (NotFound otherwise)."""
    return await _one(conn, principal, recommendation_id)


async def _one(
    conn: AsyncConnection, principal: Principal, recommendation_id: int, *, lock: bool = False
) -> dict[str, Any]:
    condition, params = scope_filter(principal, "recommendation", "t")
    cursor = await conn.execute(
        sql.SQL("SELECT {} FROM recommendations t WHERE t.id = %s AND {}{}").format(
            _SELECT, condition, sql.SQL(" FOR UPDATE" if lock else "")
        ),
        [recommendation_id, *params],
    )
    row = await cursor.fetchone()
    if row is None:
        raise NotFound(f"no recommendation {recommendation_id}")
    return row


async def set_status(
    conn: AsyncConnection, principal: Principal, recommendation_id: int, status: str
) -> dict[str, Any]:
    """The consumer's answer: seen, done or dismissed; audited. The same answer again changes
    nothing; seen after done or dismissed is refused (it would undo the answer)."""
    async with conn.transaction():
        before = await _one(conn, principal, recommendation_id, lock=True)
        if before["status"] == status:
            return before
        if before["status"] not in MAY_BECOME[status]:
            raise Conflict(
                f"recommendation {recommendation_id} is {before['status']} already; it can be"
                " marked done or dismissed, not seen again"
            )
        cursor = await conn.execute(
            sql.SQL(
                "UPDATE recommendations t SET status = %s, status_changed_at = now(),"
                " status_changed_by = %s, updated_at = now() WHERE t.id = %s RETURNING {}"
            ).format(_SELECT),
            (status, actor(principal), recommendation_id),
        )
        after = await cursor.fetchone()
        await audit.record(
            conn,
            actor=actor(principal),
            action="status",
            entity="recommendation",
            entity_id=recommendation_id,
            before=before,
            after=after,
        )
    return after

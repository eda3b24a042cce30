"""Readings of one meter (raw or aggregated) or of a whole board (aggregated), inside scope.

Aggregates: for cumulative registers (`*.8.*`) the energy of each bucket is the sum of the
differences between consecutive reads, each counted in the bucket where its interval ends (a read
exactly on a boundary closes the bucket before it, so boundary reads give exact energy per
bucket; the read at or before the range's start counts, so the first bucket is whole); a
difference below zero (register reset or rollover) is left out and the
bucket is marked. For instantaneous quantities: min, avg and max per bucket. Hours and days are
cut in the board's time zone; 15-minute buckets fall on the same instants in every zone whose
offset is a multiple of 15 minutes (India's is).

A board's aggregate adds its meters up: energy per bucket is the sum of each meter's own
deltas (a register is never subtracted from another meter's); for instantaneous quantities
`sum` adds each meter's mean in the bucket (the board's load, for power) beside the min, mean
and max over all readings.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from psycopg import AsyncConnection, sql

from shared import QUANTITIES

from ..access import Principal, scope_filter
from ..errors import InvalidInput
from .scoped import BOARDS, METERS, get_row

Interval = Literal["raw", "15min", "hour", "day"]
MAX_RAW_ROWS = 10_000
MAX_SPAN = {
    "raw": timedelta(days=31),
    "15min": timedelta(days=93),
    "hour": timedelta(days=366),
    "day": timedelta(days=3 * 366),
}
_BUCKET = {
    "15min": "date_bin('15 minutes', {ts}, TIMESTAMPTZ '2000-01-01 00:00+00')",
    "hour": "date_trunc('hour', {ts} AT TIME ZONE %(tz)s) AT TIME ZONE %(tz)s",
    "day": "date_trunc('day', {ts} AT TIME ZONE %(tz)s) AT TIME ZONE %(tz)s",
}


def _bucket(interval: str, column: str) -> sql.Composed:
    return sql.SQL(_BUCKET[interval]).format(ts=sql.Identifier(*column.split(".")))


def _delta_bucket(interval: str) -> sql.Composed:
    """A register delta covers (previous read, this read]: it belongs to the bucket holding the
    instant just before its end, so a read exactly on a boundary closes the bucket before it."""
    return sql.SQL(_BUCKET[interval]).format(ts=sql.SQL("(ts - interval '1 microsecond')"))


def tenure_start(principal: Principal, meter: dict[str, Any]) -> datetime | None:
    """For a consumer, the moment the meter became theirs: they see nothing of it before."""
    if principal.role == "CONSUMER":
        return meter.get("consumer_since")
    return None


def _check_range(quantity: str, start: datetime, end: datetime, interval: str) -> None:
    if quantity not in QUANTITIES:
        raise InvalidInput(f"unknown quantity {quantity}", errors=[("quantity", quantity)])
    if end <= start:
        raise InvalidInput("the range ends before it starts", errors=[("to", str(end))])
    if end - start > MAX_SPAN[interval]:
        raise InvalidInput(
            f"{interval} readings span at most {MAX_SPAN[interval].days} days",
            errors=[("to", str(end))],
        )


async def meter_readings(
    conn: AsyncConnection,
    principal: Principal,
    meter_id: int,
    *,
    quantity: str,
    start: datetime,
    end: datetime,
    interval: Interval,
) -> dict[str, Any]:
    _check_range(quantity, start, end, interval)
    meter = await get_row(conn, principal, METERS, meter_id)  # scope: 404 outside it
    start = max(start, tenure_start(principal, meter) or start)
    cursor = await conn.execute("SELECT time_zone FROM boards WHERE id = %s", (meter["board_id"],))
    tz = (await cursor.fetchone())["time_zone"]
    params = {
        "meter": meter_id,
        "quantity": quantity,
        "start": start,
        "end": end,
        "tz": tz,
        "limit": MAX_RAW_ROWS + 1,
    }
    unit = QUANTITIES[quantity].unit
    if interval == "raw":
        cursor = await conn.execute(
            "SELECT ts, value, quality FROM readings WHERE meter_id = %(meter)s"
            " AND quantity = %(quantity)s AND ts >= %(start)s AND ts < %(end)s"
            " ORDER BY ts LIMIT %(limit)s",
            params,
        )
        rows = await cursor.fetchall()
        if len(rows) > MAX_RAW_ROWS:
            raise InvalidInput(
                f"more than {MAX_RAW_ROWS} readings; narrow the range or aggregate",
                errors=[("interval", "raw")],
            )
        return {
            "meter_id": meter_id,
            "quantity": quantity,
            "unit": unit,
            "interval": interval,
            "time_zone": tz,
            "points": rows,
        }
    if QUANTITIES[quantity].is_cumulative:
        query = sql.SQL("""
            WITH reads AS (
                SELECT ts, value FROM readings WHERE meter_id = %(meter)s
                  AND quantity = %(quantity)s AND ts > %(start)s AND ts <= %(end)s
                UNION ALL
                (SELECT ts, value FROM readings WHERE meter_id = %(meter)s
                  AND quantity = %(quantity)s AND ts <= %(start)s ORDER BY ts DESC LIMIT 1)
            ), deltas AS (
                SELECT ts, value - lag(value) OVER (ORDER BY ts) AS delta FROM reads
            )
            SELECT {bucket} AS bucket,
                   sum(greatest(delta, 0)) AS energy, bool_or(delta < 0) AS register_reset,
                   count(*) AS reads
            FROM deltas WHERE delta IS NOT NULL AND ts > %(start)s
            GROUP BY 1 ORDER BY 1""").format(bucket=_delta_bucket(interval))
    else:
        query = sql.SQL("""
            SELECT {bucket} AS bucket, min(value) AS min, avg(value) AS avg, max(value) AS max,
                   count(*) AS reads
            FROM readings WHERE meter_id = %(meter)s AND quantity = %(quantity)s
              AND ts >= %(start)s AND ts < %(end)s
            GROUP BY 1 ORDER BY 1""").format(bucket=_bucket(interval, "ts"))
    cursor = await conn.execute(query, params)
    return {
        "meter_id": meter_id,
        "quantity": quantity,
        "unit": unit,
        "interval": interval,
        "time_zone": tz,
        "points": await cursor.fetchall(),
    }


async def board_readings(
    conn: AsyncConnection,
    principal: Principal,
    board_id: int,
    *,
    quantity: str,
    start: datetime,
    end: datetime,
    interval: Interval,
) -> dict[str, Any]:
    if interval == "raw":
        raise InvalidInput("a board's readings are aggregated", errors=[("interval", "raw")])
    _check_range(quantity, start, end, interval)
    board = await get_row(conn, principal, BOARDS, board_id)  # scope: 404 outside it
    params = {
        "board": board_id,
        "quantity": quantity,
        "start": start,
        "end": end,
        "tz": board["time_zone"],
    }
    if QUANTITIES[quantity].is_cumulative:
        query = sql.SQL("""
            WITH m AS (SELECT id FROM meters WHERE board_id = %(board)s),
            reads AS (
                SELECT r.meter_id, r.ts, r.value FROM readings r JOIN m ON m.id = r.meter_id
                WHERE r.quantity = %(quantity)s AND r.ts > %(start)s AND r.ts <= %(end)s
                UNION ALL
                SELECT p.meter_id, p.ts, p.value FROM m CROSS JOIN LATERAL (
                    SELECT meter_id, ts, value FROM readings WHERE meter_id = m.id
                      AND quantity = %(quantity)s AND ts <= %(start)s ORDER BY ts DESC LIMIT 1
                ) p
            ), deltas AS (
                SELECT meter_id, ts,
                       value - lag(value) OVER (PARTITION BY meter_id ORDER BY ts) AS delta
                FROM reads
            )
            SELECT {bucket} AS bucket, sum(greatest(delta, 0)) AS energy,
                   bool_or(delta < 0) AS register_reset, count(DISTINCT meter_id) AS meters
            FROM deltas WHERE delta IS NOT NULL AND ts > %(start)s
            GROUP BY 1 ORDER BY 1""").format(bucket=_delta_bucket(interval))
    else:
        query = sql.SQL("""
            WITH per_meter AS (
                SELECT {bucket} AS bucket, r.meter_id, min(r.value) AS min,
                       avg(r.value) AS avg, max(r.value) AS max, count(*) AS reads
                FROM readings r JOIN meters m ON m.id = r.meter_id
                WHERE m.board_id = %(board)s AND r.quantity = %(quantity)s
                  AND r.ts >= %(start)s AND r.ts < %(end)s
                GROUP BY 1, 2
            )
            SELECT bucket, min(min) AS min, sum(avg * reads) / sum(reads) AS avg,
                   max(max) AS max, sum(avg) AS sum, count(*) AS meters
            FROM per_meter GROUP BY 1 ORDER BY 1""").format(bucket=_bucket(interval, "r.ts"))
    cursor = await conn.execute(query, params)
    return {
        "board_id": board_id,
        "quantity": quantity,
        "unit": QUANTITIES[quantity].unit,
        "interval": interval,
        "time_zone": board["time_zone"],
        "points": await cursor.fetchall(),
    }


async def latest_values(
    conn: AsyncConnection, principal: Principal, meter_id: int
) -> list[dict[str, Any]]:
    """The meter's newest value of each quantity it reported in the last 31 days, with its name,
    unit and group: one index probe per known quantity, never a scan of the meter's history."""
    meter = await get_row(conn, principal, METERS, meter_id)  # scope: 404 outside it
    since = datetime.now(UTC) - timedelta(days=31)
    since = max(since, tenure_start(principal, meter) or since)
    cursor = await conn.execute(
        "SELECT q.quantity, r.ts, r.value, r.quality FROM unnest(%s::text[]) AS q(quantity)"
        " CROSS JOIN LATERAL (SELECT ts, value, quality FROM readings"
        "   WHERE meter_id = %s AND quantity = q.quantity AND ts > %s"
        "   ORDER BY ts DESC LIMIT 1) r",
        (list(QUANTITIES), meter_id, since),
    )
    return [
        {
            **r,
            "name": QUANTITIES[r["quantity"]].description,
            "unit": QUANTITIES[r["quantity"]].unit,
            "group": QUANTITIES[r["quantity"]].group,
        }
        for r in await cursor.fetchall()
    ]


async def board_overview(conn: AsyncConnection, principal: Principal) -> list[dict[str, Any]]:
    """Per board in scope: meters, meters read in the last 15 minutes, open alerts, active
    gateways, and energy since local midnight."""
    condition, params = scope_filter(principal, "board", "b")
    cursor = await conn.execute(
        sql.SQL(
            """
            SELECT b.id, b.code, b.name,
              (SELECT count(*) FROM meters m WHERE m.board_id = b.id AND m.replaced_at IS NULL)
                 AS meters,
              (SELECT count(DISTINCT r.meter_id) FROM readings r JOIN meters m ON m.id = r.meter_id
                 WHERE m.board_id = b.id AND r.ts > now() - interval '15 minutes') AS online,
              (SELECT count(*) FROM alerts a WHERE a.board_id = b.id AND a.state <> 'resolved')
                 AS alerts,
              (SELECT count(*) FROM gateways g WHERE g.board_id = b.id AND g.status = 'active')
                 AS gateways,
              (SELECT coalesce(sum(d), 0) FROM (
                 SELECT r.value - lag(r.value) OVER (PARTITION BY r.meter_id ORDER BY r.ts) AS d
                 FROM readings r JOIN meters m ON m.id = r.meter_id
                 WHERE m.board_id = b.id AND r.quantity = '1.8.0'
                   AND r.ts >= date_trunc('day', now() AT TIME ZONE b.time_zone)
                                AT TIME ZONE b.time_zone) x WHERE d > 0) AS energy
            FROM boards b WHERE {} ORDER BY b.code
            """
        ).format(condition),
        params,
    )
    return await cursor.fetchall()

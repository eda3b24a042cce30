"""Aggregates that keep the console off raw readings: a board's imported energy per quarter hour
by consumer category (`board_energy_15min`, from which load and profiles follow) and per local
day (`board_energy_daily`, what consumption over long periods sums), and each consumer's energy
and peak per local day (`consumer_energy_daily`) and energy per local month
(`consumer_energy_monthly`, the sum of its days).

They are defined exactly as the readings API defines a board's energy per bucket
(`cloud.services.readings`): the difference between consecutive `1.8.0` reads of a meter,
counted in the quarter hour where its interval ends, drops (resets) left out. Ingest marks the
(board, local day) its readings touch as dirty; `refresh` computes those days again from the raw
readings, whole, so late data — a gateway back after weeks offline, a corrected read — is folded
in the next time the job runs. A day whose next read came after a gap is marked too, because that
read's difference reaches back into it.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import structlog
from psycopg import AsyncConnection, sql

from ..billing.engine import local_midnight, month_of

log = structlog.get_logger(__name__)
MAX_DAYS_PER_PASS = 400  # a pass stops after this many board-days; the rest waits for the next
ENERGY = "1.8.0"


def local_day(instant: datetime, tz: ZoneInfo) -> date:
    return instant.astimezone(tz).date()


async def mark_dirty(
    conn: AsyncConnection,
    board_id: int,
    time_zone: str,
    first: datetime,
    last: datetime,
    *,
    now: datetime | None = None,
) -> None:
    """Mark the board's local days that energy reads from `first` to `last` touch: from the day
    holding the instant before `first` (a read on midnight closes the day before) to the day of
    `last`, and on to today when the reads are old (their successors' differences change)."""
    tz = ZoneInfo(time_zone)
    start = local_day(first - timedelta(microseconds=1), tz)
    end = local_day(last, tz)
    today = local_day(now or datetime.now(UTC), tz)
    if end < today - timedelta(days=1):
        end = today
    await conn.execute(
        "INSERT INTO aggregates_dirty (board_id, day)"
        " SELECT %s, d::date FROM generate_series(%s::date, %s::date, interval '1 day') d"
        " ON CONFLICT DO NOTHING",
        (board_id, start, end),
    )


_RECOMPUTE = """
WITH m AS (
    SELECT mt.id, mt.consumer_id, coalesce(c.category, '') AS category
    FROM meters mt LEFT JOIN consumers c ON c.id = mt.consumer_id
    WHERE mt.board_id = %(board)s
), reads AS (
    SELECT r.meter_id, r.ts, r.value FROM m JOIN readings r ON r.meter_id = m.id
    WHERE r.quantity = %(quantity)s AND r.ts > %(start)s AND r.ts <= %(end)s
    UNION ALL
    SELECT p.meter_id, p.ts, p.value FROM m CROSS JOIN LATERAL (
        SELECT meter_id, ts, value FROM readings
        WHERE meter_id = m.id AND quantity = %(quantity)s AND ts <= %(start)s
        ORDER BY ts DESC LIMIT 1
    ) p
), deltas AS (
    SELECT meter_id, ts, value - lag(value) OVER (PARTITION BY meter_id ORDER BY ts) AS d
    FROM reads
), per_meter AS MATERIALIZED (
    SELECT d.meter_id,
           date_bin('15 minutes', d.ts - interval '1 microsecond',
                    TIMESTAMPTZ '2000-01-01 00:00+00') AS bucket,
           sum(greatest(d.d, 0)) AS energy
    FROM deltas d WHERE d.d IS NOT NULL AND d.ts > %(start)s
    GROUP BY 1, 2
), board_rows AS (
    INSERT INTO board_energy_15min (board_id, category, bucket, energy_kwh, meters)
    SELECT %(board)s, m.category, p.bucket, sum(p.energy), count(*)
    FROM per_meter p JOIN m ON m.id = p.meter_id
    GROUP BY m.category, p.bucket
    RETURNING 1
), daily_rows AS (
    INSERT INTO board_energy_daily (board_id, category, day, energy_kwh)
    SELECT %(board)s, m.category, %(day)s, sum(p.energy)
    FROM per_meter p JOIN m ON m.id = p.meter_id
    GROUP BY m.category
    RETURNING 1
), consumer_buckets AS (
    SELECT m.consumer_id, p.bucket, sum(p.energy) AS energy
    FROM per_meter p JOIN m ON m.id = p.meter_id
    WHERE m.consumer_id IS NOT NULL
    GROUP BY 1, 2
), consumer_rows AS (
    INSERT INTO consumer_energy_daily (consumer_id, board_id, day, energy_kwh, peak_kw)
    SELECT consumer_id, %(board)s, %(day)s, sum(energy), max(energy) * 4
    FROM consumer_buckets GROUP BY consumer_id
    RETURNING 1
)
SELECT (SELECT count(*) FROM board_rows) AS buckets,
       (SELECT count(*) FROM daily_rows) AS categories,
       (SELECT count(*) FROM consumer_rows) AS consumers
"""


async def recompute_day(
    conn: AsyncConnection, board_id: int, time_zone: str, day: date
) -> tuple[int, int]:
    """The board's aggregates of one local day, from the raw readings; (buckets, consumers)."""
    tz = ZoneInfo(time_zone)
    start, end = local_midnight(day, tz), local_midnight(day + timedelta(days=1), tz)
    await conn.execute(
        "DELETE FROM board_energy_15min WHERE board_id = %s AND bucket >= %s AND bucket < %s",
        (board_id, start, end),
    )
    for table in ("board_energy_daily", "consumer_energy_daily"):
        await conn.execute(
            sql.SQL("DELETE FROM {} WHERE board_id = %s AND day = %s").format(
                sql.Identifier(table)
            ),
            (board_id, day),
        )
    cursor = await conn.execute(
        _RECOMPUTE,
        {"board": board_id, "quantity": ENERGY, "start": start, "end": end, "day": day},
    )
    row = await cursor.fetchone()
    month = day.replace(day=1)
    # Two refreshers (the jobs loops of two processes, or an import beside one) may compute
    # different days of one month at once; each rewrites the month's rows from its days. One at
    # a time, until the transaction ends: the second then sees the first's rows and days, where
    # unlocked it would insert beside them (a duplicate key) or sum without the first's day.
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
        (f"monthly energy {board_id} {month:%Y-%m}",),
    )
    await conn.execute(
        "DELETE FROM consumer_energy_monthly WHERE board_id = %s AND month = %s", (board_id, month)
    )
    await conn.execute(
        "INSERT INTO consumer_energy_monthly (consumer_id, board_id, month, energy_kwh)"
        " SELECT consumer_id, board_id, %s, sum(energy_kwh) FROM consumer_energy_daily"
        " WHERE board_id = %s AND day >= %s AND day < %s GROUP BY consumer_id, board_id",
        (month, board_id, *month_of(month)),
    )
    return row["buckets"], row["consumers"]


async def refresh(conn: AsyncConnection, *, max_days: int = MAX_DAYS_PER_PASS) -> int:
    """Compute every dirty board-day again (oldest first, each in its own short transaction,
    skipping days another process is computing); the number done."""
    done = 0
    while done < max_days:
        async with conn.transaction():
            cursor = await conn.execute(
                "SELECT d.board_id, d.day, b.time_zone FROM aggregates_dirty d"
                " JOIN boards b ON b.id = d.board_id ORDER BY d.day, d.board_id"
                " LIMIT 1 FOR UPDATE OF d SKIP LOCKED"
            )
            dirty = await cursor.fetchone()
            if dirty is None:
                break
            await recompute_day(conn, dirty["board_id"], dirty["time_zone"], dirty["day"])
            await conn.execute(
                "DELETE FROM aggregates_dirty WHERE board_id = %s AND day = %s",
                (dirty["board_id"], dirty["day"]),
            )
        done += 1
    if done:
        log.info("aggregates refreshed", board_days=done)
    return done

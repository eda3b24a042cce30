"""What a consumer has used so far in the current cycle, from the registers: one definition, so
the projected bill, the forecast and the tariff's "you are here" never disagree — and which
period that cycle is (`period_holding`).

For each of the consumer's meters (not replaced): the last read at or before the cycle's start,
and the first and last read since, up to now; the span from the start to the latest read.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from psycopg import AsyncConnection

from ..billing.consumption import Consumption, MeterSpan, Read, consumption, to_decimal
from ..billing.cycles import current_period
from ..billing.engine import month_of


async def spans_so_far(
    conn: AsyncConnection, consumer_id: int, quantity: str, start: datetime, now: datetime
) -> list[MeterSpan]:
    """Each meter's reads that bound its consumption since `start` (meters with no read since
    are left out)."""
    cursor = await conn.execute(
        "SELECT m.id, m.ct_ratio, r.ts, r.value FROM meters m JOIN LATERAL ("
        "  (SELECT ts, value FROM readings WHERE meter_id = m.id AND quantity = %(q)s"
        "    AND ts <= %(start)s AND quality IN ('ok', 'estimated') ORDER BY ts DESC LIMIT 1)"
        "  UNION ALL"
        "  (SELECT ts, value FROM readings WHERE meter_id = m.id AND quantity = %(q)s"
        "    AND ts > %(start)s AND ts <= %(now)s AND quality IN ('ok', 'estimated')"
        "    ORDER BY ts LIMIT 1)"
        "  UNION ALL"
        "  (SELECT ts, value FROM readings WHERE meter_id = m.id AND quantity = %(q)s"
        "    AND ts > %(start)s AND ts <= %(now)s AND quality IN ('ok', 'estimated')"
        "    ORDER BY ts DESC LIMIT 1)"
        ") r ON true WHERE m.consumer_id = %(c)s AND m.replaced_at IS NULL ORDER BY m.id, r.ts",
        {"q": quantity, "start": start, "now": now, "c": consumer_id},
    )
    reads: dict[int, list[Read]] = {}
    ratios: dict[int, Decimal] = {}
    for row in await cursor.fetchall():
        reads.setdefault(row["id"], []).append(Read(row["ts"], to_decimal(row["value"])))
        ratios[row["id"]] = Decimal(row["ct_ratio"])
    return [
        MeterSpan(meter, series, start, series[-1].ts, ratios[meter])
        for meter, series in reads.items()
        if series[-1].ts > start
    ]


async def used_so_far(
    conn: AsyncConnection,
    consumer_id: int,
    quantity: str,
    start: datetime,
    now: datetime,
    tz: ZoneInfo,
) -> Consumption | None:
    """The consumption since `start`, or None when no meter has been read since."""
    spans = await spans_so_far(conn, consumer_id, quantity, start, now)
    return consumption(spans, tz) if spans else None


async def period_holding(
    conn: AsyncConnection, board_id: int, today: date
) -> tuple[date, date, Decimal | None]:
    """The board's billing period that holds `today` (a local date): its cycle's when one is
    set and enabled — with the months it counts for — else the calendar month (None: measured
    on the calendar)."""
    cursor = await conn.execute(
        "SELECT cycle_day, cycle FROM billing_cycles WHERE board_id = %s AND enabled", (board_id,)
    )
    row = await cursor.fetchone()
    if row is None:
        start, end = month_of(today)
        return start, end, None
    period = current_period(row["cycle_day"], row["cycle"], today)
    return period.start, period.end, period.months

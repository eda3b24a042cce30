"""A consumer's energy balance per local day: generation, import, export and self-consumption.

Import and export are the consumer's meters' registers 1.8.0 and 2.8.0; generation is measured,
never estimated: it is the export register (2.8.0) of the generation meter named on the
consumer's generation source, a meter between the inverter and the consumer's wiring that
counts the inverter's output as energy leaving it. Without one the days show import and export
and say generation is not metered. Self-consumption is what was generated and not exported
(generation less export); a day whose generation reads below its export (meters out of step)
shows none rather than a negative figure.

Each figure is defined as the readings API defines energy per bucket
(`cloud.services.readings`): the difference of consecutive reads of a register, counted in the
local day where its interval ends, falls (resets) left out, reads of billable quality only. A
consumer sees its meters' reads from the moment each became theirs.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from psycopg import AsyncConnection

from ..access import Principal
from ..billing.consumption import to_decimal
from ..billing.engine import local_midnight
from ..errors import InvalidInput
from .scoped import CONSUMERS, get_row

MAX_DAYS = 92
DEFAULT_DAYS = 30
BILLABLE = ("ok", "estimated")

_DAILY = """
WITH m AS (
    SELECT * FROM unnest(%(ids)s::bigint[], %(quantities)s::text[], %(series)s::text[],
                         %(since)s::timestamptz[]) AS m(id, quantity, series, since)
), reads AS (
    SELECT m.series, r.meter_id, r.ts, r.value FROM m JOIN readings r
        ON r.meter_id = m.id AND r.quantity = m.quantity
    WHERE r.ts > %(start)s AND r.ts <= %(end)s AND r.ts >= m.since
      AND r.quality = ANY(%(qualities)s)
    UNION ALL
    SELECT m.series, p.meter_id, p.ts, p.value FROM m CROSS JOIN LATERAL (
        SELECT meter_id, ts, value FROM readings
        WHERE meter_id = m.id AND quantity = m.quantity AND ts <= %(start)s AND ts >= m.since
          AND quality = ANY(%(qualities)s)
        ORDER BY ts DESC LIMIT 1
    ) p
), deltas AS (
    SELECT series, ts,
           value - lag(value) OVER (PARTITION BY series, meter_id ORDER BY ts) AS d
    FROM reads
)
SELECT series, (date_trunc('day', (ts - interval '1 microsecond') AT TIME ZONE %(tz)s))::date
           AS day,
       sum(greatest(d, 0)) AS energy
FROM deltas WHERE d IS NOT NULL GROUP BY 1, 2
"""


async def daily(
    conn: AsyncConnection,
    principal: Principal,
    consumer_id: int,
    *,
    start: date | None = None,
    end: date | None = None,
) -> dict[str, Any]:
    """The consumer's balance for each local day of [start, end) (the last 30 days to today
    when left out; at most 92 days)."""
    consumer = await get_row(conn, principal, CONSUMERS, consumer_id)
    cursor = await conn.execute(
        "SELECT time_zone FROM boards WHERE id = %s", (consumer["board_id"],)
    )
    zone = (await cursor.fetchone())["time_zone"]
    tz = ZoneInfo(zone)
    today = datetime.now(UTC).astimezone(tz).date()
    if end is None:
        end = start + timedelta(days=DEFAULT_DAYS) if start else today + timedelta(days=1)
    if start is None:
        start = end - timedelta(days=DEFAULT_DAYS)
    if end <= start:
        raise InvalidInput(
            f"to ({end}) must be after from ({start})", errors=[("to", end.isoformat())]
        )
    if (end - start).days > MAX_DAYS:
        raise InvalidInput(
            f"at most {MAX_DAYS} days at a time ({(end - start).days} asked)",
            errors=[("to", end.isoformat())],
        )
    tenure = principal.role == "CONSUMER"
    cursor = await conn.execute(
        "SELECT id, consumer_since FROM meters WHERE consumer_id = %s ORDER BY id",
        (consumer_id,),
    )
    ids, quantities, series, since = [], [], [], []
    floor = datetime(2000, 1, 1, tzinfo=UTC)
    for meter in await cursor.fetchall():
        joined = (meter["consumer_since"] if tenure else None) or floor
        for quantity, name in (("1.8.0", "import"), ("2.8.0", "export")):
            ids.append(meter["id"])
            quantities.append(quantity)
            series.append(name)
            since.append(joined)
    generation_meter = consumer["generation_meter_id"]
    if generation_meter is not None:
        ids.append(generation_meter)
        quantities.append("2.8.0")
        series.append("generation")
        since.append(floor)
    found: dict[tuple[str, date], Decimal] = {}
    if ids:
        cursor = await conn.execute(
            _DAILY,
            {
                "ids": ids,
                "quantities": quantities,
                "series": series,
                "since": since,
                "start": local_midnight(start, tz),
                "end": local_midnight(end, tz),
                "qualities": list(BILLABLE),
                "tz": zone,
            },
        )
        found = {
            (row["series"], row["day"]): to_decimal(row["energy"])
            for row in await cursor.fetchall()
        }
    days = []
    day = start
    while day < end:
        days.append(_day(day, found))
        day += timedelta(days=1)
    return {
        "consumer_id": consumer_id,
        "time_zone": zone,
        "from": start,
        "to": end,
        "unit": "kWh",
        "generation_source": (
            {
                "kind": consumer["generation_kind"],
                "capacity_kwp": consumer["generation_kwp"],
                "since": consumer["generation_since"],
            }
            if consumer["generation_kind"]
            else None
        ),
        "generation_metered": generation_meter is not None,
        "days": days,
        "totals": {
            name: _sum(d[f"{name}_kwh"] for d in days)
            for name in ("generation", "import", "export", "self_consumption")
        },
    }


def _day(day: date, found: dict[tuple[str, date], Decimal]) -> dict[str, Any]:
    figures = {name: found.get((name, day)) for name in ("import", "export", "generation")}
    consumed = None
    generated, exported = figures["generation"], figures["export"]
    if generated is not None and generated >= (exported or Decimal(0)):
        consumed = generated - (exported or Decimal(0))
    return {
        "day": day,
        "generation_kwh": generated,
        "import_kwh": figures["import"],
        "export_kwh": exported,
        "self_consumption_kwh": consumed,
    }


def _sum(values: Any) -> Decimal | None:
    present = [v for v in values if v is not None]
    return sum(present, Decimal(0)) if present else None

"""Meters' time-of-day energy summed by hour class in PostgreSQL (`cloud.billing.hour_classes`).

For each meter's span over a whole billing period, one walk over its range of the readings'
covering key, as the thinned hourly walk of `billing_runs` makes: it keeps the read on the
period's first instant, the read on each local hour's end (`HourGrid.stops`, found by binary
search) and any read lower than the one before it. Each kept read is taken as Python takes a
float (`Decimal(repr(value))`): PostgreSQL prints a double as the shortest text that reads back
as it (`extra_float_digits` above 0, the default), the same digits as Python's repr below
10^15 (above, it may print more), and an integral read gets back the ".0" repr gives it
(`_as_repr`), so the decimal places match too. The rises between consecutive kept reads are
added per class in numeric, which is exact; zero rises are left out, as the hourly spread leaves
out an hour with no rise (they could only add decimal places). A row per class leaves the
database, about fifty a meter for a month, where the thinned walk sent a read per hour.

A span is summed only when a read lies on its start and on every hour's end, no read is lower
than the one before it (nor the read on the start lower than the last read before the span: a
fall there shifts every later read of the spread by an offset, which can cost it digits), the
read on the start is above zero (so every read is, and none is a -0.0, which numeric cannot
keep) and the last below 10^15, and the session prints doubles in the shortest form. The rest
are `billing_runs`' to spread from their reads. `hour_classes.summable` then checks the chain's
digits against the Decimal context.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from decimal import Decimal

from psycopg import AsyncConnection
from psycopg.rows import tuple_row

from ..billing.consumption import ClassSums, HourClass
from ..billing.hour_classes import HourGrid

_SUMS = """
SELECT s.meter_id, before.value AS before, x.hour_class, x.rise, x.hours, x.fell,
       x.first_ts, x.first_value, x.first_v, x.last_v,
       current_setting('extra_float_digits')::int > 0 AS shortest
FROM unnest(%(ids)s::bigint[]) AS s(meter_id)
LEFT JOIN LATERAL (
    SELECT r.value
    FROM readings r
    WHERE r.meter_id = s.meter_id AND r.quantity = %(quantity)s AND r.quality = ANY(%(qualities)s)
      AND r.ts < %(start)s AND r.ts >= %(start)s - %(margin)s
    ORDER BY r.ts DESC LIMIT 1
) before ON true
CROSS JOIN LATERAL (
    SELECT hour_class, sum(rise) FILTER (WHERE rise <> 0) AS rise, count(*) AS hours,
           bool_or(fell) AS fell,
           min(ts) FILTER (WHERE ts = %(start)s) AS first_ts,
           min(value) FILTER (WHERE ts = %(start)s) AS first_value,
           min(v) FILTER (WHERE ts = %(start)s) AS first_v,
           max(v) FILTER (WHERE ts = %(end)s) AS last_v
    FROM (
        SELECT ts, value, fell, v, v - lag(v) OVER (ORDER BY ts) AS rise,
               CASE WHEN (%(stops)s::timestamptz[])[bucket] = ts
                   THEN (%(class_of)s::int[])[bucket] END AS hour_class
        FROM (
            SELECT ts, value, value::text::numeric AS v, fell, bucket
            FROM (
                SELECT r.ts, r.value, r.value < lag(r.value) OVER (ORDER BY r.ts) AS fell,
                       width_bucket(r.ts, %(stops)s::timestamptz[]) AS bucket
                FROM readings r
                WHERE r.meter_id = s.meter_id AND r.quantity = %(quantity)s
                  AND r.quality = ANY(%(qualities)s) AND r.ts >= %(start)s AND r.ts <= %(end)s
            ) every
            WHERE ts = %(start)s OR fell OR (%(stops)s::timestamptz[])[bucket] = ts
        ) kept
    ) risen
    GROUP BY hour_class
) x
"""
_LIMIT = 10**15  # shortest text and repr agree below this (above, PG may print more digits)


async def sum_by_class(
    conn: AsyncConnection,
    meter_ids: Sequence[int],
    grid: HourGrid,
    quantity: str,
    qualities: Sequence[str],
    margin: timedelta,
) -> dict[int, ClassSums]:
    """The meters' spans over the whole of `grid`'s period summed by class, for those the
    database can sum (see the module doc); a meter left out is to be spread from its reads."""
    if not meter_ids or not grid.stops:
        return {}
    params = {
        "ids": list(meter_ids),
        "quantity": quantity,
        "qualities": list(qualities),
        "margin": margin,
        "start": grid.start,
        "end": grid.stops[-1],
        "stops": grid.stops,
        "class_of": grid.class_of,
    }
    async with conn.cursor(row_factory=tuple_row, binary=True) as cursor:
        # never prepared: a generic plan knows neither the partitions nor how many reads a
        # span holds, and sorts each meter's reads the index already gives in order (about
        # three times slower from a connection's eleventh run of it)
        await cursor.execute(_SUMS, params, prepare=False)
        rows = await cursor.fetchall()
    meters: dict[int, _Walk] = {}
    for (
        meter_id,
        before,
        cls,
        rise,
        hours,
        fell,
        first_ts,
        first_value,
        first_v,
        last_v,
        shortest,
    ) in rows:
        walk = meters.setdefault(meter_id, _Walk())
        walk.ok = walk.ok and shortest and not fell
        if last_v is not None:
            walk.last = _as_repr(last_v)
        if cls is None:  # the read on the start (and any read lower than the one before it)
            # on the start, not below the read before it, and above zero: then so is every
            # read after it, and none is a -0.0 (PostgreSQL's numeric has no negative zero)
            if first_ts == grid.start and first_value > 0 and not (before or 0) > first_value:
                walk.first = _as_repr(first_v)
            else:
                walk.ok = False
            continue
        walk.hours += hours
        if rise is not None:
            walk.by_class[grid.classes[cls - 1]] = _as_repr(rise)
    return {
        meter_id: ClassSums(
            walk.last - walk.first,
            walk.by_class,
            walk.last,
            max(_places(x) for x in (walk.first, walk.last, *walk.by_class.values())),
        )
        for meter_id, walk in meters.items()
        if walk.ok
        and walk.hours == len(grid.stops)
        and walk.first is not None
        and walk.last is not None
        and walk.last < _LIMIT
    }


class _Walk:
    """What the rows of one meter's span say, gathered."""

    def __init__(self) -> None:
        self.ok = True
        self.hours = 0
        self.first: Decimal | None = None
        self.last: Decimal | None = None
        self.by_class: dict[HourClass, Decimal] = {}


def _as_repr(value: Decimal) -> Decimal:
    """`value` with the decimal places Python's reads have: an integral read is "3000.0" in
    repr, "3000" in PostgreSQL, and a sum or difference of only such reads likewise."""
    sign, digits, exponent = value.as_tuple()
    if exponent == 0:
        return Decimal((sign, (*digits, 0), -1))  # built, not computed: no context rounds it
    return value


def _places(value: Decimal) -> int:
    return max(0, -int(value.as_tuple().exponent))

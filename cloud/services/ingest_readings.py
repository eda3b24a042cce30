"""How ingest writes a batch's readings: each stored once, whatever was sent before.

A reading's identity is (meter, quantity, ts), the primary key of `readings`; a reading already
stored is skipped, never an error, so a batch may be sent any number of times. Two ways in, the
same outcome:

- **COPY straight into `readings`**, when no (meter, quantity) series of the batch has a stored
  reading between the series' first and last timestamp in the batch (one index probe per
  series, not per reading). Every batch of new readings goes this way, and it costs PostgreSQL
  about half of the other (10 against 20 ms of CPU for 5,000 readings on the bench machine):
  `ON CONFLICT` makes each row a speculative insertion, a probe and an extra WAL record. It runs
  under a savepoint: a reading that was written meanwhile by a concurrent request, or that the
  batch carries twice, stops it with a unique violation, and the batch goes the other way.
- **COPY into a staging table, then `INSERT ... SELECT ... ON CONFLICT DO NOTHING`**, otherwise
  (a resent batch, a backfill into a gap, a race).

Either way the caller's transaction holds the write; nothing is visible before its commit.
"""

from __future__ import annotations

from datetime import datetime

import structlog
from psycopg import AsyncConnection
from psycopg.errors import UniqueViolation

from shared import ReadingRow

log = structlog.get_logger(__name__)

Series = tuple[str, str]  # (wire meter id, quantity)


def series_spans(rows: list[ReadingRow]) -> dict[Series, list[datetime]]:
    """Each (meter, quantity) series of `rows` -> [its first ts, its last ts]: one pass over
    the rows, from which the time checks, the partitions and the probes all take what they need."""
    spans: dict[Series, list[datetime]] = {}
    for row in rows:
        key = (row["meter_id"], row["quantity"])
        ts = row["ts"]
        span = spans.get(key)
        if span is None:
            spans[key] = [ts, ts]
        elif ts < span[0]:
            span[0] = ts
        elif ts > span[1]:
            span[1] = ts
    return spans


async def store(
    conn: AsyncConnection,
    gateway_id: int,
    rows: list[ReadingRow],
    meter_ids: dict[str, int],
    spans: dict[Series, list[datetime]],
) -> int:
    """Write `rows` (of meters in `meter_ids`: wire id -> meters.id) into `readings`, skipping
    those stored before; the number new. `spans` are the rows' (`series_spans`)."""
    spans = {key: span for key, span in spans.items() if key[0] in meter_ids}
    if await _all_new(conn, spans, meter_ids):
        try:
            async with conn.transaction():  # a savepoint: a unique violation undoes only this
                new = await _copy_into_readings(conn, gateway_id, rows, meter_ids)
        except UniqueViolation:
            # a concurrent request stored one of them first, or the batch holds one twice
            log.info("a reading was already there; skipping stored ones", gateway_id=gateway_id)
        else:
            await _note_last_readings(conn, spans, meter_ids)
            return new
    new = await _insert_skipping_stored(conn, gateway_id, rows, meter_ids)
    await _note_last_readings(conn, spans, meter_ids)
    return new


async def _all_new(
    conn: AsyncConnection, spans: dict[Series, list[datetime]], meter_ids: dict[str, int]
) -> bool:
    """True when no series has a stored reading within its span (so no row can conflict with
    one committed before this transaction). `OFFSET 0` keeps the probe a subplan run per series
    with its parameters, which prunes to the partitions of the span and walks the primary key;
    as a join the planner may sort or hash the whole table."""
    cursor = await conn.execute(
        "SELECT EXISTS (SELECT 1 FROM unnest(%s::bigint[], %s::text[], %s::timestamptz[],"
        " %s::timestamptz[]) AS s (meter_id, quantity, first_ts, last_ts)"
        " WHERE EXISTS (SELECT 1 FROM readings r WHERE r.meter_id = s.meter_id"
        " AND r.quantity = s.quantity AND r.ts BETWEEN s.first_ts AND s.last_ts OFFSET 0))"
        " AS stored",
        (
            [meter_ids[meter] for meter, _ in spans],
            [quantity for _, quantity in spans],
            [span[0] for span in spans.values()],
            [span[1] for span in spans.values()],
        ),
    )
    return not (await cursor.fetchone())["stored"]


async def _copy_into_readings(
    conn: AsyncConnection, gateway_id: int, rows: list[ReadingRow], meter_ids: dict[str, int]
) -> int:
    async with conn.cursor() as cur:
        # binary COPY with declared types: no text formatting of timestamps and floats
        async with cur.copy(
            "COPY readings (meter_id, quantity, ts, value, quality, gateway_id)"
            " FROM STDIN (FORMAT BINARY)"
        ) as copy:
            copy.set_types(["int8", "text", "timestamptz", "float8", "text", "int8"])
            for r in rows:
                await copy.write_row(
                    (
                        meter_ids[r["meter_id"]],
                        r["quantity"],
                        r["ts"],
                        r["value"],
                        r["quality"],
                        gateway_id,
                    )
                )
        return cur.rowcount


async def _insert_skipping_stored(
    conn: AsyncConnection, gateway_id: int, rows: list[ReadingRow], meter_ids: dict[str, int]
) -> int:
    await conn.execute(
        "CREATE TEMP TABLE staging_readings (meter_id bigint, quantity text, ts timestamptz,"
        " value double precision, quality text) ON COMMIT DROP"
    )
    async with conn.cursor() as cur:
        async with cur.copy("COPY staging_readings FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(["int8", "text", "timestamptz", "float8", "text"])
            for r in rows:
                await copy.write_row(
                    (meter_ids[r["meter_id"]], r["quantity"], r["ts"], r["value"], r["quality"])
                )
        await cur.execute(
            "INSERT INTO readings (meter_id, quantity, ts, value, quality, gateway_id)"
            " SELECT meter_id, quantity, ts, value, quality, %s FROM staging_readings"
            " ON CONFLICT DO NOTHING",
            (gateway_id,),
        )
        return cur.rowcount


async def _note_last_readings(
    conn: AsyncConnection, spans: dict[Series, list[datetime]], meter_ids: dict[str, int]
) -> None:
    """When each meter last spoke, for the console's online / offline / never seen."""
    latest: dict[int, datetime] = {}
    for (meter, _), span in spans.items():
        meter_id = meter_ids[meter]
        if meter_id not in latest or latest[meter_id] < span[1]:
            latest[meter_id] = span[1]
    ordered = sorted(latest.items())  # rows locked in one order by every request
    await conn.execute(
        "UPDATE meters m SET last_reading_at = v.latest"
        " FROM unnest(%s::bigint[], %s::timestamptz[]) AS v (id, latest)"
        " WHERE m.id = v.id AND (m.last_reading_at IS NULL OR m.last_reading_at < v.latest)",
        ([m for m, _ in ordered], [ts for _, ts in ordered]),
    )

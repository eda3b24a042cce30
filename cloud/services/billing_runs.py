"""Billing runs: a board's invoices for one period, made idempotently.

For each consumer of the board with a meter in the period: measure consumption from the
registers (every meter of its replacement chain, CT ratio applied), price it under the tariff
versions in force, and compare with the latest version of its invoice for that period:
- none yet: version 1 is created (a draft);
- the same total and the same "estimated" flag: nothing is created (a second run changes nothing);
- different (late data arrived, a read was corrected): a new version references the old one and
  bills only the difference — its lines are the recalculated bill plus one line taking off what
  the earlier versions billed. An issued invoice is never edited.
(`invoice_versions` records a chunk's bills in a handful of statements.)

Only the readings the arithmetic needs leave the database: for each meter, the first and last
read inside its span, the reads around any fall of the register (rollover, reset), and the
nearest read outside each boundary (up to 35 days away). Each is found in the meter's own range
of the primary key, which carries value and quality, so the scan reads the index alone; a board
in steady operation pays for its month, not for the months around it, and not for the other
meters whose reads ingest interleaved with this one's. A time-of-day tariff spreads the energy
over the board's local hours (`consumption.hour_pieces`), which looks at the register only at
each hour's end: the same walk also keeps, for each hour's end, the first read at or after it
and, when none lies on it, the last read before it — one read an hour for a meter read every
15 minutes, where the run used to take all four; the rise inside an hour is its last read less
its first whatever lies between, so the bills are those of every read, to the Decimal
(tests/cloud/billing/test_time_of_day_exact.py keeps the old walk to prove it). Most meters
need not even that: one read on the period's start and on every hour's end, and a register that
never fell, let the database add the hours' rises up by hour class (`hourly_sums`: a row per
class of some fifty, not a read per hour), and the bill is priced from those sums
(`hour_classes`); a consumer any of whose meters the database cannot sum exactly is spread
from its reads as above. Consumers are measured a thousand at a time, which bounds the reads
held in memory at once; given a second connection (`reader`, `spare_connection`), the run reads
most of the next thousand on it while it bills and writes these, and the rest on its own
connection once they are written, beside the reader: the database's walk over the reads is
most of a run's work, and this way two backends share it, while Python's arithmetic overlaps.

A run is recorded as it goes: its `billing_runs` row is committed first (status running, how many
consumers) and its counts after each chunk, so the console can follow a long run from another
connection; the bills of a chunk commit with it, and a run stopped half-way is finished by running
it again (runs are idempotent). The outcome says how many bills were created, revised, unchanged,
estimated or failed, and which consumers could not be measured and why.

A consumer with a generation source connected before the period ends is net metered: its
meters' export register (2.8.0) is measured beside the import, the units its bank holds come
from `net_metering_ledger` (the row of its latest period ending on or before this one's start),
and the row of this period is written in the transaction of its invoice, keyed by (consumer,
period): billing the period again replaces the row, so nothing is ever carried twice. Billing an
earlier period again changes what it banks out; the later periods take that up when they are
billed again (a revision, like any late read).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from psycopg import AsyncConnection
from psycopg.pq import TransactionStatus
from psycopg.rows import tuple_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from ..access import Principal
from ..billing.consumption import (
    ClassSums,
    Consumption,
    MeterSpan,
    Read,
    consumption,
    hour_pieces,
    to_decimal,
)
from ..billing.engine import Bill, NetInput, compute_bill, local_midnight, stretches
from ..billing.hour_classes import HourGrid, consumption_of, hour_grid, summable
from ..billing.net_metering import Bank
from ..errors import CloudError, InvalidInput
from . import audit, hourly_sums, invoice_versions, meters, tariff_overrides, tariffs
from .scoped import BOARDS, actor, get_row

log = structlog.get_logger(__name__)
MARGIN = timedelta(days=35)  # how far outside the period a boundary's neighbour read may lie
CHUNK = 1000  # consumers measured together
AHEAD_SHARE = 0.6  # of a chunk, read ahead on the reader (it starts while the last is billed)
BILLABLE = ("ok", "estimated")
INACTIVE = {"inactive"}  # a meter with no other status in the period is not billed

# Per span: the nearest read before it and after it, its last read, and a walk over its reads
# (in the index's order, so no sort) keeping the first and each one lower than the read before,
# with that read. For time of day (`{hours}`) the walk also keeps the reads around each local
# hour's end: the first read at or after it (bucket changed since the read before) and, when
# none lies on it, the last read before it (the next hour end comes before the next read).
_READS = """
SELECT s.meter_id, x.ts, x.value, x.prev_ts, x.prev_value
FROM unnest(%(ids)s::bigint[], %(starts)s::timestamptz[], %(ends)s::timestamptz[])
    AS s(meter_id, span_start, span_end)
CROSS JOIN LATERAL (
    (SELECT r.ts, r.value, NULL::timestamptz AS prev_ts, NULL::float8 AS prev_value
     FROM readings r
     WHERE r.meter_id = s.meter_id AND r.quantity = %(quantity)s AND r.quality = ANY(%(qualities)s)
       AND r.ts < s.span_start AND r.ts >= s.span_start - %(margin)s
     ORDER BY r.ts DESC LIMIT 1)
    UNION ALL
    (SELECT r.ts, r.value, NULL, NULL
     FROM readings r
     WHERE r.meter_id = s.meter_id AND r.quantity = %(quantity)s AND r.quality = ANY(%(qualities)s)
       AND r.ts > s.span_end AND r.ts <= s.span_end + %(margin)s
     ORDER BY r.ts LIMIT 1)
    UNION ALL
    (SELECT r.ts, r.value, NULL, NULL
     FROM readings r
     WHERE r.meter_id = s.meter_id AND r.quantity = %(quantity)s AND r.quality = ANY(%(qualities)s)
       AND r.ts >= s.span_start AND r.ts <= s.span_end
     ORDER BY r.ts DESC LIMIT 1)
    UNION ALL
    SELECT ts, value, prev_ts, prev_value FROM (
        SELECT r.ts, r.value, lag(r.ts) OVER w AS prev_ts, lag(r.value) OVER w AS prev_value{lead}
        FROM readings r
        WHERE r.meter_id = s.meter_id AND r.quantity = %(quantity)s
          AND r.quality = ANY(%(qualities)s) AND r.ts >= s.span_start AND r.ts <= s.span_end
        WINDOW w AS (ORDER BY r.ts)
    ) inside
    WHERE prev_ts IS NULL OR value < prev_value{hours}
) x
"""
_HOURS = """
       OR width_bucket(ts, %(stops)s::timestamptz[]) <> width_bucket(prev_ts, %(stops)s)
       OR (%(stops)s)[width_bucket(ts, %(stops)s) + 1] < next_ts"""
_READS_TOTAL = _READS.format(lead="", hours="")
_READS_HOURLY = _READS.format(lead=", lead(r.ts) OVER w AS next_ts", hours=_HOURS)


@contextlib.asynccontextmanager
async def spare_connection(pool: AsyncConnectionPool) -> AsyncIterator[AsyncConnection | None]:
    """A second connection for a run to read ahead on (`run(reader=…)`), if the pool can give
    one within a second; else None, and the run reads on its own connection."""
    try:
        reader = await pool.getconn(timeout=1)
    except PoolTimeout:
        yield None
        return
    try:
        autocommit = reader.autocommit
        await reader.set_autocommit(True)  # each read its own statement: no snapshot held open
        try:
            yield reader
        finally:
            if reader.info.transaction_status == TransactionStatus.IDLE:
                await reader.set_autocommit(autocommit)
    finally:
        await pool.putconn(reader)  # a connection left mid-query is the pool's to discard


async def _spans(
    conn: AsyncConnection,
    consumers: list[dict[str, Any]],
    start: datetime,
    end: datetime,
    quantity: str,
    hourly: ZoneInfo | None,
    grid: HourGrid | None = None,
) -> dict[int, list[MeterSpan]]:
    """Each consumer's meter spans in [start, end) with the reads their arithmetic needs (and,
    with the board's zone in `hourly`, their spread over its local hours needs). Given the
    period's `grid` (time of day), a consumer whose every span the database can sum by hour
    class exactly gets those sums instead of reads (`hourly_sums`, `hour_classes.summable`)."""
    cursor = await conn.execute(
        "SELECT id, external_id, consumer_id, ct_ratio, installed_at, replaced_at FROM meters"
        " WHERE consumer_id = ANY(%s)"
        " AND (installed_at IS NULL OR installed_at < %s)"
        " AND (replaced_at IS NULL OR replaced_at > %s)",
        ([c["id"] for c in consumers], end, start),
    )
    meters = await cursor.fetchall()
    bounds = {
        m["id"]: (max(start, m["installed_at"] or start), min(end, m["replaced_at"] or end))
        for m in meters
    }
    summed: dict[int, ClassSums] = {}
    if grid is not None:
        whole = [meter_id for meter_id, span in bounds.items() if span == (start, end)]
        summed = await hourly_sums.sum_by_class(conn, whole, grid, quantity, BILLABLE, MARGIN)
    spans: dict[int, list[MeterSpan]] = {}
    for m in meters:
        span_start, span_end = bounds[m["id"]]
        spans.setdefault(m["consumer_id"], []).append(
            MeterSpan(
                m["id"],
                (),
                span_start,
                span_end,
                Decimal(m["ct_ratio"]),
                name=m["external_id"],
                summed=summed.get(m["id"]),
            )
        )
    # a consumer is summed whole or spread whole: the rest need their reads
    spread = {
        span.meter_id: bounds[span.meter_id]
        for chain in spans.values()
        if not summable(chain)
        for span in chain
    }
    reads = await _reads(conn, spread, quantity, hourly)
    return {
        consumer_id: [
            dataclasses.replace(span, reads=reads[span.meter_id], summed=None)
            if span.meter_id in reads
            else span
            for span in chain
        ]
        for consumer_id, chain in spans.items()
    }


DEMAND_PERIOD = timedelta(minutes=15)
_DEMAND = """
SELECT s.meter_id, max(r.value) AS demand
FROM unnest(%(ids)s::bigint[], %(starts)s::timestamptz[], %(ends)s::timestamptz[])
    AS s(meter_id, span_start, span_end)
JOIN readings r ON r.meter_id = s.meter_id
WHERE r.quantity = %(quantity)s AND r.quality = ANY(%(qualities)s)
  AND r.ts >= %(lo)s AND r.ts < %(hi)s  -- constants: the partitions outside are pruned
  AND r.ts >= s.span_start + %(period)s AND r.ts < s.span_end + %(period)s
GROUP BY s.meter_id
"""


async def max_demand(
    conn: AsyncConnection, spans: dict[int, list[MeterSpan]], quantity: str
) -> dict[int, Decimal]:
    """Each consumer's highest recorded demand (`1.5.0`/`9.5.0`: the mean of the demand period
    that closed last) over its meters' spans, CT ratio applied. A read reports the period before
    it, so the reads counted run one demand period behind the span."""
    chains = [span for chain in spans.values() for span in chain]
    if not chains:
        return {}
    cursor = await conn.execute(
        _DEMAND,
        {
            "ids": [span.meter_id for span in chains],
            "starts": [span.start for span in chains],
            "ends": [span.end for span in chains],
            "lo": min(span.start for span in chains) + DEMAND_PERIOD,
            "hi": max(span.end for span in chains) + DEMAND_PERIOD,
            "quantity": quantity,
            "qualities": list(BILLABLE),
            "period": DEMAND_PERIOD,
        },
    )
    by_meter = {row["meter_id"]: to_decimal(row["demand"]) async for row in cursor}
    demand: dict[int, Decimal] = {}
    for consumer_id, chain in spans.items():
        recorded = [by_meter[s.meter_id] * s.multiplier for s in chain if s.meter_id in by_meter]
        if recorded:
            demand[consumer_id] = max(recorded).quantize(Decimal("0.001"))  # to the watt
    return demand


async def _reads(
    conn: AsyncConnection,
    bounds: dict[int, tuple[datetime, datetime]],
    quantity: str,
    hourly: ZoneInfo | None,
) -> dict[int, list[Read]]:
    """The reads each meter's span needs (see the module doc)."""
    if not bounds:
        return {}
    ids = list(bounds)
    params = {
        "ids": ids,
        "starts": [bounds[i][0] for i in ids],
        "ends": [bounds[i][1] for i in ids],
        "quantity": quantity,
        "qualities": list(BILLABLE),
        "margin": MARGIN,
    }
    if hourly is not None:  # every span's hour ends (most spans share them: the whole period)
        cut = {stop for span in set(bounds.values()) for _, stop in hour_pieces(*span, hourly)}
        params["stops"] = sorted(cut)
    # plain tuples in binary (no text to parse), fetched at once
    async with conn.cursor(row_factory=tuple_row, binary=True) as cursor:
        # never prepared: a generic plan sorts each meter's reads (see `hourly_sums`)
        await cursor.execute(
            _READS_TOTAL if hourly is None else _READS_HOURLY, params, prepare=False
        )
        rows = await cursor.fetchall()
    found: dict[int, dict[datetime, float]] = {i: {} for i in ids}  # by time: no read twice
    for meter_id, ts, value, prev_ts, prev_value in rows:
        series = found[meter_id]
        series[ts] = value
        if prev_ts is not None and value < prev_value:
            series[prev_ts] = prev_value  # the read the register fell from
    # in UTC (the connection's zone may be another object standing for it): the hourly spread
    # compares every read with hour ends in UTC, which is ten times quicker within one zone
    return {
        i: [Read(ts.astimezone(UTC), to_decimal(value)) for ts, value in series.items()]
        for i, series in found.items()
    }


async def regional_load_pct(
    conn: AsyncConnection, board: dict[str, Any], start: datetime, end: datetime
) -> Decimal | None:
    """The board's mean load over the period as a share of its capacity, in percent: each
    meter's mean import power added up (None when the board states no capacity)."""
    if not board.get("capacity_kw"):
        return None
    cursor = await conn.execute(
        "SELECT coalesce(sum(mean_kw), 0) AS load_kw FROM (SELECT avg(r.value) AS mean_kw"
        " FROM readings r JOIN meters m ON m.id = r.meter_id WHERE m.board_id = %s"
        " AND r.quantity = '1.7.0' AND r.ts >= %s AND r.ts < %s GROUP BY r.meter_id) x",
        (board["id"], start, end),
    )
    load_kw = (await cursor.fetchone())["load_kw"]
    share = Decimal(str(load_kw)) * 100 / Decimal(board["capacity_kw"])
    return share.quantize(Decimal("0.01"))


async def _daily_history(conn: AsyncConnection, consumer_id: int, start: date) -> Decimal | None:
    """The consumer's usual units per day: its latest measured (not estimated) invoice before
    this period."""
    cursor = await conn.execute(
        "SELECT units, period_end - period_start AS days FROM invoices"
        " WHERE consumer_id = %s AND period_end <= %s AND NOT estimated"
        " ORDER BY period_start DESC, version DESC LIMIT 1",
        (consumer_id, start),
    )
    row = await cursor.fetchone()
    if row is None or not row["days"]:
        return None
    return Decimal(row["units"]) / Decimal(row["days"])


async def run(
    conn: AsyncConnection,
    principal: Principal,
    *,
    board_id: int,
    period_start: date,
    period_end: date,
    consumer_ids: list[int] | None = None,
    cycle_months: Decimal | None = None,
    scheduled: bool = False,
    reader: AsyncConnection | None = None,
) -> dict[str, Any]:
    """Bill every consumer of the board for [period_start, period_end); see the module doc.
    `cycle_months`: the period's length in months, which slabs and fixed charges scale by (2 for
    a bimonthly cycle; None: measured on the calendar); `scheduled`: started by the board's
    billing cycle, not by a person; `reader`: a second connection, on which most of the next
    chunk's reads are fetched while this chunk's bills are made and written (it only reads:
    every write of the run stays on `conn`)."""
    if period_end <= period_start:
        raise InvalidInput(
            "the period ends before it starts", errors=[("period_end", period_end.isoformat())]
        )
    if (period_end - period_start).days > 92:
        raise InvalidInput("a billing period is at most 92 days", errors=[("period_end", "")])
    board = await get_row(conn, principal, BOARDS, board_id)
    today = datetime.now(ZoneInfo(board["time_zone"])).date()
    if period_start > today:
        raise InvalidInput(
            f"the period has not begun: it starts {period_start:%d %b %Y}, and today is"
            f" {today:%d %b %Y} on this board",
            errors=[("period_start", period_start.isoformat())],
        )
    cursor = await conn.execute(
        "SELECT id, account_no, name, category, sanctioned_load_kw, generation_since"
        " FROM consumers"
        " WHERE board_id = %s AND (%s::bigint[] IS NULL OR id = ANY(%s)) ORDER BY id",
        (board_id, consumer_ids, consumer_ids),
    )
    consumers = await cursor.fetchall()
    cursor = await conn.execute("SELECT day FROM holidays WHERE board_id = %s", (board_id,))
    holidays = {row["day"] for row in await cursor.fetchall()}
    cursor = await conn.execute(
        "INSERT INTO billing_runs (board_id, period_start, period_end, actor, status, consumers,"
        " scheduled) VALUES (%s, %s, %s, %s, 'running', %s, %s) RETURNING id",
        (board_id, period_start, period_end, actor(principal), len(consumers), scheduled),
    )
    run_id = (await cursor.fetchone())["id"]
    await conn.commit()  # the run shows as running at once, for anyone following it
    summary: dict[str, Any] = {
        "run_id": run_id,
        "consumers": len(consumers),
        "created": 0,
        "revised": 0,
        "unchanged": 0,
        "estimated": 0,
        "failed": 0,
        "unmeasured": 0,
        "errors": [],
    }
    try:
        await _bill_all(
            conn,
            principal,
            board,
            consumers,
            holidays,
            period_start,
            period_end,
            cycle_months,
            summary,
            reader,
        )
    except BaseException:
        await conn.rollback()
        await _finish(conn, run_id, summary, "failed")
        await conn.commit()
        raise
    summary["errors"] = summary["errors"][:50]
    await _finish(conn, run_id, summary, "done")
    await audit.record(
        conn,
        actor=actor(principal),
        action="billing_run",
        entity="board",
        entity_id=board_id,
        after={"period_start": period_start, "period_end": period_end, **summary},
    )
    await conn.commit()
    return summary


async def _bill_all(
    conn: AsyncConnection,
    principal: Principal,
    board: dict[str, Any],
    consumers: list[dict[str, Any]],
    holidays: set[date],
    period_start: date,
    period_end: date,
    cycle_months: Decimal | None,
    summary: dict[str, Any],
    reader: AsyncConnection | None,
) -> None:
    tz = ZoneInfo(board["time_zone"])
    start, end = local_midnight(period_start, tz), local_midnight(period_end, tz)
    by_category: dict[str, list[dict]] = {}
    for consumer in consumers:
        by_category.setdefault(consumer["category"], []).append(consumer)
    measured_so_far = 0
    for category, members in by_category.items():
        try:
            versions = await tariffs.in_force(conn, board["id"], category, period_start, period_end)
        except InvalidInput as exc:
            summary["failed"] += len(members)
            summary["errors"].append(str(exc))
            measured_so_far += len(members)
            await _progress(conn, summary, measured_so_far)
            continue
        overrides = await tariff_overrides.in_force(
            conn, board["id"], category, period_start, period_end, tz
        )
        spec = versions[0].spec
        quantity = "9.8.0" if spec.energy_unit == "kVAh" else "1.8.0"
        hourly = any(
            charge.mode == "time_of_day" for v in versions for charge in v.spec.energy_charges()
        )
        load_pct = None
        if any(v.spec.dynamic for v in versions):
            load_pct = await regional_load_pct(conn, board, start, end)
        demand_quantity = None
        if any(v.spec.fixed.basis == "higher_of_load_and_demand" for v in versions):
            demand_quantity = "9.5.0" if spec.energy_unit == "kVAh" else "1.5.0"
        chunks = [members[first : first + CHUNK] for first in range(0, len(members), CHUNK)]
        zone = tz if hourly else None
        grid = (
            _hour_grid(versions, overrides, period_start, period_end, tz, holidays)
            if hourly
            else None
        )
        reading = (start, end, quantity, zone, grid)
        ahead: asyncio.Task | None = None  # the reader's part of a chunk, being read
        try:
            for index, chunk in enumerate(chunks):
                if reader is None:
                    spans = await _spans(conn, chunk, *reading)
                else:  # the rest of the chunk on this connection, beside the reader's part
                    cut = round(len(chunk) * AHEAD_SHARE)
                    ahead = ahead or asyncio.create_task(_spans(reader, chunk[:cut], *reading))
                    spans = await _spans(conn, chunk[cut:], *reading)
                    spans.update(await ahead)
                    ahead = None
                    if index + 1 < len(chunks):
                        following = chunks[index + 1]
                        cut = round(len(following) * AHEAD_SHARE)
                        ahead = asyncio.create_task(_spans(reader, following[:cut], *reading))
                metered = [span.meter_id for found in spans.values() for span in found]
                statuses = await meters.statuses_during(conn, metered, start, end)
                demand: dict[int, Decimal] = {}
                if demand_quantity:
                    demand = await max_demand(conn, spans, demand_quantity)
                netted = [
                    c
                    for c in chunk
                    if c["generation_since"] is not None and c["generation_since"] < period_end
                ]
                exports = await _spans(conn, netted, start, end, "2.8.0", None) if netted else {}
                banked = await banks(conn, [c["id"] for c in netted], period_start)
                made: list[tuple[int, Bill]] = []
                for consumer in chunk:
                    if consumer["id"] not in spans:
                        summary["unmeasured"] += 1
                        summary["errors"].append(
                            f"{_who(consumer)}: no meter was installed in the period, so there is"
                            " nothing to bill"
                        )
                        continue
                    billed = [
                        s for s in spans[consumer["id"]] if statuses.get(s.meter_id) != INACTIVE
                    ]
                    if not billed:
                        summary["unmeasured"] += 1
                        summary["errors"].append(f"{_who(consumer)}: every meter was inactive")
                        continue
                    try:
                        measured = _measure(billed, statuses, tz, hourly)
                        net = None
                        if consumer in netted:
                            exported = [
                                s
                                for s in exports.get(consumer["id"], [])
                                if statuses.get(s.meter_id) != INACTIVE
                            ]
                            net = NetInput(
                                _measure(exported, statuses, tz, False),
                                banked.get(consumer["id"], Bank()),
                            )
                        history = None
                        if measured.missing:
                            history = await _daily_history(conn, consumer["id"], period_start)
                        bill = compute_bill(
                            period_start=period_start,
                            period_end=period_end,
                            tz=tz,
                            consumption=measured,
                            versions=versions,
                            sanctioned_kw=Decimal(consumer["sanctioned_load_kw"]),
                            holidays=holidays,
                            daily_history=history,
                            load_pct=load_pct,
                            cycle_months=cycle_months,
                            max_demand_kw=demand.get(consumer["id"]),
                            overrides=overrides,
                            net=net,
                            supply=_supply_days(spans[consumer["id"]], tz),
                        )
                        made.append((consumer["id"], bill))
                    except CloudError as exc:
                        summary["failed"] += 1
                        summary["errors"].append(f"{_who(consumer)}: {exc}")
                outcomes = await invoice_versions.record(
                    conn, principal, board, period_start, period_end, made
                )
                for outcome, (_, bill) in zip(outcomes, made, strict=True):
                    summary[outcome] += 1
                    summary["estimated"] += bill.estimated
                measured_so_far += len(chunk)
                await _progress(conn, summary, measured_so_far)
        finally:
            if ahead is not None:  # the run failed: what was being read is not needed
                ahead.cancel()
                with contextlib.suppress(BaseException):
                    await ahead


def _hour_grid(
    versions: list,
    overrides: list,
    period_start: date,
    period_end: date,
    tz: ZoneInfo,
    holidays: set[date],
) -> HourGrid | None:
    """The period's hours classed as its bills will price them, for the database to sum; None
    when the versions do not cover the period (each bill then says so)."""
    try:
        cut = stretches(versions, overrides, period_start, period_end)
    except InvalidInput:
        return None
    return hour_grid(
        local_midnight(period_start, tz),
        local_midnight(period_end, tz),
        tz,
        holidays,
        [(first, until) for _, first, until, _ in cut],
    )


def _supply_days(spans: list[MeterSpan], tz: ZoneInfo) -> tuple[date, date]:
    """The local days [first, end) the consumer's meters covered in the period: from the day
    the first was installed to the day after the last was taken out (a part day counts)."""
    first = min(span.start for span in spans).astimezone(tz).date()
    last = (max(span.end for span in spans) - timedelta(microseconds=1)).astimezone(tz).date()
    return first, last + timedelta(days=1)


async def banks(
    conn: AsyncConnection, consumer_ids: list[int], period_start: date
) -> dict[int, Bank]:
    """What each net-metered consumer's bank holds when the period begins: the units and credit
    its latest ledger row before the period carried out."""
    if not consumer_ids:
        return {}
    cursor = await conn.execute(
        "SELECT DISTINCT ON (consumer_id) consumer_id, banked_out_kwh, credit_out"
        " FROM net_metering_ledger WHERE consumer_id = ANY(%s) AND period_end <= %s"
        " ORDER BY consumer_id, period_end DESC",
        (consumer_ids, period_start),
    )
    return {
        row["consumer_id"]: Bank(Decimal(row["banked_out_kwh"]), Decimal(row["credit_out"]))
        for row in await cursor.fetchall()
    }


def _measure(
    spans: list[MeterSpan], statuses: dict[int, set[str]], tz: ZoneInfo, hourly: bool
) -> Consumption:
    """The consumption of the consumer's billed meters; one under maintenance or faulty at any
    moment of the period is not measured, so the bill is estimated and says why
    (`meters.set_status`). A meter inactive throughout was left out before."""
    if spans and all(span.summed is not None for span in spans):
        measured = consumption_of(spans)
    else:
        measured = consumption(spans, tz, hourly=hourly)
    unmeasured = [
        f"meter {s.name or s.meter_id}: {' and '.join(sorted(bad)).replace('_', ' ')} during"
        " the period"
        for s in spans
        if (bad := statuses.get(s.meter_id, set()) & set(meters.NOT_MEASURED))
    ]
    if not unmeasured:
        return measured
    return dataclasses.replace(measured, exact=False, missing=[*measured.missing, *unmeasured])


def _who(consumer: dict[str, Any]) -> str:
    return f"{consumer['name']} ({consumer['account_no']})"


_COUNTS = ("created", "revised", "unchanged", "estimated", "failed", "unmeasured")


async def _progress(conn: AsyncConnection, summary: dict[str, Any], measured: int) -> None:
    """The run's counts so far, committed with the chunk's bills."""
    await conn.execute(
        "UPDATE billing_runs SET measured = %s, created = %s, revised = %s, unchanged = %s,"
        " estimated = %s, failed = %s, unmeasured = %s WHERE id = %s",
        (measured, *(summary[k] for k in _COUNTS), summary["run_id"]),
    )
    await conn.commit()


async def _finish(conn: AsyncConnection, run_id: int, summary: dict[str, Any], status: str) -> None:
    await conn.execute(
        "UPDATE billing_runs SET status = %s, finished_at = now(), measured = consumers,"
        " created = %s, revised = %s, unchanged = %s, estimated = %s, failed = %s,"
        " unmeasured = %s, errors = %s WHERE id = %s",
        (
            status,
            *(summary[k] for k in _COUNTS),
            json.dumps(summary["errors"][:50]),
            run_id,
        ),
    )

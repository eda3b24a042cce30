"""Time-of-day bills as a run makes them are the bills of every read, walked hour by hour.

A billing run sums a consumer's energy by hour class in the database when every meter of it was
read on the period's start and at every local hour's end and its register never fell
(`hourly_sums`, `hour_classes`); any other consumer it spreads over the hours from only the reads
the hourly spread looks at (the first read at or after each local hour's end, the last before it
when none lies on it, the reads around each fall of the register, the span's first and last reads
and its neighbours outside), the period cut into hours once per span (`hour_pieces`). The
reference here is the algorithm as it was before both: every read of the span, walked hour by
hour. The two must bill every consumer to the same Decimal — every digit and decimal place of
every line, of the segments' units stored in the invoice — across a clock change (Europe/London
on 25 October), a half-hour zone (Asia/Kolkata), a holiday, a weekend, a new tariff version
mid-month and a temporary override, a register reset and a rollover, a reset on the period's
first instant, a meter replaced mid-month, two meters, a CT ratio, registers read in whole
kWh, an hour's end with no read, irregular reads, unbillable quality and missing reads after
the period. The test also checks which consumers the database summed, so it fails if the sums
stop being used.
"""

from __future__ import annotations

import asyncio
import random
from bisect import bisect_left
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP
from decimal import Decimal as D
from zoneinfo import ZoneInfo

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg.rows import dict_row

from cloud.billing.consumption import (
    Consumption,
    MeterSpan,
    Read,
    _between,
    consumption,
    register_at,
    to_decimal,
    unwrap,
)
from cloud.billing.engine import Bill, compute_bill, local_midnight
from cloud.billing.examples import DELHI_DOMESTIC_2015
from cloud.errors import InvalidInput
from cloud.migrate import migrate
from cloud.services import billing_runs, fleet, tariff_overrides, tariffs
from tests.cloud.billing.test_invoices import (
    Board,
    _any_gateway,
    run,
    setup,  # noqa: F401  (fixture)
    tariff,
)
from tests.cloud.conftest import Cloud

MARGIN = timedelta(days=35)
HOURS = ["night"] * 6 + ["morning"] * 5 + ["day"] * 6 + ["peak"] * 4 + ["late"] * 3
TIME_OF_DAY = {
    **DELHI_DOMESTIC_2015,
    "energy": {
        "mode": "time_of_day",
        "rates": {
            "night": "3.10",
            "morning": "4.70",
            "day": "5.30",
            "peak": "8.90",
            "late": "6.15",
        },
        "weekday": [HOURS] * 12,
        "weekend": [["night"] * 7 + ["day"] * 17] * 12,
    },
}
# from 18 October: other rates, and the evening peak an hour earlier
LATER = ["night"] * 6 + ["morning"] * 5 + ["day"] * 5 + ["peak"] * 4 + ["late"] * 4
TIME_OF_DAY_LATER = {
    **TIME_OF_DAY,
    "energy": {
        **TIME_OF_DAY["energy"],
        "rates": {**TIME_OF_DAY["energy"]["rates"], "peak": "9.45", "night": "2.95"},
        "weekday": [LATER] * 12,
    },
}
HOLIDAY = date(2026, 10, 2)  # a Friday: priced under the weekend matrix
OVERRIDE = (date(2026, 10, 22), date(2026, 10, 25))  # local days [first, end): rates x 1.2


# ---- the reference: the hourly spread as it was, over every read ---------------------------


def reference_consumption(spans: Sequence[MeterSpan], tz: ZoneInfo) -> Consumption:
    """`consumption(spans, tz, hourly=True)` as it was written before the reads were thinned."""
    units = D(0)
    by_hour: dict[datetime, D] = {}
    exact = True
    missing = []
    for span in spans:
        series = unwrap(span.reads)
        start = register_at(series, span.start)
        end = register_at(series, span.end)
        if start is None or end is None:
            moment = span.end if end is None else span.start
            at = f"{moment.astimezone(tz):%d %b %Y %H:%M %Z}".lstrip("0")
            meter = span.name or f"meter {span.meter_id}"
            missing.append(f"meter {meter}: no reads on both sides of {at}")
            continue
        exact = exact and start[1] and end[1]
        units += (end[0] - start[0]) * span.multiplier
        _reference_rise_by_hour(series, span, tz, by_hour)
    return Consumption(units, by_hour, exact and not missing, missing)


def _reference_rise_by_hour(
    series: Sequence[Read], span: MeterSpan, tz: ZoneInfo, by_hour: dict[datetime, D]
) -> None:
    cursor = span.start
    level = register_at(series, cursor)[0]
    index = bisect_left(series, cursor, key=lambda r: r.ts)
    while cursor < span.end:
        local = cursor.astimezone(tz)
        into_hour = timedelta(
            minutes=local.minute, seconds=local.second, microseconds=local.microsecond
        )
        key = cursor - into_hour
        if into_hour and key.astimezone(tz).replace(tzinfo=None) != local.replace(
            minute=0, second=0, microsecond=0, tzinfo=None
        ):
            key = cursor
        stop = min(cursor - into_hour + timedelta(hours=1), span.end)
        while series[index].ts < stop:
            index += 1
        after = series[index]
        reached = after.value if after.ts == stop else _between(series[index - 1], after, stop)
        if reached != level:
            by_hour[key] = by_hour.get(key, D(0)) + (reached - level) * span.multiplier
        cursor, level = stop, reached


async def every_read(conn, meter_id: int, start: datetime, end: datetime) -> list[Read]:
    """All the span's billable reads and its nearest neighbour on each side (within 35 days),
    as the run used to fetch them."""
    cursor = await conn.execute(
        "(SELECT ts, value FROM readings WHERE meter_id = %(m)s AND quantity = '1.8.0'"
        "  AND quality IN ('ok', 'estimated') AND ts < %(s)s AND ts >= %(s)s - %(margin)s"
        "  ORDER BY ts DESC LIMIT 1)"
        " UNION ALL (SELECT ts, value FROM readings WHERE meter_id = %(m)s"
        "  AND quantity = '1.8.0' AND quality IN ('ok', 'estimated') AND ts > %(e)s"
        "  AND ts <= %(e)s + %(margin)s ORDER BY ts LIMIT 1)"
        " UNION ALL SELECT ts, value FROM readings WHERE meter_id = %(m)s"
        "  AND quantity = '1.8.0' AND quality IN ('ok', 'estimated')"
        "  AND ts >= %(s)s AND ts <= %(e)s",
        {"m": meter_id, "s": start, "e": end, "margin": MARGIN},
    )
    return [Read(row["ts"], to_decimal(row["value"])) for row in await cursor.fetchall()]


async def reference_bills(conn, board_id: int, tz: ZoneInfo, first: date, until: date) -> dict:
    """Each consumer's bill (or the error that stops it) computed from every read."""
    start, end = local_midnight(first, tz), local_midnight(until, tz)
    versions = await tariffs.in_force(conn, board_id, "domestic", first, until)
    overrides = await tariff_overrides.in_force(conn, board_id, "domestic", first, until, tz)
    holidays = await _holidays(conn, board_id)
    cursor = await conn.execute(
        "SELECT c.id AS consumer_id, c.sanctioned_load_kw, m.id, m.external_id, m.ct_ratio,"
        " m.installed_at, m.replaced_at FROM consumers c JOIN meters m ON m.consumer_id = c.id"
        " WHERE c.board_id = %s ORDER BY m.id",
        (board_id,),
    )
    chains: dict[int, list[MeterSpan]] = {}
    loads = {}
    for m in await cursor.fetchall():
        span_start = max(start, m["installed_at"] or start)
        span_end = min(end, m["replaced_at"] or end)
        if span_start >= span_end:
            continue
        reads = await every_read(conn, m["id"], span_start, span_end)
        chains.setdefault(m["consumer_id"], []).append(
            MeterSpan(m["id"], reads, span_start, span_end, D(m["ct_ratio"]), m["external_id"])
        )
        loads[m["consumer_id"]] = D(m["sanctioned_load_kw"])
    bills = {}
    for consumer_id, spans in chains.items():
        try:
            bills[consumer_id] = compute_bill(
                period_start=first,
                period_end=until,
                tz=tz,
                consumption=reference_consumption(spans, tz),
                versions=versions,
                sanctioned_kw=loads[consumer_id],
                holidays=holidays,
                overrides=overrides,
                supply=billing_runs._supply_days(spans, tz),
            )
        except InvalidInput as exc:
            bills[consumer_id] = exc
    return bills


async def _holidays(conn, board_id: int) -> set[date]:
    cursor = await conn.execute("SELECT day FROM holidays WHERE board_id = %s", (board_id,))
    return {row["day"] for row in await cursor.fetchall()}


async def run_bills(
    conn, board_id: int, tz: ZoneInfo, first: date, until: date
) -> tuple[dict, set[int]]:
    """Each consumer's bill as the run computes it (its spans, summed or with their reads, its
    measure), kept in full precision: the invoice columns round units and rates to six places;
    and the consumers the database summed."""
    start, end = local_midnight(first, tz), local_midnight(until, tz)
    versions = await tariffs.in_force(conn, board_id, "domestic", first, until)
    overrides = await tariff_overrides.in_force(conn, board_id, "domestic", first, until, tz)
    holidays = await _holidays(conn, board_id)
    grid = billing_runs._hour_grid(versions, overrides, first, until, tz, holidays)
    cursor = await conn.execute(
        "SELECT id, sanctioned_load_kw FROM consumers WHERE board_id = %s", (board_id,)
    )
    consumers = await cursor.fetchall()
    spans = await billing_runs._spans(conn, consumers, start, end, "1.8.0", tz, grid)
    summed = {c for c, chain in spans.items() if all(span.summed for span in chain)}
    bills = {}
    for consumer in consumers:
        chain = spans[consumer["id"]]
        try:
            bills[consumer["id"]] = compute_bill(
                period_start=first,
                period_end=until,
                tz=tz,
                consumption=billing_runs._measure(chain, {}, tz, True),
                versions=versions,
                sanctioned_kw=D(consumer["sanctioned_load_kw"]),
                holidays=holidays,
                overrides=overrides,
                supply=billing_runs._supply_days(chain, tz),
            )
        except InvalidInput as exc:
            bills[consumer["id"]] = exc
    return bills, summed


def digits(bill: Bill) -> list[str]:
    """Every Decimal of the bill as text: its digits and its decimal places (which `==` on
    Decimals does not compare, and the invoice's details keep for the segments' units)."""
    return [
        str(x)
        for x in (
            bill.total,
            bill.units,
            *(s.units for s in bill.segments),
            *(v for ln in bill.lines for v in (ln.quantity, ln.rate, ln.amount)),
        )
    ]


def _stored(value: D) -> D:
    """`value` in a numeric(·, 6) column (PostgreSQL rounds half away from zero)."""
    return value.quantize(D("0.000001"), rounding=ROUND_HALF_UP)


# ---- a board's worth of awkward meters ---------------------------------------------------------


def _series(
    first: datetime, last: datetime, rng: random.Random, *, aligned: bool, start: float
) -> list[tuple[datetime, float]]:
    """Register reads from `first` to `last`: every 15 minutes, or at irregular minutes with
    a seven-hour gap; each step a few hundredths to a unit (floats, as meters send them)."""
    reads, ts, value = [], first, start
    gap_at = first + (last - first) * 0.4
    while ts <= last:
        reads.append((ts, round(value, 3)))
        if aligned:
            ts += timedelta(minutes=15)
        else:
            ts += timedelta(minutes=rng.randint(4, 55), seconds=rng.randint(0, 59))
            if gap_at <= ts < gap_at + timedelta(minutes=60):
                ts += timedelta(hours=7)
        value += rng.uniform(0.01, 1.0)
    return reads


async def _consumer(conn, board_id: int, tag: str, kw: str = "3") -> int:
    cursor = await conn.execute(
        "INSERT INTO consumers (board_id, account_no, name, sanctioned_load_kw)"
        " VALUES (%s, %s, %s, %s) RETURNING id",
        (board_id, f"AC-{tag}-{board_id}", f"Consumer {tag}", kw),
    )
    return (await cursor.fetchone())["id"]


async def _meter(conn, board_id: int, consumer: int, tag: str, **columns: object) -> int:
    names = ["board_id", "external_id", "consumer_id", *columns]
    cursor = await conn.execute(
        f"INSERT INTO meters ({', '.join(names)}) VALUES ({', '.join(['%s'] * len(names))})"
        " RETURNING id",
        (board_id, f"m-{tag}-{board_id}", consumer, *columns.values()),
    )
    return (await cursor.fetchone())["id"]


async def _reads(conn, meter: int, reads: list[tuple[datetime, float]], quality="ok") -> None:
    gateway = await _any_gateway(conn)
    async with (
        conn.cursor() as cur,
        cur.copy(
            "COPY readings (meter_id, quantity, ts, value, quality, gateway_id) FROM STDIN"
        ) as copy,
    ):
        for ts, value in reads:
            await copy.write_row((meter, "1.8.0", ts, value, quality, gateway))


async def fill(conn, board_id: int, tz: ZoneInfo) -> dict[str, int]:
    """One consumer per awkward case; returns them by name."""
    rng = random.Random(tz.key)
    first = datetime(2026, 9, 30, 12, 0, tzinfo=UTC)
    last = datetime(2026, 11, 1, 3, 0, tzinfo=UTC)
    made = {}
    for name, aligned in (("aligned", True), ("irregular", False)):
        made[name] = consumer = await _consumer(conn, board_id, name)
        meter = await _meter(conn, board_id, consumer, name)
        await _reads(conn, meter, _series(first, last, rng, aligned=aligned, start=3000.25))
    # a register reset on the 12th and a rollover on the 20th, each between two reads of the
    # middle of an hour (every 15 minutes): no hour's end lies next to either
    made["falls"] = consumer = await _consumer(conn, board_id, "falls")
    meter = await _meter(conn, board_id, consumer, "falls")
    reset = datetime(2026, 10, 12, 8, 20, tzinfo=tz)
    top = datetime(2026, 10, 20, 17, 5, tzinfo=tz)  # the register is near its 99 999.999 top
    roll = datetime(2026, 10, 20, 17, 35, tzinfo=tz)  # and wraps past it
    shifted = []
    for ts, value in _series(first, last, rng, aligned=True, start=500.5):
        if ts >= roll:
            value = round(value - 2900, 3)
        elif ts >= top:
            value = round(99000 + value, 3)
        elif ts >= reset:
            value = round(value - 700, 3)
        shifted.append((ts, value))
    await _reads(conn, meter, shifted)
    # a meter replaced at 10:20 local on the 15th (the old one goes on reporting: ignored)
    made["replaced"] = consumer = await _consumer(conn, board_id, "replaced")
    swap = datetime(2026, 10, 15, 10, 20, tzinfo=tz)
    old = await _meter(conn, board_id, consumer, "old", replaced_at=swap)
    new = await _meter(conn, board_id, consumer, "new", installed_at=swap)
    await _reads(conn, old, _series(first, last, rng, aligned=False, start=8000.5))
    await _reads(conn, new, _series(swap - timedelta(hours=1), last, rng, aligned=True, start=1.0))
    # a CT meter (the register counts the secondary side) with irregular reads
    made["ct"] = consumer = await _consumer(conn, board_id, "ct", kw="12")
    meter = await _meter(conn, board_id, consumer, "ct", ct_ratio=D("2.5"))
    await _reads(conn, meter, _series(first, last, rng, aligned=False, start=42.0))
    # reads of unbillable quality in the middle (a wild value that would look like a reset)
    made["quality"] = consumer = await _consumer(conn, board_id, "quality")
    meter = await _meter(conn, board_id, consumer, "quality")
    await _reads(conn, meter, _series(first, last, rng, aligned=True, start=700.0))
    await _reads(conn, meter, [(datetime(2026, 10, 9, 3, 7, tzinfo=UTC), 1.5)], quality="suspect")
    # every 15 minutes, as "aligned", and more of what the database sums: a CT meter, two
    # meters on one consumer, a register read in whole kWh (3001.0: repr keeps a decimal place
    # PostgreSQL does not)
    made["aligned_ct"] = consumer = await _consumer(conn, board_id, "aligned_ct", kw="12")
    meter = await _meter(conn, board_id, consumer, "aligned_ct", ct_ratio=D("2.5"))
    await _reads(conn, meter, _series(first, last, rng, aligned=True, start=42.0))
    made["pair"] = consumer = await _consumer(conn, board_id, "pair")
    for tag in ("pair_a", "pair_b"):
        meter = await _meter(conn, board_id, consumer, tag)
        await _reads(conn, meter, _series(first, last, rng, aligned=True, start=150.75))
    made["whole"] = consumer = await _consumer(conn, board_id, "whole")
    meter = await _meter(conn, board_id, consumer, "whole")
    series = _series(first, last, rng, aligned=True, start=3000.0)
    await _reads(conn, meter, [(ts, float(round(value))) for ts, value in series])
    # read every 15 minutes, but the register was reset on the period's first instant (the read
    # before it is higher), or one hour's end has no read: spread from the reads
    start = local_midnight(date(2026, 10, 1), tz)
    made["reset_at_start"] = consumer = await _consumer(conn, board_id, "reset_at_start")
    meter = await _meter(conn, board_id, consumer, "reset_at_start")
    series = _series(first, last, rng, aligned=True, start=4000.5)
    await _reads(conn, meter, [(t, v - 3990 if t >= start else v) for t, v in series])
    made["gap"] = consumer = await _consumer(conn, board_id, "gap")
    meter = await _meter(conn, board_id, consumer, "gap")
    hole = datetime(2026, 10, 10, 12, 0, tzinfo=tz)
    series = _series(first, last, rng, aligned=True, start=3000.25)
    await _reads(conn, meter, [(t, v) for t, v in series if t != hole])
    # reads stop on the 30th: the end of the month cannot be measured (no history: not billed)
    made["missing"] = consumer = await _consumer(conn, board_id, "missing")
    meter = await _meter(conn, board_id, consumer, "missing")
    await _reads(
        conn, meter, _series(first, datetime(2026, 10, 30, tzinfo=UTC), rng, aligned=True, start=9)
    )
    return made


@pytest.mark.parametrize("zone", ["Europe/London", "Asia/Kolkata"])
async def test_time_of_day_bills_match_the_every_read_reference_to_the_paisa(
    cloud: Cloud,
    setup: Board,  # noqa: F811
    zone: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tz = ZoneInfo(zone)
    # three consumers a chunk: the run reads the next chunk ahead, on a second connection
    monkeypatch.setattr(billing_runs, "CHUNK", 3)
    await tariff(
        cloud,
        setup,
        [
            {"effective_from": "2026-01-01", "effective_to": "2026-10-18", "spec": TIME_OF_DAY},
            {"effective_from": "2026-10-18", "spec": TIME_OF_DAY_LATER},
        ],
    )
    async with cloud.pool.connection() as conn:
        await conn.execute("UPDATE boards SET time_zone = %s WHERE id = %s", (zone, setup.id))
        await conn.execute(
            "INSERT INTO holidays (board_id, day, name) VALUES (%s, %s, 'Gandhi Jayanti')",
            (setup.id, HOLIDAY),
        )
        await conn.execute(
            "INSERT INTO tariff_overrides (board_id, category, kind, value, starts_at, ends_at,"
            " reason, created_by) VALUES (%s, 'domestic', 'multiplier', 1.2, %s, %s, 'heat',"
            " 'test')",
            (setup.id, *(local_midnight(day, tz) for day in OVERRIDE)),
        )
        made = await fill(conn, setup.id, tz)
        await conn.commit()
    outcome = await run(cloud, setup)
    assert outcome["created"] == len(made) - 1, outcome["errors"]
    assert outcome["failed"] == 1, outcome  # the consumer whose reads stop early
    async with cloud.pool.connection() as conn:
        expected = await reference_bills(conn, setup.id, tz, date(2026, 10, 1), date(2026, 11, 1))
        thinned, summed = await run_bills(conn, setup.id, tz, date(2026, 10, 1), date(2026, 11, 1))
        cursor = await conn.execute(
            "SELECT i.consumer_id, i.total, i.units, i.estimated, i.details, l.position, l.code,"
            " l.description, l.quantity, l.unit, l.rate, l.amount FROM invoices i"
            " JOIN invoice_lines l ON l.invoice_id = i.id WHERE i.board_id = %s"
            " ORDER BY i.consumer_id, l.position",
            (setup.id,),
        )
        billed: dict[int, list[dict]] = {}
        for row in await cursor.fetchall():
            billed.setdefault(row["consumer_id"], []).append(row)
    assert set(expected) == set(made.values())
    by_name = {consumer: name for name, consumer in made.items()}
    assert sorted(by_name[c] for c in summed) == [
        "aligned",
        "aligned_ct",
        "pair",
        "quality",
        "whole",
    ]
    for name, consumer in made.items():
        reference = expected[consumer]
        if isinstance(reference, InvalidInput):
            assert name == "missing"
            assert consumer not in billed
            assert any("Consumer missing" in error for error in outcome["errors"])
            continue
        assert reference == thinned[consumer], name  # the whole bill, every Decimal digit
        assert digits(reference) == digits(thinned[consumer]), name  # and decimal place
        lines = billed[consumer]  # and what the run stored, at the columns' scale
        assert [s["units"] for s in lines[0]["details"]["segments"]] == [
            str(s.units) for s in reference.segments
        ], name
        assert len(reference.segments) == 4, name  # two versions, the later cut by the override
        assert lines[0]["total"] == reference.total, name
        assert lines[0]["units"] == _stored(reference.units), name
        assert lines[0]["estimated"] is reference.estimated is False, name
        got = [
            (r["code"], r["description"], r["quantity"], r["unit"], r["rate"], r["amount"])
            for r in lines
        ]
        want = [
            (x.code, x.description, _stored(x.quantity), x.unit, _stored(x.rate), x.amount)
            for x in reference.lines
        ]
        assert got == want, name
        assert any(line[0] == "energy" and line[2] > 0 for line in got)  # priced by the hour


# ---- any series: the thinned reads spread like every read --------------------------------------

BOARD_ZONES = ["Europe/London", "Asia/Kolkata", "Australia/Lord_Howe", "America/St_Johns"]


@pytest.fixture(scope="module")
def meter_world(database_url: str) -> dict:
    """A migrated database with one meter whose reads each example replaces."""

    async def make() -> int:
        async with await psycopg.AsyncConnection.connect(database_url, row_factory=dict_row) as c:
            await migrate(c)
            await fleet.create_state(c, code="TX", name="Thin", actor="t")
            board = await fleet.create_board(
                c, state_code="TX", code="THIN", name="Thin board", actor="t"
            )
            for month in ("2026-02-01", "2026-03-01", "2026-04-01", "2026-05-01"):
                await c.execute("SELECT ensure_readings_partition(%s)", (month,))
            for month in ("2026-09-01", "2026-10-01", "2026-11-01", "2026-12-01"):
                await c.execute("SELECT ensure_readings_partition(%s)", (month,))
            consumer = await _consumer(c, board["id"], "thin")
            meter = await _meter(c, board["id"], consumer, "thin")
            await c.commit()
            return meter

    return {"url": database_url, "meter": asyncio.run(make())}


reads_strategy = st.lists(
    st.tuples(
        st.integers(1, 20) | st.integers(1, 400),  # minutes since the read before
        st.sampled_from([0, 0, 0, 15, 30, 45]),  # seconds: mostly on the minute
        st.decimals(min_value=0, max_value=3, places=3)  # a rise
        | st.just(D(-1))  # a fall: a rollover when near the top, else a reset
        | st.just(D(-2)),  # a jump to near the top
        st.sampled_from(["ok", "ok", "ok", "estimated", "suspect"]),
    ),
    min_size=2,
    max_size=120,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    zone=st.sampled_from(BOARD_ZONES),
    first=st.sampled_from(
        [datetime(2026, 3, 27, 20, tzinfo=UTC), datetime(2026, 10, 24, 18, tzinfo=UTC)]
    )
    | st.datetimes(
        min_value=datetime(2026, 3, 25), max_value=datetime(2026, 4, 8), timezones=st.just(UTC)
    ),
    steps=reads_strategy,
    cut=st.tuples(st.floats(0.0, 0.6), st.floats(0.4, 1.1)),
    local_span=st.booleans(),
    multiplier=st.sampled_from([D(1), D("1.000"), D("2.500")]),
)
def test_the_reads_sent_spread_over_the_hours_like_every_read(
    meter_world: dict, zone, first, steps, cut, local_span, multiplier
) -> None:
    """Random series (resets, rollovers near 99 999, unbillable reads, reads off the minute,
    long gaps) around spring and autumn clock changes, in whole-, half- and half-hour-shifting
    zones: the run's reads give the hourly spread and units of every read, to the digit."""
    tz = ZoneInfo(zone)
    reads, ts, value = [], first, D("1234.5")
    for minutes, seconds, step, quality in steps:
        ts += timedelta(minutes=minutes, seconds=seconds)
        if step == -1:
            value = D("0.25") + value % 3
        elif step == -2:
            value = D("99990") + value % 7
        else:
            value += step
        reads.append((ts, float(value), quality))
    length = reads[-1][0] - first
    start = first + length * cut[0]
    end = max(first + length * cut[1], start + timedelta(minutes=1))
    if local_span:  # the run's spans start and end at local midnights, in the board's zone
        start = start.astimezone(tz)
        end = end.astimezone(tz)

    async def check() -> None:
        url, meter = meter_world["url"], meter_world["meter"]
        async with await psycopg.AsyncConnection.connect(url, row_factory=dict_row) as conn:
            await conn.execute("DELETE FROM readings WHERE meter_id = %s", (meter,))
            gateway = await _any_gateway(conn)
            async with conn.cursor() as cur:
                await cur.executemany(
                    "INSERT INTO readings (meter_id, quantity, ts, value, quality, gateway_id)"
                    " VALUES (%s, '1.8.0', %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                    [(meter, t, v, q, gateway) for t, v, q in reads],
                )
            await conn.commit()
            sent = (await billing_runs._reads(conn, {meter: (start, end)}, "1.8.0", tz))[meter]
            every = await every_read(conn, meter, start, end)
        got = consumption([MeterSpan(meter, sent, start, end, multiplier)], tz, hourly=True)
        want = reference_consumption([MeterSpan(meter, every, start, end, multiplier)], tz)
        assert (got.units, got.exact, got.missing) == (want.units, want.exact, want.missing)
        assert str(got.units) == str(want.units)
        assert list(got.by_hour.items()) == list(want.by_hour.items())
        assert [str(v) for v in got.by_hour.values()] == [str(v) for v in want.by_hour.values()]
        if not want.missing:  # fewer reads whenever an hour holds more than two
            assert len(sent) <= len(every)

    asyncio.run(check())

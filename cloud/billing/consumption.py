"""Consumption from cumulative register reads: the billing truth (docs/architecture.md: Quantities).

Consumption over a period is the register at its end minus the register at its start. When no
read falls exactly on a boundary the register there is interpolated linearly between the nearest
reads on either side; with reads on one side only it cannot be known and must be estimated.

A register that goes down either rolled over (it was near a power-of-ten maximum and restarted
near zero: the modulus is added back) or was reset (counting restarts from zero: the value before
the reset is kept as an offset). Either way the series is unwrapped into one that never falls, so
no energy is lost or invented. A replaced meter is a second register: each meter of the chain
counts for the part of the period it was installed.

All arithmetic is Decimal: a float read is taken at its shortest decimal representation.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import NamedTuple
from zoneinfo import ZoneInfo


class HourClass(NamedTuple):
    """Local hours time-of-day pricing cannot tell apart."""

    first: date  # the stretch of the period they lie in: local days [first, end), inside which
    end: date  # no tariff version or override begins or ends
    month: int  # 0-11: the row of the tariff's month-by-hour matrix
    hour: int  # 0-23, on the board's clock
    rest: bool  # a Saturday, a Sunday or one of the board's holidays: the weekend matrix


@dataclass(frozen=True)
class ClassSums:
    """One meter's span as the database summed it, each read taken as `Decimal(repr(float))`
    takes it (`consumption.to_decimal`): digits and decimal places alike."""

    rise: Decimal  # the register's read at the span's end less its read at the start
    by_class: dict[HourClass, Decimal]  # the rise over each class's hours (no zero entries)
    top: Decimal  # the largest read summed
    places: int  # the most decimal places among the reads summed


class Read(NamedTuple):  # a tuple: a month of them is made per meter, cheaply
    ts: datetime
    value: Decimal


def to_decimal(value: float) -> Decimal:
    return Decimal(repr(value))


def _is_rollover(before: Decimal, after: Decimal) -> Decimal | None:
    """The register's modulus if `before` -> `after` is a wrap-around, else None."""
    if before <= 0:
        return None
    modulus = Decimal(10) ** len(str(int(before)))
    if before >= Decimal("0.9") * modulus and after < Decimal("0.1") * modulus:
        return modulus
    return None


def unwrap(reads: Sequence[Read]) -> list[Read]:
    """The reads (sorted by time) as a series that never falls: rollovers and resets undone."""
    out: list[Read] = []
    offset = Decimal(0)
    previous: Decimal | None = None
    for read in sorted(reads, key=lambda r: r.ts):
        if previous is not None and read.value < previous:
            modulus = _is_rollover(previous, read.value)
            offset += modulus if modulus is not None else previous
        previous = read.value
        out.append(Read(read.ts, read.value + offset))
    return out


def register_at(series: Sequence[Read], at: datetime) -> tuple[Decimal, bool] | None:
    """The (unwrapped) register at `at`: (value, True) from a read at that instant, (value,
    False) interpolated between the reads around it, None with reads on one side only."""
    index = bisect_left(series, at, key=lambda r: r.ts)
    if index < len(series) and series[index].ts == at:
        return series[index].value, True
    if index == 0 or index == len(series):
        return None
    return _between(series[index - 1], series[index], at), False


def _between(before: Read, after: Read, at: datetime) -> Decimal:
    """The register at `at`, on the straight line from `before` to `after`."""
    elapsed_us = (at - before.ts) // timedelta(microseconds=1)
    total_us = (after.ts - before.ts) // timedelta(microseconds=1)
    # multiply before dividing: one rounding, so a whole share of a whole rise stays whole
    return before.value + (after.value - before.value) * elapsed_us / total_us


@dataclass(frozen=True)
class MeterSpan:
    """One meter of a consumer's chain and the part of the period it served."""

    meter_id: int
    reads: Sequence[Read]  # the meter's register reads (any order, raw values)
    start: datetime
    end: datetime
    multiplier: Decimal = Decimal(1)  # CT ratio: the register counts the secondary side
    name: str = ""  # the meter's id as people know it (its external id)
    summed: ClassSums | None = None  # time of day: the span summed by hour class in the
    # database instead of its reads (`hour_classes`; then `reads` is empty)


@dataclass(frozen=True)
class Consumption:
    units: Decimal
    by_hour: dict[datetime, Decimal]  # energy by the local hour it was used in, keyed by the
    # hour's start as a UTC instant (the hour repeated when clocks go back is two hours)
    exact: bool  # every boundary had a read on it
    missing: list[str]  # what could not be measured (these spans need an estimate)
    by_class: dict[HourClass, Decimal] = field(default_factory=dict)  # the same energy summed
    # by hour class instead (`hour_classes.consumption_of`): `by_hour` is then empty


def consumption(spans: Sequence[MeterSpan], tz: ZoneInfo, *, hourly: bool = False) -> Consumption:
    """Units used over the spans, and (when `hourly`, for time of day) how they spread over
    the local hours."""
    if any(span.summed is not None for span in spans):
        raise ValueError("summed spans have no reads: measure them with hour_classes")
    units = Decimal(0)
    by_hour: dict[datetime, Decimal] = {}
    exact = True
    missing = []
    for span in spans:
        series = unwrap(span.reads)
        start = register_at(series, span.start)
        end = register_at(series, span.end)
        if start is None or end is None:
            moment = span.end if end is None else span.start
            at = f"{moment.astimezone(tz):%d %b %Y %H:%M %Z}".lstrip("0")  # the board's zone
            meter = span.name or f"meter {span.meter_id}"
            missing.append(f"meter {meter}: no reads on both sides of {at}")
            continue
        exact = exact and start[1] and end[1]
        units += (end[0] - start[0]) * span.multiplier
        if hourly:
            _rise_by_hour(series, span, tz, by_hour)
    return Consumption(units, by_hour, exact and not missing, missing)


def _rise_by_hour(
    series: Sequence[Read], span: MeterSpan, tz: ZoneInfo, by_hour: dict[datetime, Decimal]
) -> None:
    """Put the span's energy into the local hours it was used in: the register's rise across
    each hour, the reads interpolated linearly (each interval's energy spread in proportion to
    time). Only called with reads on both sides of the span, so the register is known anywhere
    in it. Hours with no rise get no entry. The register is looked up only at the hours' ends,
    so `series` needs no read but the ones around each (`hour_pieces`)."""
    level = register_at(series, span.start)[0]
    index = bisect_left(series, span.start, key=lambda r: r.ts)  # walks on with the hours
    multiplier = span.multiplier
    for key, stop in hour_pieces(span.start, span.end, tz):
        while series[index].ts < stop:
            index += 1
        after = series[index]
        reached = after.value if after.ts == stop else _between(series[index - 1], after, stop)
        if reached != level:
            by_hour[key] = by_hour.get(key, _ZERO) + (reached - level) * multiplier
        level = reached


_ZERO = Decimal(0)


def hour_pieces(
    start: datetime, end: datetime, tz: ZoneInfo
) -> tuple[tuple[datetime, datetime], ...]:
    """The local hours [start, end) is cut into, in order, each as (its key, where it stops):
    the key is the hour's start (`Consumption.by_hour`), the stop the next hour's start, or
    `end`, as a UTC instant (reads compare with it cheaply). Every meter of a board billed over
    the same span is cut alike, so the cut is made once, and its keys are the same objects for
    every meter (hashed once)."""
    return _cut(start, start.tzinfo, start.fold, end, end.tzinfo, end.fold, tz)


@lru_cache(maxsize=1024)
def _cut(
    start: datetime,
    _zone: object,
    _fold: int,
    end: datetime,
    _end_zone: object,
    _end_fold: int,
    tz: ZoneInfo,
) -> tuple[tuple[datetime, datetime], ...]:
    # keyed by the zones and folds too: the walk does its arithmetic in the zone `start` is
    # given in, so an instant given in another zone is another cut
    pieces = []
    cursor = start
    while cursor < end:
        local = cursor.astimezone(tz)
        into_hour = timedelta(
            minutes=local.minute, seconds=local.second, microseconds=local.microsecond
        )
        # Arithmetic in UTC: wall-clock arithmetic would skip the hour repeated when clocks go
        # back. The hour's start is `into_hour` ago unless the offset changed since (Lord Howe
        # moves its clocks by half an hour): then the hour began at the change, and the cursor
        # (at the change, or after it where a span starts) names it.
        key = cursor - into_hour
        if into_hour and key.astimezone(tz).replace(tzinfo=None) != local.replace(
            minute=0, second=0, microsecond=0, tzinfo=None
        ):
            key = cursor
        stop = min(cursor - into_hour + timedelta(hours=1), end)
        pieces.append((key, stop.astimezone(UTC)))
        cursor = stop
    return tuple(pieces)


class LocalHour(NamedTuple):
    """An instant on the board's clock, as time-of-day pricing reads it."""

    day: date
    month: int  # 0-11: the row of the tariff's month-by-hour matrix
    hour: int
    weekend: bool  # Saturday or Sunday


def local_hour(instant: datetime, tz: ZoneInfo) -> LocalHour:
    """`instant.astimezone(tz)` as a `LocalHour`: the hours of a billing run recur for every
    consumer, so each is converted once."""
    return _local(instant, instant.tzinfo, instant.fold, tz)


@lru_cache(maxsize=65536)
def _local(instant: datetime, _zone: object, _fold: int, tz: ZoneInfo) -> LocalHour:
    # keyed by the zone and fold too: an instant given in `tz` itself is taken at its wall time
    local = instant.astimezone(tz)
    return LocalHour(local.date(), local.month - 1, local.hour, local.weekday() >= 5)


def split_by_period(
    by_hour: dict[datetime, Decimal],
    weekday: list[list[str]],
    weekend: list[list[str]],
    holidays: set,
    tz: ZoneInfo,
) -> dict[str, Decimal]:
    """Time-of-day units: each local hour's energy under its period (weekends and holidays use
    the weekend matrix), read on the board's clock."""
    periods: dict[str, Decimal] = {}
    for instant, energy in by_hour.items():
        day, month, hour, rest_day = local_hour(instant, tz)
        name = (weekend if rest_day or day in holidays else weekday)[month][hour]
        periods[name] = periods.get(name, Decimal(0)) + energy
    return periods

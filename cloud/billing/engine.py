"""One bill: a consumer's consumption over a period priced under the tariff versions in force.

A period is cut into segments where the tariff version changes; each segment gets its share of
the period's units and of the month (slabs and fixed charges) by days — the pro-rating the
regulator's orders prescribe when no read falls on the change date. Time-of-day units are taken
from the hours of each segment. When a span of a meter cannot be measured (no read after the
period's end yet, a gap around a boundary) the units are estimated from the consumer's own
history (validation, estimation, editing: the bill says "estimated", and a later run trues it up).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from ..errors import InvalidInput
from .consumption import Consumption, split_by_period
from .tariff import Line, TariffSpec, Usage, close_bill, price


@dataclass(frozen=True)
class TariffVersion:
    id: int
    effective_from: date
    effective_to: date | None  # exclusive; None: open-ended
    spec: TariffSpec


@dataclass(frozen=True)
class Segment:
    version_id: int
    start: date
    end: date  # exclusive
    units: Decimal


@dataclass(frozen=True)
class Bill:
    lines: list[Line]
    total: Decimal
    units: Decimal
    estimated: bool
    segments: list[Segment] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def local_midnight(day: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tz)


def month_of(day: date) -> tuple[date, date]:
    """The calendar month holding `day`: its first day and the next month's first day."""
    start = day.replace(day=1)
    return start, date(start.year + start.month // 12, start.month % 12 + 1, 1)


def segments_of(
    versions: list[TariffVersion], start: date, end: date
) -> list[tuple[TariffVersion, date, date]]:
    """The versions covering [start, end), each with the part it covers; every day must be."""
    cut = []
    day = start
    for version in sorted(versions, key=lambda v: v.effective_from):
        until = version.effective_to or date.max
        if until <= day or version.effective_from >= end:
            continue
        if version.effective_from > day:
            break
        stop = min(until, end)
        cut.append((version, day, stop))
        day = stop
        if day >= end:
            break
    if day < end:
        raise InvalidInput(
            f"no tariff version is in force on {day:%Y-%m-%d}; add one before billing",
            errors=[("period", day.isoformat())],
        )
    return cut


def compute_bill(
    *,
    period_start: date,
    period_end: date,
    tz: ZoneInfo,
    consumption: Consumption,
    versions: list[TariffVersion],
    sanctioned_kw: Decimal,
    holidays: set[date] | None = None,
    daily_history: Decimal | None = None,
    load_pct: Decimal | None = None,
    cycle_months: Decimal = Decimal(1),
    max_demand_kw: Decimal | None = None,
) -> Bill:
    """Price one consumer's period. `daily_history`: the consumer's usual units per day, used
    when the consumption could not be measured; `max_demand_kw`: the highest demand its meters
    recorded in the period, for fixed charges that go by it."""
    if period_end <= period_start:
        raise InvalidInput(
            "the period ends before it starts", errors=[("period_end", period_end.isoformat())]
        )
    days = (period_end - period_start).days
    notes = list(consumption.missing)
    estimated = bool(consumption.missing)
    units = consumption.units
    if estimated:
        if daily_history is None:
            raise InvalidInput(
                "consumption cannot be measured and the consumer has no history to estimate"
                f" from: {'; '.join(consumption.missing)}",
                errors=[("readings", "missing")],
            )
        units = daily_history * days
        notes.append(f"estimated from {daily_history:.3f} units a day over {days} days")
    cut = segments_of(versions, period_start, period_end)
    if any(v.spec.fixed.basis == "higher_of_load_and_demand" for v, _, _ in cut):
        notes.append(
            f"maximum demand recorded: {max_demand_kw} kW"
            if max_demand_kw is not None
            else "no maximum demand recorded: fixed charges on the sanctioned load"
        )
    lines: list[Line] = []
    segments = []
    for version, start, end in cut:
        share = Decimal((end - start).days) / Decimal(days)
        spec = version.spec
        by_period = None
        seg_units = units * share
        if spec.energy.mode == "time_of_day":
            if estimated or not consumption.by_hour:
                # no hourly data: the estimate is priced as if used evenly through the day
                by_period = _even_split(spec, seg_units, start, end, holidays or set(), tz)
            else:
                hours = {
                    h: e
                    for h, e in consumption.by_hour.items()
                    if start <= h.astimezone(tz).date() < end
                }
                by_period = split_by_period(
                    hours,
                    spec.energy.weekday or [],
                    spec.energy.weekend or [],
                    holidays or set(),
                    tz,
                )
                seg_units = sum(by_period.values(), Decimal(0))
        usage = Usage(
            units=seg_units,
            months=cycle_months * share,
            by_period=by_period,
            sanctioned_kw=sanctioned_kw,
            load_pct=load_pct,
            max_demand_kw=max_demand_kw,
        )
        label = f"{start:%d %b}-{end - timedelta(days=1):%d %b}" if len(cut) > 1 else ""
        lines += price(spec, usage, label=label)
        segments.append(Segment(version.id, start, end, seg_units))
    lines, total = close_bill(cut[-1][0].spec, lines)
    return Bill(lines, total, units, estimated, segments, notes)


def _even_split(
    spec: TariffSpec, units: Decimal, start: date, end: date, holidays: set[date], tz: ZoneInfo
) -> dict[str, Decimal]:
    hours: dict[datetime, Decimal] = {}
    per_hour = units / Decimal((end - start).days * 24)
    day = start
    while day < end:
        for hour in range(24):
            hours[datetime.combine(day, time(hour), tz)] = per_hour
        day += timedelta(days=1)
    weekday, weekend = spec.energy.weekday or [], spec.energy.weekend or []
    return split_by_period(hours, weekday, weekend, holidays, tz)

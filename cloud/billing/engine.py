"""One bill: a consumer's consumption over a period priced under the tariff versions in force.

A period is cut into segments where the tariff version changes; each segment gets its share of
the period's units by days — the pro-rating the regulator's orders prescribe when no read falls
on the change date. Slab and schedule limits and fixed charges scale by the months a segment
covers, measured on the calendar (`months_between`): 1 Sep to 1 Nov is 2 months (a bimonthly
cycle doubles monthly limits), 12 Oct to 1 Nov is 20/31 of a month (a part period is pro-rated
by days); a caller that knows the board's cycle may state its months instead (`cycle_months`).
Time-of-day units are taken from the hours of each segment (or from their classes, when a
billing run had the database sum them: `hour_classes`), and a version with schedules prices
each segment under the schedule its units fall in. A temporary override
(`cloud.billing.overrides`) cuts the period the same way: the days inside its window are priced
under it, and their lines say so. When a span of a meter cannot be measured
(no read after the period's end yet, a gap around a boundary) the units are estimated from the
consumer's own history (validation, estimation, editing: the bill says "estimated", and a
later run trues it up).

A consumer with a generation source is net metered (`cloud.billing.net_metering`): its export
and the units banked from earlier bills offset its import, the energy charge prices the net
import, and the lines say how; the terms are those of the version in force at the period's end.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from ..errors import InvalidInput
from . import hour_classes
from .consumption import Consumption, local_hour, split_by_period
from .hour_classes import HourClass
from .net_metering import Bank, NetOutcome, credit_lines, offset, reading_lines, settles
from .overrides import TariffOverride, apply, cut_by_overrides, describe
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
    override_id: int | None = None  # the temporary override it was priced under


@dataclass(frozen=True)
class Bill:
    lines: list[Line]
    total: Decimal
    units: Decimal
    estimated: bool
    segments: list[Segment] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    net: NetOutcome | None = None  # net metering: the offset and the bank after this bill


@dataclass(frozen=True)
class NetInput:
    """What net metering needs besides the import: the export over the period, and the bank
    the previous bill left."""

    export: Consumption
    bank: Bank = field(default_factory=Bank)


def local_midnight(day: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tz)


def month_of(day: date) -> tuple[date, date]:
    """The calendar month holding `day`: its first day and the next month's first day."""
    start = day.replace(day=1)
    return start, date(start.year + start.month // 12, start.month % 12 + 1, 1)


def add_months(day: date, months: int) -> date:
    """The same day `months` calendar months on (the month's last day when it is shorter)."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    last = (month_of(date(year, month + 1, 1))[1] - timedelta(days=1)).day
    return date(year, month + 1, min(day.day, last))


def months_between(start: date, end: date) -> tuple[Decimal, str]:
    """The months from `start` to `end` (exclusive) and how they are counted, in words: whole
    calendar months from `start`, then each remaining day as a share of its month's days
    (12 Oct to 1 Nov: 20/31, "20 of 31 days of October")."""
    whole = 0
    while add_months(start, whole + 1) <= end:
        whole += 1
    months = Decimal(whole)
    words = [f"{whole} month{'s' if whole != 1 else ''}"] if whole else []
    day = add_months(start, whole)
    while day < end:
        first, following = month_of(day)
        stop = min(following, end)
        days, of = (stop - day).days, (following - first).days
        months += Decimal(days) / Decimal(of)
        words.append(f"{days} of {of} days of {first:%B}")
        day = stop
    return months, " and ".join(words)


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


def stretches(
    versions: list[TariffVersion], overrides: list[TariffOverride], start: date, end: date
) -> list[tuple[TariffVersion, date, date, TariffOverride | None]]:
    """[start, end) cut where the tariff version in force changes and where a temporary
    override begins or ends: each stretch priced under one version (and override, if any)."""
    return [
        (version, piece_start, piece_end, override)
        for version, first, until in segments_of(versions, start, end)
        for piece_start, piece_end, override in cut_by_overrides(first, until, overrides)
    ]


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
    cycle_months: Decimal | None = None,
    max_demand_kw: Decimal | None = None,
    overrides: list[TariffOverride] | None = None,
    net: NetInput | None = None,
    supply: tuple[date, date] | None = None,
) -> Bill:
    """Price one consumer's period. `daily_history`: the consumer's usual units per day, used
    when the consumption could not be measured; `max_demand_kw`: the highest demand its meters
    recorded in the period, for fixed charges that go by it; `cycle_months`: the months the
    whole period counts for (the board's billing cycle), None to measure it on the calendar;
    `overrides`: the category's temporary overrides in the period (the days inside one are
    priced under it); `net`: the export and bank of a net-metered consumer; `supply`: the days
    [first, end) of the period the consumer had a meter, when fewer than the period's (a first
    bill from the day the meter was installed, a last one to the day it was taken out) — the
    bill then covers those days, its slab limits and fixed charges pro-rated by them, and says
    so."""
    if period_end <= period_start:
        raise InvalidInput(
            "the period ends before it starts", errors=[("period_end", period_end.isoformat())]
        )
    part_note = None
    if supply is not None:
        first, until = max(supply[0], period_start), min(supply[1], period_end)
        whole = (period_end - period_start).days
        if until <= first:
            raise InvalidInput(
                "the consumer had no supply in the period", errors=[("supply", first.isoformat())]
            )
        if (first, until) != (period_start, period_end):
            share = Decimal((until - first).days) / Decimal(whole)
            part_note = (
                f"part period: supply from {first:%d %b %Y} to"
                f" {until - timedelta(days=1):%d %b %Y}, {(until - first).days} of the period's"
                f" {whole} days; slab limits and fixed charges pro-rated"
            )
            if cycle_months is not None:
                cycle_months = cycle_months * share
            period_start, period_end = first, until
    days = (period_end - period_start).days
    cut = stretches(versions, overrides or [], period_start, period_end)
    missing = [*consumption.missing, *(net.export.missing if net else [])]
    notes = [*([part_note] if part_note else []), *missing]
    estimated = bool(missing)
    units = consumption.units
    if estimated:
        if daily_history is None:
            raise InvalidInput(
                "consumption cannot be measured and the consumer has no history to estimate"
                f" from: {'; '.join(missing)}",
                errors=[("readings", "missing")],
            )
        units = daily_history * days
        notes.append(f"estimated from {daily_history:.3f} units a day over {days} days")
    outcome = None
    if net is not None:
        estimate = units if estimated else None
        outcome = _net(cut, period_start, period_end, consumption, net, estimate)
        units = outcome.billed_kwh
        if estimated:
            notes.append("net metering: nothing offset on an estimated bill; the bank carries over")
    if any(v.spec.fixed.basis == "higher_of_load_and_demand" for v, _, _, _ in cut):
        notes.append(
            f"maximum demand recorded: {max_demand_kw} kW"
            if max_demand_kw is not None
            else "no maximum demand recorded: fixed charges on the sanctioned load"
        )
    lines: list[Line] = []
    segments = []
    for version, start, end, override in cut:
        share = Decimal((end - start).days) / Decimal(days)
        spec = version.spec if override is None else apply(version.spec, override)
        if cycle_months is not None:
            months = cycle_months * share
            basis = f"{_fmt(months)} months of a {_fmt(cycle_months)}-month cycle"
        else:
            months, basis = months_between(start, end)
        seg_units = units * share
        hours: dict[datetime, Decimal] | None = None
        classes: dict[HourClass, Decimal] | None = None
        if any(charge.mode == "time_of_day" for charge in spec.energy_charges()):
            if estimated or not (consumption.by_hour or consumption.by_class):
                # no hourly data: the estimate is priced as if used evenly through the day
                hours = _even_hours(seg_units, start, end, tz)
            elif consumption.by_class:  # summed by the run's classes (holidays already in)
                classes = hour_classes.within(consumption.by_class, start, end)
                seg_units = sum(classes.values(), Decimal(0))
            else:
                hours = {
                    h: e
                    for h, e in consumption.by_hour.items()
                    if start <= local_hour(h, tz).day < end
                }
                seg_units = sum(hours.values(), Decimal(0))
        charge = spec.choose_energy(seg_units, months).charge
        by_period = None
        if charge.mode == "time_of_day" and classes is not None:
            by_period = hour_classes.split_by_period(
                classes, charge.weekday or [], charge.weekend or []
            )
        elif charge.mode == "time_of_day" and hours is not None:
            by_period = split_by_period(
                hours, charge.weekday or [], charge.weekend or [], holidays or set(), tz
            )
        usage = Usage(
            units=seg_units,
            months=months,
            by_period=by_period,
            sanctioned_kw=sanctioned_kw,
            load_pct=load_pct,
            max_demand_kw=max_demand_kw,
            months_basis=basis,
        )
        label = f"{start:%d %b}-{end - timedelta(days=1):%d %b}" if len(cut) > 1 else ""
        if override is not None:
            label = describe(override)
        lines += price(spec, usage, label=label)
        segments.append(
            Segment(version.id, start, end, seg_units, override.id if override else None)
        )
    last = cut[-1][0].spec
    if outcome is not None:
        charges = sum((line.amount for line in lines), Decimal(0))
        credits, carried = credit_lines(outcome, charges)
        lines = [*reading_lines(outcome), *lines, *credits]
        outcome = dataclasses.replace(outcome, credit_out=carried)
    lines, total = close_bill(last, lines)
    return Bill(lines, total, units, estimated, segments, notes, outcome)


def _net(
    cut: list,
    period_start: date,
    period_end: date,
    consumption: Consumption,
    net: NetInput,
    estimated_units: Decimal | None,
) -> NetOutcome:
    """The period netted under the terms of the version in force at its end."""
    terms = cut[-1][0].spec.net_metering
    if terms is None:
        raise InvalidInput(
            f"the consumer has a generation source, but the tariff version in force on"
            f" {period_end - timedelta(days=1):%d %b %Y} has no net_metering terms, so its export"
            " cannot be credited; add net_metering (feed_in_rate, settlement_month) to the version",
            errors=[("tariff", "net_metering")],
        )
    if any(c.mode == "time_of_day" for v, _, _, _ in cut for c in v.spec.energy_charges()):
        raise InvalidInput(
            "net metering cannot be billed under a time-of-day energy charge (export is netted"
            " over the whole period); this period has a version with one",
            errors=[("tariff", "time_of_day")],
        )
    return offset(
        terms,
        import_kwh=consumption.units,
        export_kwh=net.export.units,
        bank=net.bank,
        settle=settles(terms, period_start, period_end),
        estimated_kwh=estimated_units,
        step=cut[-1][0].spec.rounding.line,
    )


def _fmt(value: Decimal) -> str:
    return f"{value.normalize():f}"


def _even_hours(units: Decimal, start: date, end: date, tz: ZoneInfo) -> dict[datetime, Decimal]:
    """`units` spread evenly over the local hours of [start, end)."""
    hours: dict[datetime, Decimal] = {}
    per_hour = units / Decimal((end - start).days * 24)
    day = start
    while day < end:
        for hour in range(24):
            hours[datetime.combine(day, time(hour), tz)] = per_hour
        day += timedelta(days=1)
    return hours

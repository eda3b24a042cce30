"""Tariffs as data, and the arithmetic that prices a period's usage with them.

A `TariffSpec` is one version of a board's tariff for a consumer category. Every amount is a
`Decimal`; every line is rounded once, when it is made, and a bill's total is the sum of its
lines (a rounding line makes up any difference the total's own rounding rule asks for).

Energy is priced one of four ways:
- flat: every unit at one rate;
- telescopic slabs: each slab's units at that slab's rate (0 to 200 at 4.00, the next 200 at
  5.95...);
- non-telescopic slabs: all units at the rate of the slab the consumption falls in;
- time of day: each period's units at its rate, periods from a 12 x 24 month-by-hour matrix for
  weekdays and one for weekends and holidays, read in the board's time zone.

A version has either one `energy` charge or several `schedules`, each an energy charge for the
periods whose consumption lies in its range (Kerala: up to 250 units a month telescopic slabs,
above 250 every unit at the rate of the band reached). Slab and schedule limits are stated per
month (or per two months, `limits_per`, as TNERC states them) and scale with the months the
usage covers: a two-month period doubles monthly limits, a part-month (a tariff change
mid-cycle, a first or last part period) pro-rates them by days. The energy lines say which
schedule applied, why, and how the limits were scaled.

Around the energy charge: a load-based adjustment (regional load tiers, +20 % at 90 % load ...),
fixed charges (per connection, per kW of sanctioned load — or of the recorded maximum demand when
that is higher — or banded by load), a fuel/power
purchase adjustment per unit, duties and taxes as a percentage of a chosen base, and a minimum
charge.

A version may carry net-metering terms (`net_metering`) for consumers with their own generation:
what is exported offsets what is imported within the period, a surplus is banked as units for
the next bill, and at the settlement month (March, the end of India's financial year, unless the
terms say otherwise) what is still banked is paid at the feed-in rate
(`cloud.billing.net_metering` does the arithmetic).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Money = Annotated[Decimal, Field(ge=0, le=Decimal("1e9"), max_digits=18, decimal_places=6)]
Rate = Annotated[Decimal, Field(ge=0, le=Decimal("1e6"), max_digits=14, decimal_places=6)]
SignedRate = Annotated[
    Decimal, Field(ge=Decimal("-1e6"), le=Decimal("1e6"), max_digits=14, decimal_places=6)
]
Percent = Annotated[Decimal, Field(ge=-100, le=1000, max_digits=8, decimal_places=4)]
Units = Annotated[Decimal, Field(gt=0, le=Decimal("1e9"), max_digits=18, decimal_places=6)]
PeriodName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Slab(_Spec):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    start: Decimal | None = Field(default=None, ge=0, alias="from")  # optional, checked
    up_to: Units | None = None  # monthly units where this slab ends; None: no end (the last)
    rate: Rate


class EnergyCharge(_Spec):
    mode: Literal["flat", "telescopic", "non_telescopic", "time_of_day"]
    rate: Rate | None = None
    slabs: list[Slab] | None = Field(default=None, max_length=20)
    rates: dict[PeriodName, Rate] | None = Field(default=None, max_length=12)
    weekday: list[list[PeriodName]] | None = None  # [month 0-11][hour 0-23]
    weekend: list[list[PeriodName]] | None = None

    @model_validator(mode="after")
    def _check(self) -> EnergyCharge:
        needs = {
            "flat": ("rate",),
            "telescopic": ("slabs",),
            "non_telescopic": ("slabs",),
            "time_of_day": ("rates", "weekday", "weekend"),
        }[self.mode]
        for name in needs:
            if getattr(self, name) is None:
                raise ValueError(f"{name} is required for {self.mode} energy charges")
        if self.slabs is not None:
            _check_slabs(self.slabs)
        if self.mode == "time_of_day":
            for name in ("weekday", "weekend"):
                _check_schedule(name, getattr(self, name), set(self.rates or {}))
        return self


def _check_slabs(slabs: list[Slab]) -> None:
    if not slabs:
        raise ValueError("slabs: at least one slab is needed")
    previous_end = Decimal(0)
    for index, slab in enumerate(slabs):
        if slab.start is not None and slab.start != previous_end:
            kind = "a gap" if slab.start > previous_end else "an overlap"
            raise ValueError(
                f"slabs.{index}.from: {slab.start} leaves {kind} after {previous_end}"
                " (each slab starts where the previous one ends)"
            )
        previous_end = slab.up_to if slab.up_to is not None else previous_end
    for index, slab in enumerate(slabs[:-1]):
        if slab.up_to is None:
            raise ValueError(f"slabs.{index}.up_to: only the last slab may be open-ended")
        following = slabs[index + 1].up_to
        if following is not None and following <= slab.up_to:
            raise ValueError(
                f"slabs.{index + 1}.up_to: {following} must be above the previous slab's"
                f" {slab.up_to} (slabs are contiguous and ascending)"
            )
    if slabs[-1].up_to is not None:
        raise ValueError(
            f"slabs.{len(slabs) - 1}.up_to: the last slab must be open-ended (no up_to), or"
            " consumption above it would have no price"
        )


def _check_schedule(name: str, matrix: list[list[str]] | None, periods: set[str]) -> None:
    if matrix is None or len(matrix) != 12 or any(len(row) != 24 for row in matrix):
        shape = f"{len(matrix)} rows" if matrix is not None else "missing"
        raise ValueError(f"{name}: a schedule is 12 months x 24 hours ({shape})")
    unknown = sorted({p for row in matrix for p in row} - periods)
    if unknown:
        raise ValueError(f"{name}: periods {unknown} have no rate in rates")


class EnergySchedule(_Spec):
    """An energy charge for the periods whose consumption is up to `up_to` units (a month's,
    scaled like slab limits) and above the previous schedule's `up_to`."""

    up_to: Units | None = None  # None: no end (the last schedule)
    energy: EnergyCharge


def _check_schedules(schedules: list[EnergySchedule]) -> None:
    for index, schedule in enumerate(schedules[:-1]):
        following = schedules[index + 1].up_to
        if schedule.up_to is None:
            raise ValueError(f"schedules.{index}.up_to: only the last schedule may be open-ended")
        if following is not None and following <= schedule.up_to:
            raise ValueError(
                f"schedules.{index + 1}.up_to: {following} must be above the previous"
                f" schedule's {schedule.up_to} (schedules are contiguous and ascending)"
            )
    if schedules[-1].up_to is not None:
        raise ValueError(
            f"schedules.{len(schedules) - 1}.up_to: the last schedule must be open-ended (no"
            " up_to), or consumption above it would have no price"
        )


@dataclass(frozen=True)
class ChosenEnergy:
    """The energy charge that prices a consumption, and the scaled range that chose it."""

    charge: EnergyCharge
    above: Decimal | None  # None: the first schedule (or the only charge)
    up_to: Decimal | None  # None: open-ended
    scheduled: bool  # chosen among schedules (the bill says why)


class DynamicTier(_Spec):
    min_load_pct: Annotated[Decimal, Field(ge=0, le=1000)]
    adjust_pct: Percent


class FixedBand(_Spec):
    up_to_kw: Units | None = None  # sanctioned load up to this; None: above the last band
    amount: Money | None = None  # per month
    per_kw: Rate | None = None  # per kW (or kVA) of sanctioned load per month

    @model_validator(mode="after")
    def _one(self) -> FixedBand:
        if (self.amount is None) == (self.per_kw is None):
            raise ValueError("a fixed-charge band has either amount or per_kw")
        return self


class FixedCharge(_Spec):
    per_connection: Money = Decimal(0)  # per month
    per_kw: Rate = Decimal(0)  # per kW of sanctioned load per month
    bands: list[FixedBand] = Field(default_factory=list, max_length=20)
    # the load the per-kW charge and the bands go by: the sanctioned load, or the recorded
    # maximum demand when that is higher ("sanctioned load or MDI, whichever is higher")
    basis: Literal["sanctioned_load", "higher_of_load_and_demand"] = "sanctioned_load"

    @model_validator(mode="after")
    def _check(self) -> FixedCharge:
        limits = [b.up_to_kw for b in self.bands]
        if self.bands and limits[-1] is not None:
            raise ValueError("fixed.bands: the last band must be open-ended (no up_to_kw)")
        bounded = [limit for limit in limits[:-1] if limit is not None]
        if len(bounded) != len(limits[:-1]) or bounded != sorted(set(bounded)):
            raise ValueError("fixed.bands: up_to_kw must rise from band to band")
        return self


class Tax(_Spec):
    name: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f]*$")]
    percent: Annotated[Decimal, Field(ge=0, le=100, max_digits=7, decimal_places=4)]
    base: Literal["energy", "fixed", "energy_and_fixed", "subtotal"] = "energy"


class Rounding(_Spec):
    line: Annotated[Decimal, Field(gt=0, le=1)] = Decimal("0.01")
    total: Annotated[Decimal, Field(gt=0, le=100)] = Decimal("0.01")


class NetMetering(_Spec):
    """Net-metering terms (CERC/DERC/KSERC style): export offsets import within the period, the
    energy charge is priced on the net import (slabs on net units), a surplus is carried as units
    to the next bill (`surplus: carry`) or paid at once (`settle_each_period`), and whatever is
    banked at the end of the settlement month is paid at `feed_in_rate` per kWh."""

    feed_in_rate: Rate
    settlement_month: Annotated[int, Field(ge=1, le=12)] = 3  # March: the financial year's end
    surplus: Literal["carry", "settle_each_period"] = "carry"


class TariffSpec(_Spec):
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] = "INR"
    energy_unit: Literal["kWh", "kVAh"] = "kWh"
    energy: EnergyCharge | None = None  # one charge for any consumption, or ...
    schedules: list[EnergySchedule] | None = Field(default=None, min_length=1, max_length=10)
    limits_per: Literal["month", "two_months"] = "month"  # what slab/schedule limits are per
    dynamic: list[DynamicTier] = Field(default_factory=list, max_length=10)
    fixed: FixedCharge = FixedCharge()
    fuel_adjustment_per_unit: SignedRate = Decimal(0)
    taxes: list[Tax] = Field(default_factory=list, max_length=10)
    minimum_charge: Money = Decimal(0)  # per month
    rounding: Rounding = Rounding()
    net_metering: NetMetering | None = None  # for consumers with a generation source

    @model_validator(mode="after")
    def _check(self) -> TariffSpec:
        if (self.energy is None) == (self.schedules is None):
            raise ValueError(
                "give either energy (one charge for any consumption) or schedules (charges"
                " chosen by the consumption's range), not both or neither"
            )
        if self.schedules is not None:
            _check_schedules(self.schedules)
        thresholds = [t.min_load_pct for t in self.dynamic]
        if thresholds != sorted(set(thresholds), reverse=True):
            raise ValueError("dynamic: tiers go from the highest min_load_pct down, each once")
        if self.dynamic and thresholds[-1] != 0:
            raise ValueError("dynamic: the last tier starts at min_load_pct 0 (covers any load)")
        if self.net_metering is not None:
            if any(charge.mode == "time_of_day" for charge in self.energy_charges()):
                raise ValueError(
                    "net_metering: cannot be combined with a time_of_day energy charge (export"
                    " is netted over the whole period, not per time-of-day period); use a flat"
                    " or slab charge for net-metered consumers"
                )
            if self.energy_unit != "kWh":
                raise ValueError(
                    "net_metering: needs energy_unit kWh (export is measured in kWh on 2.8.0)"
                )
        return self

    def energy_charges(self) -> list[EnergyCharge]:
        """Every energy charge of the version (one, or one per schedule)."""
        if self.schedules is not None:
            return [schedule.energy for schedule in self.schedules]
        return [self.energy] if self.energy is not None else []

    def limit_scale(self, months: Decimal) -> Decimal:
        """What slab and schedule limits are multiplied by for usage over `months` months."""
        return months / 2 if self.limits_per == "two_months" else months

    def choose_energy(self, units: Decimal, months: Decimal) -> ChosenEnergy:
        """The energy charge for `units` used over `months` months: the only one, or the
        schedule whose (scaled) range holds them — a limit belongs to the range it ends."""
        if self.schedules is None:
            assert self.energy is not None  # the validator allows nothing else
            return ChosenEnergy(self.energy, None, None, scheduled=False)
        scale = self.limit_scale(months)
        above = None
        for schedule in self.schedules:
            up_to = None if schedule.up_to is None else schedule.up_to * scale
            if up_to is None or units <= up_to:
                return ChosenEnergy(schedule.energy, above, up_to, scheduled=True)
            above = up_to
        raise AssertionError("the last schedule is open-ended")  # checked by the validator


@dataclass(frozen=True)
class Line:
    """One line of a bill: what, how much, at what rate, and the (rounded) amount."""

    code: str
    description: str
    quantity: Decimal
    unit: str
    rate: Decimal
    amount: Decimal


@dataclass(frozen=True)
class Usage:
    """What is priced for one stretch of a billing period under one tariff version."""

    units: Decimal  # kWh or kVAh, as the tariff bills
    months: Decimal  # the stretch's share of a month (slabs and fixed charges scale by it)
    by_period: dict[str, Decimal] | None = None  # time-of-day units (they sum to `units`)
    sanctioned_kw: Decimal = Decimal(1)
    load_pct: Decimal | None = None  # regional load, for dynamic tiers
    max_demand_kw: Decimal | None = None  # the highest 15-minute demand recorded in the period
    months_basis: str = ""  # why `months` is what it is, in words ("2 months", "20 of 31 days
    # of October"): the bill states it beside limits scaled by it

    def fixed_load(self, basis: str) -> tuple[Decimal, str]:
        """The load fixed charges go by under `basis`, and what it is (for the bill's lines)."""
        demand = self.max_demand_kw
        if (
            basis == "higher_of_load_and_demand"
            and demand is not None
            and demand > self.sanctioned_kw
        ):
            return demand, "maximum demand"
        return self.sanctioned_kw, "sanctioned load"


def _round(value: Decimal, step: Decimal) -> Decimal:
    return (value / step).quantize(Decimal(1), rounding=ROUND_HALF_UP) * step


def _fmt(value: Decimal) -> str:
    return f"{value.normalize():f}"


def price(spec: TariffSpec, usage: Usage, *, label: str = "") -> list[Line]:
    """The lines (each rounded once) for `usage` under `spec`; no total rounding here (see
    `close_bill`). `label` distinguishes the lines of two versions in one period."""
    step = spec.rounding.line
    unit = spec.energy_unit
    suffix = f" ({label})" if label else ""
    energy_lines = _energy_lines(spec, usage, step, unit, suffix)
    lines = list(energy_lines)
    energy_total = sum((line.amount for line in energy_lines), Decimal(0))
    if spec.dynamic and usage.load_pct is not None:
        tier = next(t for t in spec.dynamic if usage.load_pct >= t.min_load_pct)
        if tier.adjust_pct:
            amount = _round(energy_total * tier.adjust_pct / 100, step)
            lines.append(
                Line(
                    "dynamic",
                    f"Load-based adjustment at {_fmt(usage.load_pct)} % regional load{suffix}",
                    energy_total,
                    spec.currency,
                    tier.adjust_pct / 100,
                    amount,
                )
            )
            energy_total += amount
    if spec.fuel_adjustment_per_unit:
        amount = _round(usage.units * spec.fuel_adjustment_per_unit, step)
        lines.append(
            Line(
                "fuel",
                f"Fuel and power purchase adjustment{suffix}",
                usage.units,
                unit,
                spec.fuel_adjustment_per_unit,
                amount,
            )
        )
        energy_total += amount
    fixed_lines = _fixed_lines(spec, usage, step, suffix)
    lines += fixed_lines
    fixed_total = sum((line.amount for line in fixed_lines), Decimal(0))
    minimum = _round(spec.minimum_charge * usage.months, step)
    if energy_total + fixed_total < minimum:
        top_up = minimum - energy_total - fixed_total
        lines.append(
            Line("minimum", f"Minimum charge top-up{suffix}", Decimal(1), "", top_up, top_up)
        )
        fixed_total += top_up
    for tax in spec.taxes:
        base = {
            "energy": energy_total,
            "fixed": fixed_total,
            "energy_and_fixed": energy_total + fixed_total,
            "subtotal": sum((line.amount for line in lines), Decimal(0)),
        }[tax.base]
        lines.append(
            Line(
                "tax",
                f"{tax.name} at {_fmt(tax.percent)} % of {tax.base.replace('_', ' ')}{suffix}",
                base,
                spec.currency,
                tax.percent / 100,
                _round(base * tax.percent / 100, step),
            )
        )
    return lines


def _money(spec: TariffSpec, rate: Decimal) -> str:
    """A rate as people read it on a bill: ₹5.80, ₹0.125, USD 3.00."""
    shown = f"{rate:.2f}" if rate == rate.quantize(Decimal("0.01")) else _fmt(rate)
    return f"₹{shown}" if spec.currency == "INR" else f"{spec.currency} {shown}"


def _limit(value: Decimal) -> str:
    """A (scaled) limit in words: to the hundredth of a unit when pro-rating made it longer."""
    return _fmt(
        value if value == value.quantize(Decimal("0.01")) else _round(value, Decimal("0.01"))
    )


def _range_words(above: Decimal | None, up_to: Decimal | None) -> str:
    if above is not None and up_to is not None:
        return f"above {_limit(above)} and up to {_limit(up_to)}"
    if above is not None:
        return f"above {_limit(above)}"
    return f"up to {_limit(up_to)}" if up_to is not None else "any consumption"


def _energy_lines(
    spec: TariffSpec, usage: Usage, step: Decimal, unit: str, suffix: str
) -> list[Line]:
    chosen = spec.choose_energy(usage.units, usage.months)
    charge = chosen.charge
    scale = spec.limit_scale(usage.months)
    # the words that say why: which schedule, and how its limits were scaled
    why = f"{_fmt(usage.units)} units: {_range_words(chosen.above, chosen.up_to)}"
    limited = chosen.scheduled or charge.mode in ("telescopic", "non_telescopic")
    scaled = ""
    if limited and scale != 1:
        scaled = f" (limits for {usage.months_basis or f'{_fmt(usage.months)} months'})"

    def line(what: str, units: Decimal, rate: Decimal) -> Line:
        return Line("energy", what + scaled + suffix, units, unit, rate, _round(units * rate, step))

    if charge.mode == "flat":
        rate = charge.rate or Decimal(0)
        if chosen.scheduled:
            return [line(f"Energy, {why}, all units at {_money(spec, rate)}", usage.units, rate)]
        return [line("Energy", usage.units, rate)]
    if charge.mode == "time_of_day":
        periods = usage.by_period or {}
        hours = f" ({why})" if chosen.scheduled else ""
        return [
            line(f"Energy, {name} hours{hours}", periods[name], rate)
            for name, rate in (charge.rates or {}).items()
            if periods.get(name)
        ]
    slabs = charge.slabs or []
    if charge.mode == "non_telescopic":
        lower = chosen.above
        for slab in slabs:
            upper = None if slab.up_to is None else slab.up_to * scale
            if upper is None or usage.units <= upper:
                break
            lower = upper if lower is None else max(lower, upper)
        reached = _range_words(lower, upper)
        if chosen.up_to is not None and (upper is None or upper > chosen.up_to):
            reached = _range_words(lower, chosen.up_to)
        words = f"{_fmt(usage.units)} units: {reached}"
        return [
            line(f"Energy, {words}, all units at {_money(spec, slab.rate)}", usage.units, slab.rate)
        ]
    lines = []
    lower = Decimal(0)
    why_slabs = f" ({why}, each slab at its rate)" if chosen.scheduled else ""
    for slab in slabs:
        upper = None if slab.up_to is None else slab.up_to * scale
        if chosen.up_to is not None and (upper is None or upper > chosen.up_to):
            upper = chosen.up_to  # the schedule ends the open slab
        in_slab = (usage.units if upper is None else min(usage.units, upper)) - lower
        if in_slab <= 0:
            break
        span = (
            f"{_limit(lower)} to {_limit(upper)}" if upper is not None else f"above {_limit(lower)}"
        )
        lines.append(line(f"Energy, slab {span} {unit}{why_slabs}", in_slab, slab.rate))
        if upper is None or upper >= usage.units:
            break
        lower = upper
    return lines


def _fixed_lines(spec: TariffSpec, usage: Usage, step: Decimal, suffix: str) -> list[Line]:
    fixed, months = spec.fixed, usage.months
    load, basis = usage.fixed_load(fixed.basis)
    lines = []
    if fixed.per_connection:
        lines.append(
            Line(
                "fixed",
                f"Fixed charge per connection{suffix}",
                months,
                "month",
                fixed.per_connection,
                _round(fixed.per_connection * months, step),
            )
        )
    if fixed.per_kw:
        lines.append(
            Line(
                "fixed",
                f"Fixed charge, {_fmt(load)} kW {basis}{suffix}",
                load * months,
                "kW-month",
                fixed.per_kw,
                _round(fixed.per_kw * load * months, step),
            )
        )
    if fixed.bands:
        band = next(b for b in fixed.bands if b.up_to_kw is None or load <= b.up_to_kw)
        if band.amount is not None:
            lines.append(
                Line(
                    "fixed",
                    f"Fixed charge for {_fmt(load)} kW {basis}{suffix}",
                    months,
                    "month",
                    band.amount,
                    _round(band.amount * months, step),
                )
            )
        else:
            rate = band.per_kw or Decimal(0)
            lines.append(
                Line(
                    "fixed",
                    f"Fixed charge, {_fmt(load)} kW {basis}{suffix}",
                    load * months,
                    "kW-month",
                    rate,
                    _round(rate * load * months, step),
                )
            )
    return lines


def close_bill(spec: TariffSpec, lines: list[Line]) -> tuple[list[Line], Decimal]:
    """The lines plus a rounding line if the total's rule needs one, and the total (which is
    always the sum of the lines)."""
    raw = sum((line.amount for line in lines), Decimal(0))
    total = _round(raw, spec.rounding.total)
    if total != raw:
        difference = total - raw
        lines = [
            *lines,
            Line("rounding", "Rounding", Decimal(1), "", difference, difference),
        ]
    return lines, total

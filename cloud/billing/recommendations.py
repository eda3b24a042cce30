"""Ways a consumer could pay less, each costed with the tariff they are billed under.

Every saving is the difference between two bills the engine makes: the cycle as it is forecast
(`cloud.billing.forecast`), and the same cycle with one habit changed. So slabs, time-of-day
periods, overrides, fuel adjustment and taxes all count exactly as they will on the bill, and
nothing is scaled by a rate picked out by hand. Each recommendation carries its figures and the
assumption it rests on, so the words people read can state both. Shifting and standby are
habits: their figures are for a whole cycle like this one.

- `shift_to_off_peak` (time-of-day tariffs): a fifth of the units used in the dearest period's
  hours — a washing machine, a water heater, a pump — used in the cheapest period's hours instead.
- `stay_below_slab` (slabs): the units above the boundary of the slab the cycle reaches, not
  used — offered only while the cycle is still below that boundary and the cut is at most a
  quarter of what is still to be used. Its figures are for the rest of this cycle.
- `cut_standby`: a quarter of the standing load (the least the home draws at night, always on)
  switched off.
- `reduce_sanctioned_load` (fixed charges by the load, per kW or in bands): the sanctioned load
  lowered to what the highest demand recorded over a year needs, with a fifth to spare, rounded
  up to a whole kW — offered only with a year of demand record (a summer's air conditioning
  must be in it) and when that is below the sanctioned load. The same units, the fixed
  charges of the lower load.
- `improve_power_factor` (kVAh billing): the power factor of the recent weeks (kWh over kVAh
  from the two registers' rises) raised to 0.95 with a capacitor, so each kWh is billed as
  1/0.95 kVAh instead of 1/PF — offered below 0.95.

A net-metered household (rooftop solar) is billed on its import less its export and its bank,
so both bills are net bills: `bill_of` nets the expected export and the bank, and a change
alters the import alone (the sun shines as it would have). The slab suggestion looks at the
net units the slabs bill (`Netting`): the boundary the net is about to pass, the net so far
below it, and the import that lands the net on it.

A recommendation that would save less than one unit of money is left out. Choosing another
category is not offered: a consumer's category is set by the board from the connection's use,
not chosen.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from .consumption import split_by_period
from .engine import Bill, months_between
from .forecast import UnitsForecast
from .tariff import EnergyCharge, TariffSpec

# bill_of(units, hours, sanctioned_kw): the cycle priced for `units` imported, as it will be
# billed (a net-metered household's netted); hours None: as the forecast spreads them;
# sanctioned_kw None: the consumer's own
BillOf = Callable[..., Bill]

SHIFT_SHARE = Decimal("0.2")  # of the dearest period's units, movable to the cheapest
SLAB_REACH = Decimal("0.25")  # of the units still to be used, the most worth asking to cut
STANDBY_CUT = Decimal("0.25")  # of the standing load, switched off
NIGHT_HOURS = range(0, 5)  # local hours whose least draw is the standing load
STANDBY_NIGHTS = 14
MIN_STANDBY_KW = Decimal("0.05")
MIN_SAVING = Decimal(1)
LOAD_MARGIN = Decimal("1.2")  # the sanctioned load asked for: the year's highest demand, + 20 %
DEMAND_RECORD_DAYS = 330  # a year of demand record, give or take a gap at either end
TARGET_PF = Decimal("0.95")  # what a capacitor bank brings a household's power factor to
UNITS = Decimal("0.001")


@dataclass(frozen=True)
class Recommendation:
    kind: str  # shift_to_off_peak | stay_below_slab | cut_standby | reduce_sanctioned_load
    # | improve_power_factor
    category: str  # cost_reduction | energy_saving
    saving: Decimal  # money a cycle, the difference of the two bills' totals
    units: Decimal  # the units moved or not used in the cycle
    units_per_day: Decimal
    figures: dict = field(default_factory=dict)
    assumption: str = ""  # what the saving rests on, in words


@dataclass(frozen=True)
class Netting:
    """What a net-metered household's bill sets against its import: the export so far and
    expected over the cycle (register 2.8.0), and the units its last bill left in the bank."""

    exported_so_far: Decimal
    expected_export: Decimal
    banked: Decimal

    @property
    def offset(self) -> Decimal:
        """The units taken off the cycle's import before the slabs bill it."""
        return self.expected_export + self.banked


@dataclass(frozen=True)
class Demand:
    """The highest demand recorded (kW, or kVA for kVAh billing) and since when the record
    runs (the first demand read of the year looked at)."""

    peak_kw: Decimal
    since: date


@dataclass(frozen=True)
class PowerFactor:
    """The two registers' rises over the same recent stretch of days."""

    kwh: Decimal
    kvah: Decimal
    days: int

    @property
    def value(self) -> Decimal:
        return (self.kwh / self.kvah).quantize(Decimal("0.001"))


@dataclass(frozen=True)
class _Context:
    forecast: UnitsForecast
    base: Bill
    bill_of: BillOf
    spec: TariffSpec
    tz: ZoneInfo
    holidays: set[date]
    standby: Decimal | None
    cycle_months: Decimal | None
    sanctioned_kw: Decimal
    demand: Demand | None
    power_factor: PowerFactor | None
    net: Netting | None

    @property
    def billed(self) -> Decimal:
        """The units the energy charge will bill: the expected import, or its net."""
        if self.net is None:
            return self.forecast.expected
        return max(self.forecast.expected - self.net.offset, Decimal(0))

    @property
    def billed_so_far(self) -> Decimal:
        """The units of `billed` already used: the import so far, or it less the export so far
        and the bank."""
        if self.net is None:
            return self.forecast.so_far
        return self.forecast.so_far - self.net.exported_so_far - self.net.banked


def standby_kw(by_hour: dict[datetime, Decimal], tz: ZoneInfo, until: datetime) -> Decimal | None:
    """The standing load: over the last `STANDBY_NIGHTS` nights before `until`, each night's
    least hourly use in the local hours 0-5 (an hour's kWh is its mean kW), and the median of
    those. None without a whole night."""
    nights: dict[date, list[Decimal]] = {}
    for hour, energy in by_hour.items():
        local = hour.astimezone(tz)
        if local.hour in NIGHT_HOURS and hour + timedelta(hours=1) <= until:
            nights.setdefault(local.date(), []).append(energy)
    whole = {d: min(v) for d, v in nights.items() if len(v) == len(NIGHT_HOURS)}
    recent = sorted(whole)[-STANDBY_NIGHTS:]
    if not recent:
        return None
    return Decimal(statistics.median([whole[d] for d in recent])).quantize(UNITS)


def recommend(
    forecast: UnitsForecast,
    bill_of: BillOf,
    *,
    spec_at_end: TariffSpec,
    tz: ZoneInfo,
    holidays: set[date],
    standby: Decimal | None,
    cycle_months: Decimal | None,
    sanctioned_kw: Decimal = Decimal(1),
    demand: Demand | None = None,
    power_factor: PowerFactor | None = None,
    net: Netting | None = None,
) -> tuple[Bill, list[Recommendation]]:
    """The forecast's bill and the recommendations, best saving first. `bill_of(units, hours,
    sanctioned_kw)` prices the cycle for `units` imported as it will be billed; `spec_at_end`
    is the tariff version in force on the cycle's last day (its charges are what a change
    would meet); `demand` the year's highest recorded demand, `power_factor` the recent weeks'
    registers (None: not known); `net` what a net-metered household's bill nets (the same
    `bill_of` must net it too)."""
    base = bill_of(forecast.expected, None)
    context = _Context(
        forecast,
        base,
        bill_of,
        spec_at_end,
        tz,
        holidays,
        standby,
        cycle_months,
        sanctioned_kw,
        demand,
        power_factor,
        net,
    )
    days = (forecast.cycle_end - forecast.cycle_start).days
    found = []
    for make in (_shift, _slab, _standby, _load, _power_factor):
        made = make(context)
        if made is not None and made.saving >= MIN_SAVING:
            found.append(made)
    for index, item in enumerate(found):
        # a habit is per day of the cycle; the slab's cut, per day still to come
        per = forecast.remaining_days if item.kind == "stay_below_slab" else Decimal(days)
        found[index] = Recommendation(
            item.kind,
            item.category,
            item.saving,
            item.units.quantize(UNITS),
            (item.units / per).quantize(Decimal("0.01")) if per > 0 else Decimal(0),
            item.figures,
            item.assumption,
        )
    return base, sorted(found, key=lambda r: r.saving, reverse=True)


def _shift(c: _Context) -> Recommendation | None:
    forecast, holidays, tz = c.forecast, c.holidays, c.tz
    charge = c.spec.choose_energy(c.billed, _months(forecast, c.cycle_months)).charge
    rates = charge.rates or {}
    if charge.mode != "time_of_day" or len(set(rates.values())) < 2:
        return None
    dearest = max(rates, key=lambda name: rates[name])
    cheapest = min(rates, key=lambda name: rates[name])
    hours = forecast.scaled_hours(forecast.expected)
    named = {hour: _period(hour, charge, holidays, tz) for hour in hours}
    cheap_hours = [
        h for h in _cycle_hours(forecast, tz) if _period(h, charge, holidays, tz) == cheapest
    ]
    moved = sum((e * SHIFT_SHARE for h, e in hours.items() if named[h] == dearest), Decimal(0))
    if moved <= 0 or not cheap_hours:
        return None
    shifted = {h: e * (1 - SHIFT_SHARE) if named[h] == dearest else e for h, e in hours.items()}
    each = moved / len(cheap_hours)
    for hour in cheap_hours:
        shifted[hour] = shifted.get(hour, Decimal(0)) + each
    after = c.bill_of(forecast.expected, shifted)
    month = forecast.cycle_start.month - 1
    working_day = (charge.weekday or [[]] * 12)[month]
    from_hours = _runs(working_day, dearest)
    to_hours = _runs(working_day, cheapest)
    return Recommendation(
        "shift_to_off_peak",
        "cost_reduction",
        c.base.total - after.total,
        moved,
        Decimal(0),
        {
            "from_period": dearest,
            "from_rate": rates[dearest],
            "from_hours": from_hours,
            "to_period": cheapest,
            "to_rate": rates[cheapest],
            "to_hours": to_hours,
            "share_pct": SHIFT_SHARE * 100,
        },
        f"A fifth of what the home uses in the {dearest} hours ({_clock(from_hours)} on working"
        f" days, at {rates[dearest]} a unit) used in the {cheapest} hours"
        f" ({_clock(to_hours)}, at {rates[cheapest]}) instead, every day of the period: the"
        " same units, at the cheaper rate.",
    )


def _runs(row: list[str], period: str) -> list[list[int]]:
    """The local hours of a day's row that are `period`, as [from, to) runs ([[18, 22]])."""
    runs: list[list[int]] = []
    for hour, name in enumerate(row):
        if name != period:
            continue
        if runs and runs[-1][1] == hour:
            runs[-1][1] = hour + 1
        else:
            runs.append([hour, hour + 1])
    if len(runs) > 1 and runs[0][0] == 0 and runs[-1][1] == 24:  # a run across midnight
        runs[-1][1] = 24 + runs[0][1]
        runs = runs[1:]
    return runs


def _clock(runs: list[list[int]]) -> str:
    return ", ".join(f"{a % 24:02d}:00-{b % 24:02d}:00" for a, b in runs) or "no hours"


def _period(hour: datetime, charge: EnergyCharge, holidays: set[date], tz: ZoneInfo) -> str:
    """The time-of-day period the local hour starting at `hour` falls in (the engine's rule)."""
    one = split_by_period(
        {hour: Decimal(1)}, charge.weekday or [], charge.weekend or [], holidays, tz
    )
    return next(iter(one))


def _cycle_hours(forecast: UnitsForecast, tz: ZoneInfo) -> list[datetime]:
    """Every local hour of the cycle, keyed as the engine keys them."""
    hours = []
    hour = datetime.combine(forecast.cycle_start, time(0), tz)
    end = datetime.combine(forecast.cycle_end, time(0), tz)
    while hour < end:
        hours.append(hour)
        hour = (hour + timedelta(hours=1)).astimezone(tz)
    return hours


def _months(forecast: UnitsForecast, cycle_months: Decimal | None) -> Decimal:
    if cycle_months is not None:
        return cycle_months
    return months_between(forecast.cycle_start, forecast.cycle_end)[0]


def _slab(c: _Context) -> Recommendation | None:
    forecast, spec, net = c.forecast, c.spec, c.net
    months = _months(forecast, c.cycle_months)
    units, so_far = c.billed, c.billed_so_far  # the units the slabs bill, a net one's net
    chosen = spec.choose_energy(units, months)
    if chosen.charge.mode not in ("telescopic", "non_telescopic"):
        return None
    scale = spec.limit_scale(months)
    limits = [s.up_to * scale for s in chosen.charge.slabs or [] if s.up_to is not None]
    limits += [s.up_to * scale for s in spec.schedules or [] if s.up_to is not None]
    # only a boundary not yet passed, and within reach of the import still to come (what the
    # household can do without)
    below = [limit for limit in limits if so_far < limit < units]
    if not below:
        return None
    boundary = max(below)
    over = units - boundary
    if over > (forecast.expected - forecast.so_far) * SLAB_REACH:
        return None
    # the import that bills `boundary`: a net one's, with the same export and bank against it
    after = c.bill_of(boundary if net is None else boundary + net.offset, None)
    unit = spec.energy_unit
    figures = {
        "boundary": boundary.quantize(Decimal("0.01")),
        "expected": units,
        "remaining_days": forecast.remaining_days,
    }
    heading = f"the {units} {unit} it is heading for"
    if net is not None:
        figures |= {
            "expected_import": forecast.expected,
            "expected_export": net.expected_export,
            "banked": net.banked,
        }
        heading = (
            f"the {units.quantize(UNITS)} {unit} net it is heading for"
            f" ({forecast.expected.quantize(UNITS)} {unit} imported less"
            f" {net.expected_export.quantize(UNITS)} exported and {net.banked.quantize(UNITS)}"
            " banked; the slabs bill the net)"
        )
    return Recommendation(
        "stay_below_slab",
        "energy_saving",
        c.base.total - after.total,
        over,
        Decimal(0),
        figures,
        f"{over.quantize(UNITS)} {unit} fewer used over the {forecast.remaining_days} days"
        f" left, so the period ends at {boundary.quantize(Decimal('0.01'))} {unit} instead of"
        f" {heading}, and no unit reaches the dearer slab.",
    )


def _standby(c: _Context) -> Recommendation | None:
    forecast, standby, tz = c.forecast, c.standby, c.tz
    if standby is None or standby < MIN_STANDBY_KW:
        return None
    hours = forecast.scaled_hours(forecast.expected)
    cut_kw = standby * STANDBY_CUT
    cycle_hours = _cycle_hours(forecast, tz)
    cut = cut_kw * len(cycle_hours)
    lowered = dict(hours)
    for hour in cycle_hours:
        lowered[hour] = lowered.get(hour, Decimal(0)) - cut_kw
    after = c.bill_of(forecast.expected - cut, lowered)
    return Recommendation(
        "cut_standby",
        "energy_saving",
        c.base.total - after.total,
        cut,
        Decimal(0),
        {"standby_kw": standby, "cut_kw": cut_kw, "share_pct": STANDBY_CUT * 100},
        f"The home never draws less than {standby} kW at night (the median of the recent"
        f" nights' least hourly use between 00:00 and 05:00): a quarter of that, {cut_kw} kW"
        " of appliances left on, switched off at every hour of the period.",
    )


def _load(c: _Context) -> Recommendation | None:
    fixed, demand, forecast = c.spec.fixed, c.demand, c.forecast
    if demand is None or not (fixed.per_kw or fixed.bands):
        return None
    as_of = forecast.as_of.astimezone(c.tz).date()
    if (as_of - demand.since).days < DEMAND_RECORD_DAYS:
        return None  # less than a year: a summer's peak may not be in it
    proposed = max(Decimal(math.ceil(demand.peak_kw * LOAD_MARGIN)), Decimal(1))
    if proposed >= c.sanctioned_kw:
        return None
    after = c.bill_of(forecast.expected, None, proposed)
    saving = c.base.total - after.total
    months = _months(forecast, c.cycle_months)
    return Recommendation(
        "reduce_sanctioned_load",
        "cost_reduction",
        saving,
        Decimal(0),
        Decimal(0),
        {
            "max_demand_kw": demand.peak_kw,
            "demand_since": demand.since,
            "sanctioned_kw": c.sanctioned_kw,
            "proposed_kw": proposed,
            "saving_per_month": (saving / months).quantize(Decimal("0.01")),
        },
        f"The highest demand recorded since {demand.since:%d %b %Y} was {demand.peak_kw} kW;"
        f" a sanctioned load of {proposed} kW (that and a fifth more, rounded up to a whole kW)"
        f" instead of {c.sanctioned_kw} kW still covers it, and the fixed charges go by the"
        " lower load. The units used stay as they are.",
    )


def _power_factor(c: _Context) -> Recommendation | None:
    pf, forecast = c.power_factor, c.forecast
    if c.spec.energy_unit != "kVAh" or pf is None or pf.kvah <= 0 or pf.kwh <= 0:
        return None
    value = min(pf.value, Decimal(1))
    if value >= TARGET_PF:
        return None
    ratio = value / TARGET_PF  # kVAh per kWh falls from 1/PF to 1/0.95
    improved = forecast.expected * ratio
    hours = {h: e * ratio for h, e in forecast.scaled_hours(forecast.expected).items()}
    after = c.bill_of(improved, hours)
    return Recommendation(
        "improve_power_factor",
        "cost_reduction",
        c.base.total - after.total,
        forecast.expected - improved,
        Decimal(0),
        {
            "power_factor": value,
            "target_power_factor": TARGET_PF,
            "kwh": pf.kwh.quantize(UNITS),
            "kvah": pf.kvah.quantize(UNITS),
            "days": pf.days,
            "billed_kvah": forecast.expected,
            "improved_kvah": improved.quantize(UNITS),
        },
        f"Over the last {pf.days} days the home used {pf.kwh.quantize(UNITS)} kWh for"
        f" {pf.kvah.quantize(UNITS)} kVAh: a power factor of {value}. A capacitor that raises"
        f" it to {TARGET_PF} bills each kWh as 1/{TARGET_PF} kVAh instead of 1/{value}: the"
        f" period's {forecast.expected} kVAh become {improved.quantize(UNITS)}.",
    )

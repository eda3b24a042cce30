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

A recommendation that would save less than one unit of money is left out. Choosing another
category is not offered: a consumer's category is set by the board from the connection's use,
not chosen.
"""

from __future__ import annotations

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

BillOf = Callable[[Decimal, "dict[datetime, Decimal] | None"], Bill]

SHIFT_SHARE = Decimal("0.2")  # of the dearest period's units, movable to the cheapest
SLAB_REACH = Decimal("0.25")  # of the units still to be used, the most worth asking to cut
STANDBY_CUT = Decimal("0.25")  # of the standing load, switched off
NIGHT_HOURS = range(0, 5)  # local hours whose least draw is the standing load
STANDBY_NIGHTS = 14
MIN_STANDBY_KW = Decimal("0.05")
MIN_SAVING = Decimal(1)
UNITS = Decimal("0.001")


@dataclass(frozen=True)
class Recommendation:
    kind: str  # shift_to_off_peak | stay_below_slab | cut_standby
    category: str  # cost_reduction | energy_saving
    saving: Decimal  # money a cycle, the difference of the two bills' totals
    units: Decimal  # the units moved or not used in the cycle
    units_per_day: Decimal
    figures: dict = field(default_factory=dict)


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
) -> tuple[Bill, list[Recommendation]]:
    """The forecast's bill and the recommendations, best saving first. `bill_of(units, hours)`
    prices the cycle (hours None: as the forecast spreads them); `spec_at_end` is the tariff
    version in force on the cycle's last day (its energy charge is what a change would meet)."""
    base = bill_of(forecast.expected, None)
    days = (forecast.cycle_end - forecast.cycle_start).days
    found = []
    for make in (_shift, _slab, _standby):
        made = make(forecast, base, bill_of, spec_at_end, tz, holidays, standby, cycle_months)
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
            (item.units / per).quantize(Decimal("0.01")),
            item.figures,
        )
    return base, sorted(found, key=lambda r: r.saving, reverse=True)


def _shift(forecast, base, bill_of, spec, tz, holidays, standby, cycle_months):
    charge = spec.choose_energy(forecast.expected, _months(forecast, cycle_months)).charge
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
    after = bill_of(forecast.expected, shifted)
    return Recommendation(
        "shift_to_off_peak",
        "cost_reduction",
        base.total - after.total,
        moved,
        Decimal(0),
        {
            "from_period": dearest,
            "from_rate": rates[dearest],
            "to_period": cheapest,
            "to_rate": rates[cheapest],
            "share_pct": SHIFT_SHARE * 100,
        },
    )


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


def _slab(forecast, base, bill_of, spec, tz, holidays, standby, cycle_months):
    months = _months(forecast, cycle_months)
    units = forecast.expected
    chosen = spec.choose_energy(units, months)
    if chosen.charge.mode not in ("telescopic", "non_telescopic"):
        return None
    scale = spec.limit_scale(months)
    limits = [s.up_to * scale for s in chosen.charge.slabs or [] if s.up_to is not None]
    limits += [s.up_to * scale for s in spec.schedules or [] if s.up_to is not None]
    # only a boundary not yet passed, and within reach of what is still to be used
    below = [limit for limit in limits if forecast.so_far < limit < units]
    if not below:
        return None
    boundary = max(below)
    over = units - boundary
    if over > (units - forecast.so_far) * SLAB_REACH:
        return None
    after = bill_of(boundary, None)
    return Recommendation(
        "stay_below_slab",
        "energy_saving",
        base.total - after.total,
        over,
        Decimal(0),
        {
            "boundary": boundary.quantize(Decimal("0.01")),
            "expected": units,
            "remaining_days": forecast.remaining_days,
        },
    )


def _standby(forecast, base, bill_of, spec, tz, holidays, standby, cycle_months):
    if standby is None or standby < MIN_STANDBY_KW:
        return None
    hours = forecast.scaled_hours(forecast.expected)
    cut_kw = standby * STANDBY_CUT
    cycle_hours = _cycle_hours(forecast, tz)
    cut = cut_kw * len(cycle_hours)
    lowered = dict(hours)
    for hour in cycle_hours:
        lowered[hour] = lowered.get(hour, Decimal(0)) - cut_kw
    after = bill_of(forecast.expected - cut, lowered)
    return Recommendation(
        "cut_standby",
        "energy_saving",
        base.total - after.total,
        cut,
        Decimal(0),
        {"standby_kw": standby, "cut_kw": cut_kw, "share_pct": STANDBY_CUT * 100},
    )

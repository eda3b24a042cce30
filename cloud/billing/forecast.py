"""The bill a cycle is heading for, from the household's own days: pure arithmetic on plain data.

What is known at `as_of` (the latest read) is the energy of each local hour so far. The rest of
the cycle is expected to go as the household's recent days went: each remaining day at the mean
of its kind (working days, or weekends and holidays) over the last `WINDOW_DAYS` whole days,
spread over its hours as that kind of day spreads them (what time of day pricing needs).
Weighting recent days more, or following a trend fitted to the days (a season turning), made
the backtest worse (`bench/forecast.py`: a household's weeks vary more than a season moves in
a month), so neither is done.
The forecast is units, never money: the caller prices them with the billing engine, since
slabs make a bill bend (`price`).

The next period (`forecast_next`) goes the same way, every day of it from the means of the
recent weeks by kind (its own weekends and holidays counted), times a seasonal factor when the
household has a year of days behind it: how the same days a year before compared with the
four weeks before those (52 weeks back, so weekdays line up), believed by half. Without a
year it rests on the recent weeks alone, and says so.

The range is the spread of the household's days around that expectation: the sum of the
remaining days' deviations (which run in streaks — a guest week, a week away — so their
day-to-day correlation widens it) and the doubt in the means themselves, at 80 %.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from itertools import pairwise
from zoneinfo import ZoneInfo

from .consumption import Consumption
from .engine import Bill, TariffVersion, compute_bill
from .overrides import TariffOverride

WINDOW_DAYS = 28  # the recent days the expectation goes by
MIN_DAYS = 7  # fewer whole days than this: the cycle's own rate so far stands in
SEASON_BOUNDS = (Decimal("0.5"), Decimal("2"))  # a week away a year ago must not halve a forecast
YEAR = timedelta(days=364)
SEASON_PAD_DAYS = 14
# how much of the year-ago change is believed: the year-ago weeks carry their own habits and
# weeks away, and in `bench/forecast.py` the whole change made the next period worse (14.6 %
# mean absolute error against 12.7 % without it, 200 households) and half of it a little
# better (12.5 %)
SEASON_WEIGHT = Decimal("0.5")
Z_80 = 1.2816  # the normal quantile of a central 80 % range
UNITS = Decimal("0.001")


@dataclass(frozen=True)
class UnitsForecast:
    cycle_start: date
    cycle_end: date  # exclusive
    as_of: datetime
    so_far: Decimal  # units used from the cycle's start to `as_of`
    remaining_days: Decimal  # the rest of the cycle, in days (the rest of today included)
    weekday_units: Decimal  # expected units of a working day (trend at mid-remainder)
    rest_day_units: Decimal  # expected units of a weekend day or holiday
    history_days: int  # whole days it went by (0: the cycle's own rate stood in)
    expected: Decimal  # units for the whole cycle
    low: Decimal  # the 80 % range
    high: Decimal
    by_hour: dict[datetime, Decimal] = field(repr=False)  # measured so far, expected after

    def scaled_hours(self, units: Decimal) -> dict[datetime, Decimal]:
        """The cycle's hours with the expected ones scaled so the cycle totals `units`."""
        future = {h: e for h, e in self.by_hour.items() if h >= self.as_of}
        past = {h: e for h, e in self.by_hour.items() if h < self.as_of}
        left = self.expected - self.so_far
        factor = (units - self.so_far) / left if left > 0 else Decimal(1)
        return {**past, **{h: e * factor for h, e in future.items()}}


def _rest_day(day: date, holidays: set[date]) -> bool:
    return day.weekday() >= 5 or day in holidays


def daily_units(
    by_hour: dict[datetime, Decimal], tz: ZoneInfo, covered_from: datetime, until: datetime
) -> dict[date, Decimal]:
    """Units of each whole local day between `covered_from` (the first read) and `until`."""
    days: dict[date, Decimal] = {}
    for hour, energy in by_hour.items():
        day = hour.astimezone(tz).date()
        days[day] = days.get(day, Decimal(0)) + energy
    first = covered_from.astimezone(tz).date()
    if datetime.combine(first, time(0), tz) < covered_from:
        first += timedelta(days=1)
    last = until.astimezone(tz).date()  # today is not whole yet
    out = {}
    day = first
    while day < last:
        out[day] = days.get(day, Decimal(0))
        day += timedelta(days=1)
    return out


def forecast_units(
    *,
    by_hour: dict[datetime, Decimal],
    covered_from: datetime,
    as_of: datetime,
    so_far: Decimal,
    cycle_start: date,
    cycle_end: date,
    tz: ZoneInfo,
    holidays: set[date] | None = None,
) -> UnitsForecast:
    """The cycle's units: `so_far` measured, and the rest expected from the days before
    `as_of` (`by_hour`: energy by local hour, hours before `as_of` only, from `covered_from`,
    the first read)."""
    holidays = holidays or set()
    by_hour = {h: e for h, e in by_hour.items() if h < as_of}
    days = daily_units(by_hour, tz, covered_from, as_of)
    recent = sorted(days)[-WINDOW_DAYS:]
    end_at = datetime.combine(cycle_end, time(0), tz)
    hours_left = _local_hours(as_of, end_at, tz)
    remaining_days = Decimal(max((end_at - as_of).total_seconds(), 0) / 86_400)
    cycle_from = datetime.combine(cycle_start, time(0), tz)
    measured = {h: e for h, e in by_hour.items() if h >= cycle_from}
    if len(recent) < MIN_DAYS:
        return _at_own_rate(
            measured, as_of, so_far, cycle_start, cycle_end, tz, remaining_days, hours_left
        )
    kinds = {day: _rest_day(day, holidays) for day in recent}
    values = {day: float(days[day]) for day in recent}
    mean_all = sum(values.values()) / len(values)
    means = {}
    for rest in (False, True):
        of_kind = [values[d] for d in recent if kinds[d] == rest]
        means[rest] = sum(of_kind) / len(of_kind) if len(of_kind) >= 2 else mean_all
    shares = _hour_shares(by_hour, recent, kinds, tz)
    expected_hours: dict[datetime, Decimal] = {}
    for hour, fraction in hours_left:
        local = hour.astimezone(tz)
        rest = _rest_day(local.date(), holidays)
        expected_hours[hour] = Decimal(repr(means[rest] * shares[rest][local.hour] * fraction))
    remaining = sum(expected_hours.values(), Decimal(0))
    # the range: the deviations of the window's days from their kind's mean
    residuals = [values[d] - means[kinds[d]] for d in recent]
    spread = math.sqrt(sum(r * r for r in residuals) / max(len(residuals) - 2, 1))
    rho = _lag_one(residuals)
    n = float(remaining_days)
    # streaks widen both: the sum still to come, and the doubt in a mean of streaky days
    streaks = (1 + rho) / (1 - rho)
    variance = spread**2 * streaks * (n + n * n / len(recent))
    half = Z_80 * math.sqrt(variance)
    expected = so_far + remaining.quantize(UNITS)
    return UnitsForecast(
        cycle_start=cycle_start,
        cycle_end=cycle_end,
        as_of=as_of,
        so_far=so_far,
        remaining_days=remaining_days.quantize(Decimal("0.01")),
        weekday_units=_units(means[False]),
        rest_day_units=_units(means[True]),
        history_days=len(recent),
        expected=expected,
        low=max(so_far, expected - _units(half)),
        high=expected + _units(half),
        by_hour={**measured, **expected_hours},
    )


def _units(value: float) -> Decimal:
    return Decimal(repr(value)).quantize(UNITS)


def _local_hours(start: datetime, end: datetime, tz: ZoneInfo) -> list[tuple[datetime, float]]:
    """The local hours from `start` to `end`, each keyed by its start as engine keys them (a
    UTC instant), with the share of it still to come (the first may have begun)."""
    out = []
    local = start.astimezone(tz)
    hour = local.replace(minute=0, second=0, microsecond=0)
    while hour < end:
        following = hour + timedelta(hours=1)  # arithmetic on the instant, not the wall clock
        begun = max(start, hour)
        fraction = (min(following, end) - begun).total_seconds() / 3600
        if fraction > 0:
            out.append((hour, fraction))
        hour = following.astimezone(tz)
    return out


def _hour_shares(
    by_hour: dict[datetime, Decimal], recent: list[date], kinds: dict[date, bool], tz: ZoneInfo
) -> dict[bool, list[float]]:
    """How each kind of day spreads its units over the 24 local hours (even without data)."""
    totals = {False: [0.0] * 24, True: [0.0] * 24}
    window = set(recent)
    for hour, energy in by_hour.items():
        local = hour.astimezone(tz)
        if local.date() in window:
            totals[kinds[local.date()]][local.hour] += float(energy)
    shares = {}
    for rest, row in totals.items():
        whole = sum(row)
        other = totals[not rest]
        if whole <= 0 and sum(other) > 0:
            row, whole = other, sum(other)
        shares[rest] = [v / whole for v in row] if whole > 0 else [1 / 24] * 24
    return shares


def _lag_one(residuals: list[float]) -> float:
    """The correlation of each day's deviation with the next's, held within [0, 0.8]."""
    denominator = sum(r * r for r in residuals)
    if denominator <= 0:
        return 0.0
    numerator = sum(a * b for a, b in pairwise(residuals))
    return max(0.0, min(0.8, numerator / denominator))


def _at_own_rate(
    measured: dict[datetime, Decimal],
    as_of: datetime,
    so_far: Decimal,
    cycle_start: date,
    cycle_end: date,
    tz: ZoneInfo,
    remaining_days: Decimal,
    hours_left: list[tuple[datetime, float]],
) -> UnitsForecast:
    """Too little history: the rest of the cycle at the rate of the cycle so far, spread evenly
    over the hours, and a range of a fifth either side of what is still to come."""
    elapsed = Decimal((as_of - datetime.combine(cycle_start, time(0), tz)).total_seconds())
    rate = so_far / elapsed * 86_400 if elapsed > 0 else Decimal(0)
    remaining = rate * remaining_days
    expected = so_far + remaining.quantize(UNITS)
    hours = {h: (rate * Decimal(repr(f)) / 24).quantize(UNITS) for h, f in hours_left}
    return UnitsForecast(
        cycle_start=cycle_start,
        cycle_end=cycle_end,
        as_of=as_of,
        so_far=so_far,
        remaining_days=remaining_days.quantize(Decimal("0.01")),
        weekday_units=rate.quantize(UNITS),
        rest_day_units=rate.quantize(UNITS),
        history_days=0,
        expected=expected,
        low=expected - (remaining / 5).quantize(UNITS),
        high=expected + (remaining / 5).quantize(UNITS),
        by_hour={**measured, **hours},
    )


@dataclass(frozen=True)
class PricedForecast:
    units: UnitsForecast
    expected: Bill
    low: Bill
    high: Bill


def price(
    forecast: UnitsForecast,
    *,
    versions: list[TariffVersion],
    tz: ZoneInfo,
    sanctioned_kw: Decimal,
    holidays: set[date] | None = None,
    cycle_months: Decimal | None = None,
    max_demand_kw: Decimal | None = None,
    overrides: list[TariffOverride] | None = None,
) -> PricedForecast:
    """The forecast's units (expected, low, high) priced as the cycle's bill would be."""

    def bill(units: Decimal) -> Bill:
        return price_units(
            forecast,
            units,
            versions=versions,
            tz=tz,
            sanctioned_kw=sanctioned_kw,
            holidays=holidays,
            cycle_months=cycle_months,
            max_demand_kw=max_demand_kw,
            overrides=overrides,
        )

    return PricedForecast(
        forecast, bill(forecast.expected), bill(forecast.low), bill(forecast.high)
    )


def price_units(
    forecast: UnitsForecast,
    units: Decimal,
    *,
    hours: dict[datetime, Decimal] | None = None,
    versions: list[TariffVersion],
    tz: ZoneInfo,
    sanctioned_kw: Decimal,
    holidays: set[date] | None = None,
    cycle_months: Decimal | None = None,
    max_demand_kw: Decimal | None = None,
    overrides: list[TariffOverride] | None = None,
) -> Bill:
    """The cycle's bill for `units`, its hours as the forecast spreads them (or `hours`)."""
    return compute_bill(
        period_start=forecast.cycle_start,
        period_end=forecast.cycle_end,
        tz=tz,
        consumption=Consumption(
            units, hours if hours is not None else forecast.scaled_hours(units), True, []
        ),
        versions=versions,
        sanctioned_kw=sanctioned_kw,
        holidays=holidays,
        cycle_months=cycle_months,
        max_demand_kw=max_demand_kw,
        overrides=overrides,
    )


@dataclass(frozen=True)
class NextForecast:
    period_start: date
    period_end: date  # exclusive
    weekday_units: Decimal  # a working day's units, the season applied
    rest_day_units: Decimal
    history_days: int  # recent whole days the means go by
    # what the recent weeks are multiplied by: half the change the same weeks showed a year
    # ago (`SEASON_WEIGHT`); None: no year of history, the recent weeks alone
    seasonal_factor: Decimal | None
    expected: Decimal
    by_hour: dict[datetime, Decimal] = field(repr=False)


def seasonal_factor(
    year_ago: dict[date, Decimal], recent: list[date], period_start: date, period_end: date
) -> Decimal | None:
    """How the period's days a year before compare with the recent days a year before (both
    52 weeks back), by the median day of each (a week away is not a season), each stretch
    widened outwards by `SEASON_PAD_DAYS` (earlier for the recent days, later for the
    period's) so one odd week weighs less; None unless every one of those days is known and
    the earlier stretch used something."""
    if not recent:
        return None
    pad = timedelta(days=SEASON_PAD_DAYS)
    then = _days(recent[0] - YEAR - pad, recent[-1] - YEAR + timedelta(days=1))
    ahead = _days(period_start - YEAR, period_end - YEAR + pad)
    if any(d not in year_ago for d in then + ahead):
        return None
    before = statistics.median(year_ago[d] for d in then)
    during = statistics.median(year_ago[d] for d in ahead)
    if before <= 0:
        return None
    low, high = SEASON_BOUNDS
    return min(max(during / before, low), high).quantize(Decimal("0.001"))


def _days(first: date, end: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((end - first).days)]


def forecast_next(
    *,
    by_hour: dict[datetime, Decimal],
    covered_from: datetime,
    as_of: datetime,
    period_start: date,
    period_end: date,
    tz: ZoneInfo,
    holidays: set[date] | None = None,
    year_ago: dict[date, Decimal] | None = None,
) -> NextForecast:
    """The units of the period after the current one, each of its days at the recent weeks'
    mean of its kind, spread over the hours as that kind of day spreads them, times the
    seasonal factor when `year_ago` (daily units a year back) holds the days it needs."""
    holidays = holidays or set()
    by_hour = {h: e for h, e in by_hour.items() if h < as_of}
    days = daily_units(by_hour, tz, covered_from, as_of)
    recent = sorted(days)[-WINDOW_DAYS:]
    if not recent:
        raise ValueError("no whole day of history to forecast the next period from")
    kinds = {day: _rest_day(day, holidays) for day in recent}
    values = {day: float(days[day]) for day in recent}
    mean_all = sum(values.values()) / len(values)
    means = {}
    for rest in (False, True):
        of_kind = [values[d] for d in recent if kinds[d] == rest]
        means[rest] = sum(of_kind) / len(of_kind) if len(of_kind) >= 2 else mean_all
    change = seasonal_factor(year_ago or {}, recent, period_start, period_end)
    factor = None if change is None else (1 + SEASON_WEIGHT * (change - 1)).quantize(UNITS)
    scale = float(factor) if factor is not None else 1.0
    shares = _hour_shares(by_hour, recent, kinds, tz)
    start_at = datetime.combine(period_start, time(0), tz)
    end_at = datetime.combine(period_end, time(0), tz)
    expected_hours: dict[datetime, Decimal] = {}
    for hour, fraction in _local_hours(start_at, end_at, tz):
        local = hour.astimezone(tz)
        rest = _rest_day(local.date(), holidays)
        share = shares[rest][local.hour] * fraction
        expected_hours[hour] = Decimal(repr(means[rest] * scale * share))
    return NextForecast(
        period_start=period_start,
        period_end=period_end,
        weekday_units=_units(means[False] * scale),
        rest_day_units=_units(means[True] * scale),
        history_days=len(recent),
        seasonal_factor=factor,
        expected=sum(expected_hours.values(), Decimal(0)).quantize(UNITS),
        by_hour=expected_hours,
    )

"""Time-of-day energy summed by hour class, where the database can sum it exactly.

Time-of-day pricing tells a period's local hours apart only by the stretch of the period they
fall in (tariff versions and overrides change at local midnights), the month, the hour of the
day, and whether the day is a rest day (a weekend or a holiday): the cell of the tariff's
matrices it reads. An `HourClass` is the set of a period's hours that share all four — some
fifty in a month. When a meter was read at the period's first instant and at every local hour's
end, and its register never fell, each hour's energy is the difference of two reads and a
class's energy the sum of those differences, which PostgreSQL's numeric adds exactly
(`cloud.services.hourly_sums`): a row per class leaves the database, not a read per hour.

Those sums are the hourly spread's (`consumption.consumption(hourly=True)`) to the last digit
when the spread's own Decimal arithmetic is exact: no difference, product or sum it forms needs
more significant digits than the context's precision (28). `summable` checks that from the
largest register read, the most decimal places a read has, the CT ratio and the total; a
register of 100,000 kWh read to the thousandth leaves fourteen digits to spare. A consumer with a
meter that misses an hour's end, a register that falls (rollover, reset), or a chain that fails
the check is spread hour by hour from its reads, as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, getcontext
from zoneinfo import ZoneInfo

from .consumption import Consumption, HourClass, MeterSpan, hour_pieces, local_hour

# HourClass (and ClassSums) are defined in consumption: a MeterSpan carries them


@dataclass(frozen=True)
class HourGrid:
    """A period's local hours as the database sums them: where each ends (a UTC instant, in
    order) and the class it is in."""

    start: datetime  # the period's first instant (local midnight)
    stops: list[datetime]
    classes: list[HourClass]  # the distinct classes
    class_of: list[int]  # for each stop, its class as a 1-based index into `classes`


def hour_grid(
    start: datetime,
    end: datetime,
    tz: ZoneInfo,
    holidays: set[date],
    stretches: Sequence[tuple[date, date]],
) -> HourGrid:
    """The hours of [start, end) (local midnights) cut as the hourly spread cuts them
    (`consumption.hour_pieces`), each classed by the stretch (local days [first, end), covering
    the period, from `engine.stretches`) its local day is in."""
    found: dict[HourClass, int] = {}
    stops: list[datetime] = []
    class_of: list[int] = []
    for key, stop in hour_pieces(start, end, tz):
        if stops and stop <= stops[-1]:
            continue  # cut at a local midnight, the hour the clocks skip lasts no time: no energy
        day, month, hour, weekend = local_hour(key, tz)
        first, until = next((a, b) for a, b in stretches if a <= day < b)
        cls = HourClass(first, until, month, hour, weekend or day in holidays)
        stops.append(stop)
        class_of.append(found.setdefault(cls, len(found) + 1))
    return HourGrid(start, stops, list(found), class_of)


def summable(spans: Sequence[MeterSpan]) -> bool:
    """Whether the hourly spread of these spans' reads (a consumer's chain, every span summed)
    forms only numbers the Decimal context holds exactly, so the sums are its figures: every
    read, hour's rise, rise times the CT ratio and sum of them is at most the largest of the
    top read, the top read times the ratio and the chain's total, and has at most the reads'
    decimal places plus the ratio's."""
    places, largest, total = 0, Decimal(0), Decimal(0)
    for span in spans:
        summed = span.summed
        if summed is None:
            return False
        ratio = abs(span.multiplier)
        places = max(places, summed.places + max(0, -int(ratio.as_tuple().exponent)))
        largest = max(largest, summed.top, summed.top * ratio)
        total += abs(summed.rise) * ratio
    return max(largest, total).adjusted() + 1 + places <= getcontext().prec


def consumption_of(spans: Sequence[MeterSpan]) -> Consumption:
    """The consumption of a chain whose spans were all summed (and are `summable`), with the
    Decimal operations of the hourly spread, so the same digits and decimal places."""
    units = Decimal(0)
    by_class: dict[HourClass, Decimal] = {}
    for span in spans:
        summed = span.summed
        if summed is None:
            raise ValueError(f"meter {span.meter_id} was not summed: spread its reads instead")
        units += summed.rise * span.multiplier
        for cls, energy in summed.by_class.items():
            by_class[cls] = by_class.get(cls, _ZERO) + energy * span.multiplier
    return Consumption(units, {}, True, [], by_class)


_ZERO = Decimal(0)


def within(by_class: dict[HourClass, Decimal], first: date, end: date) -> dict[HourClass, Decimal]:
    """The classes of the local days [first, end): a segment of a bill."""
    inside = {cls: energy for cls, energy in by_class.items() if first <= cls.first < end}
    straddling = [cls for cls in inside if cls.end > end]
    if straddling:
        raise ValueError(
            f"the hours of {straddling[0].first}-{straddling[0].end} straddle a segment ending"
            f" {end}: the run classed them by other stretches than the bill's"
        )
    return inside


def split_by_period(
    by_class: dict[HourClass, Decimal], weekday: list[list[str]], weekend: list[list[str]]
) -> dict[str, Decimal]:
    """Time-of-day units: each class's energy under its period (`consumption.split_by_period`
    for classes)."""
    periods: dict[str, Decimal] = {}
    for cls, energy in by_class.items():
        name = (weekend if cls.rest else weekday)[cls.month][cls.hour]
        periods[name] = periods.get(name, _ZERO) + energy
    return periods

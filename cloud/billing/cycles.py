"""Billing cycles: which period a board's cycle has just closed, on plain dates.

A cycle is a day of the month (1-28, so every month has it) and a length: one month, or two.
A monthly period runs from the cycle day of one month to the cycle day of the next (exclusive);
a bimonthly one from the cycle day of an odd month (January, March, ...) to that of the next odd
month. A period closes when its last day ends in the board's zone, so "today" here is always the
board's local date.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Literal

Cycle = Literal["monthly", "bimonthly"]
MONTHS: dict[str, int] = {"monthly": 1, "bimonthly": 2}


@dataclass(frozen=True)
class Period:
    """[start, end) of local dates, and its length in months (what slabs and fixed charges
    scale by)."""

    start: date
    end: date
    months: Decimal


def _shift(day: date, months: int) -> date:
    """The same day of the month `months` later (earlier when negative); days are at most 28."""
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, day.day)


def closed_period(cycle_day: int, cycle: Cycle, today: date) -> Period:
    """The latest period of the cycle that has closed by `today` (a local date): it ends on or
    before today."""
    if not 1 <= cycle_day <= 28:
        raise ValueError(f"cycle_day {cycle_day} must lie between 1 and 28")
    months = MONTHS[cycle]
    end = date(today.year, today.month, cycle_day)
    if today.day < cycle_day:
        end = _shift(end, -1)
    if months == 2 and end.month % 2 == 0:  # bimonthly periods close in odd months
        end = _shift(end, -1)
    return Period(_shift(end, -months), end, Decimal(months))


def current_period(cycle_day: int, cycle: Cycle, today: date) -> Period:
    """The period of the cycle that holds `today` (a local date): it closes after today."""
    closed = closed_period(cycle_day, cycle, today)
    months = MONTHS[cycle]
    return Period(closed.end, _shift(closed.end, months), Decimal(months))


def next_close(cycle_day: int, cycle: Cycle, today: date) -> date:
    """The day the cycle's next period closes (after today): the day its run starts."""
    return _shift(closed_period(cycle_day, cycle, today).end, MONTHS[cycle])


def due_period(
    cycle_day: int, cycle: Cycle, today: date, *, effective_from: date, billed_to: date | None
) -> Period | None:
    """The period the scheduler should bill today, or None.

    It is the latest closed period, if it closed on or after `effective_from` (the day the cycle
    was set: nothing before it is billed by the scheduler) and after `billed_to` (the end of the
    board's last scheduled period). When the cycle changed since, the period starts where the
    last one ended rather than bill a day twice, and its months shrink in proportion.
    """
    period = closed_period(cycle_day, cycle, today)
    if period.end < effective_from or (billed_to is not None and period.end <= billed_to):
        return None
    if billed_to is None or billed_to <= period.start:
        return period
    share = Decimal((period.end - billed_to).days) / Decimal((period.end - period.start).days)
    return Period(billed_to, period.end, (period.months * share).quantize(Decimal("0.0001")))

"""A span of days summed from whole months, added days and taken-back days gives exactly the sum
of its days, and reads fewer rows than its days whenever a month is mostly covered."""

from __future__ import annotations

from datetime import date, timedelta

from hypothesis import given
from hypothesis import strategies as st

from cloud.billing.engine import month_of
from cloud.services.analytics import pieces

FIRST = date(2024, 1, 1)
DAYS = 3 * 366
ENERGY = {FIRST + timedelta(days=i): (i * 37 % 101) / 7 for i in range(DAYS)}  # a day's kWh
MONTHLY: dict[date, float] = {}
for day, kwh in ENERGY.items():
    MONTHLY[day.replace(day=1)] = MONTHLY.get(day.replace(day=1), 0.0) + kwh


def _days(spans: list[tuple[date, date]]) -> list[date]:
    return [d for a, b in spans for d in ENERGY if a <= d < b]


@given(st.integers(0, DAYS - 400), st.integers(1, 400))
def test_pieces_sum_to_the_days(offset: int, length: int) -> None:
    start = FIRST + timedelta(days=offset)
    end = start + timedelta(days=length)
    split = pieces(start, end)
    total = (
        sum(MONTHLY[m] for m in split.months)
        + sum(ENERGY[d] for d in _days(split.plus))
        - sum(ENERGY[d] for d in _days(split.minus))
    )
    expected = sum(kwh for day, kwh in ENERGY.items() if start <= day < end)
    assert abs(total - expected) < 1e-6
    # the months counted whole and the days added never overlap; days taken back lie in a
    # month counted whole, outside the span
    assert not {d.replace(day=1) for d in _days(split.plus)} & set(split.months)
    for day in _days(split.minus):
        assert day.replace(day=1) in split.months
        assert not start <= day < end
    rows = len(split.months) + len(_days(split.plus)) + len(_days(split.minus))
    assert rows <= length + 2  # never worse than reading the days (two months' rows at most)


def test_a_month_to_date_is_its_month_less_the_days_to_come() -> None:
    split = pieces(date(2026, 11, 1), date(2026, 11, 28))
    assert split.months == [date(2026, 11, 1)]
    assert split.minus == [(date(2026, 11, 28), date(2026, 12, 1))]
    assert split.plus == []
    assert month_of(date(2026, 12, 31)) == (date(2026, 12, 1), date(2027, 1, 1))


def test_the_last_thirty_days_read_a_month_and_a_few_days() -> None:
    split = pieces(date(2026, 10, 28), date(2026, 11, 28))
    assert split.plus == [(date(2026, 10, 28), date(2026, 11, 1))]
    assert split.months == [date(2026, 11, 1)]
    assert split.minus == [(date(2026, 11, 28), date(2026, 12, 1))]

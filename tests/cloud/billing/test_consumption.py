"""Consumption from registers: interpolation at boundaries, rollover, reset, replacement, the
hourly spread, and that splitting a period never changes the energy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from cloud.billing.consumption import MeterSpan, Read, consumption, register_at, unwrap

IST = ZoneInfo("Asia/Kolkata")
T0 = datetime(2026, 10, 1, tzinfo=IST)


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def test_interpolated_between_the_reads_around_a_boundary() -> None:
    reads = [Read(at(-2), D(100)), Read(at(2), D(104))]
    assert register_at(reads, at(0)) == (D(102), False)  # half way: 100 + 4 x 2/4
    assert register_at(reads, at(2)) == (D(104), True)
    assert register_at(reads, at(3)) is None  # nothing after: unknown, not guessed


def test_rollover_and_reset_are_unwrapped() -> None:
    rolled = unwrap([Read(at(0), D("99990")), Read(at(1), D("99999.5")), Read(at(2), D("20"))])
    assert [r.value for r in rolled] == [D("99990"), D("99999.5"), D("100020")]  # +100000
    reset = unwrap([Read(at(0), D(500)), Read(at(1), D(510)), Read(at(2), D(3))])
    assert [r.value for r in reset] == [D(500), D(510), D(513)]  # counts on from 510


def test_a_replaced_meter_counts_for_its_part_of_the_period() -> None:
    old = MeterSpan(1, [Read(at(0), D(1000)), Read(at(10), D(1010))], at(0), at(10))
    new = MeterSpan(2, [Read(at(10), D(0)), Read(at(24), D(14))], at(10), at(24), D(2))
    used = consumption([old, new], IST)
    assert used.units == D(10) + D(14) * 2  # the new meter sits behind a 2:1 CT
    assert used.exact


def test_hourly_spread_sums_to_the_units() -> None:
    reads = [Read(at(h * 0.25), D(h) / 4) for h in range(0, 24 * 4 + 1)]
    used = consumption([MeterSpan(1, reads, at(0), at(24))], IST, hourly=True)
    assert sum(used.by_hour.values()) == used.units == D(24)
    assert set(used.by_hour.values()) == {D("1.00")}
    assert min(used.by_hour) == T0


@given(
    steps=st.lists(st.decimals(min_value=0, max_value=50, places=3), min_size=2, max_size=40),
    gaps=st.lists(st.integers(min_value=1, max_value=600), min_size=40, max_size=40),
    cut=st.floats(min_value=0.05, max_value=0.95),
)
def test_splitting_a_period_never_changes_the_energy(steps, gaps, cut) -> None:
    ts, value, reads = T0, D(1000), []
    for step, gap in zip(steps, gaps, strict=False):
        ts += timedelta(minutes=gap)
        value += step
        reads.append(Read(ts, value))
    start, end = reads[0].ts, reads[-1].ts
    middle = start + (end - start) * cut
    whole = consumption([MeterSpan(1, reads, start, end)], IST).units
    first = consumption([MeterSpan(1, reads, start, middle)], IST).units
    second = consumption([MeterSpan(1, reads, middle, end)], IST).units
    assert first + second == whole


def test_time_of_day_follows_the_local_clock_through_a_dst_change() -> None:
    from cloud.billing.consumption import split_by_period

    london = ZoneInfo("Europe/London")
    # Sunday 25 October 2026: clocks go back at 02:00 BST, the local day has 25 hours
    start = datetime(2026, 10, 25, tzinfo=london).astimezone(UTC)  # arithmetic in UTC:
    end = datetime(2026, 10, 26, tzinfo=london).astimezone(UTC)  # local days vary in length
    hours = int((end - start).total_seconds() // 3600)
    assert hours == 25
    reads = [Read(start + timedelta(hours=h), D(h)) for h in range(hours + 1)]
    used = consumption([MeterSpan(1, reads, start, end)], london, hourly=True)
    assert used.units == D(25)
    assert len(used.by_hour) == 25  # 01:00 happens twice, as two hours
    weekday = [["day"] * 7 + ["evening"] * 17] * 12
    weekend = [["weekend"] * 24] * 12
    assert split_by_period(used.by_hour, weekday, weekend, set(), london) == {"weekend": D(25)}
    monday = consumption(
        [
            MeterSpan(
                1,
                [Read(end, D(0)), Read(end + timedelta(hours=24), D(24))],
                end,
                end + timedelta(hours=24),
            )
        ],
        london,
        hourly=True,
    )
    split = split_by_period(monday.by_hour, weekday, weekend, set(), london)
    assert split == {"day": D(7), "evening": D(17)}
    assert split_by_period(monday.by_hour, weekday, weekend, {end.date()}, london) == {
        "weekend": D(24)
    }

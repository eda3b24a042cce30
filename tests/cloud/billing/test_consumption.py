"""Consumption from registers: interpolation at boundaries, rollover, reset, replacement, the
hourly spread, and that splitting a period never changes the energy."""

from __future__ import annotations

import itertools
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


def _label(instant: datetime, tz: ZoneInfo) -> tuple:
    local = instant.astimezone(tz)
    return local.date(), local.hour, local.utcoffset()  # a repeated hour differs by its offset


def _energy_by_local_hour(points: list[Read], tz: ZoneInfo, multiplier: D) -> dict[tuple, D]:
    """The definition, slowly: each interval cut at every quarter hour (where any of these zones
    can start an hour or change its offset) and each piece's share of the interval's energy, in
    proportion to time, given to the local hour the piece lies in."""
    by_label: dict[tuple, D] = {}
    for a, b in itertools.pairwise(points):
        if b.value == a.value:
            continue
        quarter = a.ts.replace(minute=a.ts.minute // 15 * 15, second=0, microsecond=0)
        cuts = {a.ts, b.ts}
        while (quarter := quarter + timedelta(minutes=15)) < b.ts:
            cuts.add(quarter)
        for p, q in itertools.pairwise(sorted(cuts)):
            share = D((q - p) // timedelta(microseconds=1)) / D(
                (b.ts - a.ts) // timedelta(microseconds=1)
            )
            label = _label(p, tz)
            by_label[label] = by_label.get(label, D(0)) + (b.value - a.value) * multiplier * share
    return by_label


@given(
    zone=st.sampled_from(
        ["Asia/Kolkata", "Europe/London", "Australia/Lord_Howe", "Asia/Kathmandu", "UTC"]
    ),
    first=st.datetimes(
        min_value=datetime(2026, 3, 20), max_value=datetime(2026, 4, 10), timezones=st.just(UTC)
    )
    | st.datetimes(
        min_value=datetime(2026, 9, 25), max_value=datetime(2026, 10, 30), timezones=st.just(UTC)
    ),
    steps=st.lists(st.decimals(min_value=0, max_value=9, places=3), min_size=3, max_size=30),
    gaps=st.lists(st.integers(min_value=1, max_value=400), min_size=30, max_size=30),
    cut=st.tuples(st.floats(0.0, 0.49), st.floats(0.51, 1.0)),
    multiplier=st.sampled_from([D(1), D(2), D("2.5")]),
)
def test_the_hourly_spread_is_each_intervals_energy_in_proportion_to_time(
    zone, first, steps, gaps, cut, multiplier
) -> None:
    """Around DST changes of an hour (London), of half an hour (Lord Howe) and in zones off the
    whole hour (Kolkata, Kathmandu): the hours and their energy match the definition."""
    tz = ZoneInfo(zone)
    ts, value, reads = first, D(500), []
    for step, gap in zip(steps, gaps, strict=False):
        ts += timedelta(minutes=gap)
        value += step
        reads.append(Read(ts, value))
    start = reads[0].ts + (reads[-1].ts - reads[0].ts) * cut[0]
    end = reads[0].ts + (reads[-1].ts - reads[0].ts) * cut[1]
    used = consumption([MeterSpan(1, reads, start, end, multiplier)], tz, hourly=True)
    inside = [r for r in reads if start < r.ts < end]
    points = [Read(start, register_at(reads, start)[0]), *inside]
    points.append(Read(end, register_at(reads, end)[0]))
    expected = _energy_by_local_hour(points, tz, multiplier)
    got = {_label(key, tz): energy for key, energy in used.by_hour.items()}
    assert len(got) == len(used.by_hour)  # one entry per local hour
    assert got.keys() == {label for label, energy in expected.items() if energy}
    for label, energy in got.items():
        assert abs(energy - expected[label]) < D("1e-18")
    assert abs(sum(used.by_hour.values()) - used.units) < D("1e-18")


def test_a_half_hour_clock_change_is_spread_without_looping() -> None:
    """Lord Howe Island puts its clocks back half an hour at 02:00 on 5 April 2026: 01:30-02:00
    happens twice. Stepping from the hour's wall-clock start used to land before the cursor and
    loop for ever; the repeated half hour is now an hour of its own, with its own offset."""
    lord_howe = ZoneInfo("Australia/Lord_Howe")
    start = datetime(2026, 4, 5, tzinfo=lord_howe).astimezone(UTC)
    end = datetime(2026, 4, 5, 4, tzinfo=lord_howe).astimezone(UTC)
    assert end - start == timedelta(hours=4, minutes=30)
    reads = [Read(start + timedelta(minutes=m), D(m)) for m in range(0, 271, 15)]  # 1 a minute
    used = consumption([MeterSpan(1, reads, start, end)], lord_howe, hourly=True)
    local = {
        (k.astimezone(lord_howe).strftime("%H:%M %z")): v for k, v in sorted(used.by_hour.items())
    }
    assert local == {
        "00:00 +1100": D(60),
        "01:00 +1100": D(60),
        "01:30 +1030": D(30),  # the repeated half hour
        "02:00 +1030": D(60),
        "03:00 +1030": D(60),
    }


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

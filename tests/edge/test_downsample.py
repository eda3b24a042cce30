"""The disk budget's downsampling, pass after pass: one mean row per interval, the mean of every
sample the interval had when it closed, the minimum and maximum kept as read, the first energy
read of each quarter hour kept — wherever chunk boundaries fall and whatever arrives between
passes. A sample that arrives for an interval already reduced stays as read beside it.

The test keeps its own account (`Ledger`) of every sample and of when each interval closed, and
checks the store against it."""

from __future__ import annotations

import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import edge.store
from edge.store import NewReading, Store, to_us

T0 = datetime(2026, 10, 1, tzinfo=UTC)  # on an hour: quarter and hour buckets start here
QUARTER_US = 900 * 1_000_000
HOUR_US = 3600 * 1_000_000
STRAGGLE_US = 300 * 1_000_000  # an interval closes once a reading 5 minutes past its end is in
SIZES = (QUARTER_US, HOUR_US)


@dataclass
class Sample:
    meter: str
    ts: int
    value: float
    late: dict[int, bool]  # interval (us) -> it arrived after its interval closed


@dataclass
class Ledger:
    """Every sample the test gave the store, and up to when each interval size has closed."""

    samples: list[Sample] = field(default_factory=list)
    closed_until: dict[int, int] = field(default_factory=lambda: {QUARTER_US: 0, HOUR_US: 0})
    newest: int = 0  # the newest time given so far

    def add(self, store: Store, rows: list[tuple[str, int, float]]) -> None:
        """(meter, seconds after T0, value): power at that value, energy rising with time."""
        readings = []
        for meter, second, value in rows:
            ts = T0 + timedelta(seconds=second)
            readings.append(NewReading(meter, "1.7.0", ts, value))
            readings.append(NewReading(meter, "1.8.0", ts, second / 3600))
            us = to_us(ts)
            # late: its interval closed (a reading 5 min past its end was given) before it came
            late = {size: (us // size + 1) * size + STRAGGLE_US <= self.newest for size in SIZES}
            self.samples.append(Sample(meter, us, value, late))
            self.newest = max(self.newest, us)
        store.append(readings)

    def closed(self, ts: int, size: int) -> bool:
        return (ts // size + 1) * size + STRAGGLE_US <= self.closed_until[size]

    def passed(self, size: int) -> None:
        """A pass reduces every interval closed by then."""
        self.closed_until[size] = self.newest


def downsample(store: Store, ledger: Ledger, hourly: bool = False) -> None:
    """What the disk budget does: quarter hours, then (if that was not enough) hours."""
    store._downsample(900, 900, 0)
    ledger.passed(QUARTER_US)
    if hourly:
        store._downsample(3600, 900, 0)
        ledger.passed(HOUR_US)


def check(store: Store, ledger: Ledger) -> None:
    stored: dict[tuple[str, str], list[tuple[int, float, str]]] = defaultdict(list)
    for r in store.all_readings():
        stored[(r.meter_id, r.quantity)].append((r.ts_us, r.value, r.quality))
    meters = {s.meter for s in ledger.samples}
    for meter in meters:
        mine = [s for s in ledger.samples if s.meter == meter]
        # energy: of a closed quarter, the first read in time and any that came after it closed
        expected = []
        by_quarter: dict[int, list[Sample]] = defaultdict(list)
        for s in mine:
            by_quarter[s.ts // QUARTER_US].append(s)
        for quarter, members in by_quarter.items():
            if not ledger.closed(quarter * QUARTER_US, QUARTER_US):
                expected += [s.ts for s in members]
                continue
            in_time = [s.ts for s in members if not s.late[QUARTER_US]]
            expected += [min(in_time)] if in_time else []
            expected += [s.ts for s in members if s.late[QUARTER_US]]
        assert sorted(ts for ts, _, _ in stored[(meter, "1.8.0")]) == sorted(expected)
        # power: by the coarsest interval closed around it
        buckets: dict[tuple[int, int], list[Sample]] = defaultdict(list)
        rows: dict[tuple[int, int], list[tuple[int, float, str]]] = defaultdict(list)

        def key(ts: int) -> tuple[int, int]:
            for size in (HOUR_US, QUARTER_US):
                if ledger.closed(ts, size):
                    return size, ts // size
            return 0, ts  # open: every sample on its own

        for s in mine:
            buckets[key(s.ts)].append(s)
        for ts, value, quality in stored[(meter, "1.7.0")]:
            rows[key(ts)].append((ts, value, quality))
        assert set(rows) <= set(buckets)
        for bucket, members in buckets.items():
            held = rows[bucket]
            size = bucket[0]
            means = [value for _, value, quality in held if quality == "estimated"]
            as_read = sorted((ts, value) for ts, value, quality in held if quality != "estimated")
            assert len(means) <= 1, f"one mean row per interval, {bucket} has {len(means)}"
            in_time = [s for s in members if not size or not s.late[size]]
            late = [(s.ts, s.value) for s in members if size and s.late[size]]
            if not means:  # open, or too few to reduce: all as read
                assert not size or len(in_time) <= 3
                assert as_read == sorted((s.ts, s.value) for s in members)
                continue
            values = [s.value for s in in_time]
            assert means[0] == pytest.approx(sum(values) / len(values), rel=1e-12, abs=1e-12)
            assert set(as_read) <= {(s.ts, s.value) for s in members}, "samples as read"
            assert sorted(v for _, v in as_read) == sorted(
                [min(values), max(values)] + [v for _, v in late]
            ), "the minimum and maximum as read, and what came late"


def test_passes_chunks_and_late_rows_leave_one_mean_per_interval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(edge.store, "_CHUNK", 7)  # chunk boundaries fall inside intervals
    store = Store(tmp_path / "edge.sqlite")
    ledger = Ledger()
    # two meters, a read every 40 s for 50 minutes: quarters of 22-23 samples each
    ledger.add(
        store,
        [
            (m, s, (s * 7 + i) % 11 + 0.25)
            for s in range(0, 3000, 40)
            for i, m in enumerate(("m1", "m2"))
        ],
    )
    downsample(store, ledger)
    check(store, ledger)
    means = [r for r in store.all_readings() if r.quality == "estimated"]
    assert len(means) == 2 * 2  # quarters 1 and 2 closed; 3 is 5 minutes from closing, 4 open
    # the open quarters keep filling, then close; a sample comes late for the first
    ledger.add(store, [("m1", s, 20.0 - s / 1000) for s in range(3000, 4000, 30)])
    ledger.add(store, [("m1", 13, 0.1), ("m2", 3599, 99.0)])
    for _ in range(3):  # passes again change nothing more
        downsample(store, ledger)
        check(store, ledger)
    quarter_means = defaultdict(int)
    for r in store.all_readings():
        if r.quality == "estimated":
            quarter_means[(r.meter_id, r.ts_us // QUARTER_US)] += 1
    assert max(quarter_means.values()) == 1
    assert len(quarter_means) == 2 * 4
    # hours, then more samples in the hour closed and the next
    downsample(store, ledger, hourly=True)
    check(store, ledger)
    ledger.add(store, [("m1", 1801, 55.5), ("m1", 1802, -3.0), ("m1", 1803, 4.0)])
    ledger.add(store, [(m, s, s % 17) for s in range(4000, 9000, 50) for m in ("m1", "m2")])
    downsample(store, ledger, hourly=True)
    check(store, ledger)


def test_a_meter_clock_years_ahead_closes_no_interval_early(tmp_path: Path) -> None:
    store = Store(tmp_path / "edge.sqlite")
    ledger = Ledger()
    ledger.add(store, [("m1", s, s % 7) for s in range(0, 600, 20)])  # a quarter, 10 min in
    store.append([NewReading("m9", "1.7.0", datetime(2099, 1, 1, tzinfo=UTC), 1.0)])
    downsample(store, ledger)
    ledger.add(store, [("m1", s, s % 5) for s in range(600, 1800, 20)])
    downsample(store, ledger)
    check(store, ledger)  # the first quarter's mean has all its samples
    assert sum(r.quality == "estimated" for r in store.all_readings()) == 1


def test_a_store_of_the_earlier_version_opens_and_reduces(tmp_path: Path) -> None:
    path = tmp_path / "edge.sqlite"
    store = Store(path)
    store._conn.execute("DROP TABLE estimates")  # as the previous version made it
    store.close()
    store = Store(path)
    assert store.reset_reason is None
    ledger = Ledger()
    ledger.add(store, [("m1", s, s % 5) for s in range(0, 1800, 60)])
    downsample(store, ledger)
    check(store, ledger)
    assert any(r.quality == "estimated" for r in store.all_readings())


operations = st.lists(
    st.one_of(
        st.tuples(
            st.just("add"),
            st.lists(
                st.tuples(
                    st.sampled_from(["m1", "m2"]),
                    st.integers(0, 3 * 3600 - 1),
                    st.integers(-40, 400).map(lambda v: v / 4),
                ),
                max_size=60,
            ),
        ),
        st.tuples(st.sampled_from(["quarters", "hours"]), st.integers(1, 30)),
    ),
    max_size=12,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(operations)
def test_any_passes_over_any_arrivals_keep_the_mean_of_every_sample(ops: list) -> None:
    with tempfile.TemporaryDirectory() as folder:
        store = Store(Path(folder) / "edge.sqlite")
        ledger = Ledger()
        taken: set[tuple[str, int]] = set()
        chunk = edge.store._CHUNK
        try:
            for op, arg in ops:
                if op == "add":
                    fresh = []
                    for m, s, v in arg:  # the daemon stores one reading per meter and time
                        if (m, s) not in taken:
                            taken.add((m, s))
                            fresh.append((m, s, v))
                    ledger.add(store, fresh)
                else:
                    edge.store._CHUNK = arg
                    downsample(store, ledger, hourly=op == "hours")
                    check(store, ledger)
        finally:
            edge.store._CHUNK = chunk
            store.close()

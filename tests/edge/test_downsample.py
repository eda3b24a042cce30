"""The disk budget's downsampling, pass after pass: one mean row per interval, the mean of every
sample the interval had, the minimum and maximum kept as read, the first energy read of each
quarter hour kept — wherever chunk boundaries fall and whatever arrives between passes."""

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


@dataclass
class Ledger:
    """Every sample the test gave the store, and which hours a coarse (hourly) pass has seen."""

    power: dict[str, list[tuple[int, float]]] = field(default_factory=lambda: defaultdict(list))
    energy: dict[str, list[tuple[int, float]]] = field(default_factory=lambda: defaultdict(list))
    hourly: set[tuple[str, int]] = field(default_factory=set)

    def add(self, store: Store, rows: list[tuple[str, int, float]]) -> None:
        """(meter, seconds after T0, value): power at that value, energy rising with time."""
        readings = []
        for meter, second, value in rows:
            ts = T0 + timedelta(seconds=second)
            readings.append(NewReading(meter, "1.7.0", ts, value))
            readings.append(NewReading(meter, "1.8.0", ts, second / 3600))
            self.power[meter].append((to_us(ts), value))
            self.energy[meter].append((to_us(ts), second / 3600))
        store.append(readings)

    def passed_hourly(self) -> None:
        self.hourly |= {(m, ts // HOUR_US) for m, rows in self.power.items() for ts, _ in rows}


def check(store: Store, ledger: Ledger) -> None:
    stored: dict[tuple[str, str], list[tuple[int, float, str]]] = defaultdict(list)
    for r in store.all_readings():
        stored[(r.meter_id, r.quantity)].append((r.ts_us, r.value, r.quality))
    for meter, samples in ledger.energy.items():
        quarters: dict[int, list[int]] = defaultdict(list)
        for ts, _ in samples:
            quarters[ts // QUARTER_US].append(ts)
        kept = sorted(ts for ts, _, _ in stored[(meter, "1.8.0")])
        assert kept == sorted(min(times) for times in quarters.values()), "first read per quarter"
    for meter, samples in ledger.power.items():
        buckets: dict[tuple[int, int], list[tuple[int, float]]] = defaultdict(list)
        for ts, value in samples:  # an hour a coarse pass saw is one interval; else quarters
            hour = ts // HOUR_US
            key = (hour, -1) if (meter, hour) in ledger.hourly else (hour, ts // QUARTER_US)
            buckets[key].append((ts, value))
        rows: dict[tuple[int, int], list[tuple[int, float, str]]] = defaultdict(list)
        for ts, value, quality in stored[(meter, "1.7.0")]:
            hour = ts // HOUR_US
            key = (hour, -1) if (meter, hour) in ledger.hourly else (hour, ts // QUARTER_US)
            rows[key].append((ts, value, quality))
        assert set(rows) == set(buckets)
        for key, given_ in buckets.items():
            held = rows[key]
            means = [value for _, value, quality in held if quality == "estimated"]
            as_read = [(ts, value) for ts, value, quality in held if quality != "estimated"]
            assert len(means) <= 1, f"one mean row per interval, {key} has {len(means)}"
            assert set(as_read) <= set(given_), "rows not reduced are samples as read"
            if not means:  # too few to reduce: all as read
                assert len(given_) <= 3
                assert sorted(as_read) == sorted(given_)
                continue
            values = [value for _, value in given_]
            assert means[0] == pytest.approx(sum(values) / len(values), rel=1e-12, abs=1e-12)
            assert min(v for _, v in as_read) == min(values)
            assert max(v for _, v in as_read) == max(values)
            assert len(held) == 3


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
    store._downsample(900, 900, 0)
    check(store, ledger)
    means_before = [r for r in store.all_readings() if r.quality == "estimated"]
    assert len(means_before) == 2 * 4  # 4 quarters reduced per meter (the last one partly)
    # the current quarter keeps filling, and a late sample lands in the first one
    ledger.add(store, [("m1", s, 20.0 - s / 1000) for s in range(3000, 3600, 30)])
    ledger.add(store, [("m1", 13, 0.1), ("m2", 3599, 99.0)])
    store._downsample(900, 900, 0)
    check(store, ledger)
    # an hourly pass over it all, then more samples in that hour and the next
    store._downsample(3600, 900, 0)
    ledger.passed_hourly()
    check(store, ledger)
    ledger.add(store, [("m1", 1801, 55.5), ("m1", 1802, -3.0), ("m1", 1803, 4.0)])
    ledger.add(store, [(m, s, s % 17) for s in range(3600, 4500, 50) for m in ("m1", "m2")])
    for _ in range(3):  # passes again change nothing
        store._downsample(900, 900, 0)
        check(store, ledger)
    store._downsample(3600, 900, 0)
    ledger.passed_hourly()
    check(store, ledger)


def test_a_store_of_the_earlier_version_opens_and_reduces(tmp_path: Path) -> None:
    path = tmp_path / "edge.sqlite"
    store = Store(path)
    store._conn.execute("DROP TABLE reduced_buckets")  # as the previous version made it
    store._conn.execute("DROP TABLE sample_counts")
    store.close()
    store = Store(path)
    assert store.reset_reason is None
    ledger = Ledger()
    ledger.add(store, [("m1", s, s % 5) for s in range(0, 900, 60)])
    store._downsample(900, 900, 0)
    check(store, ledger)


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
        st.tuples(st.sampled_from(["900", "3600"]), st.integers(1, 30)),
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
                    fresh = [(m, s, v) for m, s, v in arg if (m, s) not in taken]
                    taken |= {(m, s) for m, s, _ in fresh}
                    ledger.add(store, fresh)
                else:
                    edge.store._CHUNK = arg
                    store._downsample(int(op), 900, 0)
                    if op == "3600":
                        ledger.passed_hourly()
                    check(store, ledger)  # everything here has been through a pass
        finally:
            edge.store._CHUNK = chunk
            store.close()

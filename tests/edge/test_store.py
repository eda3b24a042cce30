"""The edge store: durable append-only logs, cursors, a corrupt file replaced, the disk budget."""

from __future__ import annotations

import random
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from edge.store import NewEvent, NewReading, Store, from_us, to_us
from shared import EventStatus, Quality, Severity

T0 = datetime(2026, 10, 1, tzinfo=UTC)


def _event(kind: str = "gateway_started") -> NewEvent:
    return NewEvent(ts=T0, kind=kind, status=EventStatus.NOTICE, severity=Severity.INFO)


def test_rows_survive_reopening_and_seq_never_repeats(tmp_path: Path) -> None:
    store = Store(tmp_path / "edge.sqlite")
    base = store.last_seq
    assert base > 1_700_000_000_000_000  # a fresh store starts at the clock in microseconds
    first, last = store.append(
        [NewReading("m1", "1.7.0", T0, 1.5), NewReading("m1", "1.8.0", T0, 100.25)], [_event()]
    )
    assert (first, last) == (base + 1, base + 3)
    store.close()
    again = Store(tmp_path / "edge.sqlite")
    assert again.last_seq == base + 3
    assert [(r.seq, r.quantity, r.value) for r in again.readings_since(0)] == [
        (base + 1, "1.7.0", 1.5),
        (base + 2, "1.8.0", 100.25),
    ]
    assert [e.kind for e in again.pending_events(10)] == ["gateway_started"]
    assert again.append([NewReading("m1", "1.7.0", T0, 2.0)]) == (base + 4, base + 4)


def test_cursors_advance_per_log_and_never_back(tmp_path: Path) -> None:
    store = Store(tmp_path / "edge.sqlite")
    store.append([NewReading("m1", "1.7.0", T0 + timedelta(seconds=i), i) for i in range(5)])
    store.append(events=[_event()])
    readings = list(store.pending_readings(3))
    store.acknowledge(readings[-1].seq, None)
    assert [r.value for r in store.pending_readings(10)] == [3, 4]
    assert len(store.pending_events(10)) == 1
    store.acknowledge(readings[0].seq, store.pending_events(10)[0].seq)
    assert [r.value for r in store.pending_readings(10)] == [3, 4]
    assert store.pending_events(10) == []
    assert store.backlog()[:2] == (2, 0)


def test_a_row_the_batch_refuses_leaves_no_read_transaction_open(tmp_path: Path) -> None:
    """A reading the batch writer refuses (a quantity this software does not know) raises,
    and the log is not left locked by the half-read rows: the store still checkpoints and
    closes."""
    store = Store(tmp_path / "edge.sqlite")
    store.append([NewReading("m1", "1.7.0", T0, 1.0), NewReading("m1", "99.9.9", T0, 2.0)])
    with pytest.raises(ValueError, match="not a quantity code"):
        store.pending_batch_readings(10)
    other = sqlite3.connect(tmp_path / "edge.sqlite")
    busy, _, _ = other.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    other.close()
    assert busy == 0
    store.close()


def test_unsynced_readings_wait_for_the_clock_and_are_restamped(tmp_path: Path) -> None:
    store = Store(tmp_path / "edge.sqlite")
    wrong = datetime(1970, 1, 1, 0, 5, tzinfo=UTC)
    store.append([NewReading("m1", "1.7.0", T0, 1.0)])
    store.append(
        [NewReading("m1", "1.7.0", wrong, 2.0, Quality.CLOCK_UNSYNCED, mono_us=10_000_000)]
    )
    store.append([NewReading("m1", "1.7.0", T0 + timedelta(seconds=30), 3.0)])
    assert [r.value for r in store.pending_readings(10)] == [1.0]  # held back at the unknown
    now = T0 + timedelta(minutes=1)
    assert store.correct_unsynced(to_us(now), mono_now_us=70_000_000) == 1
    pending = list(store.pending_readings(10))
    assert [r.value for r in pending] == [1.0, 2.0, 3.0]
    assert from_us(pending[1].ts_us) == T0  # taken 60 s before "now" by the monotonic clock
    assert pending[1].quality == "ok"


def test_a_corrupt_file_is_moved_aside_and_a_new_store_started(tmp_path: Path) -> None:
    path = tmp_path / "edge.sqlite"
    store = Store(path)
    store.append([NewReading("m1", "1.7.0", T0, 1.0)] * 100)
    old_seq = store.last_seq
    store.close()
    data = bytearray(path.read_bytes())
    data[4096:8192] = random.Random(1).randbytes(4096)  # garble the second page
    path.write_bytes(bytes(data))
    fresh = Store(path)
    assert fresh.reset_reason is not None
    assert list(tmp_path.glob("edge.sqlite.corrupt-*"))
    assert fresh.readings_since(0) == []
    assert fresh.last_seq >= old_seq  # never reuses a seq the cloud may have seen
    fresh.append([NewReading("m1", "1.7.0", T0, 1.0)])


def test_a_file_that_is_not_a_database_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "edge.sqlite"
    path.write_bytes(b"this is not SQLite" * 100)
    store = Store(path)
    assert store.reset_reason
    assert store.append([NewReading("m1", "1.7.0", T0, 1.0)])


def _minutes(store: Store, meters: int, days: float, start: datetime = T0) -> None:
    """One-minute power and energy reads; energy rises 1/60 kWh a minute at 1 kW."""
    for day_block in range(int(days * 24)):
        rows = []
        for minute in range(60):
            step = day_block * 60 + minute
            ts = start + timedelta(minutes=step)
            for m in range(meters):
                rows.append(NewReading(f"m{m}", "1.7.0", ts, 1.0 + (step % 7) * 0.1))
                total = (ts - T0) / timedelta(minutes=1)
                rows.append(NewReading(f"m{m}", "1.8.0", ts, total / 60))
        store.append(rows)
        store.append(events=store.enforce_budget())


def test_the_budget_prunes_acknowledged_rows_first(tmp_path: Path) -> None:
    store = Store(tmp_path / "edge.sqlite", budget_bytes=3_000_000)
    _minutes(store, meters=6, days=2)
    store.acknowledge(store.last_seq, store.last_seq)
    _minutes(store, meters=6, days=2, start=T0 + timedelta(days=2))
    assert store.size_bytes() <= 3_000_000
    kinds = {e.kind for e in store.pending_events(100)}
    assert "disk_budget_pruned" in kinds
    # nothing unsent was touched while acknowledged rows were there to delete
    unsent = store.readings_since(store.cursors[0])
    assert all(r.quality == "ok" for r in unsent)


def test_the_budget_downsamples_unsent_values_but_keeps_boundary_energy(tmp_path: Path) -> None:
    budget = 3_000_000
    store = Store(tmp_path / "edge.sqlite", budget_bytes=budget)
    sizes = []
    for day in range(4):
        _minutes(store, meters=8, days=1, start=T0 + timedelta(days=day))
        sizes.append(store.size_bytes())
    assert max(sizes) <= budget
    readings = store.readings_since(0)
    assert len(readings) < 4 * 8 * 1440 * 2  # something was reduced
    energy = {(r.meter_id, r.ts_us): r.value for r in readings if r.quantity == "1.8.0"}
    for meter in range(4):
        for quarter in range(4 * 96):  # every 15-minute boundary read of every meter is there
            ts = to_us(T0 + timedelta(minutes=15 * quarter))
            assert energy[(f"m{meter}", ts)] == quarter * 15 / 60
    power = [r for r in readings if r.quantity == "1.7.0" and r.meter_id == "m0"]
    assert min(r.value for r in power) == 1.0
    assert max(r.value for r in power) == 1.6
    assert any(r.quality == "estimated" for r in power)
    assert any(e.kind == "disk_budget_downsampled" for e in store.pending_events(1000))

"""The checks' state travels with the events it produced: a write that fails holds both, and the
retry stores the state of every event it writes (a real store, locked by a second connection)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from edge.checks import Checker, MeterProfile
from edge.config import load_config
from edge.daemon import Daemon
from edge.store import ReadingRow, Store, to_us
from shared import Sample

T0 = datetime(2026, 10, 1, tzinfo=UTC)


def voltages(meter: str, volts: float, second: int) -> list[Sample]:
    ts = T0 + timedelta(seconds=second)
    return [Sample(meter_id=meter, quantity=q, ts=ts, value=volts) for q in ("32.7.0", "52.7.0")]


def sag_events(store: Store, meter: str) -> list[str]:
    rows = store._conn.execute(
        "SELECT status FROM events WHERE kind = 'voltage_sag' AND meter_id = ? ORDER BY seq",
        (meter,),
    ).fetchall()
    return [status for (status,) in rows]


async def test_a_failed_write_holds_the_state_with_its_events(tmp_path: Path) -> None:
    path = tmp_path / "edge.toml"
    path.write_text('[gateway]\nid = "gw-state"\ndata_dir = "data"\n[clock]\nrequire_ntp = false\n')
    daemon = Daemon(load_config(path))
    daemon._open_store()
    store = daemon.store.store
    store._conn.execute("PRAGMA busy_timeout = 50")  # a locked store fails at once
    await daemon._flush()  # the store's first rows
    await daemon.on_samples("m1", voltages("m1", 180.0, 0), False)  # under 207 V: raised
    locker = sqlite3.connect(store.path, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    await daemon._flush()
    assert daemon._write_failure is not None  # held in memory
    assert sag_events(store, "m1") == []
    # m1 is not read again before the store comes back; another meter is
    await daemon.on_samples("m2", voltages("m2", 231.0, 1), False)
    locker.execute("ROLLBACK")
    locker.close()
    await daemon._flush()
    assert daemon._write_failure is None
    assert sag_events(store, "m1") == ["raised"]
    saved = store.state_items("check:")
    assert saved["check:m1"]["open"] == {"voltage_sag": "32.7.0"}, "the held state went too"
    assert saved["check:m2"]["open"] == {}
    daemon.store.shutdown()

    # a restart resumes from what was stored: the sag goes on, no second raise; it ends once
    again = Store(store.path)
    checker = Checker(
        daemon.config.checks, {k[6:]: v for k, v in again.state_items("check:").items()}
    )
    second = to_us(T0 + timedelta(seconds=2))
    reads = [ReadingRow("m1", q, second, 182.0) for q in ("32.7.0", "52.7.0")]
    assert checker.process("m1", reads, MeterProfile())[1] == []
    third = to_us(T0 + timedelta(seconds=3))
    good = [ReadingRow("m1", q, third, 229.0) for q in ("32.7.0", "52.7.0")]
    _, events = checker.process("m1", good, MeterProfile())
    assert [(e.kind, e.status.value) for e in events] == [("voltage_sag", "cleared")]
    again.close()

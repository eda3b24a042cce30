"""kill -9 of the daemon right after it stored an alert (a real `gridgate edge run` reading a
simulated meter whose voltage sags and recovers): after each restart the alert is neither raised
nor cleared a second time — the checks' state is committed with the events it produced.

The meter and bus statistics are saved apart; the test makes that save rare
(GRIDGATE_EDGE_STATS_SAVE_S), so a check state that rode on it would be hours old at each kill."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
from pathlib import Path

import pytest

from edge.malloc import is_glibc
from firmware_sim.clock import SimClock
from firmware_sim.faults import FaultTarget, apply_fault
from firmware_sim.fleet import MeterSpec, build_modbus_meters
from firmware_sim.tcp_server import ModbusTcpServer
from tests.edge.test_commands_crash import until

DAEMON = [sys.executable, "-m", "gridgate", "--log-level", "WARNING", "edge", "run", "--config"]
EPISODES = 3
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.name != "posix", reason="signals"),
]


def config_text(tcp_port: int) -> str:
    return f"""
[gateway]
id = "gw-alert-crash"
data_dir = "data"

[store]
commit_interval_s = 0.1

[clock]
require_ntp = false

[[buses]]
name = "tcp"
kind = "modbus-tcp"
host = "127.0.0.1"
tcp_port = {tcp_port}

[[buses.meters]]
id = "tcp-1"
unit = 1
profile = "sdm630"
fast_s = 0.2
slow_s = 1.0
"""


def query(store: Path, sql: str, *args: object) -> list[tuple]:
    """Read the store beside the running daemon (WAL): committed rows only."""
    if not store.exists():
        return []
    with sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=5) as conn:
        try:
            return conn.execute(sql, args).fetchall()
        except sqlite3.OperationalError:  # the store is being created
            return []


def sag_events(store: Path) -> list[str]:
    rows = query(
        store,
        "SELECT status FROM events WHERE kind = 'voltage_sag' AND meter_id = 'tcp-1' ORDER BY seq",
    )
    return [status for (status,) in rows]


def last_seq(store: Path) -> int:
    rows = query(store, "SELECT max(seq) FROM readings")
    return rows[0][0] if rows and rows[0][0] is not None else 0


def voltage_reads_after(store: Path, seq: int) -> int:
    rows = query(
        store,
        "SELECT count(*) FROM readings WHERE seq > ? AND meter_id = 'tcp-1'"
        " AND quantity = '32.7.0'",
        seq,
    )
    return rows[0][0] if rows else 0


def process_environment(pid: int) -> list[str] | None:
    """A process's environment as it runs (Linux's /proc), or None where there is no /proc."""
    if not Path("/proc/self/environ").exists():
        return None
    return Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace").split("\0")


async def test_kill_nine_after_an_alert_never_raises_or_clears_it_twice(tmp_path: Path) -> None:
    clock = SimClock()
    meters = build_modbus_meters([MeterSpec(1, "sdm630")], clock, seed=7, turnaround_s=0.002)
    fault = FaultTarget(meters[0].physics, meters[0].faults, clock.now_s)
    tcp = ModbusTcpServer(meters, "127.0.0.1", 0)
    await tcp.start()
    config = tmp_path / "edge.toml"
    config.write_text(config_text(tcp.port))
    store = tmp_path / "data" / "edge.sqlite"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONMALLOC"}
    env["GRIDGATE_EDGE_STATS_SAVE_S"] = "3600"
    daemon_log = (tmp_path / "daemon.log").open("ab")
    daemon = None

    async def start() -> None:
        """Start the daemon and wait until it has stored three voltage reads of this run: its
        checks have judged them, and any event they gave is committed with them."""
        nonlocal daemon
        mark = last_seq(store)
        daemon = await asyncio.create_subprocess_exec(
            *DAEMON, str(config), stdout=daemon_log, stderr=daemon_log, env=env
        )
        await until(lambda: voltage_reads_after(store, mark) >= 3, "reads after a start")

    async def kill() -> None:
        assert daemon is not None
        daemon.send_signal(signal.SIGKILL)
        await daemon.wait()

    try:
        await start()
        assert sag_events(store) == []
        environ = process_environment(daemon.pid)
        if environ is not None and is_glibc():
            # the process that reads is the one started (its id is what the signals go to),
            # running again with glibc's allocator (edge/malloc.py: daemon_environment)
            assert "PYTHONMALLOC=malloc" in environ
        for episode in range(EPISODES):
            apply_fault(fault, "voltage_sag", "0.8")  # 230 V -> 184 V: under 207 V
            raised = episode + 1
            await until(lambda n=raised: sag_events(store).count("raised") == n, "the alert raised")
            await kill()  # the alert is committed; no statistics save since
            await start()  # the sag goes on: the restarted checks know the alert is open
            apply_fault(fault, "voltage_sag", "1.0")
            await until(lambda n=raised: sag_events(store).count("cleared") == n, "it cleared")
            await kill()
            await start()  # the supply stays good: nothing left to clear
            assert sag_events(store) == ["raised", "cleared"] * (episode + 1)
        daemon.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(daemon.wait(), 60) == 0
    finally:
        if daemon is not None and daemon.returncode is None:
            daemon.kill()
            await daemon.wait()
        daemon_log.close()
        await tcp.stop()
    assert sag_events(store) == ["raised", "cleared"] * EPISODES
    assert "Traceback" not in (tmp_path / "daemon.log").read_text()

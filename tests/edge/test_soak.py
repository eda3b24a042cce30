"""A shortened soak: the daemon polls 8 simulated Modbus TCP meters several times a second; once
warm, what Python keeps (tracemalloc, allocations since the warm-up that are still alive) stays
within a small bound however long it runs, and the per-meter structures do not grow.
`bench/edge_store.py --soak-minutes` measures the process's RSS over hours."""

from __future__ import annotations

import asyncio
import gc
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest

from edge.config import load_config
from edge.daemon import Daemon
from edge.recent_log import MAX_LINES
from firmware_sim.clock import SimClock
from firmware_sim.fleet import MeterSpec, build_modbus_meters
from firmware_sim.tcp_server import ModbusTcpServer

pytestmark = pytest.mark.slow

MODELS = ("sdm630", "sdm120", "em24", "iem3000")
RETAINED_MAX = 1_500_000  # bytes kept since the warm-up: a few flushes' rows, not a leak


async def wait_until(condition: Callable[[], bool], what: str, limit_s: float = 900) -> None:
    deadline = asyncio.get_running_loop().time() + limit_s
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, f"never: {what}"
        await asyncio.sleep(0.5)


def series(daemon: Daemon) -> int:
    return sum(len(quantities) for quantities in daemon._latest.values())


async def test_memory_stays_flat_once_warm(tmp_path: Path) -> None:
    specs = [MeterSpec(unit, MODELS[unit % 4]) for unit in range(1, 9)]
    server = ModbusTcpServer(
        build_modbus_meters(specs, SimClock(), seed=3, turnaround_s=0.001), "127.0.0.1", 0
    )
    await server.start()
    meters = "".join(
        f'\n[[buses.meters]]\nid = "u{s.unit_id}"\nunit = {s.unit_id}\nprofile = "{s.model}"'
        "\nfast_s = 0.2\nslow_s = 1.0\n"
        for s in specs
    )
    path = tmp_path / "edge.toml"
    path.write_text(
        '[gateway]\nid = "gw-soak"\ndata_dir = "data"\n[store]\ncommit_interval_s = 0.2\n'
        "[clock]\nrequire_ntp = false\n"
        f'[[buses]]\nname = "tcp"\nkind = "modbus-tcp"\nhost = "127.0.0.1"\n'
        f"tcp_port = {server.port}\n{meters}"
    )
    daemon = Daemon(load_config(path))
    task = asyncio.create_task(daemon.run())
    try:
        # warm: every meter read, both poll classes, the store's first pages written
        await wait_until(lambda: daemon.taken >= 5_000, "5,000 readings taken")
        warm_series, warm_taken = series(daemon), daemon.taken
        gc.collect()
        tracemalloc.start()
        await wait_until(lambda: daemon.taken >= warm_taken + 30_000, "30,000 more readings")
        gc.collect()
        retained, _ = tracemalloc.get_traced_memory()
        top = tracemalloc.take_snapshot().statistics("lineno")[:5]
        tracemalloc.stop()
        assert retained < RETAINED_MAX, "\n".join(map(str, top))
        assert series(daemon) == warm_series, "a series per meter and quantity, no more"
        assert set(daemon.checker.states) == {f"u{s.unit_id}" for s in specs}
        assert len(daemon._readings) < 5_000  # flushed as they come
        assert len(daemon.recent_log._lines) <= MAX_LINES
    finally:
        daemon.stopping.set()
        await asyncio.wait_for(task, 60)
        await server.stop()

"""Bad input at run time: a missing serial port, a dead meter, a cloud that hangs or fails.
Each is logged and shows in the status; the daemon keeps serving the other meters."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from edge.config import load_config
from edge.daemon import STOP_GRACE_S, Daemon
from edge.status import read_status
from edge.store import Store
from firmware_sim.clock import SimClock
from firmware_sim.fleet import MeterSpec, build_modbus_meters
from firmware_sim.tcp_server import ModbusTcpServer
from shared import generate_private_key, write_private_key


async def _misbehaving_cloud(mode: str) -> asyncio.Server:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)
        if mode in ("500", "403"):
            reason = b"500 Internal Server Error" if mode == "500" else b"403 Forbidden"
            body = b'{"detail": "gateway gw-bad is revoked"}' if mode == "403" else b"oops"
            writer.write(
                b"HTTP/1.1 " + reason + b"\r\ncontent-length: %d\r\n\r\n" % len(body) + body
            )
            await writer.drain()
            writer.close()
        else:
            await asyncio.sleep(30)  # hang

    return await asyncio.start_server(answer, "127.0.0.1", 0)


async def _run(tmp_path: Path, cloud_port: int, tcp_port: int) -> dict:
    write_private_key(tmp_path / "data" / "gateway.key", generate_private_key())
    path = tmp_path / "edge.toml"
    path.write_text(
        f"""
[gateway]
id = "gw-bad"
data_dir = "data"

[cloud]
url = "http://127.0.0.1:{cloud_port}"
timeout_s = 1
sync_interval_s = 0.5
retry_max_s = 1

[store]
commit_interval_s = 0.2

[clock]
require_ntp = false

[[buses]]
name = "unplugged"
kind = "modbus-rtu"
port = "{tmp_path / "no-such-tty"}"

[[buses.meters]]
id = "ghost"
unit = 1
profile = "sdm120"
fast_s = 0.2

[[buses]]
name = "tcp"
kind = "modbus-tcp"
host = "127.0.0.1"
tcp_port = {tcp_port}

[[buses.meters]]
id = "alive"
unit = 1
profile = "sdm630"
fast_s = 0.2
slow_s = 0.5

[[buses.meters]]
id = "silent"
unit = 9
profile = "em24"
fast_s = 0.2
timeout_s = 0.1
"""
    )
    config = load_config(path)
    daemon = Daemon(config)
    task = asyncio.create_task(daemon.run())
    await asyncio.sleep(5)
    assert not task.done(), "the daemon is still running"
    status = read_status(config.store_path)
    daemon.stopping.set()
    # the daemon bounds each of its six stop steps by STOP_GRACE_S; a loaded machine can need
    # more than 10 s in all (a sync stuck on the hanging cloud is cancelled, then waited for)
    await asyncio.wait_for(task, 6 * STOP_GRACE_S)
    return status


@pytest.mark.slow
async def test_bad_ports_dead_meters_and_a_bad_cloud_are_survived(tmp_path: Path) -> None:
    server = ModbusTcpServer(
        build_modbus_meters([MeterSpec(1, "sdm630")], SimClock(), seed=1, turnaround_s=0.002),
        "127.0.0.1",
        0,
    )
    await server.start()
    for mode in ("hang", "500", "403"):
        cloud = await _misbehaving_cloud(mode)
        folder = tmp_path / mode
        folder.mkdir()
        try:
            status = await _run(folder, cloud.sockets[0].getsockname()[1], server.port)
        finally:
            cloud.close()
        meters = status["meters"]
        assert meters["alive"]["good_reads"] > 5
        assert meters["ghost"]["good_reads"] == 0
        assert "no-such-tty" in meters["ghost"]["last_error"]
        assert meters["silent"]["timeouts"] > 0
        # back-off: the dead meters were tried far less often than the live one was read
        assert meters["silent"]["transactions"] < meters["alive"]["good_reads"]
        kinds = {a["kind"] for a in status["alerts"] if a["meter_id"] in ("ghost", "silent")}
        assert kinds == {"communication_loss"}
        error = status["sync"]["last_error"]
        assert error is not None
        assert (mode in error) if mode != "hang" else ("unreachable" in error)
        if mode == "403":
            assert "revoked" in error  # the cloud's reason reaches the technician
        store = Store(folder / "data" / "edge.sqlite")
        assert {r.meter_id for r in store.all_readings()} == {"alive"}
        assert store.backlog()[0] > 0  # nothing was acknowledged, nothing was lost
        store.close()
        shown = await asyncio.to_thread(
            subprocess.run,
            [
                sys.executable,
                "-m",
                "gridgate",
                "edge",
                "status",
                "--config",
                str(folder / "edge.toml"),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        assert shown.returncode == 0, shown.stderr
        assert "ghost" in shown.stdout
        assert "Communication loss · ghost" in shown.stdout  # the alert, in words
        assert "ghost: " in shown.stdout  # the failing meter's last error, on its own line
        assert "last error" in shown.stdout  # the cloud's
    await server.stop()

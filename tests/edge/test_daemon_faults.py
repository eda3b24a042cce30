"""The daemon through field trouble: an RS-485 adapter unplugged and plugged back, a meter
answering garbage beside good ones, an unsynchronised clock, a gateway that was down for an
hour (DLMS load-profile backfill), and systemd's notify/watchdog protocol."""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import signal
import socket
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from edge.clock import GatewayClock
from edge.config import load_config
from edge.daemon import Daemon
from edge.status import read_status
from edge.store import Store, from_us
from firmware_sim.clock import SimClock
from firmware_sim.dlms_line import DlmsTcpServer
from firmware_sim.dlms_meter import SimulatedDlmsMeter
from firmware_sim.fleet import MeterSpec, build_modbus_meters, physics_for
from firmware_sim.rtu_bus import RtuBus
from firmware_sim.tcp_server import ModbusTcpServer
from protocols.modbus.timing import LineSettings
from shared import write_private_key
from tests.cloud.conftest import Cloud, EnrolledGateway
from tests.edge.test_daemon import drain
from tests.support.cloud_link import link

HEAD = """
[gateway]
id = "{gateway}"
data_dir = "data"

[cloud]
url = "http://cloud"
sync_interval_s = 0.5
retry_max_s = 1

[store]
commit_interval_s = 0.2

[clock]
require_ntp = false
"""


def config_file(tmp_path: Path, buses: str, gateway: str = "gw-field") -> Path:
    path = tmp_path / "edge.toml"
    path.write_text(HEAD.format(gateway=gateway) + buses)
    return path


async def wait_for(condition, timeout: float = 60.0, what: str = "condition") -> None:
    """Until `condition()` holds; generous, since a shared machine can stall the daemon a while
    (a pass takes no longer for it)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} not met in {timeout:g} s"
        await asyncio.sleep(0.2)


def dlms_bus(port: int, meter_id: str, fast_s: float, slow_s: float) -> str:
    return f"""
[[buses]]
name = "dlms"
kind = "dlms-tcp"
host = "127.0.0.1"
tcp_port = {port}

[[buses.meters]]
id = "{meter_id}"
fast_s = {fast_s}
slow_s = {slow_s}
timeout_s = 2.0
"""


def meter_stats(config, meter: str) -> dict:
    if not config.store_path.exists():
        return {}
    return read_status(config.store_path)["meters"].get(meter, {})


async def test_unplugged_adapter_and_a_garbage_meter(tmp_path: Path) -> None:
    clock = SimClock()
    meters = build_modbus_meters(
        [MeterSpec(1, "sdm120"), MeterSpec(2, "sdm120")], clock, seed=3, turnaround_s=0.003
    )
    meters[1].faults.garbage = 1.0  # unit 2 answers nothing but noise
    link = tmp_path / "ttyRS485"
    bus = RtuBus(meters, LineSettings(19200), link=link)
    await bus.start()
    config = load_config(
        config_file(
            tmp_path,
            f"""
[[buses]]
name = "rs485"
kind = "modbus-rtu"
port = "{link}"
baud = 19200

[[buses.meters]]
id = "good"
unit = 1
profile = "sdm120"
phases = 1
fast_s = 0.3

[[buses.meters]]
id = "noisy"
unit = 2
profile = "sdm120"
phases = 1
fast_s = 0.3
""",
        )
    )
    daemon = Daemon(config)
    task = asyncio.create_task(daemon.run())
    try:
        await wait_for(lambda: meter_stats(config, "good").get("good_reads", 0) >= 5)
        noisy = meter_stats(config, "noisy")
        assert noisy["good_reads"] == 0
        assert noisy["frame_errors"] + noisy["crc_errors"] > 0
        await bus.stop()  # the USB adapter is pulled out
        before = meter_stats(config, "good")["good_reads"]
        await wait_for(lambda: meter_stats(config, "good").get("failures_in_row", 0) >= 2)
        assert not task.done()
        bus = RtuBus(meters, LineSettings(19200), link=link)  # ... and plugged back in
        await bus.start()
        await wait_for(lambda: meter_stats(config, "good")["good_reads"] > before + 3, 60)
        assert meter_stats(config, "good")["failures_in_row"] == 0
    finally:
        daemon.stopping.set()
        await asyncio.wait_for(task, 15)
        await bus.stop()


def backlog_readings(config) -> int:
    if not config.store_path.exists():
        return 0
    return read_status(config.store_path)["backlog"]["readings"]


class SettableClock(GatewayClock):
    """The gateway's clock with its synchronisation state decided by the test (the kernel's
    answer cannot be changed from here)."""

    synced = False

    def synchronised(self) -> bool:
        return self.synced


async def test_readings_wait_for_the_clock_then_arrive_restamped(
    cloud: Cloud, gateway: EnrolledGateway, tmp_path: Path
) -> None:
    server = ModbusTcpServer(
        build_modbus_meters([MeterSpec(1, "iem3000")], SimClock(), seed=4, turnaround_s=0.002),
        "127.0.0.1",
        0,
    )
    await server.start()
    write_private_key(tmp_path / "data" / "gateway.key", gateway.key)
    config = load_config(
        config_file(
            tmp_path,
            f"""
[[buses]]
name = "tcp"
kind = "modbus-tcp"
host = "127.0.0.1"
tcp_port = {server.port}

[[buses.meters]]
id = "m1"
unit = 1
profile = "iem3000"
fast_s = 0.3
""",
            gateway.code,
        )
    )
    clock = SettableClock(not_before=datetime(2026, 1, 1, tzinfo=UTC))

    async def cloud_readings() -> int:
        async with cloud.pool.connection() as conn:
            cursor = await conn.execute(
                "SELECT count(*) AS n FROM readings r JOIN gateways g ON g.id = r.gateway_id"
                " WHERE g.gateway_code = %s",
                (gateway.code,),
            )
            return (await cursor.fetchone())["n"]

    transport = httpx.ASGITransport(app=cloud.client._transport.app)
    daemon = Daemon(config, clock=clock, transport=link(transport))
    task = asyncio.create_task(daemon.run())
    try:
        # readings of unknown time wait in the store while the daemon keeps syncing: two
        # batches (heartbeats) reach the cloud after the first such reading is stored, and none
        # of them carries it
        await wait_for(lambda: backlog_readings(config) > 0, what="readings held")
        await wait_for(
            lambda: any(
                a["kind"] == "clock_unsynced" for a in read_status(config.store_path)["alerts"]
            ),
            what="the clock_unsynced alert",
        )
        syncer = daemon.syncer
        assert syncer is not None
        batches = syncer.stats.batches
        await wait_for(lambda: syncer.stats.batches >= batches + 2, what="two more batches")
        assert await cloud_readings() == 0, "no reading of unknown time was sent"
        held = backlog_readings(config)
        clock.synced = True
        # the held readings, restamped, reach the cloud while the daemon runs (new ones keep
        # coming, so the backlog itself need never be empty when the test looks)
        deadline = time.monotonic() + 60
        while await cloud_readings() < held:
            assert time.monotonic() < deadline, f"the {held} held readings did not arrive"
            await asyncio.sleep(0.2)
    finally:
        daemon.stopping.set()
        await asyncio.wait_for(task, 15)
        await server.stop()
    await drain(config.source, transport)
    store = Store(config.store_path)
    qualities = {r.quality for r in store.all_readings()}
    times = [from_us(r.ts_us) for r in store.all_readings()]
    kinds = [e.kind for e in store.recent_events(100)]
    store.close()
    assert "clock_unsynced" not in qualities
    assert all(abs(datetime.now(UTC) - t) < timedelta(minutes=1) for t in times)
    assert "clock_corrected" in kinds


async def test_a_gateway_down_for_an_hour_backfills_from_the_load_profile(
    tmp_path: Path,
) -> None:
    clock = SimClock()
    meter = SimulatedDlmsMeter(physics_for(8, 3, clock), clock, serial_number=3)
    server = DlmsTcpServer(meter, "127.0.0.1", 0)
    await server.start()
    config = load_config(
        config_file(tmp_path, dlms_bus(server.port, "dlms-1", fast_s=1.0, slow_s=60))
    )
    # the gateway last read this meter an hour ago, then lost power
    config.data_dir.mkdir(parents=True)
    store = Store(config.store_path)
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    store.put_state({"meter:dlms-1": {"bus": "dlms", "last_good_read": an_hour_ago.isoformat()}})
    store.close()
    daemon = Daemon(config)
    task = asyncio.create_task(daemon.run())
    try:
        await wait_for(
            lambda: any(
                a.get("good_reads", 0) >= 2
                for a in read_status(config.store_path)["meters"].values()
            ),
            30,
        )
        await asyncio.sleep(1)
    finally:
        daemon.stopping.set()
        await asyncio.wait_for(task, 15)
        await server.stop()
    store = Store(config.store_path)
    energy = [
        from_us(r.ts_us)
        for r in store.all_readings()
        if r.quantity == "1.8.0" and from_us(r.ts_us) < datetime.now(UTC) - timedelta(minutes=2)
    ]
    kinds = [e.kind for e in store.recent_events(100)]
    store.close()
    assert "backfill" in kinds
    assert len(energy) >= 3, "the quarter hours of the gap came from the meter's memory"
    assert all(t.minute % 15 == 0 and t.second == 0 for t in energy)
    assert all(t > an_hour_ago for t in energy)


async def test_systemd_ready_watchdog_and_stopping(tmp_path: Path) -> None:
    sock_path = tmp_path / "notify.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(sock_path))
    listener.setblocking(False)
    config = config_file(tmp_path, "")
    env = {
        **os.environ,
        "NOTIFY_SOCKET": str(sock_path),
        "WATCHDOG_USEC": "400000",  # a ping every 0.2 s
    }
    env.pop("WATCHDOG_PID", None)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gridgate",
        "edge",
        "run",
        "--config",
        str(config),
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    messages: list[str] = []
    loop = asyncio.get_running_loop()

    async def receive(until: float) -> None:
        while time.monotonic() < until:
            with contextlib.suppress(TimeoutError):
                messages.append(
                    (await asyncio.wait_for(loop.sock_recv(listener, 256), 0.5)).decode()
                )

    try:
        await receive(time.monotonic() + 8)
        assert "READY=1" in messages
        pings = messages[messages.index("READY=1") :].count("WATCHDOG=1")
        assert pings >= 5
        os.kill(process.pid, 19)  # SIGSTOP: a stuck process sends nothing
        messages.clear()
        await receive(time.monotonic() + 1.5)
        assert messages == []
        os.kill(process.pid, 18)  # SIGCONT
        await receive(time.monotonic() + 1.5)
        assert "WATCHDOG=1" in messages
        process.terminate()
        assert await asyncio.wait_for(process.wait(), 10) == 0
        await receive(time.monotonic() + 0.5)
        assert "STOPPING=1" in messages
    finally:
        if process.returncode is None:
            process.kill()
        listener.close()


async def test_a_full_disk_is_survived_and_reported(tmp_path: Path) -> None:
    """The daemon's files may not grow past a limit (as on a full SD card): writes fail, the
    daemon says so, keeps polling (rows held in memory), and stops cleanly."""
    server = ModbusTcpServer(
        build_modbus_meters([MeterSpec(1, "sdm630")], SimClock(), seed=2, turnaround_s=0.002),
        "127.0.0.1",
        0,
    )
    await server.start()
    config = config_file(
        tmp_path,
        f"""
[[buses]]
name = "tcp"
kind = "modbus-tcp"
host = "127.0.0.1"
tcp_port = {server.port}

[[buses.meters]]
id = "m1"
unit = 1
profile = "sdm630"
fast_s = 0.1
slow_s = 0.2
""",
    )
    log_path = tmp_path / "daemon.log"

    def small_disk() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)

    with log_path.open("wb") as log_file:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gridgate",
            "--json-logs",
            "edge",
            "run",
            "--config",
            str(config),
            stdout=log_file,
            stderr=log_file,
            preexec_fn=small_disk,
        )
        try:
            await wait_for(lambda: b"store write failed" in log_path.read_bytes(), 30)
            await asyncio.sleep(2)
            assert process.returncode is None, "the daemon keeps running"
            process.terminate()
            assert await asyncio.wait_for(process.wait(), 15) == 0
        finally:
            if process.returncode is None:
                process.kill()
            await server.stop()
    text = log_path.read_text()
    # SQLite names a write past the file-size limit an I/O error; a full disk is "disk is full"
    assert "disk I/O error" in text or "database or disk is full" in text
    assert "Traceback" not in text


async def test_a_drifting_meter_clock_raises_an_alert(tmp_path: Path) -> None:
    clock = SimClock()
    meter = SimulatedDlmsMeter(physics_for(9, 1, clock), clock, serial_number=4)
    # the meter's clock runs away: about 12 s fast per second from now on
    meter.physics.set_fault(clock.now_s(), clock_drift_s_per_day=1_000_000)
    server = DlmsTcpServer(meter, "127.0.0.1", 0)
    await server.start()
    config = load_config(
        config_file(tmp_path, dlms_bus(server.port, "drifty", fast_s=0.5, slow_s=0.5))
    )
    daemon = Daemon(config)
    task = asyncio.create_task(daemon.run())

    def raised() -> bool:
        if not config.store_path.exists():
            return False
        return any(
            a["kind"] == "meter_clock_drift" for a in read_status(config.store_path)["alerts"]
        )

    try:
        await wait_for(raised, 30)
    finally:
        daemon.stopping.set()
        await asyncio.wait_for(task, 15)
        await server.stop()
    store = Store(config.store_path)
    [event] = [e for e in store.recent_events(100) if e.kind == "meter_clock_drift"]
    store.close()
    assert event.details["drift_s"] > 30

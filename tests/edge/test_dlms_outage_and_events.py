"""A DLMS meter's own memory through the real daemon and the real cloud: after the gateway was
away a whole day its block load profile fills the gap, and the cloud's energy of every quarter
hour of that day equals the meter's block energy to the watt-hour; the meter's event logs
(power failure, magnet, cover open) become the gateway's events and the cloud's alerts once,
however often the logs are read again and across a restart of the daemon."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from edge.config import load_config
from edge.daemon import Daemon
from edge.meter_events import take
from edge.scheduler import BusScheduler, MeterStats
from edge.store import Store
from firmware_sim.clock import SimClock
from firmware_sim.dlms_line import DlmsTcpServer
from firmware_sim.dlms_meter import SimulatedDlmsMeter
from firmware_sim.fleet import physics_for
from protocols.dlms.is15959 import Log
from protocols.dlms.profiles import MeterEvent
from shared import EventStatus
from tests.cloud.conftest import Cloud, EnrolledGateway, staff_headers
from tests.edge.conftest import Field
from tests.edge.test_commands import rows, until
from tests.edge.test_daemon import write_config
from tests.support.cloud_link import link

DAY = timedelta(days=1)


@dataclasses.dataclass
class Meter:
    meter: SimulatedDlmsMeter
    field: Field


@pytest.fixture
async def dlms(tmp_path: Path) -> AsyncIterator[Meter]:
    clock = SimClock()
    # two days behind it: the day the gateway missed and the midnight before it
    physics = physics_for(41, 3, clock, history_s=2.2 * 86400)
    meter = SimulatedDlmsMeter(physics, clock, serial_number=41, turnaround_s=0.002)
    server = DlmsTcpServer(meter, "127.0.0.1", 0)
    await server.start()
    buses = f"""
[[buses]]
name = "dlms-out"
kind = "dlms-tcp"
host = "127.0.0.1"
tcp_port = {server.port}

[[buses.meters]]
id = "dlms-out"
fast_s = 2.0
slow_s = 0.5
timeout_s = 2.0
"""
    try:
        yield Meter(meter, Field(buses, ["dlms-out"], tmp_path / "none", meter))
    finally:
        await server.stop()


def start(cloud: Cloud, config_path: Path) -> tuple[Daemon, asyncio.Task]:
    config = load_config(config_path)
    config.data_dir.mkdir(parents=True, exist_ok=True)
    daemon = Daemon(config, transport=link(httpx.ASGITransport(app=cloud.client._transport.app)))
    return daemon, asyncio.create_task(daemon.run())


async def stop(daemon: Daemon, task: asyncio.Task) -> None:
    daemon.stopping.set()
    await asyncio.wait_for(task, 30)


def quarter(moment: datetime) -> datetime:
    return moment.replace(minute=moment.minute // 15 * 15, second=0, microsecond=0)


async def cloud_meter_id(cloud: Cloud, gateway: EnrolledGateway, external: str) -> int:
    async def found() -> list[dict]:
        return await rows(
            cloud,
            "SELECT m.id FROM meters m JOIN gateways g ON g.id = m.gateway_id"
            " WHERE g.gateway_code = %s AND m.external_id = %s",
            gateway.code,
            external,
        )

    return (await until(found, f"meter {external} in the cloud", timeout=90))[0]["id"]


async def test_a_day_away_is_filled_from_the_block_load_profile_to_the_watt_hour(
    cloud: Cloud, board: str, gateway: EnrolledGateway, dlms: Meter, tmp_path: Path
) -> None:
    config_path = write_config(tmp_path, gateway, dlms.field)
    config = load_config(config_path)
    config.data_dir.mkdir(parents=True, exist_ok=True)
    # the gateway last read the meter a day ago, and has been away since (as its store says)
    away_since = datetime.now(UTC) - DAY
    store = Store(config.store_path, budget_bytes=64 * 1024 * 1024)
    stats = dataclasses.asdict(MeterStats(good_reads=1, last_good_read=away_since.isoformat()))
    store.put_state({"meter:dlms-out": stats | {"bus": "dlms-out"}})
    store.close()

    back = datetime.now(UTC)
    daemon, task = start(cloud, config_path)
    try:
        meter_id = await cloud_meter_id(cloud, gateway, "dlms-out")
        first, last = quarter(away_since) + timedelta(minutes=15), quarter(back)

        async def filled() -> list[dict]:
            found = await rows(
                cloud,
                "SELECT ts FROM readings WHERE meter_id = %s AND quantity = '1.8.0'"
                " AND ts BETWEEN %s AND %s",
                meter_id,
                first,
                last,
            )
            return found if len(found) >= (last - first) / timedelta(minutes=15) + 1 else []

        await until(filled, "the day's quarter hours in the cloud", timeout=120)
    finally:
        await stop(daemon, task)

    response = await cloud.client.get(
        f"/api/v1/meters/{meter_id}/readings",
        params={
            "quantity": "1.8.0",
            "interval": "15min",
            "from": first.isoformat(),
            "to": last.isoformat(),
        },
        headers=await staff_headers(cloud, board),
    )
    assert response.status_code == 200, response.text
    buckets = {
        datetime.fromisoformat(p["bucket"]): float(p["energy"]) for p in response.json()["points"]
    }
    captures = {c.t_s: c for c in dlms.meter.physics.captures}
    assert len(buckets) == (last - first) / timedelta(minutes=15)  # every quarter of the day
    for bucket, energy in buckets.items():
        end = (bucket + timedelta(minutes=15)).timestamp()
        now, before = captures[end].true_kwh, captures[end - 900].true_kwh
        assert now is not None
        assert before is not None
        block_wh = round(now["1.8.0"] * 1000) - round(before["1.8.0"] * 1000)
        assert round(energy * 1000, 6) == block_wh, bucket  # the meter's block, exactly


async def test_meter_events_become_alerts_once_across_rereads_and_a_restart(
    cloud: Cloud, board: str, gateway: EnrolledGateway, dlms: Meter, tmp_path: Path
) -> None:
    physics, clock = dlms.meter.physics, dlms.meter.clock
    physics.set_fault(clock.now_s(), power_failure=True)
    physics.set_fault(clock.now_s() + 1, power_failure=False)
    physics.set_fault(clock.now_s() + 2, magnet=True)
    physics.set_fault(clock.now_s() + 3, cover_open=True)
    config_path = write_config(tmp_path, gateway, dlms.field)
    query = (
        "SELECT e.kind, e.status, e.ts FROM events e JOIN gateways g ON g.id = e.gateway_id"
        " WHERE g.gateway_code = %s AND e.kind LIKE 'meter\\_%%' ORDER BY e.ts, e.kind"
    )

    async def four() -> list[dict]:
        found = await rows(cloud, query, gateway.code)
        return found if len(found) >= 4 else []

    async def polls(daemon: Daemon, more: int) -> None:
        [bus] = [b for b in daemon.buses if isinstance(b, BusScheduler)]
        target = bus.meters[0].stats.good_reads + more

        async def done() -> bool:
            return bus.meters[0].stats.good_reads >= target

        await until(done, f"{more} more reads of the meter", timeout=90)

    for _run in range(2):  # the second run starts from the store the first left
        daemon, task = start(cloud, config_path)
        try:
            await until(four, "the meter's events in the cloud", timeout=90)
            await polls(daemon, 8)  # the logs read again, several times over
            assert daemon.syncer is not None
            await asyncio.wait_for(daemon.syncer.drain(), 60)
        finally:
            await stop(daemon, task)
        events = await rows(cloud, query, gateway.code)
        assert [(e["kind"], e["status"]) for e in events] == [
            ("meter_power_failure", "raised"),
            ("meter_power_failure", "cleared"),
            ("meter_magnet", "raised"),
            ("meter_cover_open", "notice"),
        ]
    alerts = await rows(
        cloud,
        "SELECT kind, state FROM alerts WHERE board_id = (SELECT board_id FROM gateways"
        " WHERE gateway_code = %s) AND kind LIKE 'meter\\_%%' ORDER BY kind",
        gateway.code,
    )
    assert [(a["kind"], a["state"]) for a in alerts] == [
        ("meter_cover_open", "active"),
        ("meter_magnet", "active"),
        ("meter_power_failure", "resolved"),
    ]


def test_take_keeps_each_event_once() -> None:
    at = datetime(2026, 11, 30, 18, 30, tzinfo=UTC)
    first = [MeterEvent(Log.POWER, at, 101), MeterEvent(Log.OTHER, at, 201)]
    events, cursor = take("m", first, None)
    assert [(e.kind, e.status) for e in events] == [
        ("meter_power_failure", EventStatus.RAISED),
        ("meter_magnet", EventStatus.RAISED),
    ]
    # read again from the same instant on: the same entries and a new one at that instant
    again = [*first, MeterEvent(Log.POWER, at, 102)]
    events, cursor = take("m", again, cursor)
    assert [(e.kind, e.status) for e in events] == [("meter_power_failure", EventStatus.CLEARED)]
    events, _ = take("m", again, cursor)
    assert events == []
    unknown, _ = take("m", [MeterEvent(Log.OTHER, at + DAY, 999)], cursor)
    assert [(e.kind, e.status) for e in unknown] == [("meter_event", EventStatus.NOTICE)]

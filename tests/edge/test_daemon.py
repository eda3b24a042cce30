"""The daemon end to end: simulated meters on every transport -> daemon -> the real cloud app on
real PostgreSQL. Every reading taken arrives exactly once, with equal values."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path

import httpx

from edge.config import load_config
from edge.daemon import Daemon
from edge.status import read_status
from edge.store import Store, to_us
from shared import write_private_key
from tests.cloud.conftest import Cloud, EnrolledGateway
from tests.edge.conftest import Field
from tests.support.cloud_link import link


def write_config(tmp_path: Path, gateway: EnrolledGateway, field: Field, extra: str = "") -> Path:
    write_private_key(tmp_path / "data" / "gateway.key", gateway.key)
    path = tmp_path / "edge.toml"
    path.write_text(
        f"""
[gateway]
id = "{gateway.code}"
data_dir = "data"

[cloud]
url = "http://cloud"
sync_interval_s = 0.5
retry_max_s = 2

[store]
commit_interval_s = 0.2

[clock]
require_ntp = false
{extra}
{field.buses_toml}
"""
    )
    return path


async def drain(config_path: Path, transport: httpx.AsyncBaseTransport | None = None) -> None:
    """Send everything the store holds, as the daemon's syncer does, without polling."""
    daemon = Daemon(load_config(config_path), transport=link(transport) if transport else None)
    daemon._open_store()
    daemon.syncer = daemon._make_syncer()
    assert daemon.syncer is not None
    try:
        await asyncio.wait_for(daemon.syncer.drain(), 60)
    finally:
        await daemon.syncer.close()
        daemon.store.shutdown()


def meters_stored(path: Path) -> set[str]:
    """The meters the gateway's store holds a reading of (read beside the running daemon)."""
    if not path.exists():
        return set()
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        return {row[0] for row in conn.execute("SELECT DISTINCT meter_id FROM readings")}


async def meters_read_by_cloud(cloud: Cloud, gateway: EnrolledGateway) -> set[str]:
    """The meters whose last good read the gateway's heartbeat has told the cloud of."""
    async with cloud.pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT meter_health FROM gateways WHERE gateway_code = %s", (gateway.code,)
        )
        health = (await cursor.fetchone())["meter_health"] or []
    return {m["meter_id"] for m in health if m.get("last_good_read")}


async def cloud_readings(cloud: Cloud, gateway: EnrolledGateway) -> list[tuple]:
    async with cloud.pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT m.external_id, r.quantity, r.ts, r.value, r.quality FROM readings r"
            " JOIN meters m ON m.id = r.meter_id JOIN gateways g ON g.id = r.gateway_id"
            " WHERE g.gateway_code = %s",
            (gateway.code,),
        )
        return [
            (row["external_id"], row["quantity"], to_us(row["ts"]), row["value"], row["quality"])
            for row in await cursor.fetchall()
        ]


async def test_every_reading_arrives_once_with_equal_values(
    cloud: Cloud, gateway: EnrolledGateway, field: Field, tmp_path: Path
) -> None:
    config = load_config(write_config(tmp_path, gateway, field))
    transport = httpx.ASGITransport(app=cloud.client._transport.app)  # the real cloud app
    daemon = Daemon(config, transport=link(transport))
    task = asyncio.create_task(daemon.run())
    # the store is readable while the daemon runs: wait until it holds a reading of every
    # meter and the cloud has heard of each polled meter's good read, however slow the machine
    deadline = asyncio.get_running_loop().time() + 90
    polled = set(field.meter_ids) - {"plug-1"}  # MQTT meters publish; they are not polled
    while (read := meters_stored(config.store_path)) != set(field.meter_ids) or not polled <= (
        heard := await meters_read_by_cloud(cloud, gateway)
    ):
        assert not task.done(), "the daemon stopped"
        assert asyncio.get_running_loop().time() < deadline, f"read {read}, heard {heard}"
        await asyncio.sleep(0.2)
    status = read_status(config.store_path)
    assert set(status["meters"]) == set(field.meter_ids)
    daemon.stopping.set()
    await asyncio.wait_for(task, 10)

    # the daemon has stopped; one more drain sends what it read last
    store = Store(config.store_path)
    stored = [(r.meter_id, r.quantity, r.ts_us, r.value, r.quality) for r in store.all_readings()]
    store.close()
    await drain(config.source, transport)

    assert {s[0] for s in stored} == set(field.meter_ids), "every meter on every transport read"
    arrived = await cloud_readings(cloud, gateway)
    missing = sorted(set(stored) - set(arrived))
    assert not missing, missing[:10]
    assert len(arrived) == len(stored)
    assert sorted(arrived) == sorted(stored)
    async with cloud.pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT kind FROM events e JOIN gateways g ON g.id = e.gateway_id"
            " WHERE g.gateway_code = %s",
            (gateway.code,),
        )
        kinds = {row["kind"] for row in await cursor.fetchall()}
        cursor = await conn.execute(
            "SELECT bus_stats FROM gateways WHERE gateway_code = %s", (gateway.code,)
        )
        buses = {b["name"]: b for b in (await cursor.fetchone())["bus_stats"]}
    assert "gateway_started" in kinds
    # the heartbeat told the cloud how each bus fares, for the gateways page
    assert set(buses) == {bus.name for bus in config.buses}
    for bus in buses.values():
        assert bus["meters"] >= 1
        assert bus["transactions"] >= bus["meters"]
    # ... and each meter, and the disk; the cloud keeps a history of it
    async with cloud.pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT meter_health, disk_used_bytes, disk_budget_bytes FROM gateways"
            " WHERE gateway_code = %s",
            (gateway.code,),
        )
        health = await cursor.fetchone()
        cursor = await conn.execute(
            "SELECT h.* FROM gateway_health h JOIN gateways g ON g.id = h.gateway_id"
            " WHERE g.gateway_code = %s",
            (gateway.code,),
        )
        history = await cursor.fetchall()
    meters = {m["meter_id"]: m for m in health["meter_health"]}
    assert set(meters) == set(field.meter_ids)
    polled = [m for m in meters.values() if m["meter_id"] != "plug-1"]
    assert all(m["last_good_read"] for m in polled)
    assert 0 < health["disk_used_bytes"] < health["disk_budget_bytes"]
    assert len(history) == 1  # one sample per five minutes, however many batches
    assert history[0]["meters"] == len(field.meter_ids)

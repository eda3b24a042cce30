"""The DLMS commands, through the real cloud app, the real daemon and simulated DLMS meters over
TCP: a backfill fills a range the gateway never read (the day before it started) from the
meter's load profile, and the cloud then holds those readings once; a set_clock corrects a
meter clock five minutes off, leaves one within the limit alone, and is refused where it must
be (a Modbus meter, a meter the gateway does not have, a gateway clock not trusted)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from edge.config import load_config
from edge.daemon import Daemon
from firmware_sim.clock import SimClock
from firmware_sim.dlms_line import DlmsTcpServer
from firmware_sim.dlms_meter import SimulatedDlmsMeter
from firmware_sim.fleet import physics_for
from tests.cloud.conftest import Cloud, EnrolledGateway, staff_headers
from tests.edge.conftest import Field
from tests.edge.test_commands import Cable, rows, until
from tests.edge.test_daemon import write_config
from tests.support.cloud_link import link

PASSWORD = "mgmt-1234"


@dataclass
class Running:
    daemon: Daemon
    task: asyncio.Task
    gateway_id: int
    meters: dict[str, int]  # external id -> the cloud's meter id
    secured: SimulatedDlmsMeter  # "dlms-lls": a DLMS meter with a management password


@pytest.fixture
async def running(
    cloud: Cloud, gateway: EnrolledGateway, field: Field, tmp_path: Path
) -> AsyncIterator[Running]:
    clock = SimClock()
    secured = SimulatedDlmsMeter(
        physics_for(31, 1, clock),
        clock,
        serial_number=31,
        password=PASSWORD.encode(),
        turnaround_s=0.002,
    )
    server = DlmsTcpServer(secured, "127.0.0.1", 0)
    await server.start()
    extra = f"""
[[buses]]
name = "dlms-2"
kind = "dlms-tcp"
host = "127.0.0.1"
tcp_port = {server.port}

[[buses.meters]]
id = "dlms-lls"
password = "{PASSWORD}"
fast_s = 0.5
slow_s = 2.0
timeout_s = 2.0
"""
    config = load_config(write_config(tmp_path, gateway, field, extra))
    config.data_dir.mkdir(parents=True, exist_ok=True)
    config.cloud_key_path.write_text(gateway.cloud_key + "\n")
    daemon = Daemon(
        config, transport=link(Cable(httpx.ASGITransport(app=cloud.client._transport.app)))
    )
    task = asyncio.create_task(daemon.run())
    try:

        async def meters() -> dict[str, int]:
            found = {
                r["external_id"]: r["id"]
                for r in await rows(
                    cloud,
                    "SELECT m.id, m.external_id FROM meters m JOIN gateways g"
                    " ON g.id = m.gateway_id WHERE g.gateway_code = %s",
                    gateway.code,
                )
            }
            return found if {"rtu-1", "dlms-1", "dlms-lls"} <= set(found) else {}

        known = await until(meters, "the gateway's meters in the cloud")
        [row] = await rows(cloud, "SELECT id FROM gateways WHERE gateway_code = %s", gateway.code)
        yield Running(daemon, task, row["id"], known, secured)
    finally:
        daemon.stopping.set()
        await asyncio.wait_for(task, 30)
        await server.stop()


async def command(cloud: Cloud, headers: dict, run: Running, **body: Any) -> dict[str, Any]:
    """Queue a command and wait for its result."""
    if "meter" in body:
        body["meter_id"] = run.meters[body.pop("meter")]
    response = await cloud.client.post(
        f"/api/v1/gateways/{run.gateway_id}/commands", json=body, headers=headers
    )
    assert response.status_code == 201, response.text

    async def done() -> list[dict]:
        return await rows(
            cloud,
            "SELECT * FROM gateway_commands WHERE id = %s"
            " AND status NOT IN ('queued', 'delivered')",
            response.json()["id"],
        )

    [row] = await until(done, f"the result of {body['kind']}", timeout=90)
    return row


def drift_s(meter: SimulatedDlmsMeter) -> float:
    now = meter.clock.now_s()
    return meter.physics.meter_clock_s(now) - now


def quarter_hour(moment: datetime) -> datetime:
    return moment.replace(minute=moment.minute // 15 * 15, second=0, microsecond=0)


async def test_a_backfill_fills_a_range_from_the_load_profile_once(
    cloud: Cloud, board: str, field: Field, running: Running
) -> None:
    admin = await staff_headers(cloud, board)
    meter_id = running.meters["dlms-1"]
    # the gateway started reading the meter just now; the meter holds a day of captures
    end = quarter_hour(datetime.now(UTC)) - timedelta(hours=2)
    start = end - timedelta(hours=3)
    query = (
        "SELECT quantity, ts, value FROM readings WHERE meter_id = %s AND ts BETWEEN %s AND %s"
        " ORDER BY ts, quantity"
    )
    assert await rows(cloud, query, meter_id, start, end) == []  # the gap

    row = await command(
        cloud,
        admin,
        running,
        kind="backfill",
        meter="dlms-1",
        start=start.isoformat(),
        end=end.isoformat(),
        reason="fill before the billing run",
    )
    assert row["status"] == "succeeded", row["detail"]
    assert row["result"]["intervals"] == 13  # three hours of quarter hours, both ends included
    # import, export, reactive and apparent energy each, rebuilt from the block energy
    assert row["result"]["stored"] == 52
    assert "13 intervals read from the meter's load profile: 52 readings stored" in row["detail"]

    truth = {datetime.fromtimestamp(c.t_s, UTC): c.values for c in field.dlms.physics.captures}

    async def filled() -> list[dict]:
        found = await rows(cloud, query, meter_id, start, end)
        return found if len(found) == 52 else []

    readings = await until(filled, "the backfilled readings in the cloud")
    assert {r["quantity"] for r in readings} == {"1.8.0", "2.8.0", "3.8.0", "9.8.0"}
    for reading in readings:
        assert reading["value"] == pytest.approx(
            truth[reading["ts"]][reading["quantity"]], abs=1e-3
        )

    # asked again (a double request, a second thought): nothing is stored twice
    again = await command(
        cloud,
        admin,
        running,
        kind="backfill",
        meter="dlms-1",
        start=start.isoformat(),
        end=end.isoformat(),
    )
    assert again["status"] == "succeeded", again["detail"]
    assert again["result"]["stored"] == 0
    assert again["result"]["already_held"] == 52
    assert "52 already held" in again["detail"]
    # the first batch was acknowledged before the command's result; nothing else was sent
    assert len(await rows(cloud, query, meter_id, start, end)) == 52

    modbus = await command(
        cloud,
        admin,
        running,
        kind="backfill",
        meter="rtu-1",
        start=start.isoformat(),
        end=end.isoformat(),
    )
    assert modbus["status"] == "refused"
    assert "not a DLMS meter" in modbus["detail"]


async def test_a_drifting_meter_clock_is_set_and_one_within_the_limit_is_left_alone(
    cloud: Cloud, board: str, field: Field, running: Running
) -> None:
    admin = await staff_headers(cloud, board)
    meter = running.secured
    meter.physics.set_meter_clock(meter.clock.now_s(), meter.clock.now_s() + 300)

    row = await command(cloud, admin, running, kind="set_clock", meter="dlms-lls")
    assert row["status"] == "succeeded", row["detail"]
    assert row["result"]["set"] is True
    assert row["result"]["drift_before_s"] == pytest.approx(300, abs=5)
    assert abs(row["result"]["drift_after_s"]) < 2
    assert row["detail"].startswith("clock set: it was +")
    assert abs(drift_s(meter)) < 2  # the simulated meter's own clock really changed

    meter.physics.set_meter_clock(meter.clock.now_s(), meter.clock.now_s() - 10)
    left = await command(cloud, admin, running, kind="set_clock", meter="dlms-lls", max_drift_s=30)
    assert left["status"] == "succeeded", left["detail"]
    assert left["result"]["set"] is False
    assert "within 30 s: clock left alone" in left["detail"]
    assert drift_s(meter) == pytest.approx(-10, abs=0.01)  # untouched

    # a meter whose password the gateway does not have (dlms-1 associates as the public
    # client): the meter refuses the write, and the result says what to configure
    field.dlms.physics.set_meter_clock(field.dlms.clock.now_s(), field.dlms.clock.now_s() + 300)
    denied = await command(cloud, admin, running, kind="set_clock", meter="dlms-1")
    assert denied["status"] == "failed"
    assert "READ_WRITE_DENIED" in denied["detail"]
    assert "password" in denied["detail"]
    assert drift_s(field.dlms) == pytest.approx(300, abs=0.01)


async def test_set_clock_is_refused_where_it_must_be(
    cloud: Cloud, board: str, running: Running
) -> None:
    admin = await staff_headers(cloud, board)
    meter = running.secured
    meter.physics.set_meter_clock(meter.clock.now_s(), meter.clock.now_s() + 300)

    modbus = await command(cloud, admin, running, kind="set_clock", meter="rtu-1")
    assert modbus["status"] == "refused"
    assert "not a DLMS meter" in modbus["detail"]

    # a meter the cloud puts on this gateway but the gateway's configuration does not have
    async with cloud.pool.connection() as conn:
        cursor = await conn.execute(
            "INSERT INTO meters (board_id, gateway_id, external_id, model)"
            " SELECT board_id, id, 'gone-1', 'dlms' FROM gateways WHERE id = %s RETURNING id",
            (running.gateway_id,),
        )
        running.meters["gone-1"] = (await cursor.fetchone())["id"]
        await conn.commit()
    gone = await command(cloud, admin, running, kind="set_clock", meter="gone-1")
    assert gone["status"] == "refused"
    assert "not a polled meter of this gateway's configuration" in gone["detail"]

    # the gateway's clock is not trusted (a Pi booted in the past): the meter is never set
    clock = running.daemon.clock
    not_before = clock.not_before
    clock.not_before = datetime.now(UTC) + timedelta(days=365)
    try:
        unsynced = await command(cloud, admin, running, kind="set_clock", meter="dlms-lls")
    finally:
        clock.not_before = not_before
    assert unsynced["status"] == "refused"
    assert "the gateway's own clock is not trusted" in unsynced["detail"]
    assert drift_s(meter) == pytest.approx(300, abs=0.01)

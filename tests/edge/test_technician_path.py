"""The technician's path, with no hand-edited TOML: `gridgate edge scan --report` on a new bus
tells the cloud what answered; an admin gives the meter to a consumer; the settings flow back
to the gateway, which applies them, and the meter's readings reach the consumer. A real
`gridgate edge scan` process, the real cloud on a port, the real daemon, a simulated meter."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import httpx

from edge.config import load_config
from edge.daemon import Daemon
from firmware_sim.clock import SimClock
from firmware_sim.fleet import MeterSpec, build_modbus_meters
from firmware_sim.tcp_server import ModbusTcpServer
from shared import write_private_key
from tests.cloud.conftest import Cloud, EnrolledGateway, staff_headers
from tests.edge.test_commands import rows, until
from tests.support.cloud_link import link


async def test_scan_report_assign_and_the_readings_follow(
    cloud: Cloud, served: httpx.AsyncClient, board: str, gateway: EnrolledGateway, tmp_path: Path
) -> None:
    tcp = ModbusTcpServer(
        build_modbus_meters([MeterSpec(5, "sdm120")], SimClock(), seed=21, turnaround_s=0.002),
        "127.0.0.1",
        0,
    )
    await tcp.start()
    write_private_key(tmp_path / "data" / "gateway.key", gateway.key)
    path = tmp_path / "edge.toml"
    path.write_text(  # a new gateway: enrolled, no buses yet
        f"""
[gateway]
id = "{gateway.code}"
data_dir = "data"

[cloud]
url = "{served.base_url}"
sync_interval_s = 0.5
retry_max_s = 2

[store]
commit_interval_s = 0.2

[clock]
require_ntp = false

[remote]
apply_grace_s = 30
"""
    )
    config = load_config(path)
    config.cloud_key_path.write_text(gateway.cloud_key + "\n")
    daemon = Daemon(config, transport=link(httpx.ASGITransport(app=cloud.client._transport.app)))
    task = asyncio.create_task(daemon.run())
    try:
        [row] = await until(
            lambda: rows(
                cloud,
                "SELECT id, board_id FROM gateways WHERE gateway_code = %s AND config_version = 0",
                gateway.code,
            ),
            "the new gateway's report",
        )
        gateway_id = row["id"]

        # the technician scans the new bus and reports it
        scan = await asyncio.to_thread(
            subprocess.run,
            [
                sys.executable, "-m", "gridgate", "edge", "scan",
                "--port", f"127.0.0.1:{tcp.port}", "--units", "1-6", "--timeout", "0.5",
                "--report", "--config", str(path), "--bus", "field-1",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )  # fmt: skip
        assert scan.returncode == 0, scan.stderr
        assert "reported 1 meter on field-1" in scan.stderr

        # the admin finds it and gives it to a consumer
        admin = await staff_headers(cloud, board)
        [found] = (
            await cloud.client.get(f"/api/v1/gateways/{gateway_id}/discoveries", headers=admin)
        ).json()
        assert (found["unit"], found["model"], found["meter_id"]) == (5, "sdm120", None)
        async with cloud.pool.connection() as conn:
            cursor = await conn.execute(
                "INSERT INTO consumers (board_id, account_no, name) VALUES (%s, %s, %s)"
                " RETURNING id",
                (row["board_id"], f"A-{gateway.code}", "Meena Iyer"),
            )
            consumer = (await cursor.fetchone())["id"]
            await conn.commit()
        response = await cloud.client.post(
            f"/api/v1/gateway-discoveries/{found['id']}/assign",
            json={"consumer_id": consumer, "fast_s": 1, "slow_s": 10},
            headers=admin,
        )
        assert response.status_code == 200, response.text
        given = response.json()
        assert given["consumer_id"] == consumer
        version = given["config_version"]

        # the settings flow back and are applied; readings follow, the consumer's
        await until(
            lambda: rows(
                cloud,
                "SELECT status FROM gateway_configs WHERE gateway_id = %s AND version = %s"
                " AND status = 'applied'",
                gateway_id,
                version,
            ),
            "the gateway applying the new settings",
            timeout=90,
        )
        bus = daemon.config.buses[0]
        assert (bus.name, bus.kind, bus.tcp_port) == ("field-1", "modbus-tcp", tcp.port)
        assert [(m.id, m.unit, m.profile) for m in bus.meters] == [(given["meter"], 5, "sdm120")]
        readings = await until(
            lambda: rows(
                cloud,
                "SELECT r.quantity FROM readings r JOIN meters m ON m.id = r.meter_id"
                " WHERE m.id = %s AND m.consumer_id = %s AND r.quality = 'ok'",
                given["meter_id"],
                consumer,
            ),
            "the meter's readings in the cloud",
        )
        assert {"1.8.0", "32.7.0"} <= {r["quantity"] for r in readings}
    finally:
        daemon.stopping.set()
        await asyncio.wait_for(task, 30)
        await tcp.stop()

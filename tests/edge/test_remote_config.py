"""A gateway's settings from the cloud, through the real cloud app, the real daemon and simulated
meters: a new version is applied with only the changed bus restarted and no reading lost; a
version the gateway cannot run is rejected (a serial port it does not have) or rolled back (a
bus where no meter answers), with the reason in the cloud and the old settings still running;
one the cloud cannot accept never leaves it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx

from edge.config import load_config
from edge.daemon import CANDIDATE_KEY, GOOD_KEY, Daemon
from edge.store import Store
from tests.cloud.conftest import Cloud, EnrolledGateway, staff_headers
from tests.edge.conftest import Field
from tests.edge.test_commands import rows, until
from tests.edge.test_daemon import drain, write_config
from tests.support.cloud_link import link

GRACE_S = 4.0


async def start(
    cloud: Cloud, gateway: EnrolledGateway, field: Field, tmp_path: Path
) -> tuple[Daemon, asyncio.Task, int]:
    """The daemon running, and the gateway's id once the cloud knows what it runs."""
    path = write_config(tmp_path, gateway, field, f"[remote]\napply_grace_s = {GRACE_S}\n")
    config = load_config(path)
    config.data_dir.mkdir(parents=True, exist_ok=True)
    config.cloud_key_path.write_text(gateway.cloud_key + "\n")  # as enrollment leaves it
    daemon = Daemon(config, transport=link(httpx.ASGITransport(app=cloud.client._transport.app)))
    task = asyncio.create_task(daemon.run())

    async def reported() -> list[dict]:
        return await rows(
            cloud,
            "SELECT id, config_version, config_settings FROM gateways WHERE gateway_code = %s"
            " AND config_settings IS NOT NULL",
            gateway.code,
        )

    [row] = await until(reported, "the gateway's report of what it runs")
    assert row["config_version"] == 0  # its own file
    return daemon, task, row["id"]


async def outcome(cloud: Cloud, gateway_id: int, version: int) -> dict:
    async def reported() -> list[dict]:
        return await rows(
            cloud,
            "SELECT status, detail FROM gateway_configs WHERE gateway_id = %s AND version = %s"
            " AND reported_at IS NOT NULL",
            gateway_id,
            version,
        )

    [row] = await until(reported, f"the gateway's word on version {version}", timeout=90)
    return row


async def propose(
    cloud: Cloud, headers: dict, gateway_id: int, settings: dict[str, Any]
) -> httpx.Response:
    return await cloud.client.put(
        f"/api/v1/gateways/{gateway_id}/config",
        json={"settings": settings, "comment": "from the test"},
        headers=headers,
    )


async def stop(daemon: Daemon, task: asyncio.Task) -> None:
    daemon.stopping.set()
    await asyncio.wait_for(task, 30)


async def test_a_new_version_applies_with_only_its_bus_restarted_and_no_reading_lost(
    cloud: Cloud, board: str, gateway: EnrolledGateway, field: Field, tmp_path: Path
) -> None:
    daemon, task, gateway_id = await start(cloud, gateway, field, tmp_path)
    try:
        admin = await staff_headers(cloud, board)
        overview = (
            await cloud.client.get(f"/api/v1/gateways/{gateway_id}/config", headers=admin)
        ).json()
        settings = overview["running"]["settings"]
        assert [b["name"] for b in settings["buses"]] == ["rs485-1", "tcp-1", "dlms-1", "mqtt-1"]
        assert overview["latest"] is None
        # the TCP meter is read faster; the voltage band is narrower
        tcp = next(b for b in settings["buses"] if b["name"] == "tcp-1")
        tcp["meters"][0]["fast_s"] = 0.25
        settings["checks"]["voltage_band"] = 0.05
        untouched = {name: daemon._bus_tasks[name] for name in ("rs485-1", "dlms-1", "mqtt-1")}
        before_tcp = daemon._bus_tasks["tcp-1"]
        response = await propose(cloud, admin, gateway_id, settings)
        assert response.status_code == 201, response.text
        assert response.json()["version"] == 1
        assert response.json()["status"] == "pending"

        assert (await outcome(cloud, gateway_id, 1))["status"] == "applied"
        assert daemon.config_version == 1
        assert daemon.config.checks.voltage_band == 0.05
        assert daemon.config.buses[1].meters[0].fast_s == 0.25
        assert daemon._bus_tasks["tcp-1"] is not before_tcp
        for name, bus_task in untouched.items():
            assert daemon._bus_tasks[name] is bus_task, f"bus {name} was restarted"
        await daemon._save_state()  # what `gridgate edge status` reads
        assert (await daemon.store(Store.get_state, "daemon"))["config_version"] == 1
        good = await daemon.store(Store.get_state, GOOD_KEY)
        assert good["version"] == 1
        assert await daemon.store(Store.get_state, CANDIDATE_KEY) is None

        # the cloud learns what runs, and shows the version applied
        async def running() -> list[dict]:
            return await rows(
                cloud,
                "SELECT config_version FROM gateways WHERE id = %s AND config_version = 1",
                gateway_id,
            )

        await until(running, "the running version in the cloud")
        # the TCP meter is read again after its bus restarted
        applied_at = (
            await rows(
                cloud,
                "SELECT reported_at FROM gateway_configs WHERE gateway_id = %s AND version = 1",
                gateway_id,
            )
        )[0]["reported_at"]

        async def read_again() -> list[dict]:
            return await rows(
                cloud,
                "SELECT 1 FROM readings r JOIN meters m ON m.id = r.meter_id"
                " WHERE m.external_id = 'tcp-1' AND r.gateway_id = %s AND r.ts > %s LIMIT 1",
                gateway_id,
                applied_at,
            )

        await until(read_again, "readings of the TCP meter after the change")
    finally:
        await stop(daemon, task)
    # the next start runs the applied version (the file still says otherwise)
    again = Daemon(load_config(daemon.local.source))
    again._open_store()
    try:
        assert again.config_version == 1
        assert again.config.buses[1].meters[0].fast_s == 0.25
        assert again.local.buses[1].meters[0].fast_s == 0.3
    finally:
        again.store.shutdown()
    # no reading lost: everything the gateway took is in the cloud, once
    await drain(daemon.local.source, httpx.ASGITransport(app=cloud.client._transport.app))
    store = Store(daemon.local.store_path)
    try:
        taken = store._conn.execute("SELECT count(*) FROM readings").fetchone()[0]
    finally:
        store.close()
    [held] = await rows(
        cloud, "SELECT count(*) AS n FROM readings WHERE gateway_id = %s", gateway_id
    )
    assert held["n"] == taken > 0


async def test_a_version_the_gateway_cannot_run_leaves_the_old_one_running(
    cloud: Cloud, board: str, gateway: EnrolledGateway, field: Field, tmp_path: Path
) -> None:
    daemon, task, gateway_id = await start(cloud, gateway, field, tmp_path)
    try:
        admin = await staff_headers(cloud, board)
        settings = (
            await cloud.client.get(f"/api/v1/gateways/{gateway_id}/config", headers=admin)
        ).json()["running"]["settings"]
        rtu = settings["buses"][0]

        # the cloud refuses what no gateway could load: an unknown model, a literal password
        wrong = {**settings, "buses": [{**rtu, "meters": [{**rtu["meters"][0], "profile": "x"}]}]}
        response = await propose(cloud, admin, gateway_id, wrong)
        assert response.status_code == 422
        assert "unknown meter model 'x'" in response.text
        dlms = settings["buses"][2]
        secret = {**dlms, "meters": [{**dlms["meters"][0], "password": "12345678"}]}
        response = await propose(
            cloud, admin, gateway_id, {**settings, "buses": [*settings["buses"][:2], secret]}
        )
        assert response.status_code == 422
        assert "password_ref" in response.text

        # a serial port this gateway does not have: rejected by the gateway, nothing stopped
        tasks = dict(daemon._bus_tasks)
        missing = {**rtu, "port": "/dev/ttyGRIDGATE9"}
        response = await propose(
            cloud, admin, gateway_id, {**settings, "buses": [missing, *settings["buses"][1:]]}
        )
        assert response.status_code == 201, response.text
        rejected = await outcome(cloud, gateway_id, 1)
        assert rejected["status"] == "rejected"
        assert "/dev/ttyGRIDGATE9 does not exist on this gateway" in rejected["detail"]
        assert daemon._bus_tasks == tasks
        assert daemon.config_version == 0

        # a bus where no meter answers (units nobody has): tried, then rolled back
        nobody = {
            **rtu,
            "meters": [{**m, "unit": 200 + i} for i, m in enumerate(rtu["meters"])],
        }
        response = await propose(
            cloud, admin, gateway_id, {**settings, "buses": [nobody, *settings["buses"][1:]]}
        )
        assert response.json()["version"] == 2
        rolled = await outcome(cloud, gateway_id, 2)
        assert rolled["status"] == "rolled_back"
        assert rolled["detail"].startswith(f"bus rs485-1: no meter answered within {GRACE_S:g} s")
        assert daemon.config_version == 0
        assert [m.unit for m in daemon.config.buses[0].meters] == [1, 2, 3]
        assert await daemon.store(Store.get_state, GOOD_KEY) is None
        assert await daemon.store(Store.get_state, CANDIDATE_KEY) is None
        # the old bus reads again, and the version is not handed over again
        runner = next(b for b in daemon.buses if b.bus.name == "rs485-1")
        meter = runner.meters[0]
        reads = meter.stats.good_reads
        await until(
            lambda: asyncio.sleep(0, meter.stats.good_reads > reads), "the old bus reading again"
        )
        overview = (
            await cloud.client.get(f"/api/v1/gateways/{gateway_id}/config", headers=admin)
        ).json()
        assert [v["status"] for v in overview["versions"]] == ["rolled_back", "rejected"]
        assert overview["running"]["version"] == 0
    finally:
        await stop(daemon, task)

"""Commands from the cloud, through the real cloud app, the real daemon and simulated meters: a
command queued while the gateway is away for a (simulated) week runs exactly once when it comes
back; its values are the readings the cloud then holds; handed over again, it is not run again;
commands that are not the cloud's (a wrong signature) are not run at all."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from edge.config import load_config
from edge.control import PREFIX
from edge.daemon import Daemon
from edge.store import Store
from shared import CLOUD_SIGNATURE_HEADER, configure_logging
from tests.cloud.conftest import Cloud, EnrolledGateway, staff_headers
from tests.edge.conftest import Field
from tests.edge.test_daemon import write_config
from tests.support.cloud_link import link


class Cable(httpx.AsyncBaseTransport):
    """The gateway's link to the in-process cloud, which the test can unplug (or make lie)."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.plugged = True
        self.forge = False  # answer control requests with a signature that is not the cloud's

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if not self.plugged:
            raise httpx.ConnectError("unplugged by the test", request=request)
        response = await self.inner.handle_async_request(request)
        if self.forge and request.url.path == "/api/v1/control/exchange":
            await response.aread()
            headers = dict(response.headers) | {CLOUD_SIGNATURE_HEADER: "A" * 86 + "=="}
            return httpx.Response(response.status_code, headers=headers, content=response.content)
        return response


async def until(check: Callable[[], Awaitable[Any]], what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = await check()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


async def rows(cloud: Cloud, query: str, *params: Any) -> list[dict]:
    async with cloud.pool.connection() as conn:
        cursor = await conn.execute(query, params)
        return await cursor.fetchall()


async def start(
    cloud: Cloud, gateway: EnrolledGateway, field: Field, tmp_path: Path
) -> tuple[Daemon, Cable, asyncio.Task]:
    config = load_config(write_config(tmp_path, gateway, field))
    config.data_dir.mkdir(parents=True, exist_ok=True)
    config.cloud_key_path.write_text(gateway.cloud_key + "\n")  # as enrollment leaves it
    cable = Cable(httpx.ASGITransport(app=cloud.client._transport.app))
    daemon = Daemon(config, transport=link(cable))
    task = asyncio.create_task(daemon.run())

    async def meter_known() -> list[dict]:
        return await rows(
            cloud,
            "SELECT m.id FROM meters m JOIN gateways g ON g.id = m.gateway_id"
            " WHERE g.gateway_code = %s AND m.external_id = 'rtu-1'",
            gateway.code,
        )

    await until(meter_known, "the gateway's first readings")
    return daemon, cable, task


async def test_a_command_queued_while_away_runs_once_when_the_gateway_returns(
    cloud: Cloud, board: str, gateway: EnrolledGateway, field: Field, tmp_path: Path
) -> None:
    configure_logging("INFO", json_output=True)  # as `gridgate edge run` does: the log it keeps
    daemon, cable, task = await start(cloud, gateway, field, tmp_path)
    try:
        admin = await staff_headers(cloud, board)
        [found] = await rows(
            cloud,
            "SELECT g.id AS gateway, m.id AS meter FROM meters m JOIN gateways g"
            " ON g.id = m.gateway_id WHERE g.gateway_code = %s AND m.external_id = 'rtu-1'",
            gateway.code,
        )
        cable.plugged = False
        failures = daemon.syncer.stats.failures
        await until(
            lambda: asyncio.sleep(0, daemon.syncer.stats.failures > failures), "a failed sync"
        )
        queued = []
        for body in (
            {"kind": "read_now", "meter_id": found["meter"], "quantities": ["1.8.0", "32.7.0"]},
            {"kind": "upload_log", "lines": 50},
            {"kind": "doctor"},
        ):
            response = await cloud.client.post(
                f"/api/v1/gateways/{found['gateway']}/commands",
                json={**body, "expires_in_h": 200, "reason": "monthly check"},
                headers=admin,
            )
            assert response.status_code == 201, response.text
            assert response.json()["status"] == "queued"
            queued.append(response.json())
        async with cloud.pool.connection() as conn:  # a week passes while the gateway is away
            await conn.execute(
                "UPDATE gateway_commands SET created_at = created_at - interval '7 days'"
                " WHERE id = ANY(%s)",
                ([q["id"] for q in queued],),
            )
            await conn.commit()
        failures = daemon.syncer.stats.failures
        await until(
            lambda: asyncio.sleep(0, daemon.syncer.stats.failures >= failures + 2),
            "two more failed syncs",
        )
        waiting = await rows(
            cloud,
            "SELECT status FROM gateway_commands WHERE id = ANY(%s)",
            [q["id"] for q in queued],
        )
        assert {r["status"] for r in waiting} == {"queued"}

        cable.plugged = True

        async def finished() -> list[dict]:
            found = await rows(
                cloud,
                "SELECT * FROM gateway_commands WHERE id = ANY(%s) ORDER BY id",
                [q["id"] for q in queued],
            )
            return found if all(r["status"] not in ("queued", "delivered") for r in found) else []

        done = await until(finished, "the commands' results")
        assert [r["status"] for r in done] == ["succeeded"] * 3, [r["detail"] for r in done]
        read, logged, doctored = done
        assert daemon.controller.ran == 3
        values = read["result"]["values"]
        assert set(values) == {"1.8.0", "32.7.0"}
        lines = logged["result"]["lines"]
        assert 1 <= len(lines) <= 50
        assert any('"running a command"' in line for line in lines)
        assert logged["detail"].endswith("lines")
        assert {f["check"] for f in doctored["result"]["findings"]} >= {"clock", "disk", "key"}

        # what was read now was stored and synced like any reading
        async def stored() -> dict[str, float]:
            synced = {}
            for quantity, at in read["result"]["at"].items():
                for row in await rows(
                    cloud,
                    "SELECT value FROM readings WHERE meter_id = %s AND quantity = %s AND ts = %s",
                    found["meter"],
                    quantity,
                    at,
                ):
                    synced[quantity] = row["value"]
            return synced if len(synced) == len(values) else {}

        assert await until(stored, "the values read now, in the cloud") == values

        # the answer was lost: the cloud hands the command over again; it is not run again
        async with cloud.pool.connection() as conn:
            await conn.execute(
                "UPDATE gateway_commands SET status = 'delivered', result = NULL WHERE id = %s",
                (read["id"],),
            )
            await conn.commit()
        daemon.controller.wake.set()

        async def reported_again() -> list[dict]:
            found = await rows(
                cloud, "SELECT status, result FROM gateway_commands WHERE id = %s", read["id"]
            )
            return found if found[0]["status"] == "succeeded" else []

        [again] = await until(reported_again, "the result reported again")
        assert again["result"] == read["result"]
        assert daemon.controller.ran == 3
    finally:
        daemon.stopping.set()
        await asyncio.wait_for(task, 30)


async def test_commands_not_signed_by_the_cloud_are_not_run(
    cloud: Cloud, board: str, gateway: EnrolledGateway, field: Field, tmp_path: Path
) -> None:
    daemon, cable, task = await start(cloud, gateway, field, tmp_path)
    try:
        admin = await staff_headers(cloud, board)
        [found] = await rows(cloud, "SELECT id FROM gateways WHERE gateway_code = %s", gateway.code)
        cable.forge = True
        response = await cloud.client.post(
            f"/api/v1/gateways/{found['id']}/commands", json={"kind": "doctor"}, headers=admin
        )
        assert response.status_code == 201, response.text
        await until(
            lambda: asyncio.sleep(
                0, "not signed by the cloud" in (daemon.controller.last_error or "")
            ),
            "the gateway to refuse the forged answer",
        )
        commands = await daemon.store(Store.state_items, PREFIX)
        assert commands == {}
        assert daemon.controller.ran == 0
        cable.forge = False  # the real cloud's answer is taken
        await until(
            lambda: rows(
                cloud,
                "SELECT status FROM gateway_commands WHERE id = %s AND status = 'succeeded'",
                response.json()["id"],
            ),
            "the doctor's report",
        )
        assert daemon.controller.ran == 1
    finally:
        daemon.stopping.set()
        await asyncio.wait_for(task, 30)


@pytest.mark.parametrize("kind", ["read_now"])
async def test_a_command_for_a_meter_elsewhere_is_refused_in_the_cloud(
    cloud: Cloud, board: str, gateway: EnrolledGateway, kind: str
) -> None:
    admin = await staff_headers(cloud, board)
    [found] = await rows(
        cloud, "SELECT id, board_id FROM gateways WHERE gateway_code = %s", gateway.code
    )
    async with cloud.pool.connection() as conn:
        cursor = await conn.execute(
            "INSERT INTO meters (board_id, external_id, model) VALUES (%s, 'loose-1', 'sdm120')"
            " RETURNING id",
            (found["board_id"],),
        )
        meter = (await cursor.fetchone())["id"]
        await conn.commit()
    url = f"/api/v1/gateways/{found['id']}/commands"
    response = await cloud.client.post(url, json={"kind": kind, "meter_id": meter}, headers=admin)
    assert response.status_code == 422
    assert "is not read by gateway" in response.json()["detail"]
    response = await cloud.client.post(url, json={"kind": kind}, headers=admin)
    assert response.status_code == 422
    assert "which meter" in response.json()["detail"]
    response = await cloud.client.post(
        url, json={"kind": "doctor", "expires_in_h": 0}, headers=admin
    )
    assert response.status_code == 422
    response = await cloud.client.post(url, json={"kind": "format_disk"}, headers=admin)
    assert response.status_code == 422
    # a request sent twice (a double click, a retry after a lost answer) queues one command
    twice = [
        await cloud.client.post(
            url, json={"kind": "doctor"}, headers=admin | {"Idempotency-Key": "check-42"}
        )
        for _ in range(2)
    ]
    assert twice[0].status_code == twice[1].status_code == 201
    assert twice[0].json()["id"] == twice[1].json()["id"]
    queued = await cloud.client.post(url, json={"kind": "doctor"}, headers=admin)
    cancelled = await cloud.client.post(
        f"/api/v1/gateway-commands/{queued.json()['id']}/cancel", headers=admin
    )
    assert cancelled.json()["status"] == "cancelled"
    again = await cloud.client.post(
        f"/api/v1/gateway-commands/{queued.json()['id']}/cancel", headers=admin
    )
    assert again.status_code == 409
    assert "only a command the gateway has not been handed yet" in again.json()["detail"]


async def test_a_supply_is_cut_and_restored_at_the_meter(
    cloud: Cloud, board: str, gateway: EnrolledGateway, field: Field, tmp_path: Path
) -> None:
    daemon, _cable, task = await start(cloud, gateway, field, tmp_path)
    try:
        admin = await staff_headers(cloud, board)
        await until(
            lambda: rows(
                cloud,
                "SELECT 1 FROM meters m JOIN gateways g ON g.id = m.gateway_id"
                " WHERE g.gateway_code = %s AND m.external_id = 'dlms-1'",
                gateway.code,
            ),
            "the DLMS meter in the cloud",
        )
        meters = {
            r["external_id"]: r["id"]
            for r in await rows(
                cloud,
                "SELECT m.id, m.external_id FROM meters m JOIN gateways g ON g.id = m.gateway_id"
                " WHERE g.gateway_code = %s",
                gateway.code,
            )
        }

        async def switched(action: str, meter: str) -> dict:
            response = await cloud.client.post(
                f"/api/v1/meters/{meters[meter]}/supply",
                json={"action": action, "reason": "dues unpaid after the final notice"},
                headers=admin,
            )
            assert response.status_code == 201, response.text

            async def done() -> list[dict]:
                found = await rows(
                    cloud,
                    "SELECT * FROM gateway_commands WHERE id = %s"
                    " AND status NOT IN ('queued', 'delivered')",
                    response.json()["id"],
                )
                return found

            [row] = await until(done, f"the {action} of {meter}")
            return row

        cut = await switched("disconnect", "dlms-1")
        assert cut["status"] == "succeeded", cut["detail"]
        assert cut["result"] == {"connected": False, "control_state": "disconnected"}
        assert field.dlms.physics.faults.relay_open
        restored = await switched("reconnect", "dlms-1")
        assert restored["result"] == {"connected": True, "control_state": "connected"}
        assert not field.dlms.physics.faults.relay_open
        modbus = await switched("disconnect", "rtu-1")  # no relay the gateway can drive
        assert modbus["status"] == "refused"
        assert "no supply relay" in modbus["detail"]
        async with cloud.pool.connection() as conn:
            cursor = await conn.execute(
                "SELECT after FROM audit_log WHERE action = 'queue_command'"
                " AND after->>'kind' IN ('disconnect', 'reconnect') ORDER BY id DESC LIMIT 3"
            )
            reasons = {row["after"]["reason"] for row in await cursor.fetchall()}
        assert reasons == {"dues unpaid after the final notice"}
        # a reason is required; a technician may not cut a supply
        response = await cloud.client.post(
            f"/api/v1/meters/{meters['dlms-1']}/supply",
            json={"action": "disconnect", "reason": ""},
            headers=admin,
        )
        assert response.status_code == 422
        technician = await staff_headers(cloud, board, "TECHNICIAN")
        response = await cloud.client.post(
            f"/api/v1/meters/{meters['dlms-1']}/supply",
            json={"action": "disconnect", "reason": "testing the relay"},
            headers=technician,
        )
        assert response.status_code == 403
    finally:
        daemon.stopping.set()
        await asyncio.wait_for(task, 30)


async def test_a_restart_is_reported_then_the_daemon_stops_cleanly(
    cloud: Cloud, board: str, gateway: EnrolledGateway, field: Field, tmp_path: Path
) -> None:
    daemon, _cable, task = await start(cloud, gateway, field, tmp_path)
    admin = await staff_headers(cloud, board)
    [found] = await rows(cloud, "SELECT id FROM gateways WHERE gateway_code = %s", gateway.code)
    response = await cloud.client.post(
        f"/api/v1/gateways/{found['id']}/commands",
        json={"kind": "restart", "reason": "new certificate installed"},
        headers=admin,
    )
    assert response.status_code == 201, response.text
    # the daemon stops by itself (systemd's Restart=always starts it again) ...
    await asyncio.wait_for(task, 60)
    assert daemon.stopping.is_set()
    # ... having told the cloud first
    [row] = await rows(
        cloud, "SELECT status, detail FROM gateway_commands WHERE id = %s", response.json()["id"]
    )
    assert row["status"] == "succeeded"
    assert "restarting" in row["detail"]

"""Alerts: from gateway events (deduplicated, cleared at the source), the cloud's own checks,
the lifecycle with audit, statistics, and the live stream filtered by scope."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta

import httpx

from cloud.services.cloud_checks import CheckSettings, run_checks
from shared import Batch, Event, EventStatus, Reading, Severity, seal_batch
from tests.cloud.conftest import Cloud, EnrolledGateway, enroll_gateway, staff_headers

PASSWORD = "correct horse battery"
NOW = datetime.now(UTC).replace(microsecond=0)


async def send(
    cloud: Cloud,
    gateway: EnrolledGateway,
    events: list[tuple[int, str, EventStatus, Severity]] = (),
    readings: list[Reading] = (),
) -> None:
    batch_events = [
        Event(
            seq=seq,
            ts=NOW - timedelta(minutes=5),
            kind=kind,
            status=status,
            severity=severity,
            meter_id="m-1",
            message=f"{kind} {status}",
        )
        for seq, kind, status, severity in events
    ]
    seqs = [e.seq for e in batch_events] + [r.seq for r in readings]
    batch = Batch(
        gateway_id=gateway.code,
        batch_id=uuid.uuid4(),
        first_seq=min(seqs),
        last_seq=max(seqs),
        sent_at=NOW,
        readings=list(readings),
        events=batch_events,
    )
    sealed = seal_batch(batch, gateway.key)
    response = await cloud.client.post(
        "/api/v1/ingest/batches", content=sealed.body, headers=sealed.headers
    )
    assert response.status_code == 200, response.text


async def admin_of(cloud: Cloud, board: str) -> dict[str, str]:
    return await staff_headers(cloud, board)


async def alerts_of(cloud: Cloud, headers: dict[str, str], **filters: str) -> list[dict]:
    query = "&".join(f"{k}={v}" for k, v in filters.items())
    response = await cloud.client.get(f"/api/v1/alerts?limit=200&{query}", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["items"]


async def test_gateway_events_open_count_and_clear_alerts(
    cloud: Cloud, gateway: EnrolledGateway
) -> None:
    headers = await admin_of(cloud, gateway.board)
    await send(cloud, gateway, [(1, "voltage_sag", EventStatus.RAISED, Severity.MEDIUM)])
    [alert] = await alerts_of(cloud, headers)
    assert (alert["kind"], alert["state"], alert["source"], alert["occurrences"]) == (
        "voltage_sag",
        "active",
        "edge",
        1,
    )
    assert alert["subject"] == f"meter:{alert['meter_id']}"
    # seen again (a new event): the same alert, counted; a resent batch changes nothing
    await send(cloud, gateway, [(2, "voltage_sag", EventStatus.RAISED, Severity.MEDIUM)])
    await send(cloud, gateway, [(2, "voltage_sag", EventStatus.RAISED, Severity.MEDIUM)])
    [alert] = await alerts_of(cloud, headers)
    assert alert["occurrences"] == 2
    # a one-shot notice of high severity needs a person; a low one does not
    await send(
        cloud,
        gateway,
        [
            (3, "register_backwards", EventStatus.NOTICE, Severity.HIGH),
            (4, "backfill", EventStatus.NOTICE, Severity.INFO),
        ],
    )
    kinds = {a["kind"] for a in await alerts_of(cloud, headers, state="active")}
    assert kinds == {"voltage_sag", "register_backwards"}
    await send(cloud, gateway, [(5, "voltage_sag", EventStatus.CLEARED, Severity.MEDIUM)])
    [cleared] = await alerts_of(cloud, headers, kind="voltage_sag")
    assert cleared["state"] == "resolved"
    assert cleared["resolved_by"] == f"gateway:{gateway.code}"


async def test_the_lifecycle_is_audited_and_scoped(
    cloud: Cloud, gateway: EnrolledGateway, board: str
) -> None:
    headers = await admin_of(cloud, gateway.board)
    await send(cloud, gateway, [(1, "phase_loss", EventStatus.RAISED, Severity.HIGH)])
    [alert] = await alerts_of(cloud, headers)
    url = f"/api/v1/alerts/{alert['id']}"
    # another board's admin can neither see nor touch it
    other = await admin_of(cloud, (await _another_board(cloud)))
    assert (await cloud.client.get(url, headers=other)).status_code == 404
    assert (
        await cloud.client.post(f"{url}/acknowledge", json={"note": "x"}, headers=other)
    ).status_code == 404
    acked = await cloud.client.post(
        f"{url}/acknowledge", json={"note": "crew sent"}, headers=headers
    )
    assert acked.json()["state"] == "acknowledged"
    assert acked.json()["acknowledge_note"] == "crew sent"
    again = await cloud.client.post(f"{url}/acknowledge", json={}, headers=headers)
    assert again.status_code == 409
    resolved = await cloud.client.post(
        f"{url}/resolve", json={"note": "fuse replaced"}, headers=headers
    )
    assert resolved.json()["state"] == "resolved"
    assert resolved.json()["resolved_by"].startswith("user:")
    stats = (await cloud.client.get("/api/v1/alerts/statistics", headers=headers)).json()
    assert stats["by_state"] == {"resolved": 1}
    async with cloud.pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT action, before->>'state' AS before, after->>'state' AS after FROM audit_log"
            " WHERE entity = 'alert' AND entity_id = %s ORDER BY id",
            (str(alert["id"]),),
        )
        rows = await cursor.fetchall()
    assert [(r["action"], r["before"], r["after"]) for r in rows] == [
        ("acknowledge", "active", "acknowledged"),
        ("resolve", "acknowledged", "resolved"),
    ]


async def _another_board(cloud: Cloud) -> str:
    from cloud.services import fleet

    code = f"OT-{uuid.uuid4().hex[:6].upper()}"
    async with cloud.pool.connection() as conn:
        await fleet.create_board(conn, state_code="TS", code=code, name="Other", actor="t")
    return code


async def test_the_clouds_own_checks(cloud: Cloud, gateway: EnrolledGateway) -> None:
    headers = await admin_of(cloud, gateway.board)
    # two meters drawing 5 kW each on a board of 10 kW capacity: 100 % > 90 %
    async with cloud.pool.connection() as conn:
        await conn.execute("UPDATE boards SET capacity_kw = 10 WHERE code = %s", (gateway.board,))
        await conn.commit()
    readings = [
        Reading(
            seq=100 + i,
            meter_id=f"m-{i % 2}",
            quantity="1.7.0",
            ts=NOW - timedelta(minutes=i),
            value=5.0,
        )
        for i in range(10)
    ]
    await send(cloud, gateway, readings=readings)
    settings = CheckSettings(gateway_silent_s=600, meter_missing_s=3600)
    async with cloud.pool.connection() as conn:
        first = await run_checks(conn, NOW, settings)
    assert first["regional_overload"] == 0  # one window over capacity is not yet an overload
    async with cloud.pool.connection() as conn:
        second = await run_checks(conn, NOW + timedelta(seconds=1), settings)
    assert second["regional_overload"] >= 1
    overload = await alerts_of(cloud, headers, kind="regional_overload")
    assert [a["state"] for a in overload] == ["active"]
    assert overload[0]["source"] == "cloud"
    # an hour later: nothing read since -> meters missing, the gateway silent; the load gone
    later = NOW + timedelta(hours=1, minutes=5)
    async with cloud.pool.connection() as conn:
        await conn.execute(
            "UPDATE gateways SET last_seen_at = %s, clock_synced = false WHERE gateway_code = %s",
            (NOW, gateway.code),
        )
        await conn.commit()
        await run_checks(conn, later, settings)
    kinds = {a["kind"]: a["state"] for a in await alerts_of(cloud, headers)}
    assert kinds["regional_overload"] == "resolved"
    assert kinds["gateway_silent"] == "active"
    assert kinds["gateway_clock_unsynced"] == "active"
    assert kinds["meter_data_missing"] == "active"
    missing = await alerts_of(cloud, headers, kind="meter_data_missing")
    assert len(missing) == 2  # one per meter
    # the gateway's backlog grows over three runs
    for step, backlog in enumerate((100, 200, 300, 400)):
        async with cloud.pool.connection() as conn:
            await conn.execute(
                "UPDATE gateways SET backlog_readings = %s, last_seen_at = %s,"
                " clock_synced = true WHERE gateway_code = %s",
                (backlog, later, gateway.code),
            )
            await conn.commit()
            found = await run_checks(conn, later + timedelta(minutes=step), settings)
    assert found["backlog_growing"] == 1
    kinds = {a["kind"]: a["state"] for a in await alerts_of(cloud, headers, source="cloud")}
    assert kinds["gateway_silent"] == "resolved"
    assert kinds["gateway_clock_unsynced"] == "resolved"
    assert kinds["backlog_growing"] == "active"


async def test_the_live_stream_shows_only_the_viewers_scope(
    cloud: Cloud, board: str, served: httpx.AsyncClient
) -> None:
    mine = await enroll_gateway(cloud, board)
    theirs = await enroll_gateway(cloud, await _another_board(cloud))
    headers = await admin_of(cloud, board)
    seen: list[dict] = []
    ready = asyncio.Event()

    async def listen() -> None:
        async with served.stream("GET", "/api/v1/alerts/stream", headers=headers) as response:
            assert response.status_code == 200
            event = None
            async for line in response.aiter_lines():
                if line.startswith("event:"):
                    event = line.split(":", 1)[1].strip()
                    if event == "ready":
                        ready.set()
                elif line.startswith("data:") and event == "alert":
                    seen.append(json.loads(line.split(":", 1)[1]))

    task = asyncio.create_task(listen())
    await asyncio.wait_for(ready.wait(), 10)
    await send(cloud, theirs, [(1, "outage", EventStatus.RAISED, Severity.HIGH)])
    await send(cloud, mine, [(1, "voltage_swell", EventStatus.RAISED, Severity.MEDIUM)])
    [alert] = await alerts_of(cloud, headers)
    await served.post(
        f"/api/v1/alerts/{alert['id']}/acknowledge", json={"note": "on it"}, headers=headers
    )
    for _ in range(50):
        if len(seen) >= 2:
            break
        await asyncio.sleep(0.1)
    task.cancel()
    assert [(a["kind"], a["state"]) for a in seen] == [
        ("voltage_swell", "active"),
        ("voltage_swell", "acknowledged"),
    ]

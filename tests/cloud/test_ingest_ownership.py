"""What a gateway may write: its assigned meters, and meters the cloud has never seen (which then
await an admin's confirmation). Anything else is refused per meter in the acknowledgement, the
rest of the batch is stored, and the gateway records the refusal as an event.

Regression: a gateway's signed batch with readings for a meter of another gateway of the same
board was accepted (and those registers feed bills); a batch naming an unknown meter silently
created one.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from edge.config import load_config
from edge.store import NewReading, Store
from edge.sync import Syncer
from shared import Batch, Heartbeat, Quality, Reading, seal_batch, write_private_key
from tests.cloud.conftest import (
    Cloud,
    EnrolledGateway,
    enroll_gateway,
    staff_headers,
    staff_token,
)
from tests.support.cloud_link import link

URL = "/api/v1/ingest/batches"
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=6)


def batch_of(gateway: EnrolledGateway, meters: dict[str, int], first_seq: int = 1) -> bytes:
    readings, seq = [], first_seq
    for meter, count in meters.items():
        for i in range(count):
            readings.append(
                Reading(
                    seq=seq,
                    meter_id=meter,
                    quantity="1.8.0",
                    ts=T0 + timedelta(minutes=15 * i),
                    value=100.0 + i,
                )
            )
            seq += 1
    batch = Batch(
        gateway_id=gateway.code,
        batch_id=uuid.uuid4(),
        first_seq=first_seq,
        last_seq=seq - 1,
        sent_at=datetime.now(UTC),
        readings=readings,
        events=[],
        heartbeat=Heartbeat(software_version="0.1.0", backlog_readings=0, clock_synced=True),
    )
    return seal_batch(batch, gateway.key)


async def _meter(cloud: Cloud, board: str, external: str, gateway: str | None) -> int:
    async with cloud.pool.connection() as conn:
        cursor = await conn.execute(
            "INSERT INTO meters (board_id, external_id, gateway_id, confirmed_at)"
            " SELECT b.id, %s, (SELECT id FROM gateways WHERE gateway_code = %s), now()"
            " FROM boards b WHERE b.code = %s RETURNING id",
            (external, gateway, board),
        )
        meter_id = (await cursor.fetchone())["id"]
        await conn.commit()
    return meter_id


async def _readings(cloud: Cloud, meter_id: int) -> int:
    async with cloud.pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT count(*) AS n FROM readings WHERE meter_id = %s", (meter_id,)
        )
        return (await cursor.fetchone())["n"]


async def test_readings_of_another_gateways_meter_are_refused_the_rest_stored(
    cloud: Cloud, board: str
) -> None:
    mine, theirs = await enroll_gateway(cloud, board), await enroll_gateway(cloud, board)
    own = await _meter(cloud, board, "own-1", mine.code)
    foreign = await _meter(cloud, board, "theirs-1", theirs.code)
    idle = await _meter(cloud, board, "idle-1", None)
    sealed = batch_of(mine, {"own-1": 4, "theirs-1": 3, "idle-1": 2})
    response = await cloud.client.post(URL, content=sealed.body, headers=sealed.headers)
    assert response.status_code == 200, response.text
    ack = response.json()
    assert ack["acked_through_seq"] == 9
    assert ack["readings_new"] == 4
    refused = {r["meter_id"]: r for r in ack["refused"]}
    assert refused["theirs-1"]["readings"] == 3
    assert "another gateway" in refused["theirs-1"]["reason"]
    assert refused["idle-1"]["readings"] == 2
    assert "not assigned to this gateway" in refused["idle-1"]["reason"]
    assert (await _readings(cloud, own), await _readings(cloud, foreign)) == (4, 0)
    assert await _readings(cloud, idle) == 0
    replay = await cloud.client.post(URL, content=sealed.body, headers=sealed.headers)
    assert replay.json()["refused"] == ack["refused"]  # a lost answer is given again


async def test_an_answer_without_refusals_has_no_refused_field(
    cloud: Cloud, gateway: EnrolledGateway, board: str
) -> None:
    """Gateways from before the field existed read answers with unknown fields as errors."""
    await _meter(cloud, board, "plain-1", gateway.code)
    sealed = batch_of(gateway, {"plain-1": 2})
    response = await cloud.client.post(URL, content=sealed.body, headers=sealed.headers)
    assert "refused" not in response.json()


async def test_an_unknown_meter_is_kept_for_an_admin_to_confirm(
    cloud: Cloud, gateway: EnrolledGateway, board: str
) -> None:
    sealed = batch_of(gateway, {"found-on-bus": 3})
    response = await cloud.client.post(URL, content=sealed.body, headers=sealed.headers)
    assert response.json()["readings_new"] == 3
    headers = await staff_headers(cloud, board)
    waiting = await cloud.client.get("/api/v1/meters?confirmed=false", headers=headers)
    assert [m["external_id"] for m in waiting.json()["items"]] == ["found-on-bus"]
    meter = waiting.json()["items"][0]
    assert meter["confirmed_at"] is None
    confirmed = await cloud.client.post(f"/api/v1/meters/{meter['id']}/confirm", headers=headers)
    assert confirmed.status_code == 200
    assert confirmed.json()["confirmed_at"] is not None
    again = await cloud.client.post(f"/api/v1/meters/{meter['id']}/confirm", headers=headers)
    assert again.status_code == 409
    waiting = await cloud.client.get("/api/v1/meters?confirmed=false", headers=headers)
    assert waiting.json()["total"] == 0


async def test_the_gateway_records_a_refusal_as_an_event(
    cloud: Cloud, board: str, tmp_path: Path
) -> None:
    mine, theirs = await enroll_gateway(cloud, board), await enroll_gateway(cloud, board)
    await _meter(cloud, board, "taken-1", theirs.code)
    write_private_key(tmp_path / "data" / "gateway.key", mine.key)
    config_path = tmp_path / "edge.toml"
    config_path.write_text(
        f'[gateway]\nid = "{mine.code}"\n\n[cloud]\nurl = "http://cloud"\nretry_max_s = 1\n'
        "\n[clock]\nrequire_ntp = false\n"
    )
    config = load_config(config_path)
    store = Store(config.store_path)

    async def store_call(method, *args):  # the daemon runs these in the store's thread
        return method(store, *args)

    store.append(
        [
            NewReading(
                meter_id=meter,
                quantity="1.8.0",
                ts=T0 + timedelta(minutes=i),
                value=10.0 + i,
                quality=Quality.OK,
            )
            for meter in ("fresh-1", "taken-1")
            for i in range(3)
        ]
    )
    sync = Syncer(
        gateway_id=mine.code,
        config=config.cloud,
        key=mine.key,
        store_call=store_call,
        clock_state=lambda: (True, 0.0),
        transport=link(httpx.ASGITransport(app=cloud.client._transport.app)),  # type: ignore[attr-defined]
    )
    await sync.drain()  # the readings: one meter's are refused, and the gateway notes it
    await sync.drain()  # the note goes up as an event, like any other
    await sync.close()
    events = [e for e in store.recent_events(50) if e.kind == "readings_refused"]
    assert [(e.meter_id, e.details["readings"]) for e in events] == [("taken-1", 3)]
    assert store.backlog()[0] == 0  # acknowledged: nothing is sent again
    store.close()
    async with cloud.pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT kind, state FROM alerts a JOIN gateways g ON g.id = a.gateway_id"
            " WHERE g.gateway_code = %s",
            (mine.code,),
        )
        assert [(r["kind"], r["state"]) for r in await cursor.fetchall()] == [
            ("readings_refused", "active")
        ]


async def test_a_discovered_meter_given_to_another_gateway_keeps_no_trusted_readings(
    cloud: Cloud, board: str
) -> None:
    """A gateway could claim a serial number before the meter is installed, with readings
    years back: when an admin gives the discovered meter to another gateway, what the first one
    wrote is kept but marked suspect, which billing leaves out."""
    claimant, installer = await enroll_gateway(cloud, board), await enroll_gateway(cloud, board)
    sealed = batch_of(claimant, {"SN-NEW": 3})
    assert (await cloud.client.post(URL, content=sealed.body, headers=sealed.headers)).json()[
        "readings_new"
    ] == 3
    async with cloud.pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT m.id, g.id AS installer FROM meters m, gateways g"
            " WHERE m.external_id = 'SN-NEW' AND g.gateway_code = %s",
            (installer.code,),
        )
        row = await cursor.fetchone()
    token = await staff_token(cloud, board)
    moved = await cloud.client.post(
        f"/api/v1/meters/{row['id']}/assign",
        json={"gateway_id": row["installer"]},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert moved.status_code == 200, moved.text
    async with cloud.pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT quality, count(*) AS n FROM readings WHERE meter_id = %s GROUP BY 1",
            (row["id"],),
        )
        assert {r["quality"]: r["n"] for r in await cursor.fetchall()} == {"suspect": 3}
        cursor = await conn.execute(
            "SELECT after FROM audit_log WHERE entity = 'meter' AND entity_id = %s"
            " AND action = 'quarantine'",
            (str(row["id"]),),
        )
        assert (await cursor.fetchone())["after"]["readings"] == 3

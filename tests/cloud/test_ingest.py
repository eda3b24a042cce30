"""Ingest: signed batches stored exactly once; every kind of bad batch refused, nothing written."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import math
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import structlog.testing

from cloud.services import enrollment
from shared import (
    GATEWAY_HEADER,
    SIGNATURE_HEADER,
    Batch,
    Event,
    EventStatus,
    Heartbeat,
    Reading,
    Severity,
    compress,
    encode_batch,
    generate_private_key,
    seal_batch,
    sign_body,
)
from tests.cloud.conftest import Cloud, EnrolledGateway

URL = "/api/v1/ingest/batches"
RACE_LOST = "a reading was already there; skipping stored ones"  # services/ingest_readings.py
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)


def make_batch(
    gateway: str, first_seq: int = 1, count: int = 30, meter: str = "m-1", events: int = 1
) -> Batch:
    readings = [
        Reading(
            seq=first_seq + i,
            meter_id=meter,
            quantity=("1.8.0", "16.7.0", "32.7.0")[i % 3],
            ts=T0 + timedelta(minutes=i // 3),
            value=1000 + i * 0.125,
        )
        for i in range(count)
    ]
    evts = [
        Event(
            seq=first_seq + count + i,
            ts=T0,
            kind="voltage_sag",
            status=EventStatus.RAISED,
            severity=Severity.MEDIUM,
            meter_id=meter,
            message="sag",
            details={"v": 201.5},
        )
        for i in range(events)
    ]
    last = first_seq + count + events - 1
    return Batch(
        gateway_id=gateway,
        batch_id=uuid.uuid4(),
        first_seq=first_seq,
        last_seq=last,
        sent_at=datetime.now(UTC),
        readings=readings,
        events=evts,
        heartbeat=Heartbeat(
            software_version="0.1.0", backlog_readings=42, clock_synced=True, clock_offset_s=0.01
        ),
    )


async def post(cloud: Cloud, body: bytes, headers: dict[str, str]):
    return await cloud.client.post(URL, content=body, headers=headers)


async def count_rows(cloud: Cloud, gateway: str) -> tuple[int, int]:
    async with cloud.pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT (SELECT count(*) FROM readings r JOIN gateways g ON g.id = r.gateway_id"
            "        WHERE g.gateway_code = %s) AS readings,"
            " (SELECT count(*) FROM events e JOIN gateways g ON g.id = e.gateway_id"
            "        WHERE g.gateway_code = %s) AS events",
            (gateway, gateway),
        )
        row = await cursor.fetchone()
        return row["readings"], row["events"]


@pytest.mark.parametrize("encoding", ["zstd", "gzip", "identity"])
async def test_a_batch_is_stored_and_acknowledged(
    cloud: Cloud, gateway: EnrolledGateway, encoding: str
) -> None:
    batch = make_batch(gateway.code)
    sealed = seal_batch(batch, gateway.key, encoding)  # type: ignore[arg-type]
    response = await post(cloud, sealed.body, sealed.headers)
    assert response.status_code == 200, response.text
    ack = response.json()
    assert ack["acked_through_seq"] == batch.last_seq
    assert ack["readings_new"] == 30
    assert ack["events_new"] == 1
    async with cloud.pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT m.external_id, m.consumer_id, r.quantity, r.ts, r.value FROM readings r"
            " JOIN meters m ON m.id = r.meter_id JOIN gateways g ON g.id = r.gateway_id"
            " WHERE g.gateway_code = %s ORDER BY r.ts, r.quantity",
            (gateway.code,),
        )
        rows = await cursor.fetchall()
        stored = {(r["quantity"], r["ts"]): r["value"] for r in rows}
        assert stored == {(x.quantity, x.ts): x.value for x in batch.readings}
        assert {r["external_id"] for r in rows} == {"m-1"}
        assert all(r["consumer_id"] is None for r in rows)  # first seen: unassigned
        cursor = await conn.execute(
            "SELECT acked_through_seq, backlog_readings, clock_synced, software_version,"
            " last_seen_at FROM gateways WHERE gateway_code = %s",
            (gateway.code,),
        )
        heartbeat = await cursor.fetchone()
        assert heartbeat["acked_through_seq"] == batch.last_seq
        assert heartbeat["backlog_readings"] == 42
        assert heartbeat["software_version"] == "0.1.0"


async def test_the_same_batch_twice_stores_rows_once(
    cloud: Cloud, gateway: EnrolledGateway
) -> None:
    sealed = seal_batch(make_batch(gateway.code), gateway.key)
    first = await post(cloud, sealed.body, sealed.headers)
    second = await post(cloud, sealed.body, sealed.headers)
    assert first.status_code == second.status_code == 200
    assert second.json()["acked_through_seq"] == first.json()["acked_through_seq"]
    assert await count_rows(cloud, gateway.code) == (30, 1)


async def test_a_batch_taken_before_is_known_by_the_digest_of_its_json(
    cloud: Cloud, gateway: EnrolledGateway
) -> None:
    """The record keeps the SHA-256 of the verified JSON, so the same batch again — in any
    encoding — is answered from the record (with the id it was taken under) before a parse."""
    batch = make_batch(gateway.code)
    first = await post(cloud, *_sealed(batch, gateway))
    assert first.status_code == 200, first.text
    async with cloud.pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT body_sha256 FROM ingest_batches WHERE batch_id = %s", (batch.batch_id,)
        )
        assert (await cursor.fetchone())["body_sha256"] == hashlib.sha256(
            encode_batch(batch)
        ).digest()
    sealed = seal_batch(batch, gateway.key, "gzip")
    again = await post(cloud, sealed.body, sealed.headers)
    assert again.status_code == 200, again.text
    assert again.json()["batch_id"] == str(batch.batch_id)
    assert again.json()["acked_through_seq"] == batch.last_seq
    assert await count_rows(cloud, gateway.code) == (30, 1)
    # the digest answers only within the gateway whose key verified the bytes
    sealed = seal_batch(batch, generate_private_key())
    stranger = await post(cloud, sealed.body, sealed.headers)
    assert stranger.status_code == 401


async def test_resent_readings_under_a_new_batch_id_are_not_duplicated(
    cloud: Cloud, gateway: EnrolledGateway
) -> None:
    batch = make_batch(gateway.code)
    await post(cloud, *_sealed(batch, gateway))
    again = batch.model_copy(update={"batch_id": uuid.uuid4()})
    response = await post(cloud, *_sealed(again, gateway))
    assert response.json()["readings_new"] == 0
    assert await count_rows(cloud, gateway.code) == (30, 1)


async def test_readings_partly_stored_before_store_only_the_new_ones(
    cloud: Cloud, gateway: EnrolledGateway
) -> None:
    """A batch overlapping what is stored (a resend with more readings after a lost ack, a
    backfill into a gap) cannot be copied straight in: the stored ones are skipped."""
    batch = make_batch(gateway.code, count=30, events=0)
    await post(cloud, *_sealed(batch, gateway))
    longer = make_batch(gateway.code, count=60, events=0)
    with structlog.testing.capture_logs() as logged:
        response = await post(cloud, *_sealed(longer, gateway))
    assert response.json()["readings_new"] == 30
    assert not [e for e in logged if e["event"] == RACE_LOST]  # seen before copying, not after
    assert await count_rows(cloud, gateway.code) == (60, 0)


async def test_a_reading_carried_twice_in_one_batch_is_stored_once(
    cloud: Cloud, gateway: EnrolledGateway
) -> None:
    batch = make_batch(gateway.code, count=30, events=0)
    twice = batch.readings[7].model_copy(update={"seq": 31, "value": 1.0})
    batch = batch.model_copy(update={"readings": [*batch.readings, twice], "last_seq": 31})
    with structlog.testing.capture_logs() as logged:
        response = await post(cloud, *_sealed(batch, gateway))
    assert response.status_code == 200, response.text
    assert response.json()["readings_new"] == 30
    assert await count_rows(cloud, gateway.code) == (30, 0)
    assert [e for e in logged if e["event"] == RACE_LOST]


async def test_a_reading_stored_meanwhile_by_another_transaction_is_skipped(
    cloud: Cloud, gateway: EnrolledGateway
) -> None:
    """The race the quick way cannot see: a reading of the batch is written by a transaction
    still open when the batch is checked, and committed while the batch is being copied in.
    The copy waits for it, fails on the key, and the batch is stored the careful way."""
    frequency = Reading(seq=1, meter_id="m-1", quantity="14.7.0", ts=T0, value=50.0)
    known = make_batch(gateway.code, count=1, events=0).model_copy(update={"readings": [frequency]})
    await post(cloud, *_sealed(known, gateway))  # the meter is known, the batch's series empty
    batch = make_batch(gateway.code, count=30, events=0)
    taken = batch.readings[10]
    async with cloud.pool.connection() as other:
        await other.execute(
            "INSERT INTO readings (meter_id, quantity, ts, value, quality, gateway_id)"
            " SELECT r.meter_id, %s, %s, -1, 'ok', r.gateway_id FROM readings r"
            " JOIN gateways g ON g.id = r.gateway_id WHERE g.gateway_code = %s",
            (taken.quantity, taken.ts, gateway.code),
        )
        request = asyncio.create_task(post(cloud, *_sealed(batch, gateway)))
        async with cloud.pool.connection() as watcher:
            await watcher.set_autocommit(True)
            waiting = []
            while not waiting and not request.done():  # until the batch waits on that row
                cursor = await watcher.execute(
                    "SELECT query FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                    " AND datname = current_database()"
                )
                waiting = [row["query"] for row in await cursor.fetchall()]
                await asyncio.sleep(0.01)
        assert not request.done(), (await request).text
        assert waiting[0].startswith("COPY readings "), waiting  # the quick way
        await other.commit()
    response = await request
    assert response.status_code == 200, response.text
    assert response.json()["readings_new"] == 29
    assert (await count_rows(cloud, gateway.code))[0] == 31
    async with cloud.pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT value FROM readings r JOIN gateways g ON g.id = r.gateway_id"
            " WHERE g.gateway_code = %s AND quantity = %s AND ts = %s",
            (gateway.code, taken.quantity, taken.ts),
        )
        assert [row["value"] for row in await cursor.fetchall()] == [-1]  # the first writer's


def _sealed(batch: Batch, gateway: EnrolledGateway) -> tuple[bytes, dict[str, str]]:
    sealed = seal_batch(batch, gateway.key)
    return sealed.body, sealed.headers


async def test_bad_signature_unknown_and_revoked_gateways(
    cloud: Cloud, gateway: EnrolledGateway
) -> None:
    batch = make_batch(gateway.code)
    forged = seal_batch(batch, generate_private_key())
    response = await post(cloud, forged.body, forged.headers)
    assert response.status_code == 401
    assert "signature" in response.json()["detail"]

    stranger = make_batch("gw-never-enrolled")
    body, headers = _sealed(stranger, gateway)
    response = await post(cloud, body, headers)
    assert response.status_code == 401
    assert "not enrolled" in response.json()["detail"]

    body, headers = _sealed(batch, gateway)
    response = await post(cloud, body, {**headers, GATEWAY_HEADER: ""})
    assert response.status_code == 401

    async with cloud.pool.connection() as conn:
        await enrollment.revoke(conn, gateway_code=gateway.code, actor="test")
    response = await post(cloud, body, headers)  # a replay from the revoked key
    assert response.status_code == 403
    assert "revoked" in response.json()["detail"]
    assert await count_rows(cloud, gateway.code) == (0, 0)


async def test_a_batch_signed_by_one_gateway_for_another_is_refused(
    cloud: Cloud, gateway: EnrolledGateway
) -> None:
    batch = make_batch("gw-someone-else")
    sealed = seal_batch(batch, gateway.key)
    response = await post(cloud, sealed.body, {**sealed.headers, GATEWAY_HEADER: gateway.code})
    assert response.status_code == 401
    assert await count_rows(cloud, gateway.code) == (0, 0)


async def test_a_batch_id_another_gateway_used_is_refused(
    cloud: Cloud, gateway: EnrolledGateway, board: str
) -> None:
    from tests.cloud.conftest import enroll_gateway

    taken = make_batch(gateway.code)
    await post(cloud, *_sealed(taken, gateway))
    other = await enroll_gateway(cloud, board)
    copied = make_batch(other.code, meter="m-2").model_copy(update={"batch_id": taken.batch_id})
    response = await post(cloud, *_sealed(copied, other))
    assert response.status_code == 401
    assert "another gateway" in response.text
    assert await count_rows(cloud, other.code) == (0, 0)


async def test_oversized_body_and_decompression_bomb(
    cloud: Cloud, gateway: EnrolledGateway
) -> None:
    huge = b"x" * (4 * 1024 * 1024 + 1)
    response = await post(
        cloud, huge, {GATEWAY_HEADER: gateway.code, SIGNATURE_HEADER: sign_body(gateway.key, huge)}
    )
    assert response.status_code == 413
    bomb = gzip.compress(b" " * (64 * 1024 * 1024))
    response = await post(
        cloud,
        bomb,
        {
            GATEWAY_HEADER: gateway.code,
            SIGNATURE_HEADER: sign_body(gateway.key, bomb),
            "Content-Encoding": "gzip",
        },
    )
    assert response.status_code == 413
    assert "decompressed" in response.json()["detail"]
    assert await count_rows(cloud, gateway.code) == (0, 0)


def _signed_raw(gateway: EnrolledGateway, raw: bytes) -> tuple[bytes, dict[str, str]]:
    body = compress(raw, "gzip")
    return body, {
        GATEWAY_HEADER: gateway.code,
        SIGNATURE_HEADER: sign_body(gateway.key, body),
        "Content-Encoding": "gzip",
    }


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d["readings"][3].update(value=math.nan), "readings.3.value"),
        (lambda d: d["readings"][1].update(ts="2026-01-01T00:00:00"), "readings.1.ts"),
        (lambda d: d.update(admin=True), "admin"),
        (lambda d: d["readings"][0].update(quantity="1.8.9"), "readings.0.quantity"),
        (
            lambda d: d["readings"][2].update(
                ts=(datetime.now(UTC) + timedelta(days=30)).isoformat()
            ),
            "readings.2.ts",
        ),
    ],
)
async def test_invalid_batches_name_the_field_and_write_nothing(
    cloud: Cloud, gateway: EnrolledGateway, mutate, field: str
) -> None:
    data = json.loads(make_batch(gateway.code).model_dump_json())
    mutate(data)
    raw = json.dumps(data).encode()  # json emits NaN as the bare token a lax encoder sends
    response = await post(cloud, *_signed_raw(gateway, raw))
    assert response.status_code == 422, response.text
    assert field in [e["field"] for e in response.json()["errors"]]
    assert await count_rows(cloud, gateway.code) == (0, 0)


async def test_malformed_json_and_unknown_encoding(cloud: Cloud, gateway: EnrolledGateway) -> None:
    response = await post(cloud, *_signed_raw(gateway, b'{"gateway_id": '))
    assert response.status_code == 422
    assert "JSON" in response.json()["detail"]
    body = b"{}"
    response = await post(
        cloud,
        body,
        {
            GATEWAY_HEADER: gateway.code,
            SIGNATURE_HEADER: sign_body(gateway.key, body),
            "Content-Encoding": "br",
        },
    )
    assert response.status_code == 422
    assert "encoding" in response.json()["detail"]


async def test_health(cloud: Cloud) -> None:
    response = await cloud.client.get("/health")
    assert response.json() == {"status": "ok", "database": "reachable"}


async def test_concurrent_gateways_opening_a_new_month(cloud: Cloud, board: str) -> None:
    """Regression: concurrent first batches of a month raced to create its partition."""
    from tests.cloud.conftest import enroll_gateway

    gateways = [await enroll_gateway(cloud, board) for _ in range(4)]
    month = datetime(2025, 3, 1, tzinfo=UTC)  # a month no other test writes to
    bodies = []
    for gw in gateways:
        batch = make_batch(gw.code, count=60, events=0)
        moved = [r.model_copy(update={"ts": month + (r.ts - T0)}) for r in batch.readings]
        bodies.append(_sealed(batch.model_copy(update={"readings": moved}), gw))
    responses = await asyncio.gather(*(post(cloud, body, headers) for body, headers in bodies))
    assert [r.status_code for r in responses] == [200] * 4, [r.text for r in responses]


async def test_metrics_count_requests_and_ingested_rows(
    cloud: Cloud, gateway: EnrolledGateway
) -> None:
    await post(cloud, *_sealed(make_batch(gateway.code), gateway))
    await cloud.client.get("/health")
    settings = cloud.client._transport.app.state.settings  # type: ignore[attr-defined]
    assert settings.metrics_token
    text = (
        await cloud.client.get(
            "/metrics", headers={"Authorization": f"Bearer {settings.metrics_token}"}
        )
    ).text
    assert "gridgate_ingest_readings_total 30.0" in text
    assert 'route="/api/v1/ingest/batches",status="200"' in text
    assert 'gridgate_http_request_seconds_bucket{le="0.005",route="/health"}' in text

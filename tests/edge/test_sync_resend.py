"""A batch whose acknowledgement was lost: the gateway sends the same bytes again, the cloud
answers from its record, and every reading is stored once and leaves the gateway's backlog."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

import edge.sync
from edge.config import CloudSection
from edge.store import NewEvent, NewReading, Store
from edge.sync import Syncer
from shared import EventStatus, Severity
from tests.cloud.conftest import Cloud, EnrolledGateway
from tests.support.cloud_link import link

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)


class AnswerLost(httpx.AsyncBaseTransport):
    """The real cloud app behind it; the answers to the first `lose` requests are dropped after
    the cloud has handled them (a timeout on the way back, as a gateway sees one)."""

    def __init__(
        self,
        app_transport: httpx.AsyncBaseTransport,
        lose: int,
        during_outage: Callable[[], None] = lambda: None,
    ) -> None:
        self.inner = app_transport
        self.lose = lose
        self.during_outage = during_outage  # called as each answer is dropped
        self.bodies: list[bytes] = []
        self.answers: list[dict] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        self.bodies.append(body)
        response = await self.inner.handle_async_request(request)
        await response.aread()
        self.answers.append(response.json() if response.status_code == 200 else {})
        if len(self.bodies) <= self.lose:
            self.during_outage()
            raise httpx.ReadTimeout("the answer was lost", request=request)
        return response


def filled_store(tmp_path: Path, readings: int = 60) -> Store:
    store = Store(tmp_path / "edge.sqlite")
    store.append(
        [
            NewReading("m-1", "1.8.0", T0 + timedelta(seconds=i), 1000 + i * 0.5)
            for i in range(readings)
        ]
    )
    return store


def power_drop() -> NewEvent:
    return NewEvent(
        ts=datetime.now(UTC),
        kind="power_drop",
        status=EventStatus.RAISED,
        severity=Severity.LOW,
        meter_id="m-1",
        message="power fell",
    )


def syncer(store: Store, gateway: EnrolledGateway, transport: httpx.AsyncBaseTransport) -> Syncer:
    async def store_call(method, *args):
        return method(store, *args)

    return Syncer(
        gateway_id=gateway.code,
        config=CloudSection(url="http://cloud", retry_max_s=1),
        key=gateway.key,
        store_call=store_call,
        clock_state=lambda: (True, 0.0),
        transport=link(transport),
    )


async def drained(sync: Syncer) -> int:
    """Everything pending sent (`Syncer.drain`), then the client closed."""
    try:
        return await sync.drain()
    finally:
        await sync.close()


async def stored(cloud: Cloud, gateway: EnrolledGateway) -> tuple[int, int, int]:
    """(readings, events, batches) the cloud holds for the gateway."""
    async with cloud.pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT (SELECT count(*) FROM readings r JOIN gateways g ON g.id = r.gateway_id"
            "        WHERE g.gateway_code = %(g)s) AS readings,"
            " (SELECT count(*) FROM events e JOIN gateways g ON g.id = e.gateway_id"
            "        WHERE g.gateway_code = %(g)s) AS events,"
            " (SELECT count(*) FROM ingest_batches b JOIN gateways g ON g.id = b.gateway_id"
            "        WHERE g.gateway_code = %(g)s) AS batches",
            {"g": gateway.code},
        )
        row = await cursor.fetchone()
        return row["readings"], row["events"], row["batches"]


async def test_a_lost_acknowledgement_sends_the_same_bytes_again(
    cloud: Cloud, gateway: EnrolledGateway, tmp_path: Path
) -> None:
    store = filled_store(tmp_path)
    alerts = []

    def alert_raised() -> None:  # during the outage, once
        if not alerts:
            alerts.append(store.append((), [power_drop()]))

    transport = AnswerLost(cloud.client._transport, lose=2, during_outage=alert_raised)
    sync = syncer(store, gateway, transport)
    assert await drained(sync) == 61
    assert len(transport.bodies) == 4
    assert transport.bodies[0] == transport.bodies[1] == transport.bodies[2]
    # the cloud took it once; the repeats were answered from its record, under the same id
    assert len({a["batch_id"] for a in transport.answers[:3]}) == 1
    assert transport.answers[0]["readings_new"] == 60
    assert transport.answers[2]["readings_new"] == 0
    # the alert raised meanwhile did not wait for the next interval: a fresh batch followed
    assert transport.answers[3]["events_new"] == 1
    assert await stored(cloud, gateway) == (60, 1, 2)
    assert store.backlog()[:2] == (0, 0)
    assert sync.stats.failures == 2
    store.close()


async def test_past_the_resend_window_the_batch_is_built_afresh(
    cloud: Cloud, gateway: EnrolledGateway, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An answer lost long ago: the next batch carries a new id, the newest heartbeat and what
    arrived meanwhile; the cloud skips the readings it holds."""
    monkeypatch.setattr(edge.sync, "RESEND_SAME_BYTES_S", 0.0)
    store = filled_store(tmp_path)
    transport = AnswerLost(cloud.client._transport, lose=1)
    sync = syncer(store, gateway, transport)
    assert await drained(sync) == 60
    assert len(transport.bodies) == 2
    assert transport.bodies[0] != transport.bodies[1]
    assert transport.answers[0]["batch_id"] != transport.answers[1]["batch_id"]
    assert transport.answers[1]["readings_new"] == 0
    assert await stored(cloud, gateway) == (60, 0, 2)
    assert store.backlog()[0] == 0
    store.close()


async def test_a_reduced_backlog_is_never_sent_from_a_kept_batch(
    cloud: Cloud, gateway: EnrolledGateway, tmp_path: Path
) -> None:
    """The disk budget reduced the unsent readings after a send whose answer was lost: the
    kept bytes are dropped and the next batch is built from what the store now holds."""
    store = filled_store(tmp_path)
    transport = AnswerLost(cloud.client._transport, lose=1)
    sync = syncer(store, gateway, transport)
    try:
        with pytest.raises(edge.sync.SyncFailed, match="unreachable"):
            await sync.send_once()
        sync.forget_unanswered()
        assert await sync.send_once() == 60
    finally:
        await sync.close()
    assert transport.bodies[0] != transport.bodies[1]
    assert await stored(cloud, gateway) == (60, 0, 2)
    store.close()

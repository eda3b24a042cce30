"""The inbox: a bill issued, a payment received, a bill gone overdue and a dispute settled each
tell the consumer — in the app and by e-mail (a real SMTP server), as they chose, once per
event — and the consumer reads, reads all and deletes; quiet hours hold e-mail back."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest

from cloud.services import alerts, auth
from cloud.services.notifications import quiet_until
from tests.cloud.conftest import Cloud, Served, open_cloud
from tests.cloud.world import PASSWORD, World, add_actor, build_world
from tests.support.smtp import SmtpServer, smtp_server, text_of


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with smtp_server() as server:
        yield server


@pytest.fixture
async def cloud(database_url: str, tmp_path: Path, smtp: SmtpServer) -> AsyncIterator[Cloud]:
    async with open_cloud(
        database_url,
        tmp_path / "cloud",
        smtp_url=smtp.url,
        mail_poll_s=0.05,
        public_url="https://portal.example.in",
    ) as opened:
        yield opened


async def signed_in(cloud: Cloud, email: str) -> dict[str, str]:
    response = await cloud.client.post(
        "/api/v1/auth/login", json={"email": email, "password": PASSWORD}
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def world_with_consumer(cloud: Cloud) -> tuple[World, dict[str, str], str]:
    async with cloud.pool.connection() as conn:
        world = await build_world(conn)
        email = await add_actor(conn, world, "CONSUMER")
        await conn.commit()
    return world, await signed_in(cloud, email), email.lower()


async def test_a_bill_issued_paid_and_settled_tells_the_consumer(
    cloud: Cloud, smtp: SmtpServer
) -> None:
    world, consumer, email = await world_with_consumer(cloud)
    async with cloud.pool.connection() as conn:
        admin_email = await add_actor(conn, world, "BOARD_ADMIN")
        await conn.commit()
    admin = await signed_in(cloud, admin_email)
    draft = world.site("own").objects["invoice_draft"].id
    response = await cloud.client.post(f"/api/v1/invoices/{draft}/issue", headers=admin)
    assert response.status_code == 200, response.text
    inbox = (await cloud.client.get("/api/v1/notifications", headers=consumer)).json()
    assert inbox["unread"] == 1
    issued = inbox["items"][0]
    assert issued["kind"] == "bill_issued"
    assert "is ready" in issued["title"]
    assert "₹" in issued["body"]
    assert "due by" in issued["body"]
    assert issued["link"] == f"/dashboard/invoices/{draft}"
    mail = await smtp.mailbox.next_to(email, "is ready")
    assert f"https://portal.example.in/dashboard/invoices/{draft}" in text_of(mail)
    # issuing again is refused, and the event is not told twice
    await cloud.client.post(f"/api/v1/invoices/{draft}/issue", headers=admin)
    assert (await cloud.client.get("/api/v1/notifications", headers=consumer)).json()["total"] == 1

    owed = response.json()["amount_due"]
    response = await cloud.client.post(
        f"/api/v1/invoices/{draft}/payments",
        json={"amount": "1.00", "reference": "UPI-1"},
        headers=admin,
    )
    assert response.status_code == 201, response.text
    inbox = (await cloud.client.get("/api/v1/notifications", headers=consumer)).json()
    assert inbox["unread"] == 2
    assert inbox["items"][0]["title"] == "Payment of ₹1.00 received"
    assert "Still to pay" in inbox["items"][0]["body"]
    assert owed

    # read one, read all, delete one; another user's notification is out of reach
    first = inbox["items"][1]["id"]
    response = await cloud.client.post(f"/api/v1/notifications/{first}/read", headers=consumer)
    assert response.json()["read_at"] is not None
    unread = await cloud.client.get("/api/v1/notifications?unread=true", headers=consumer)
    assert unread.json()["total"] == 1
    response = await cloud.client.post("/api/v1/notifications/read-all", headers=consumer)
    assert response.json() == {"marked_read": 1}
    response = await cloud.client.delete(f"/api/v1/notifications/{first}", headers=consumer)
    assert response.status_code == 204
    inbox = (await cloud.client.get("/api/v1/notifications", headers=consumer)).json()
    assert (inbox["total"], inbox["unread"]) == (1, 0)
    other = await cloud.client.post(
        f"/api/v1/notifications/{inbox['items'][0]['id']}/read", headers=admin
    )
    assert other.status_code == 404


async def test_opted_out_and_in_app_only_are_respected(cloud: Cloud, smtp: SmtpServer) -> None:
    world, consumer, email = await world_with_consumer(cloud)
    async with cloud.pool.connection() as conn:
        admin_email = await add_actor(conn, world, "BOARD_ADMIN")
        await conn.commit()
    admin = await signed_in(cloud, admin_email)
    response = await cloud.client.put(
        "/api/v1/users/me/preferences", json={"channels": ["in_app"]}, headers=consumer
    )
    assert response.status_code == 200
    draft = world.site("own").objects["invoice_draft"].id
    await cloud.client.post(f"/api/v1/invoices/{draft}/issue", headers=admin)
    inbox = (await cloud.client.get("/api/v1/notifications", headers=consumer)).json()
    assert inbox["total"] == 1
    async with cloud.pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT d.channel, d.status FROM notification_deliveries d"
            " WHERE d.notification_id = %s ORDER BY channel",
            (inbox["items"][0]["id"],),
        )
        assert [tuple(r.values()) for r in await cursor.fetchall()] == [("in_app", "delivered")]
        cursor = await conn.execute(
            "SELECT count(*) AS n FROM email_outbox WHERE to_address = %s", (email,)
        )
        assert (await cursor.fetchone())["n"] == 0

    response = await cloud.client.put(
        "/api/v1/users/me/preferences",
        json={"channels": ["in_app", "email"], "opted_out": ["bills"]},
        headers=consumer,
    )
    await cloud.client.post(
        f"/api/v1/invoices/{draft}/payments",
        json={"amount": "1.00", "reference": "UPI-2"},
        headers=admin,
    )
    assert (await cloud.client.get("/api/v1/notifications", headers=consumer)).json()["total"] == 1


def test_quiet_hours_cross_midnight_in_the_users_zone() -> None:
    prefs = {"quiet_from": time(22), "quiet_until": time(7), "zone": "Asia/Kolkata"}
    ist = timedelta(hours=5, minutes=30)
    late = datetime(2026, 11, 27, 23, 30) - ist  # 23:30 IST
    assert (
        quiet_until(late.replace(tzinfo=UTC), prefs)
        == datetime(2026, 11, 28, 7, 0, tzinfo=UTC) - ist
    )
    early = datetime(2026, 11, 28, 6, 0) - ist
    assert (
        quiet_until(early.replace(tzinfo=UTC), prefs)
        == datetime(2026, 11, 28, 7, 0, tzinfo=UTC) - ist
    )
    noon = datetime(2026, 11, 28, 12, 0) - ist
    assert quiet_until(noon.replace(tzinfo=UTC), prefs) is None
    assert quiet_until(noon.replace(tzinfo=UTC), {"quiet_from": None, "quiet_until": None}) is None


async def test_quiet_hours_hold_the_email_until_they_end(cloud: Cloud) -> None:
    world, consumer, email = await world_with_consumer(cloud)
    async with cloud.pool.connection() as conn:
        admin_email = await add_actor(conn, world, "BOARD_ADMIN")
        await conn.commit()
    admin = await signed_in(cloud, admin_email)
    now = datetime.now(UTC)
    start, end = (now - timedelta(hours=1)).time(), (now + timedelta(hours=2)).time()
    response = await cloud.client.put(
        "/api/v1/users/me/preferences",
        json={
            "quiet_from": start.strftime("%H:%M"),
            "quiet_until": end.strftime("%H:%M"),
            "zone": "UTC",
        },
        headers=consumer,
    )
    assert response.status_code == 200, response.text
    draft = world.site("own").objects["invoice_draft"].id
    await cloud.client.post(f"/api/v1/invoices/{draft}/issue", headers=admin)
    async with cloud.pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT o.status, o.next_attempt_at, d.detail FROM email_outbox o"
            " JOIN notification_deliveries d ON d.email_id = o.id WHERE o.to_address = %s",
            (email,),
        )
        held = await cursor.fetchone()
    assert held["status"] == "pending"
    assert held["next_attempt_at"] > now + timedelta(hours=1)
    assert "held until quiet hours end" in held["detail"]
    assert (await cloud.client.get("/api/v1/notifications", headers=consumer)).json()["unread"] == 1


async def test_a_hundred_alerts_in_a_minute_are_one_digest(cloud: Cloud, smtp: SmtpServer) -> None:
    world, consumer, email = await world_with_consumer(cloud)
    site = world.site("own")
    kinds = ["power_spike", "voltage_sag", "voltage_swell", "outage", "phase_loss"]
    async with cloud.pool.connection() as conn:
        async with conn.transaction():
            await alerts.open_alert(  # below the default threshold (medium): not told
                conn,
                board_id=site.board.id,
                subject=f"meter:{site.meter.id}",
                kind="stale_value",
                severity="low",
                source="edge",
                at=datetime.now(UTC),
                meter_id=site.meter.id,
            )
        for n in range(100):  # as ingest would: each batch in its own transaction
            async with conn.transaction():
                await alerts.open_alert(
                    conn,
                    board_id=site.board.id,
                    subject=f"meter:{site.meter.id}:{n // len(kinds)}",
                    kind=kinds[n % len(kinds)],
                    severity="high",
                    source="edge",
                    at=datetime.now(UTC),
                    message=f"reading {n}",
                    meter_id=site.meter.id,
                )
        cursor = await conn.execute(
            "SELECT id, next_attempt_at, jsonb_array_length(digest->'items') AS items"
            " FROM email_outbox WHERE to_address = %s",
            (email,),
        )
        digests = await cursor.fetchall()
    assert len(digests) == 1
    assert digests[0]["items"] == 100
    assert digests[0]["next_attempt_at"] > datetime.now(UTC) + timedelta(seconds=30)
    inbox = (await cloud.client.get("/api/v1/notifications", headers=consumer)).json()
    assert (inbox["total"], inbox["unread"]) == (100, 100)
    assert " on meter " in inbox["items"][0]["title"]
    async with cloud.pool.connection() as conn:  # the minute is over
        await conn.execute(
            "UPDATE email_outbox SET next_attempt_at = now() WHERE id = %s", (digests[0]["id"],)
        )
        await conn.commit()
    message = await smtp.mailbox.next_to(email, "100 new alerts")
    assert text_of(message).count("\n- ") == 100
    assert "/dashboard/inbox" in text_of(message)
    assert len(smtp.mailbox.to(email)) == 1


async def test_the_live_stream_carries_only_the_users_own_notifications(
    served_app: Served,
) -> None:
    client, pool = served_app.client, served_app.pool
    async with pool.connection() as conn:
        world = await build_world(conn)
        consumer_email = await add_actor(conn, world, "CONSUMER")
        admin_email = await add_actor(conn, world, "BOARD_ADMIN")
        await auth.create_user(  # the sibling consumer has an account too: told, but not here
            conn,
            email=f"sibling-{world.tag}@example.in",
            password=PASSWORD,
            role="CONSUMER",
            consumer_id=world.site("sibling").consumer.id,
            actor="test",
        )
        await conn.commit()

    async def token(email: str) -> dict[str, str]:
        response = await client.post(
            "/api/v1/auth/login", json={"email": email, "password": PASSWORD}
        )
        return {"Authorization": f"Bearer {response.json()['access_token']}"}

    consumer, admin = await token(consumer_email), await token(admin_email)
    seen: list[dict] = []
    ready, arrived = asyncio.Event(), asyncio.Event()

    async def listen() -> None:
        async with client.stream("GET", "/api/v1/notifications/stream", headers=consumer) as sse:
            assert sse.status_code == 200
            event = None
            async for line in sse.aiter_lines():
                if line.startswith("event:"):
                    event = line.split(":", 1)[1].strip()
                    if event == "ready":
                        ready.set()
                elif line.startswith("data:") and event == "notification":
                    seen.append(json.loads(line.split(":", 1)[1]))
                    arrived.set()

    task = asyncio.create_task(listen())
    await asyncio.wait_for(ready.wait(), 30)
    other = world.site("sibling").objects["invoice_draft"].id  # a sibling consumer's bill
    mine = world.site("own").objects["invoice_draft"].id
    for invoice in (other, mine):
        response = await client.post(f"/api/v1/invoices/{invoice}/issue", headers=admin)
        assert response.status_code == 200, response.text
    await asyncio.wait_for(arrived.wait(), 30)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert [n["link"] for n in seen] == [f"/dashboard/invoices/{mine}"]
    async with pool.connection() as conn:  # the sibling's bill did notify the sibling
        cursor = await conn.execute(
            "SELECT count(*) AS n FROM notifications n JOIN users u ON u.id = n.user_id"
            " WHERE n.link = %s AND u.email = %s",
            (f"/dashboard/invoices/{other}", f"sibling-{world.tag}@example.in".lower()),
        )
        assert (await cursor.fetchone())["n"] == 1


async def test_a_new_tariff_tells_its_category_and_a_report_tells_who_asked(
    cloud: Cloud, smtp: SmtpServer
) -> None:
    world, consumer, _ = await world_with_consumer(cloud)
    sibling_email = f"sibling-{world.tag}@example.in".lower()
    async with cloud.pool.connection() as conn:
        admin_email = await add_actor(conn, world, "BOARD_ADMIN")
        await conn.execute(
            "UPDATE consumers SET category = 'commercial' WHERE id = %s",
            (world.site("sibling").consumer.id,),
        )
        await auth.create_user(
            conn,
            email=sibling_email,
            password=PASSWORD,
            role="CONSUMER",
            consumer_id=world.site("sibling").consumer.id,
            actor="test",
        )
        await conn.commit()
    admin, sibling = await signed_in(cloud, admin_email), await signed_in(cloud, sibling_email)
    created = await cloud.client.post(
        "/api/v1/tariffs",
        json={"board_id": world.boards["A"], "category": "commercial", "name": "Commercial LT"},
        headers=admin,
    )
    assert created.status_code == 201, created.text
    start = (datetime.now(UTC) + timedelta(days=10)).date()
    for effective_from, effective_to in (("2020-01-01", "2021-01-01"), (str(start), None)):
        response = await cloud.client.post(
            f"/api/v1/tariffs/{created.json()['id']}/versions",
            json={
                "effective_from": effective_from,
                "effective_to": effective_to,
                "spec": {"energy": {"mode": "flat", "rate": "8.00"}},
            },
            headers=admin,
        )
        assert response.status_code == 201, response.text
    told = (await cloud.client.get("/api/v1/notifications", headers=sibling)).json()["items"]
    # the version for the past changed no one's rates: only the coming one is told
    assert [n["kind"] for n in told] == ["tariff_changed"]
    assert told[0]["title"].startswith("New rates for Commercial LT from ")
    mail = await smtp.mailbox.next_to(sibling_email, "New rates for Commercial LT")
    assert "https://portal.example.in/dashboard/home" in text_of(mail)
    mine = (await cloud.client.get("/api/v1/notifications", headers=consumer)).json()
    assert "tariff_changed" not in [n["kind"] for n in mine["items"]]  # a domestic consumer

    response = await cloud.client.post(
        "/api/v1/reports",
        json={
            "kind": "alerts",
            "format": "csv",
            "board_id": world.boards["A"],
            "period_start": "2026-10-01",
            "period_end": "2026-11-01",
        },
        headers=admin,
    )
    assert response.status_code == 202, response.text
    report = response.json()["id"]
    mail = await smtp.mailbox.next_to(admin_email.lower(), "report (CSV) is ready")
    assert "https://portal.example.in/dashboard/reports" in text_of(mail)
    told = (await cloud.client.get("/api/v1/notifications", headers=admin)).json()["items"]
    ready = [n for n in told if n["kind"] == "report_ready"]
    assert [n["title"] for n in ready] == ["Your alerts report (CSV) is ready"]
    done = await cloud.client.get(f"/api/v1/reports/{report}", headers=admin)
    assert done.json()["status"] == "done"


async def test_a_silent_gateway_tells_the_boards_staff_not_its_consumers(cloud: Cloud) -> None:
    world, consumer, _ = await world_with_consumer(cloud)
    async with cloud.pool.connection() as conn:
        admin_email = await add_actor(conn, world, "BOARD_ADMIN")
        technician_email = await add_actor(conn, world, "TECHNICIAN")
        gateway = world.site("own").gateway.id
        await alerts.open_alert(
            conn,
            board_id=world.boards["A"],
            subject=f"gateway:{gateway}",
            kind="gateway_silent",
            severity="high",
            source="cloud",
            at=datetime.now(UTC),
            message="Gateway has sent nothing for 20 minutes",
            gateway_id=gateway,
        )
        await conn.commit()
    for email in (admin_email, technician_email):
        staff = await signed_in(cloud, email)
        told = (await cloud.client.get("/api/v1/notifications", headers=staff)).json()["items"]
        assert [(n["kind"], n["title"]) for n in told] == [("fleet_alert", "Gateway silent")]
        assert told[0]["link"] == "/dashboard/alerts?kind=gateway_silent"
    mine = (await cloud.client.get("/api/v1/notifications", headers=consumer)).json()
    assert mine["total"] == 0

"""Text messages: a notification for a user who chose SMS reaches a real webhook receiver,
signed; passing failures are retried (no sooner than the provider asks), a refusal is final, a
text past its deadline is never sent, several senders share the work, and the signing secret
never reaches a log."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog
from psycopg_pool import AsyncConnectionPool
from typer.testing import CliRunner

from cloud.app import create_app
from cloud.cli import app as cloud_cli
from cloud.services import alerts, sms_outbox
from cloud.settings import CloudSettings
from cloud.sms.errors import SmsConfigError
from cloud.sms.messages import MAX_TEXT_CHARS, compose_text, normalize_phone
from cloud.sms.sender import retry_in_s, run_sender
from cloud.sms.webhook import retry_after_s, sign
from tests.cloud.conftest import Cloud, open_cloud
from tests.cloud.world import PASSWORD, World, add_actor, build_world
from tests.support.sms import SmsReceiver, signature_holds, sms_receiver

SECRET = "test-sms-secret-" + uuid.uuid4().hex
FINAL = ("sent", "failed", "expired")


def texting(receiver: SmsReceiver, **overrides: object) -> dict[str, object]:
    """Settings of an app that texts through `receiver`, retrying within milliseconds."""
    return {
        "sms_webhook_url": receiver.url,
        "sms_webhook_secret": SECRET,
        "sms_poll_s": 0.02,
        "sms_retry_base_s": 0.01,
        "sms_retry_max_s": 0.05,
        "public_url": "https://portal.example.in",
        **overrides,
    }


@pytest.fixture
async def receiver() -> AsyncIterator[SmsReceiver]:
    async with sms_receiver(SECRET) as opened:
        yield opened


@pytest.fixture
async def cloud(database_url: str, tmp_path: Path, receiver: SmsReceiver) -> AsyncIterator[Cloud]:
    async with open_cloud(database_url, tmp_path / "cloud", **texting(receiver)) as opened:
        yield opened


def a_phone() -> tuple[str, str]:
    """A number of this test's own: as a person types it, and as it is sent."""
    digits = f"9{uuid.uuid4().int % 10**9:09d}"
    return f"+91 {digits[:5]}-{digits[5:]}", f"+91{digits}"


async def signed_in(cloud: Cloud, email: str) -> dict[str, str]:
    response = await cloud.client.post(
        "/api/v1/auth/login", json={"email": email, "password": PASSWORD}
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


@dataclass
class Texting:
    """A consumer who chose texts (and their number, as sent), and their board's admin."""

    world: World
    consumer: dict[str, str]
    admin: dict[str, str]
    user_id: int
    phone: str | None

    @property
    def draft(self) -> int:
        return self.world.site("own").objects["invoice_draft"].id


async def texting_consumer(
    cloud: Cloud, *, with_phone: bool = True, preferences: dict[str, Any] | None = None
) -> Texting:
    async with cloud.pool.connection() as conn:
        world = await build_world(conn)
        consumer_email = await add_actor(conn, world, "CONSUMER")
        admin_email = await add_actor(conn, world, "BOARD_ADMIN")
    consumer, admin = await signed_in(cloud, consumer_email), await signed_in(cloud, admin_email)
    typed, sent = a_phone()
    if with_phone:
        response = await cloud.client.patch(
            "/api/v1/users/me", json={"phone": typed}, headers=consumer
        )
        assert response.status_code == 200, response.text
    response = await cloud.client.put(
        "/api/v1/users/me/preferences",
        json={"channels": ["in_app", "sms"], **(preferences or {})},
        headers=consumer,
    )
    assert response.status_code == 200, response.text
    return Texting(world, consumer, admin, world.users["CONSUMER"].id, sent if with_phone else None)


async def issue_bill(cloud: Cloud, who: Texting) -> None:
    response = await cloud.client.post(f"/api/v1/invoices/{who.draft}/issue", headers=who.admin)
    assert response.status_code == 200, response.text


async def sms_deliveries(pool: AsyncConnectionPool, user_id: int) -> list[dict[str, Any]]:
    """The SMS delivery rows of a user's notifications, oldest first."""
    async with pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT n.kind, d.status, d.detail, d.sms_id FROM notification_deliveries d"
            " JOIN notifications n ON n.id = d.notification_id"
            " WHERE n.user_id = %s AND d.channel = 'sms' ORDER BY n.id",
            (user_id,),
        )
        return await cursor.fetchall()


async def settled(pool: AsyncConnectionPool, sms_id: int, timeout: float = 30) -> dict[str, Any]:
    """The text's outbox row once it is sent, failed or expired (AssertionError after
    `timeout`): the receiver answers before the sender records the answer."""
    deadline = time.monotonic() + timeout
    while True:
        async with pool.connection() as conn:
            cursor = await conn.execute("SELECT * FROM sms_outbox WHERE id = %s", (sms_id,))
            row = await cursor.fetchone()
        if row["status"] in FINAL:
            return row
        assert time.monotonic() < deadline, f"text {sms_id} is still {row['status']}"
        await asyncio.sleep(0.02)


async def attempts_of(pool: AsyncConnectionPool, sms_id: int) -> list[tuple[str, int | None]]:
    async with pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT outcome, http_status FROM sms_attempts WHERE sms_id = %s ORDER BY id",
            (sms_id,),
        )
        return [(row["outcome"], row["http_status"]) for row in await cursor.fetchall()]


# --- through a real receiver -----------------------------------------------------------------


async def test_a_bill_issued_reaches_the_provider_signed(
    cloud: Cloud, receiver: SmsReceiver
) -> None:
    who = await texting_consumer(cloud)
    await issue_bill(cloud, who)
    [delivery] = await sms_deliveries(cloud.pool, who.user_id)
    assert (delivery["kind"], delivery["status"], delivery["detail"]) == (
        "bill_issued",
        "queued",
        None,
    )
    [request] = await receiver.next_to(who.phone)
    assert request.answered == 200
    assert request.message["id"] == str(delivery["sms_id"])
    assert request.headers["idempotency-key"] == f"sms-{delivery['sms_id']}"
    text = request.message["text"]
    title, body = text.split("\n")
    assert title.startswith("Your bill for ")
    assert title.endswith(" is ready")
    assert "₹" in body
    assert "due by" in body
    assert "http" not in text
    assert len(text) <= MAX_TEXT_CHARS
    # the receiver checked the signature as an integrator would; another secret would not hold
    assert signature_holds(SECRET, request.headers, request.body)
    assert not signature_holds("another-secret-entirely", request.headers, request.body)
    assert not signature_holds(SECRET, request.headers, request.body.replace(b"bill", b"Bill"))
    assert abs(int(request.headers["x-gridgate-timestamp"]) - time.time()) < 60

    row = await settled(cloud.pool, delivery["sms_id"])
    assert (row["status"], row["attempts"], row["to_phone"]) == ("sent", 1, who.phone)
    assert row["provider_message_id"].startswith("prov-")
    assert await attempts_of(cloud.pool, row["id"]) == [("sent", 200)]


async def test_a_burst_of_alerts_texts_only_the_urgent_one(
    cloud: Cloud, receiver: SmsReceiver
) -> None:
    who = await texting_consumer(cloud, preferences={"alert_min_severity": "low"})
    meter = who.world.site("own").meter
    async with cloud.pool.connection() as conn:
        for n in range(20):
            await alerts.open_alert(
                conn,
                board_id=meter.board,
                subject=f"meter:{meter.id}:burst-{n}",
                kind="voltage_sag",
                severity="medium",
                source="edge",
                at=datetime.now(UTC),
                message=f"Voltage low ({n})",
                meter_id=meter.id,
            )
        await alerts.open_alert(
            conn,
            board_id=meter.board,
            subject=f"meter:{meter.id}:fire",
            kind="register_backwards",
            severity="critical",
            source="edge",
            at=datetime.now(UTC),
            message="Register went backwards",
            meter_id=meter.id,
        )
        await conn.commit()
    deliveries = await sms_deliveries(cloud.pool, who.user_id)
    assert len(deliveries) == 21
    held = [d for d in deliveries if d["status"] == "not_sent"]
    assert len(held) == 20
    assert {d["detail"] for d in held} == {"texts are sent for urgent alerts and announcements"}
    [urgent] = [d for d in deliveries if d["status"] == "queued"]
    [request] = await receiver.next_to(who.phone)
    assert request.message["id"] == str(urgent["sms_id"])
    assert "Register went backwards" in request.message["text"]


async def test_two_503s_then_a_200_is_one_text_after_three_attempts(
    cloud: Cloud, receiver: SmsReceiver
) -> None:
    who = await texting_consumer(cloud)
    receiver.answer(who.phone, 503, 503)
    await issue_bill(cloud, who)
    [delivery] = await sms_deliveries(cloud.pool, who.user_id)
    row = await settled(cloud.pool, delivery["sms_id"])
    assert (row["status"], row["attempts"]) == ("sent", 3)
    assert await attempts_of(cloud.pool, row["id"]) == [
        ("retry", 503),
        ("retry", 503),
        ("sent", 200),
    ]
    requests = receiver.to(who.phone)
    assert [r.answered for r in requests] == [503, 503, 200]
    assert {r.headers["idempotency-key"] for r in requests} == {f"sms-{row['id']}"}
    assert len({r.message["id"] for r in requests}) == 1


async def test_retry_after_is_honoured(cloud: Cloud, receiver: SmsReceiver) -> None:
    who = await texting_consumer(cloud)
    receiver.answer(who.phone, 429, retry_after="1")
    await issue_bill(cloud, who)
    [delivery] = await sms_deliveries(cloud.pool, who.user_id)
    row = await settled(cloud.pool, delivery["sms_id"])
    assert row["status"] == "sent"
    throttled, accepted = receiver.to(who.phone)
    assert (throttled.answered, accepted.answered) == (429, 200)
    # back-off alone would have tried again within a twentieth of a second
    assert accepted.at - throttled.at >= 0.95


async def test_a_400_is_final(cloud: Cloud, receiver: SmsReceiver) -> None:
    who = await texting_consumer(cloud)
    receiver.answer(who.phone, 400)
    await issue_bill(cloud, who)
    [delivery] = await sms_deliveries(cloud.pool, who.user_id)
    row = await settled(cloud.pool, delivery["sms_id"])
    assert (row["status"], row["attempts"]) == ("failed", 1)
    assert row["last_error"].startswith("400 Bad Request")
    assert await attempts_of(cloud.pool, row["id"]) == [("failed", 400)]
    # a payment's text goes through after it; the refused one was never tried again
    response = await cloud.client.post(
        f"/api/v1/invoices/{who.draft}/payments",
        json={"amount": "1.00", "reference": "UPI-SMS"},
        headers=who.admin,
    )
    assert response.status_code == 201, response.text
    await receiver.next_to(who.phone, count=2)
    assert [r.answered for r in receiver.to(who.phone)] == [400, 200]


async def test_a_text_past_its_deadline_is_never_sent(cloud: Cloud, receiver: SmsReceiver) -> None:
    _, phone = a_phone()
    # written with no life at all: over before the sender can see it
    async with cloud.pool.connection() as conn, conn.transaction():
        sms_id = await sms_outbox.enqueue(
            conn,
            event_key=f"test:{uuid.uuid4()}",
            user_id=None,
            to=phone,
            text="Power is back",
            ttl_s=0,
        )
    row = await settled(cloud.pool, sms_id)
    assert (row["status"], row["attempts"], row["sent_at"]) == ("expired", 0, None)
    assert await attempts_of(cloud.pool, sms_id) == []
    assert receiver.to(phone) == []


async def test_no_phone_number_is_not_sent(cloud: Cloud) -> None:
    who = await texting_consumer(cloud, with_phone=False)
    await issue_bill(cloud, who)
    [delivery] = await sms_deliveries(cloud.pool, who.user_id)
    assert (delivery["status"], delivery["detail"], delivery["sms_id"]) == (
        "not_sent",
        "no phone number on the account",
        None,
    )


async def test_quiet_hours_hold_the_text(cloud: Cloud, receiver: SmsReceiver) -> None:
    now = datetime.now(UTC)
    start, end = (now - timedelta(hours=1)).time(), (now + timedelta(hours=2)).time()
    who = await texting_consumer(
        cloud,
        preferences={
            "quiet_from": start.strftime("%H:%M"),
            "quiet_until": end.strftime("%H:%M"),
            "zone": "UTC",
        },
    )
    await issue_bill(cloud, who)
    [delivery] = await sms_deliveries(cloud.pool, who.user_id)
    assert delivery["status"] == "queued"
    assert "held until quiet hours end" in delivery["detail"]
    async with cloud.pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT status, next_attempt_at, expires_at FROM sms_outbox WHERE id = %s",
            (delivery["sms_id"],),
        )
        held = await cursor.fetchone()
    assert held["status"] == "pending"
    assert held["next_attempt_at"] > now + timedelta(hours=1)
    # its life starts when it may go, so the hold itself does not expire it
    assert held["expires_at"] - held["next_attempt_at"] == timedelta(hours=6)


async def test_without_a_provider_nothing_is_queued(database_url: str, tmp_path: Path) -> None:
    async with open_cloud(database_url, tmp_path / "plain") as plain:
        who = await texting_consumer(plain)
        await issue_bill(plain, who)
        [delivery] = await sms_deliveries(plain.pool, who.user_id)
        assert (delivery["status"], delivery["detail"], delivery["sms_id"]) == (
            "not_sent",
            "no SMS provider is configured",
            None,
        )
        async with plain.pool.connection() as conn:
            cursor = await conn.execute(
                "SELECT count(*) AS n FROM sms_outbox WHERE to_phone = %s", (who.phone,)
            )
            assert (await cursor.fetchone())["n"] == 0


async def test_several_senders_share_the_work_and_send_each_text_once(
    cloud: Cloud, receiver: SmsReceiver
) -> None:
    settings = CloudSettings(database_url="unused", **texting(receiver))  # a second process
    stop = asyncio.Event()
    other = asyncio.create_task(run_sender(cloud.pool, settings, stop))
    phones = [a_phone()[1] for _ in range(30)]
    async with cloud.pool.connection() as conn, conn.transaction():
        ids = [
            await sms_outbox.enqueue(
                conn,
                event_key=f"test:{uuid.uuid4()}",
                user_id=None,
                to=phone,
                text=f"Text {n}",
                ttl_s=600,
            )
            for n, phone in enumerate(phones)
        ]
    wanted = set(phones)
    await receiver.wait_for(lambda got: wanted <= {r.to for r in got})
    stop.set()
    await asyncio.wait_for(other, 30)
    for sms_id in ids:
        assert (await settled(cloud.pool, sms_id))["status"] == "sent"
    posted = [r.message["id"] for r in receiver.received if r.to in wanted]
    assert sorted(posted) == sorted(str(i) for i in ids)  # each once, by one sender or the other


async def test_the_secret_never_reaches_a_log(
    database_url: str,
    tmp_path: Path,
    receiver: SmsReceiver,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    with structlog.testing.capture_logs() as logged:
        async with open_cloud(database_url, tmp_path / "logs", **texting(receiver)) as cloud:
            who = await texting_consumer(cloud)
            receiver.answer(who.phone, 503, 400)  # a warning and an error, with their details
            await issue_bill(cloud, who)
            [delivery] = await sms_deliveries(cloud.pool, who.user_id)
            assert (await settled(cloud.pool, delivery["sms_id"]))["status"] == "failed"
    events = [event["event"] for event in logged]
    assert "SMS sender started" in events
    assert "text message not sent" in events
    assert "text message refused" in events
    out, err = capfd.readouterr()
    everything = repr(logged) + caplog.text + out + err
    assert SECRET not in everything
    assert SECRET not in repr(CloudSettings(database_url="unused", **texting(receiver)))


# --- settings refused at start ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"sms_webhook_url": "https://sms.example.in/hook"}, "GRIDGATE_SMS_WEBHOOK_SECRET"),
        (
            {"sms_webhook_url": "https://sms.example.in/hook", "sms_webhook_secret": "short"},
            "GRIDGATE_SMS_WEBHOOK_SECRET",
        ),
        (
            {"sms_webhook_url": "ftp://sms.example.in/hook", "sms_webhook_secret": SECRET},
            "GRIDGATE_SMS_WEBHOOK_URL",
        ),
        ({"sms_webhook_url": "sms.example.in/hook", "sms_webhook_secret": SECRET}, "URL"),
    ],
)
def test_a_provider_that_cannot_work_stops_the_start(
    tmp_path: Path, overrides: dict[str, str], named: str
) -> None:
    settings = CloudSettings(database_url="unused", data_dir=tmp_path, **overrides)
    with pytest.raises(SmsConfigError, match=named) as refused:
        create_app(settings, "postgresql://unused")
    assert "short" not in str(refused.value)
    assert SECRET not in str(refused.value)


def test_serve_names_the_missing_secret(tmp_path: Path) -> None:
    refused = CliRunner().invoke(
        cloud_cli,
        ["serve"],
        env={
            "GRIDGATE_DATABASE_URL": "postgresql://unused",
            "GRIDGATE_DATA_DIR": str(tmp_path),
            "GRIDGATE_SMS_WEBHOOK_URL": "https://sms.example.in/hook",
            "GRIDGATE_SMS_WEBHOOK_SECRET": None,
        },
    )
    assert refused.exit_code == 2
    assert "GRIDGATE_SMS_WEBHOOK_SECRET must be set" in refused.output


# --- the pure parts --------------------------------------------------------------------------


def test_the_text_is_the_title_and_body_without_links_cut_at_a_word() -> None:
    assert compose_text("Payment received", "Thank you. See https://x.example/pay?id=1 now") == (
        "Payment received\nThank you. See now"
    )
    assert compose_text("Same", "Same") == "Same"
    long = compose_text("Outage on meter M-1", "the supply " * 60)
    assert len(long) <= MAX_TEXT_CHARS
    assert long.endswith("…")
    assert long[:-1].split()[-1] in ("the", "supply")  # whole words only
    assert compose_text("T", "x" * 400).endswith("x…")  # one long word is cut through


def test_phone_numbers_lose_their_separators() -> None:
    assert normalize_phone("+91 (98765) 43-210") == "+919876543210"
    assert normalize_phone("09876543210") == "09876543210"
    with pytest.raises(ValueError, match="not a phone number"):
        normalize_phone("1-----")


def test_back_off_grows_to_its_cap_and_yields_to_retry_after() -> None:
    settings = CloudSettings(sms_retry_base_s=10, sms_retry_max_s=60, sms_ttl_s=3600)
    assert [retry_in_s(n, None, settings) for n in (1, 2, 3, 4, 5)] == [10, 20, 40, 60, 60]
    assert retry_in_s(1, 120, settings) == 120  # the provider asked for longer
    assert retry_in_s(3, 5, settings) == 40  # never sooner than back-off
    assert retry_in_s(1, 10**9, settings) == 3600  # never past the text's life


def test_retry_after_is_read_in_seconds() -> None:
    assert retry_after_s("30") == 30
    assert retry_after_s("Wed, 21 Oct 2026 07:28:00 GMT") is None
    assert retry_after_s(None) is None
    assert retry_after_s("-1") is None


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    body = b'{"id":"1","to":"+919876543210","text":"hi"}'
    expected = hmac.new(b"k" * 16, b"1700000000." + body, hashlib.sha256).hexdigest()
    assert sign("k" * 16, "1700000000", body) == f"sha256={expected}"

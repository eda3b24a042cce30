"""Broadcasts and delivery status, with a real SMTP server and a real SMS webhook: a board
admin's announcement to one category of consumers reaches exactly their inboxes and mailboxes,
not another category's nor another board's; a staff announcement reaches the board's staff and
its state's admins; people who opted out of announcements are skipped; each broadcast is
audited; bad input is named; a board gets at most ten an hour. Staff then see, per channel, what
became of each message sent to a consumer: the e-mail's own status, a text's, or why none went."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from cloud.access import Principal
from cloud.errors import InvalidInput
from cloud.services import auth, broadcasts
from tests.cloud.conftest import Cloud, open_cloud
from tests.cloud.world import PASSWORD, World, add_actor, build_world
from tests.support.sms import SmsReceiver, sms_receiver
from tests.support.smtp import SmtpServer, smtp_server, text_of

SECRET = "test-sms-secret-" + uuid.uuid4().hex
BROADCASTS = "/api/v1/broadcasts"


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with smtp_server() as server:
        yield server


@pytest.fixture
async def receiver() -> AsyncIterator[SmsReceiver]:
    async with sms_receiver(SECRET) as opened:
        yield opened


@pytest.fixture
async def cloud(
    database_url: str, tmp_path: Path, smtp: SmtpServer, receiver: SmsReceiver
) -> AsyncIterator[Cloud]:
    async with open_cloud(
        database_url,
        tmp_path / "cloud",
        smtp_url=smtp.url,
        mail_poll_s=0.05,
        sms_webhook_url=receiver.url,
        sms_webhook_secret=SECRET,
        sms_poll_s=0.02,
        public_url="https://portal.example.in",
    ) as opened:
        yield opened


async def signed_in(cloud: Cloud, email: str) -> dict[str, str]:
    response = await cloud.client.post(
        "/api/v1/auth/login", json={"email": email, "password": PASSWORD}
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def rows(cloud: Cloud, query: str, *params: Any) -> list[dict[str, Any]]:
    async with cloud.pool.connection() as conn:
        cursor = await conn.execute(query, params)
        return await cursor.fetchall()


async def account(cloud: Cloud, world: World, consumer_id: int, name: str) -> tuple[int, str]:
    """An online account of the consumer, with an address of this test's own."""
    email = f"{name}-{world.tag}@example.in".lower()
    async with cloud.pool.connection() as conn:
        user = await auth.create_user(
            conn,
            email=email,
            password=PASSWORD,
            role="CONSUMER",
            consumer_id=consumer_id,
            actor="t",
        )
    return user["id"], email


async def told(cloud: Cloud, broadcast_id: int) -> set[int]:
    found = await rows(
        cloud,
        "SELECT user_id FROM notifications WHERE event_key = %s",
        f"broadcast:{broadcast_id}",
    )
    return {r["user_id"] for r in found}


async def consumer_users(cloud: Cloud, consumer_id: int) -> set[int]:
    found = await rows(cloud, "SELECT id FROM users WHERE consumer_id = %s AND active", consumer_id)
    return {r["id"] for r in found}


async def test_a_category_broadcast_reaches_exactly_those_consumers(
    cloud: Cloud, smtp: SmtpServer
) -> None:
    async with cloud.pool.connection() as conn:
        world = await build_world(conn)
        admin_email = await add_actor(conn, world, "BOARD_ADMIN")
        own, sibling = world.site("own").consumer.id, world.site("sibling").consumer.id
        await conn.execute("UPDATE consumers SET category = 'commercial' WHERE id = %s", (own,))
        await conn.commit()
    admin = await signed_in(cloud, admin_email)
    shop_id, shop_email = await account(cloud, world, own, "shop")
    home_id, home_email = await account(cloud, world, sibling, "home")
    other_board = world.site("other_board").consumer.id
    elsewhere_id, _ = await account(cloud, world, other_board, "elsewhere")
    title = f"Shops: supply work on Sunday ({world.tag})"
    response = await cloud.client.post(
        BROADCASTS,
        json={
            "board_id": world.boards["A"],
            "audience": "consumers",
            "category": "commercial",
            "title": title,
            "body": "Supply to the market road is off 10:00–14:00 on Sunday.\nPlan ahead.",
        },
        headers=admin,
    )
    assert response.status_code == 201, response.text
    sent = response.json()
    shop_users = await consumer_users(cloud, own)
    assert shop_id in shop_users
    assert sent["recipients"] == len(shop_users)
    assert (sent["audience"], sent["category"], sent["opted_out"]) == ("consumers", "commercial", 0)
    assert sent["sent_by"] == world.users["BOARD_ADMIN"].id
    assert await told(cloud, sent["id"]) == shop_users  # not the sibling's, not board B's
    assert home_id not in shop_users
    assert elsewhere_id not in shop_users

    mail = await smtp.mailbox.next_to(shop_email, title)
    assert "Supply to the market road is off" in text_of(mail)
    assert "https://portal.example.in/dashboard/inbox" in text_of(mail)
    mailed = await rows(cloud, "SELECT to_address FROM email_outbox WHERE subject = %s", title)
    expected = await rows(cloud, "SELECT email FROM users WHERE id = ANY(%s)", list(shop_users))
    assert sorted(r["to_address"] for r in mailed) == sorted(r["email"] for r in expected)
    assert home_email not in {r["to_address"] for r in mailed}

    inbox = (await cloud.client.get("/api/v1/notifications", headers=admin)).json()
    assert inbox["total"] == 0  # the staff were not in this audience
    shop = await signed_in(cloud, shop_email)
    [note] = (await cloud.client.get("/api/v1/notifications", headers=shop)).json()["items"]
    assert (note["kind"], note["title"], note["link"]) == ("broadcast", title, "/dashboard/inbox")

    [entry] = await rows(
        cloud,
        "SELECT actor, after FROM audit_log WHERE action = 'broadcast' AND entity = 'broadcast'"
        " AND entity_id = %s",
        str(sent["id"]),
    )
    assert entry["actor"] == f"user:{world.users['BOARD_ADMIN'].id}"
    assert entry["after"]["recipients"] == len(shop_users)
    assert entry["after"]["category"] == "commercial"

    listed = await cloud.client.get(
        BROADCASTS, params={"board_id": world.boards["A"]}, headers=admin
    )
    assert listed.status_code == 200, listed.text
    [item] = listed.json()["items"]
    assert (item["id"], item["title"], item["recipients"]) == (sent["id"], title, len(shop_users))
    assert item["sent_by_name"] == admin_email.lower()  # no name on the account: its address


async def test_a_staff_broadcast_reaches_the_board_staff_and_state_admins(cloud: Cloud) -> None:
    async with cloud.pool.connection() as conn:
        world = await build_world(conn)
        agent_email = await add_actor(conn, world, "SUPPORT_AGENT")
        await add_actor(conn, world, "STATE_ADMIN")
        await add_actor(conn, world, "SUPER_ADMIN")
        await add_actor(conn, world, "CONSUMER")
    agent = await signed_in(cloud, agent_email)
    response = await cloud.client.post(
        BROADCASTS,
        json={
            "board_id": world.boards["A"],
            "audience": "staff",
            "title": "Billing run moved to Friday",
            "body": "This month's billing run starts on Friday at 09:00.",
            "urgent": True,
        },
        headers=agent,
    )
    assert response.status_code == 201, response.text
    sent = response.json()
    staff = await rows(
        cloud,
        "SELECT id FROM users WHERE active AND ((board_id = %s AND role <> 'SUPER_ADMIN')"
        " OR (role = 'STATE_ADMIN' AND state_id = %s))",
        world.boards["A"],
        world.states["S1"],
    )
    expected = {r["id"] for r in staff}
    assert world.users["STATE_ADMIN"].id in expected
    assert world.users["SUPPORT_AGENT"].id in expected  # the sender hears it too
    assert await told(cloud, sent["id"]) == expected
    assert sent["recipients"] == len(expected)
    [urgent] = await rows(
        cloud,
        "SELECT DISTINCT urgent FROM notifications WHERE event_key = %s",
        f"broadcast:{sent['id']}",
    )
    assert urgent["urgent"] is True


async def test_people_who_opted_out_are_skipped(cloud: Cloud) -> None:
    async with cloud.pool.connection() as conn:
        world = await build_world(conn)
        admin_email = await add_actor(conn, world, "BOARD_ADMIN")
        consumer_email = await add_actor(conn, world, "CONSUMER")
        cursor = await conn.execute(
            "INSERT INTO consumers (board_id, account_no, name, category)"
            " VALUES (%s, %s, 'Farm', 'agricultural') RETURNING id",
            (world.boards["A"], f"FARM-{world.tag}"),
        )
        farm = (await cursor.fetchone())["id"]
        await conn.commit()
    admin, consumer = await signed_in(cloud, admin_email), await signed_in(cloud, consumer_email)
    farmer_id, farmer_email = await account(cloud, world, farm, "farmer")
    farmer = await signed_in(cloud, farmer_email)
    for headers in (consumer, farmer):
        response = await cloud.client.put(
            "/api/v1/users/me/preferences", json={"opted_out": ["announcements"]}, headers=headers
        )
        assert response.status_code == 200, response.text
    fields = {
        "board_id": world.boards["A"],
        "audience": "everyone",
        "title": "New payment counter",
        "body": "A payment counter opens at the board's office.",
    }
    # the review the web form shows first: whom it reaches and who opted out, nothing sent
    board_admin = Principal(
        world.users["BOARD_ADMIN"].id, "BOARD_ADMIN", world.states["S1"], world.boards["A"], None
    )
    async with cloud.pool.connection() as conn:
        reach = await broadcasts.preview(conn, board_admin, category=None, **fields)
    assert not await rows(cloud, "SELECT 1 FROM broadcasts WHERE board_id = %s", fields["board_id"])
    assert (reach["board_code"], reach["opted_out"]) == (f"A-{world.tag}", 2)
    response = await cloud.client.post(BROADCASTS, json=fields, headers=admin)
    assert response.status_code == 201, response.text
    sent = response.json()
    assert sent["opted_out"] == 2
    assert reach["told"] == sent["recipients"]
    assert reach["consumers"] + reach["staff"] == sent["recipients"] + 2
    reached = await told(cloud, sent["id"])
    assert world.users["CONSUMER"].id not in reached
    assert farmer_id not in reached
    assert world.users["BOARD_ADMIN"].id in reached
    assert sent["recipients"] == len(reached)

    # an audience of nobody but people who opted out is refused, and leaves nothing behind
    before = await rows(cloud, "SELECT count(*) AS n FROM broadcasts WHERE board_id = %s", farm)
    response = await cloud.client.post(
        BROADCASTS,
        json={
            "board_id": world.boards["A"],
            "audience": "consumers",
            "category": "agricultural",
            "title": "Pump hours",
            "body": "Three-phase supply for pumps runs 22:00–06:00 this week.",
        },
        headers=admin,
    )
    assert response.status_code == 422, response.text
    assert response.json()["detail"] == (
        "the one person this would reach opted out of announcements"
    )
    with pytest.raises(InvalidInput, match=r"^the one person this would reach opted out"):
        async with cloud.pool.connection() as conn:
            await broadcasts.preview(
                conn,
                board_admin,
                **(fields | {"audience": "consumers", "category": "agricultural"}),
            )
    after = await rows(cloud, "SELECT count(*) AS n FROM broadcasts WHERE board_id = %s", farm)
    assert after == before
    audited = await rows(
        cloud, "SELECT count(*) AS n FROM audit_log WHERE after->>'title' = 'Pump hours'"
    )
    assert audited[0]["n"] == 0


async def test_bad_input_is_named(cloud: Cloud) -> None:
    async with cloud.pool.connection() as conn:
        world = await build_world(conn)
        admin_email = await add_actor(conn, world, "BOARD_ADMIN")
        state_email = await add_actor(conn, world, "STATE_ADMIN")
        technician_email = await add_actor(conn, world, "TECHNICIAN")
        consumer_email = await add_actor(conn, world, "CONSUMER")
    admin = await signed_in(cloud, admin_email)
    good = {
        "board_id": world.boards["A"],
        "audience": "consumers",
        "title": "Notice",
        "body": "A body.",
    }

    async def refused(changes: dict[str, Any], headers: dict[str, str] = admin) -> tuple:
        response = await cloud.client.post(BROADCASTS, json=good | changes, headers=headers)
        body = response.json()
        return response.status_code, [e["field"] for e in body["errors"]], body["detail"]

    status, fields, _ = await refused({"title": "x" * 201})
    assert (status, fields) == (422, ["body.title"])
    status, fields, _ = await refused({"title": "Two\nlines"})
    assert (status, fields) == (422, ["body.title"])
    status, fields, _ = await refused({"body": "x" * 2001})
    assert (status, fields) == (422, ["body.body"])
    status, fields, _ = await refused({"body": "nul \x00 here"})
    assert (status, fields) == (422, ["body.body"])
    assert await refused({"body": "   "}) == (422, ["body"], "the message is empty")
    status, fields, _ = await refused({"audience": "all"})
    assert (status, fields) == (422, ["body.audience"])
    status, fields, _ = await refused({"sender": "someone else"})
    assert (status, fields) == (422, ["body.sender"])
    status, fields, detail = await refused({"audience": "staff", "category": "domestic"})
    assert (status, fields) == (422, ["category"])
    assert detail == "a category chooses consumers; a broadcast to staff has none"
    unknown = (
        f"board A-{world.tag} has no consumers in the category 'industrial'"
        " (its consumers' categories: domestic)"
    )
    for audience in ("consumers", "everyone"):  # not to the staff alone by a typo
        changes = {"audience": audience, "category": "industrial"}
        assert await refused(changes) == (422, ["category"], unknown)
    # a board whose consumers have no online accounts: nobody to tell
    empty = world.site("own").board_empty.id
    state_admin = await signed_in(cloud, state_email)
    status, fields, detail = await refused({"board_id": empty}, state_admin)
    assert (status, fields) == (422, ["audience"])
    [board] = await rows(cloud, "SELECT code FROM boards WHERE id = %s", empty)
    assert detail == f"board {board['code']} has no consumers"
    # out of scope is not found; roles without the permission are refused
    status, _, _ = await refused({"board_id": world.boards["B"]})
    assert status == 404
    for email in (technician_email, consumer_email):
        status, _, _ = await refused({}, await signed_in(cloud, email))
        assert status == 403
    assert (
        await rows(
            cloud, "SELECT id FROM broadcasts WHERE board_id = ANY(%s)", list(world.boards.values())
        )
        == []
    )


async def test_a_board_gets_at_most_ten_broadcasts_an_hour(cloud: Cloud) -> None:
    async with cloud.pool.connection() as conn:
        world = await build_world(conn)
        admin_email = await add_actor(conn, world, "BOARD_ADMIN")
        other_email = f"admin-b-{world.tag}@example.in"
        await auth.create_user(
            conn,
            email=other_email,
            password=PASSWORD,
            role="BOARD_ADMIN",
            board_code=f"B-{world.tag}",
            actor="t",
        )
    admin, other = await signed_in(cloud, admin_email), await signed_in(cloud, other_email)

    def broadcast(board: str, n: int) -> dict[str, Any]:
        return {
            "board_id": world.boards[board],
            "audience": "consumers",
            "title": f"Update {n}",
            "body": "An update.",
        }

    # ten at once: the limit holds under concurrency, not only one after another
    answers = await asyncio.gather(
        *(cloud.client.post(BROADCASTS, json=broadcast("A", n), headers=admin) for n in range(12))
    )
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [201] * 10 + [429] * 2, [a.text for a in answers]
    limited = next(a for a in answers if a.status_code == 429)
    assert limited.json()["detail"].startswith(
        f"board A-{world.tag} has had 10 broadcasts in the last hour, the most allowed;"
    )
    assert 0 < int(limited.headers["Retry-After"]) <= 3600
    # another board keeps its own allowance
    response = await cloud.client.post(BROADCASTS, json=broadcast("B", 0), headers=other)
    assert response.status_code == 201, response.text


async def sent_everywhere(cloud: Cloud, url: str, headers: dict, timeout_s: float = 30) -> dict:
    """The staff's view of the consumer's notifications once every message queued for them
    (e-mail or text) has left its outbox."""
    deadline = time.monotonic() + timeout_s
    while True:
        response = await cloud.client.get(url, headers=headers)
        assert response.status_code == 200, response.text
        page = response.json()
        outboxes = [d["outbox"] for n in page["items"] for d in n["deliveries"] if d["outbox"]]
        if outboxes and all(o["status"] == "sent" for o in outboxes):
            return page
        assert time.monotonic() < deadline, f"still not sent: {outboxes}"
        await asyncio.sleep(0.05)


async def test_staff_see_what_became_of_each_channel(
    cloud: Cloud, smtp: SmtpServer, receiver: SmsReceiver
) -> None:
    async with cloud.pool.connection() as conn:
        world = await build_world(conn)
        agent_email = await add_actor(conn, world, "SUPPORT_AGENT")
        consumer_email = await add_actor(conn, world, "CONSUMER")
    agent, consumer = await signed_in(cloud, agent_email), await signed_in(cloud, consumer_email)
    own = world.site("own").consumer.id
    # one account takes e-mail and texts but has no phone number; another has one
    response = await cloud.client.put(
        "/api/v1/users/me/preferences",
        json={"channels": ["in_app", "email", "sms"]},
        headers=consumer,
    )
    assert response.status_code == 200, response.text
    texter_id, texter_email = await account(cloud, world, own, "texter")
    texter = await signed_in(cloud, texter_email)
    phone = f"+91 9{uuid.uuid4().int % 10**9:09d}"
    for method, path, body in (
        ("PATCH", "/api/v1/users/me", {"phone": phone}),
        ("PUT", "/api/v1/users/me/preferences", {"channels": ["in_app", "sms"]}),
    ):
        response = await cloud.client.request(method, path, json=body, headers=texter)
        assert response.status_code == 200, response.text
    response = await cloud.client.post(
        BROADCASTS,
        json={
            "board_id": world.boards["A"],
            "audience": "consumers",
            "title": "Meter replacement in your area",
            "body": "Technicians will replace meters on Main Street on Monday.",
            "urgent": True,  # announcements reach phones only when urgent
        },
        headers=agent,
    )
    assert response.status_code == 201, response.text
    await smtp.mailbox.next_to(consumer_email.lower(), "Meter replacement")
    await receiver.next_to(phone.replace(" ", ""))

    url = f"/api/v1/consumers/{own}/notifications"
    page = await sent_everywhere(cloud, url, agent)
    by_user = {n["user_id"]: n for n in page["items"]}
    assert page["total"] == len(await consumer_users(cloud, own))
    mine = by_user[world.users["CONSUMER"].id]
    assert mine["title"] == "Meter replacement in your area"
    assert mine["user_email"] == consumer_email.lower()
    assert "body" not in mine
    channels = {d["channel"]: d for d in mine["deliveries"]}
    assert list(channels) == ["in_app", "email", "sms"]
    assert channels["in_app"]["status"] == "delivered"
    email = channels["email"]
    assert email["status"] == "queued"
    assert email["outbox"]["status"] == "sent"
    assert email["outbox"]["attempts"] == 1
    assert email["outbox"]["sent_at"] is not None
    assert email["outbox"]["to"] == consumer_email.lower()
    sms = channels["sms"]
    assert (sms["status"], sms["detail"], sms["outbox"]) == (
        "not_sent",
        "no phone number on the account",
        None,
    )
    texted = {d["channel"]: d for d in by_user[texter_id]["deliveries"]}
    assert list(texted) == ["in_app", "sms"]
    assert texted["sms"]["outbox"]["status"] == "sent"
    assert texted["sms"]["outbox"]["to"] == phone.replace(" ", "")

    # the consumer does not see the desk's view; another board's consumer is not found
    response = await cloud.client.get(url, headers=consumer)
    assert response.status_code == 403
    elsewhere = world.site("other_board").consumer.id
    response = await cloud.client.get(f"/api/v1/consumers/{elsewhere}/notifications", headers=agent)
    assert response.status_code == 404


async def test_one_review_sent_twice_at_once_tells_everyone_once(cloud: Cloud) -> None:
    """The web page's double click: two sends of one form's key race; one broadcast goes, the
    other finds it and tells nobody. Another form's key is another broadcast, and so is another
    message from the same form."""
    async with cloud.pool.connection() as conn:
        world = await build_world(conn)
        await add_actor(conn, world, "BOARD_ADMIN")
    admin = Principal(
        world.users["BOARD_ADMIN"].id, "BOARD_ADMIN", world.states["S1"], world.boards["A"], None
    )
    key = broadcasts.new_form_key()

    async def send(form_key: str, title: str = "Meter reading visits next week") -> dict[str, Any]:
        async with cloud.pool.connection() as conn:
            return await broadcasts.send(
                conn,
                admin,
                board_id=world.boards["A"],
                audience="everyone",
                category=None,
                title=title,
                body="Readers visit from Monday.",
                urgent=False,
                base_url="https://portal.example.in",
                form_key=form_key,
            )

    first, second = await asyncio.gather(send(key), send(key), return_exceptions=True)
    [sent] = [r for r in (first, second) if isinstance(r, dict)]
    [again] = [r for r in (first, second) if isinstance(r, broadcasts.AlreadySent)]
    assert again.broadcast["id"] == sent["id"]
    assert again.broadcast["recipients"] == sent["recipients"]
    assert len(await told(cloud, sent["id"])) == sent["recipients"]
    found = await rows(cloud, "SELECT id FROM broadcasts WHERE board_id = %s", world.boards["A"])
    assert [r["id"] for r in found] == [sent["id"]]
    other = await send(broadcasts.new_form_key())
    assert other["id"] != sent["id"]
    # the form sent again and changed before its Send: a message of its own, which goes
    changed = await send(key, title="Meter reading visits moved to Tuesday")
    assert changed["id"] not in (sent["id"], other["id"])
    assert changed["recipients"] == sent["recipients"]
    # the first message from that form once more: still the first, nobody told twice
    with pytest.raises(broadcasts.AlreadySent) as repeated:
        await send(key)
    assert repeated.value.broadcast["id"] == sent["id"]
    with pytest.raises(InvalidInput, match=r"^the form's key is not one the page gave$"):
        await send("short")

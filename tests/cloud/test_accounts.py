"""Accounts people run themselves, over the API, with a real SMTP server receiving the mail:
consumer sign-up by code, invitations, forgotten and changed passwords, profile and e-mail
change, and the outbox's delivery through an SMTP server that goes away."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from cloud.services import auth, fleet
from tests.cloud.conftest import STAFF_PASSWORD, Cloud, open_cloud, staff_headers
from tests.support.smtp import SmtpServer, code_in, link_token_in, smtp_server, text_of
from tests.support.tls import self_signed

NEW_PASSWORD = "lantern orchard pebble"
OTHER_PASSWORD = "copper meadow violin"


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
        mail_retry_base_s=0.1,
        mail_retry_max_s=0.5,
        session_check_s=0,
        public_url="https://portal.example.in",
    ) as opened:
        yield opened


async def add_consumer(cloud: Cloud, board: str, email: str | None = None) -> dict:
    account = f"AC-{uuid.uuid4().hex[:8]}"
    email = email or f"{account.lower()}@example.in"
    async with cloud.pool.connection() as conn:
        board_id = (await fleet.board_by_code(conn, board))["id"]
    headers = await staff_headers(cloud, board)
    response = await cloud.client.post(
        "/api/v1/consumers",
        json={"board_id": board_id, "account_no": account, "name": "Asha Verma", "email": email},
        headers=headers,
    )
    assert response.status_code == 201, response.text
    return response.json()


async def login(cloud: Cloud, email: str, password: str) -> dict:
    response = await cloud.client.post(
        "/api/v1/auth/login", json={"email": email, "password": password}
    )
    assert response.status_code == 200, response.text
    return response.json()


async def until_row(cloud: Cloud, query: str, params: tuple, timeout_s: float = 30) -> dict:
    """Wait until `query` returns a row whose first column is true; that row."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    async with cloud.pool.connection() as conn:
        while asyncio.get_running_loop().time() < deadline:
            row = await (await conn.execute(query, params)).fetchone()
            if row and next(iter(row.values())):
                return row
            await conn.execute("SELECT pg_sleep(0.05)")
    raise AssertionError(f"never true: {query} {params}")


async def retried(cloud: Cloud, address: str) -> None:
    """Wait until the outbox recorded a failed attempt to send to `address`."""
    await until_row(
        cloud,
        "SELECT count(*) > 0 AS failed FROM email_attempts a JOIN email_outbox o"
        " ON o.id = a.email_id WHERE o.to_address = %s AND a.outcome = 'retry'",
        (address,),
    )


async def state_admin(cloud: Cloud) -> dict[str, str]:
    email = f"state-{uuid.uuid4().hex[:8]}@example.in"
    async with cloud.pool.connection() as conn:
        await auth.create_user(
            conn,
            email=email,
            password=STAFF_PASSWORD,
            role="STATE_ADMIN",
            state_code="TS",
            actor="test",
        )
    return bearer(await login(cloud, email, STAFF_PASSWORD))


def bearer(tokens: dict) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


async def test_a_consumer_signs_up_with_the_code_from_the_email(
    cloud: Cloud, board: str, smtp: SmtpServer
) -> None:
    consumer = await add_consumer(cloud, board)
    ask = {"account_no": consumer["account_no"], "email": consumer["email"].upper()}
    response = await cloud.client.post("/api/v1/auth/signup", json=ask)
    assert response.status_code == 202, response.text
    message = await smtp.mailbox.next_to(consumer["email"], "sign-up code")
    code = code_in(message)
    assert code in message["Subject"]
    assert message.get_body(preferencelist=("html",)) is not None

    wrong = "000000" if code != "000000" else "111111"
    response = await cloud.client.post(
        "/api/v1/auth/signup/complete", json={**ask, "code": wrong, "password": NEW_PASSWORD}
    )
    assert response.status_code == 422
    assert "4 tries left" in response.json()["detail"]

    response = await cloud.client.post(
        "/api/v1/auth/signup/complete", json={**ask, "code": code, "password": NEW_PASSWORD}
    )
    assert response.status_code == 201, response.text
    user = response.json()
    assert user["role"] == "CONSUMER"
    assert user["email"] == consumer["email"]

    tokens = await login(cloud, consumer["email"], NEW_PASSWORD)
    me = (await cloud.client.get("/api/v1/auth/me", headers=bearer(tokens))).json()
    assert me["consumer_id"] == consumer["id"]

    # single use: the same code again is refused, and no second account appears
    response = await cloud.client.post(
        "/api/v1/auth/signup/complete", json={**ask, "code": code, "password": OTHER_PASSWORD}
    )
    assert response.status_code == 422
    # asking again tells the owner they already have an account, by e-mail only
    response = await cloud.client.post("/api/v1/auth/signup", json=ask)
    assert response.status_code == 202
    notice = await smtp.mailbox.next_to(consumer["email"], "already have")
    assert "/dashboard/password/forgot" in text_of(notice)
    local, domain = consumer["email"].split("@")
    assert f"signs in as {local[:2]}***@{domain}" in text_of(notice)
    async with cloud.pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT action FROM audit_log WHERE entity = 'user' AND entity_id = %s",
            (str(user["id"]),),
        )
        assert "sign_up" in [row["action"] for row in await cursor.fetchall()]


async def test_signup_answers_the_same_whether_or_not_the_account_exists(
    cloud: Cloud, board: str
) -> None:
    consumer = await add_consumer(cloud, board)
    answers = []
    for ask in (
        {"account_no": consumer["account_no"], "email": consumer["email"]},
        {"account_no": consumer["account_no"], "email": "someone-else@example.in"},
        {"account_no": "NO-SUCH-ACCOUNT", "email": consumer["email"]},
    ):
        response = await cloud.client.post("/api/v1/auth/signup", json=ask)
        answers.append((response.status_code, response.json()))
    assert answers[0] == answers[1] == answers[2]
    async with cloud.pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT to_address FROM email_outbox WHERE to_address IN (%s, %s)",
            (consumer["email"], "someone-else@example.in"),
        )
        assert [row["to_address"] for row in await cursor.fetchall()] == [consumer["email"]]
        cursor = await conn.execute(
            "SELECT count(*) AS n FROM account_tokens WHERE consumer_id = %s", (consumer["id"],)
        )
        assert (await cursor.fetchone())["n"] == 1


async def test_a_code_dies_after_five_wrong_tries_and_is_stored_hashed(
    cloud: Cloud, board: str, smtp: SmtpServer
) -> None:
    consumer = await add_consumer(cloud, board)
    ask = {"account_no": consumer["account_no"], "email": consumer["email"]}
    await cloud.client.post("/api/v1/auth/signup", json=ask)
    code = code_in(await smtp.mailbox.next_to(consumer["email"], "sign-up code"))
    async with cloud.pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT token_hash FROM account_tokens WHERE consumer_id = %s", (consumer["id"],)
        )
        stored = bytes((await cursor.fetchone())["token_hash"])
    assert code.encode() not in stored
    assert len(stored) == 32
    wrong = [f"{(int(code) + n) % 1_000_000:06d}" for n in range(1, 6)]
    details = []
    for guess in wrong:
        response = await cloud.client.post(
            "/api/v1/auth/signup/complete", json={**ask, "code": guess, "password": NEW_PASSWORD}
        )
        details.append(response.json()["detail"])
    assert "last try" in details[-1]
    response = await cloud.client.post(
        "/api/v1/auth/signup/complete", json={**ask, "code": code, "password": NEW_PASSWORD}
    )
    assert response.status_code == 422
    assert "expired" in response.json()["detail"]


async def test_signup_requests_are_limited_per_account_with_retry_after(
    cloud: Cloud, board: str
) -> None:
    consumer = await add_consumer(cloud, board)
    ask = {"account_no": consumer["account_no"], "email": consumer["email"]}
    statuses = []
    for _ in range(6):
        response = await cloud.client.post("/api/v1/auth/signup", json=ask)
        statuses.append(response.status_code)
    assert statuses == [202] * 5 + [429]
    assert int(response.headers["Retry-After"]) > 0


async def test_bad_signup_input_is_named(cloud: Cloud) -> None:
    response = await cloud.client.post(
        "/api/v1/auth/signup", json={"account_no": "A1", "email": "not-an-address"}
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "body.email"
    response = await cloud.client.post(
        "/api/v1/auth/signup", json={"account_no": "A1", "email": "a@b.in", "role": "SUPER_ADMIN"}
    )
    assert response.status_code == 422
    response = await cloud.client.post(
        "/api/v1/auth/signup/complete",
        json={"account_no": "A1", "email": "a@b.in", "code": "12345", "password": NEW_PASSWORD},
    )
    assert response.json()["errors"][0]["field"] == "body.code"


async def test_an_invited_user_chooses_their_own_password(
    cloud: Cloud, board: str, smtp: SmtpServer
) -> None:
    async with cloud.pool.connection() as conn:
        board_id = (await fleet.board_by_code(conn, board))["id"]
    admin = await state_admin(cloud)
    email = f"agent-{uuid.uuid4().hex[:6]}@example.in"
    response = await cloud.client.post(
        "/api/v1/users",
        json={"email": email, "name": "Ravi Kumar", "role": "SUPPORT_AGENT", "board_id": board_id},
        headers=admin,
    )
    assert response.status_code == 201, response.text
    user = response.json()
    assert user["password_set_at"] is None
    # no password yet: nothing logs in
    response = await cloud.client.post(
        "/api/v1/auth/login", json={"email": email, "password": NEW_PASSWORD}
    )
    assert response.status_code == 401
    # a password in the request is refused: administrators never set one
    response = await cloud.client.post(
        "/api/v1/users",
        json={"email": "x" + email, "password": NEW_PASSWORD, "role": "AUDITOR"},
        headers=admin,
    )
    assert response.status_code == 422

    invitation = await smtp.mailbox.next_to(email, "invited")
    assert "support agent" in text_of(invitation)
    token = link_token_in(invitation)
    assert "https://portal.example.in/dashboard/invitation?token=" in text_of(invitation)
    response = await cloud.client.post(
        "/api/v1/auth/invitation/accept", json={"token": token, "password": "password"}
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "password"
    response = await cloud.client.post(
        "/api/v1/auth/invitation/accept", json={"token": token, "password": NEW_PASSWORD}
    )
    assert response.status_code == 200, response.text
    await login(cloud, email, NEW_PASSWORD)
    response = await cloud.client.post(
        "/api/v1/auth/invitation/accept", json={"token": token, "password": OTHER_PASSWORD}
    )
    assert response.status_code == 422
    assert "not valid" in response.json()["detail"]
    response = await cloud.client.post(f"/api/v1/users/{user['id']}/invitation", headers=admin)
    assert response.status_code == 409


async def test_forgot_and_reset_end_every_session_and_tell_the_user(
    cloud: Cloud, board: str, smtp: SmtpServer
) -> None:
    async with cloud.pool.connection() as conn:
        board_id = (await fleet.board_by_code(conn, board))["id"]
    admin = await state_admin(cloud)
    email = f"tech-{uuid.uuid4().hex[:6]}@example.in"
    await cloud.client.post(
        "/api/v1/users",
        json={"email": email, "role": "TECHNICIAN", "board_id": board_id},
        headers=admin,
    )
    token = link_token_in(await smtp.mailbox.next_to(email, "invited"))
    await cloud.client.post(
        "/api/v1/auth/invitation/accept", json={"token": token, "password": NEW_PASSWORD}
    )
    old = await login(cloud, email, NEW_PASSWORD)
    assert (await cloud.client.get("/api/v1/users/me", headers=bearer(old))).status_code == 200

    response = await cloud.client.post("/api/v1/auth/password/forgot", json={"email": email})
    unknown = await cloud.client.post(
        "/api/v1/auth/password/forgot", json={"email": "nobody@example.in"}
    )
    assert response.status_code == unknown.status_code == 202
    assert response.json() == unknown.json()
    reset = await smtp.mailbox.next_to(email, "Reset your")
    link = link_token_in(reset)
    response = await cloud.client.post(
        "/api/v1/auth/password/reset", json={"token": link, "password": OTHER_PASSWORD}
    )
    assert response.status_code == 204, response.text
    changed = await smtp.mailbox.next_to(email, "was changed")
    assert "reset through an e-mailed link" in text_of(changed)

    refused = await cloud.client.get("/api/v1/users/me", headers=bearer(old))
    assert refused.status_code == 401
    refresh = await cloud.client.post(
        "/api/v1/auth/refresh", json={"refresh_token": old["refresh_token"]}
    )
    assert refresh.status_code == 401
    await login(cloud, email, OTHER_PASSWORD)
    response = await cloud.client.post(
        "/api/v1/auth/password/reset", json={"token": link, "password": NEW_PASSWORD}
    )
    assert response.status_code == 422


async def test_changing_a_password_needs_the_current_one(
    cloud: Cloud, board: str, smtp: SmtpServer
) -> None:
    consumer = await add_consumer(cloud, board)
    ask = {"account_no": consumer["account_no"], "email": consumer["email"]}
    await cloud.client.post("/api/v1/auth/signup", json=ask)
    code = code_in(await smtp.mailbox.next_to(consumer["email"], "sign-up code"))
    await cloud.client.post(
        "/api/v1/auth/signup/complete", json={**ask, "code": code, "password": NEW_PASSWORD}
    )
    tokens = await login(cloud, consumer["email"], NEW_PASSWORD)
    response = await cloud.client.post(
        "/api/v1/users/me/password",
        json={"current_password": "not my password", "new_password": OTHER_PASSWORD},
        headers=bearer(tokens),
    )
    assert response.status_code == 401
    response = await cloud.client.post(
        "/api/v1/users/me/password",
        json={"current_password": NEW_PASSWORD, "new_password": OTHER_PASSWORD},
        headers=bearer(tokens),
    )
    assert response.status_code == 204, response.text
    notice = await smtp.mailbox.next_to(consumer["email"], "was changed")
    assert "was changed on" in text_of(notice)
    assert "IST" in text_of(notice)
    assert (await cloud.client.get("/api/v1/users/me", headers=bearer(tokens))).status_code == 401
    await login(cloud, consumer["email"], OTHER_PASSWORD)


async def test_profile_and_a_confirmed_change_of_email(
    cloud: Cloud, board: str, smtp: SmtpServer
) -> None:
    headers = await staff_headers(cloud, board)
    me = (await cloud.client.get("/api/v1/users/me", headers=headers)).json()
    assert me["role"] == "BOARD_ADMIN"
    assert me["board"].startswith("Board ")
    response = await cloud.client.patch(
        "/api/v1/users/me",
        json={"name": "Meera Nair", "phone": "+91 98765 43210", "language": "hi"},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    assert response.json()["name"] == "Meera Nair"
    assert response.json()["language"] == "hi"
    for bad in ({"phone": "call me"}, {"role": "SUPER_ADMIN"}, {"language": "english"}):
        response = await cloud.client.patch("/api/v1/users/me", json=bad, headers=headers)
        assert response.status_code == 422, bad

    new_email = f"meera-{uuid.uuid4().hex[:6]}@example.in"
    response = await cloud.client.patch(
        "/api/v1/users/me", json={"email": new_email}, headers=headers
    )
    assert response.json()["email"] == me["email"]
    assert response.json()["pending_email"] == new_email
    confirm = await smtp.mailbox.next_to(new_email, "Confirm your new")
    response = await cloud.client.post(
        "/api/v1/users/me/email/confirm", json={"token": link_token_in(confirm)}
    )
    assert response.status_code == 200, response.text
    told = await smtp.mailbox.next_to(me["email"], "address was changed")
    assert new_email in text_of(told)
    await login(cloud, new_email, STAFF_PASSWORD)
    response = await cloud.client.post(
        "/api/v1/auth/login", json={"email": me["email"], "password": STAFF_PASSWORD}
    )
    assert response.status_code == 401


async def test_an_admin_edits_a_consumers_contact(cloud: Cloud, board: str) -> None:
    consumer = await add_consumer(cloud, board)
    headers = await staff_headers(cloud, board)
    response = await cloud.client.patch(
        f"/api/v1/consumers/{consumer['id']}",
        json={"email": "Asha.New@Example.in", "phone": "+91 99887 76655"},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    assert response.json()["email"] == "asha.new@example.in"
    response = await cloud.client.patch(
        f"/api/v1/consumers/{consumer['id']}", json={"email": "nope"}, headers=headers
    )
    assert response.status_code == 422
    response = await cloud.client.patch(
        f"/api/v1/consumers/{consumer['id']}", json={"phone": None}, headers=headers
    )
    assert response.json()["phone"] is None


async def test_every_mail_arrives_once_after_the_smtp_server_comes_back(
    cloud: Cloud, board: str, smtp: SmtpServer
) -> None:
    smtp.stop()
    consumers = [await add_consumer(cloud, board) for _ in range(4)]
    for consumer in consumers:
        response = await cloud.client.post(
            "/api/v1/auth/signup",
            json={"account_no": consumer["account_no"], "email": consumer["email"]},
        )
        assert response.status_code == 202
    # the sender has tried and failed at least once while the server was away
    await retried(cloud, consumers[0]["email"])
    smtp.start()
    addresses = {c["email"] for c in consumers}
    await smtp.mailbox.wait_for(lambda ms: addresses <= {m["To"] for m in ms})
    for consumer in consumers:
        assert len(smtp.mailbox.to(consumer["email"])) == 1
    done = await until_row(
        cloud,
        "SELECT bool_and(status = 'sent') AS sent, bool_and(body_text IS NULL) AS blanked,"
        " sum(attempts) AS attempts FROM email_outbox WHERE to_address = ANY(%s)",
        (list(addresses),),
    )
    assert done["blanked"]  # the codes are not kept once sent


async def test_consents_keep_their_history_and_preferences_their_bounds(
    cloud: Cloud, board: str
) -> None:
    headers = await staff_headers(cloud, board, "SUPPORT_AGENT")
    fresh = (await cloud.client.get("/api/v1/users/me/consents", headers=headers)).json()
    assert fresh["current"]["automated_support"] == {"granted": False, "at": None}
    for granted in (True, True, False):  # the repeated grant changes nothing
        response = await cloud.client.post(
            "/api/v1/users/me/consents",
            json={"kind": "automated_support", "granted": granted},
            headers=headers,
        )
        assert response.status_code == 200, response.text
    consents = response.json()
    assert consents["current"]["automated_support"]["granted"] is False
    assert [e["granted"] for e in consents["history"]] == [False, True]
    response = await cloud.client.post(
        "/api/v1/users/me/consents", json={"kind": "marketing", "granted": True}, headers=headers
    )
    assert response.status_code == 422

    defaults = (await cloud.client.get("/api/v1/users/me/preferences", headers=headers)).json()
    assert defaults["channels"] == ["in_app", "email"]
    assert defaults["updated_at"] is None
    chosen = {
        "channels": ["email", "sms", "email"],
        "alert_min_severity": "high",
        "opted_out": ["tariff_changes"],
        "quiet_from": "22:00",
        "quiet_until": "07:00",
        "zone": "Asia/Kolkata",
    }
    response = await cloud.client.put("/api/v1/users/me/preferences", json=chosen, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["channels"] == ["email", "sms"]
    assert response.json()["quiet_from"] == "22:00:00"
    stored = (await cloud.client.get("/api/v1/users/me/preferences", headers=headers)).json()
    assert stored["alert_min_severity"] == "high"
    for bad, field in (
        ({"channels": []}, "channels"),
        ({"channels": ["pigeon"]}, "channels"),
        ({"quiet_from": "22:00"}, "quiet_until"),
        ({"zone": "Mars/Olympus"}, "zone"),
        ({"alert_min_severity": "loud"}, "alert_min_severity"),
        ({"colour": "blue"}, "colour"),
    ):
        response = await cloud.client.put("/api/v1/users/me/preferences", json=bad, headers=headers)
        assert response.status_code == 422, bad
        assert field in response.text, (bad, response.text)
    me = (await cloud.client.get("/api/v1/auth/me", headers=headers)).json()
    async with cloud.pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT action FROM audit_log WHERE actor = %s ORDER BY id", (f"user:{me['user_id']}",)
        )
        actions = [row["action"] for row in await cursor.fetchall()]
    assert actions.count("grant_consent") == 1
    assert actions.count("revoke_consent") == 1
    assert actions.count("update_preferences") == 1


async def test_staff_move_between_boards_and_board_admins_see_their_board(
    cloud: Cloud, board: str, smtp: SmtpServer
) -> None:
    admin = await state_admin(cloud)
    async with cloud.pool.connection() as conn:
        here = (await fleet.board_by_code(conn, board))["id"]
        there = (
            await fleet.create_board(
                conn, state_code="TS", code=f"{board}-2", name="Second board", actor="test"
            )
        )["id"]
        state = (await fleet.board_by_code(conn, board))["state_id"]
    response = await cloud.client.post(
        "/api/v1/users",
        json={
            "email": f"mover-{uuid.uuid4().hex[:6]}@example.in",
            "role": "TECHNICIAN",
            "board_id": here,
        },
        headers=admin,
    )
    user = response.json()
    moved = await cloud.client.patch(
        f"/api/v1/users/{user['id']}", json={"board_id": there}, headers=admin
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["board_id"] == there
    widened = await cloud.client.patch(
        f"/api/v1/users/{user['id']}", json={"role": "AUDITOR", "state_id": state}, headers=admin
    )
    assert widened.status_code == 200, widened.text
    assert (widened.json()["state_id"], widened.json()["board_id"]) == (state, None)
    wrong = await cloud.client.patch(
        f"/api/v1/users/{user['id']}", json={"role": "TECHNICIAN"}, headers=admin
    )
    assert wrong.status_code == 422
    assert "needs a board_id" in wrong.json()["detail"]
    climb = await cloud.client.patch(
        f"/api/v1/users/{user['id']}", json={"role": "STATE_ADMIN"}, headers=admin
    )
    assert climb.status_code == 403

    board_admin = await staff_headers(cloud, board)
    listed = await cloud.client.get("/api/v1/users?limit=200", headers=board_admin)
    assert listed.status_code == 200
    assert {u["board_id"] for u in listed.json()["items"]} == {here}
    refused = await cloud.client.post(
        "/api/v1/users",
        json={"email": "x@example.in", "role": "TECHNICIAN", "board_id": here},
        headers=board_admin,
    )
    assert refused.status_code == 403


async def test_mail_goes_over_starttls_with_a_login(database_url: str, tmp_path: Path) -> None:
    """(Not the `cloud` fixture: its sender would take this test's message to its own server.)"""
    context, ca = self_signed(tmp_path)
    with smtp_server(tls_context=context, login=("gridgate", "s3cret pass")) as secure:
        url = f"smtp://gridgate:s3cret%20pass@127.0.0.1:{secure.port}?starttls=require&cafile={ca}"
        async with open_cloud(
            database_url, tmp_path / "tls", smtp_url=url, mail_poll_s=0.05
        ) as tls_cloud:
            code = f"B-TLS{uuid.uuid4().hex[:6].upper()}"
            async with tls_cloud.pool.connection() as conn:
                if not await (
                    await conn.execute("SELECT 1 FROM states WHERE code = 'TS'")
                ).fetchone():
                    await fleet.create_state(conn, code="TS", name="Test state", actor="test")
                await fleet.create_board(conn, state_code="TS", code=code, name="TLS", actor="test")
            consumer = await add_consumer(tls_cloud, code)
            await tls_cloud.client.post(
                "/api/v1/auth/signup",
                json={"account_no": consumer["account_no"], "email": consumer["email"]},
            )
            message = await secure.mailbox.next_to(consumer["email"], "sign-up code")
    assert code_in(message)
    assert secure.logins == ["gridgate"]

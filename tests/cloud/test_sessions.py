"""Sessions end when the account changes: after deactivation, demotion, a password reset or a
logout, the old access token is refused within 5 s — on the API, the dashboard and the alert
stream alike.

Regression: role and scope were read from the token alone, so a deactivated or demoted user
kept writing until the token expired (15 minutes).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable

import httpx
import pytest

from cloud.services import auth
from tests.cloud.conftest import Cloud, client_from, outbox_link_token, random_address

PASSWORD = "correct horse battery"
DEADLINE_S = 5.0


async def _user(cloud: Cloud, role: str, **scope: object) -> tuple[int, str]:
    email = f"{role.lower()}-{uuid.uuid4().hex[:8]}@example.in"
    async with cloud.pool.connection() as conn:
        user = await auth.create_user(
            conn, email=email, password=PASSWORD, role=role, actor="test", **scope
        )
    return user["id"], email


async def _tokens(cloud: Cloud, email: str, password: str = PASSWORD) -> dict:
    response = await cloud.client.post(
        "/api/v1/auth/login", json={"email": email, "password": password}
    )
    assert response.status_code == 200, response.text
    return response.json()


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _refused_within(probe: Callable[[], Awaitable[httpx.Response]]) -> float:
    """Seconds until `probe` answers 401 (asserted to be under the deadline)."""
    started = time.monotonic()
    while True:
        response = await probe()
        if response.status_code == 401:
            return time.monotonic() - started
        assert response.status_code in (200, 201), response.text
        assert time.monotonic() - started < DEADLINE_S, "the old token still works"
        await asyncio.sleep(0.1)  # a polling pace, not a wait for something to happen


@pytest.fixture
async def admin_and_victim(cloud: Cloud, board: str) -> tuple[dict, int, dict, str]:
    """A state admin's tokens, and a board admin (id, tokens, email) of the test's board."""
    _, admin_email = await _user(cloud, "STATE_ADMIN", state_code="TS")
    victim_id, victim_email = await _user(cloud, "BOARD_ADMIN", board_code=board)
    return (
        await _tokens(cloud, admin_email),
        victim_id,
        await _tokens(cloud, victim_email),
        victim_email,
    )


def _write_probe(cloud: Cloud, token: str, board: str) -> Callable[[], Awaitable]:
    """A write the victim may make while their session stands: a new consumer."""

    async def probe() -> httpx.Response:
        boards = await cloud.client.get("/api/v1/boards?limit=200", headers=_bearer(token))
        if boards.status_code != 200:
            return boards
        board_id = next(b["id"] for b in boards.json()["items"] if b["code"] == board)
        return await cloud.client.post(
            "/api/v1/consumers",
            headers=_bearer(token),
            json={"board_id": board_id, "account_no": uuid.uuid4().hex[:12], "name": "Probe"},
        )

    return probe


async def test_deactivation_ends_access(cloud: Cloud, board: str, admin_and_victim) -> None:
    admin, victim_id, victim, _ = admin_and_victim
    assert (await _write_probe(cloud, victim["access_token"], board)()).status_code == 201
    response = await cloud.client.delete(
        f"/api/v1/users/{victim_id}", headers=_bearer(admin["access_token"])
    )
    assert response.status_code == 200, response.text
    await _refused_within(_write_probe(cloud, victim["access_token"], board))


async def test_demotion_ends_access(cloud: Cloud, board: str, admin_and_victim) -> None:
    admin, victim_id, victim, _ = admin_and_victim
    response = await cloud.client.patch(
        f"/api/v1/users/{victim_id}",
        json={"role": "AUDITOR"},
        headers=_bearer(admin["access_token"]),
    )
    assert response.status_code == 200, response.text
    await _refused_within(_write_probe(cloud, victim["access_token"], board))


async def test_a_password_reset_ends_access(cloud: Cloud, board: str, admin_and_victim) -> None:
    admin, victim_id, victim, email = admin_and_victim
    response = await cloud.client.post(
        f"/api/v1/users/{victim_id}/password-reset", headers=_bearer(admin["access_token"])
    )
    assert response.status_code == 202, response.text
    await _refused_within(_write_probe(cloud, victim["access_token"], board))
    token = await outbox_link_token(cloud.pool, email)
    response = await cloud.client.post(
        "/api/v1/auth/password/reset", json={"token": token, "password": "a brand new passphrase"}
    )
    assert response.status_code == 204, response.text
    fresh = await _tokens(cloud, email, "a brand new passphrase")
    assert (await _write_probe(cloud, fresh["access_token"], board)()).status_code == 201


async def test_logout_ends_that_session_only(cloud: Cloud, board: str) -> None:
    _, email = await _user(cloud, "BOARD_ADMIN", board_code=board)
    phone, laptop = await _tokens(cloud, email), await _tokens(cloud, email)
    response = await cloud.client.post(
        "/api/v1/auth/logout", json={"refresh_token": phone["refresh_token"]}
    )
    assert response.status_code == 204
    await _refused_within(_write_probe(cloud, phone["access_token"], board))
    assert (await _write_probe(cloud, laptop["access_token"], board)()).status_code == 201


async def test_live_streams_are_bounded_per_user(
    cloud: Cloud, served: httpx.AsyncClient, board: str
) -> None:
    """A stream costs a queue in the process, not a database connection, and a user may hold a
    few: the next is refused instead of taking the database's connections."""
    _, email = await _user(cloud, "TECHNICIAN", board_code=board)
    token = (await _tokens(cloud, email))["access_token"]
    readers = []  # held: a dropped line iterator closes its response
    async with contextlib.AsyncExitStack() as streams:
        for _ in range(5):
            stream = await streams.enter_async_context(
                served.stream("GET", "/api/v1/alerts/stream", headers=_bearer(token), timeout=30)
            )
            assert stream.status_code == 200
            readers.append(stream.aiter_lines())
            assert await anext(readers[-1]) == "event: ready"
        one_more = await served.get("/api/v1/alerts/stream", headers=_bearer(token))
        assert one_more.status_code == 429
        assert "live streams" in one_more.json()["detail"]


async def test_the_dashboard_session_ends_too(cloud: Cloud, board: str, admin_and_victim) -> None:
    admin, victim_id, victim, _ = admin_and_victim
    app = cloud.client._transport.app  # type: ignore[attr-defined]
    async with client_from(app, random_address()) as browser:
        browser.cookies.set("gg_access", victim["access_token"])
        page = await browser.get("/dashboard/consumers")
        assert page.status_code == 200
        await cloud.client.delete(
            f"/api/v1/users/{victim_id}", headers=_bearer(admin["access_token"])
        )

        async def probe() -> httpx.Response:
            response = await browser.get("/dashboard/consumers")
            # a refused session is sent to sign in again (through the refresh page)
            return httpx.Response(401) if response.status_code == 303 else response

        await _refused_within(probe)


async def test_a_changed_account_signs_in_again_with_its_new_rights(
    cloud: Cloud, board: str, admin_and_victim
) -> None:
    """A role change ends every session, refresh tokens too; signing in again gives the new
    role."""
    admin, victim_id, victim, email = admin_and_victim
    await cloud.client.patch(
        f"/api/v1/users/{victim_id}",
        json={"role": "AUDITOR"},
        headers=_bearer(admin["access_token"]),
    )
    refreshed = await cloud.client.post(
        "/api/v1/auth/refresh", json={"refresh_token": victim["refresh_token"]}
    )
    assert refreshed.status_code == 401
    fresh = await _tokens(cloud, email)
    me = await cloud.client.get("/api/v1/auth/me", headers=_bearer(fresh["access_token"]))
    assert me.json()["role"] == "AUDITOR"
    write = await _write_probe(cloud, fresh["access_token"], board)()
    assert write.status_code == 403


async def test_the_alert_stream_ends_with_the_session(
    cloud: Cloud, served: httpx.AsyncClient, admin_and_victim
) -> None:
    """A live stream re-checks its session while it is quiet and says why it ends."""
    admin, victim_id, victim, _ = admin_and_victim
    async with served.stream(
        "GET", "/api/v1/alerts/stream", headers=_bearer(victim["access_token"]), timeout=30
    ) as stream:
        assert stream.status_code == 200
        lines = stream.aiter_lines()
        assert await anext(lines) == "event: ready"
        await cloud.client.delete(
            f"/api/v1/users/{victim_id}", headers=_bearer(admin["access_token"])
        )
        started = time.monotonic()
        async for line in lines:
            if line == "event: session_ended":
                break
        assert time.monotonic() - started < 15

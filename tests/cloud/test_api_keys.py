"""API keys: created with some of the owner's permissions, used as a bearer credential with the
owner's scope, shown once, revocable, refused once expired, revoked or their owner deactivated
(within the session-check time), never able to manage keys or users, and never accepted by the
web app. Their secret appears in no log, no audit row and no later answer.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cloud.access import ROLE_PERMISSIONS
from cloud.services import auth
from tests.cloud.conftest import Cloud, client_from, open_cloud, random_address

PASSWORD = "correct horse battery"
KEYS = "/api/v1/users/me/api-keys"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def in_days(days: float) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).isoformat()


async def signed_in(cloud: Cloud, role: str, **scope: object) -> tuple[int, dict[str, str]]:
    email = f"{role.lower()}-{uuid.uuid4().hex[:8]}@example.in"
    async with cloud.pool.connection() as conn:
        user = await auth.create_user(
            conn, email=email, password=PASSWORD, role=role, actor="test", **scope
        )
    login = await cloud.client.post(
        "/api/v1/auth/login", json={"email": email, "password": PASSWORD}
    )
    assert login.status_code == 200, login.text
    return user["id"], bearer(login.json()["access_token"])


async def new_key(
    cloud: Cloud, headers: dict[str, str], permissions: list[str], days: float = 30
) -> dict:
    response = await cloud.client.post(
        KEYS,
        headers=headers,
        json={"name": "billing export", "permissions": permissions, "expires_at": in_days(days)},
    )
    assert response.status_code == 201, response.text
    return response.json()


@pytest.fixture
async def quick(database_url: str, tmp_path: Path):
    """The app checking sessions and keys on every request (no cached verdicts)."""
    async with open_cloud(database_url, tmp_path / "quick", session_check_s=0) as cloud:
        yield cloud


async def test_create_use_see_last_used_revoke(
    quick: Cloud, board: str, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    _, owner = await signed_in(quick, "BOARD_ADMIN", board_code=board)
    created = await new_key(quick, owner, ["board:read", "consumer:read"])
    secret = created["key"]
    assert secret.startswith(created["prefix"] + "_")
    listed = (await quick.client.get(KEYS, headers=owner)).json()
    assert [k["id"] for k in listed["items"]] == [created["id"]]
    assert listed["items"][0]["last_used_at"] is None

    boards = await quick.client.get("/api/v1/boards", headers=bearer(secret))
    assert boards.status_code == 200, boards.text
    assert [b["code"] for b in boards.json()["items"]] == [board]  # the owner's scope
    assert (await quick.client.get("/api/v1/meters", headers=bearer(secret))).status_code == 403
    listed = (await quick.client.get(KEYS, headers=owner)).json()
    assert listed["items"][0]["last_used_at"] is not None

    revoked = await quick.client.delete(f"{KEYS}/{created['id']}", headers=owner)
    assert revoked.status_code == 200, revoked.text
    refused = await quick.client.get("/api/v1/boards", headers=bearer(secret))
    assert refused.status_code == 401
    assert "revoked" in refused.json()["detail"]
    assert (await quick.client.get(KEYS, headers=owner)).json()["items"] == []
    assert (await quick.client.delete(f"{KEYS}/{created['id']}", headers=owner)).status_code == 404

    async with quick.pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT action, coalesce(before::text, '') || coalesce(after::text, '') AS body"
            " FROM audit_log WHERE entity = 'api_key' AND entity_id = %s ORDER BY id",
            (str(created["id"]),),
        )
        audited = await cursor.fetchall()
    assert [row["action"] for row in audited] == ["create", "revoke"]
    secret_part = secret.split("_", 2)[2]
    assert not any(secret_part in row["body"] for row in audited)
    out, err = capfd.readouterr()
    assert secret_part not in out + err + caplog.text


async def test_a_key_sees_only_its_owner_keys_and_cannot_manage_keys_or_users(
    cloud: Cloud, board: str
) -> None:
    _, admin = await signed_in(cloud, "STATE_ADMIN", state_code="TS")
    _, other = await signed_in(cloud, "BOARD_ADMIN", board_code=board)
    theirs = await new_key(cloud, other, ["board:read"])
    mine = await new_key(cloud, admin, ["board:read", "consumer:read"])
    assert (await cloud.client.delete(f"{KEYS}/{theirs['id']}", headers=admin)).status_code == 404
    listed = (await cloud.client.get(KEYS, headers=admin)).json()
    assert [k["id"] for k in listed["items"]] == [mine["id"]]
    assert "user:manage" not in listed["grantable"]

    with_key = bearer(mine["key"])
    for method, url, body in (
        ("GET", KEYS, None),
        ("POST", KEYS, {"name": "x", "permissions": ["board:read"], "expires_at": in_days(1)}),
        ("DELETE", f"{KEYS}/{mine['id']}", None),
        ("GET", "/api/v1/users", None),
    ):
        response = await cloud.client.request(method, url, json=body, headers=with_key)
        assert response.status_code == 403, (method, url, response.text)
    refused = await cloud.client.post(
        KEYS,
        headers=admin,
        json={"name": "x", "permissions": ["user:manage"], "expires_at": in_days(1)},
    )
    assert refused.status_code == 422
    assert "user:manage" in refused.json()["detail"]


async def test_permissions_must_be_the_owner_and_inputs_are_bounded(
    cloud: Cloud, board: str
) -> None:
    _, owner = await signed_in(cloud, "TECHNICIAN", board_code=board)
    not_held = await cloud.client.post(
        KEYS,
        headers=owner,
        json={
            "name": "x",
            "permissions": ["meter:read", "billing:read", "tariff:manage"],
            "expires_at": in_days(1),
        },
    )
    assert not_held.status_code == 422
    detail = not_held.json()["detail"]
    assert "billing:read, tariff:manage" in detail
    assert "meter:read" not in detail
    for body, named in (
        ({"name": "x", "permissions": ["meter:read"], "expires_at": in_days(400)}, "365 days"),
        ({"name": "x", "permissions": ["meter:read"], "expires_at": in_days(-1)}, "future"),
        ({"name": "x" * 81, "permissions": ["meter:read"], "expires_at": in_days(1)}, "name"),
        ({"name": "x", "permissions": [], "expires_at": in_days(1)}, "permissions"),
        ({"name": "x", "permissions": ["meter:fly"], "expires_at": in_days(1)}, "permissions"),
        ({"name": "x", "permissions": ["meter:read"]}, "expires_at"),
        ({"name": "x", "permissions": ["meter:read"], "expires_at": in_days(1), "x": 1}, "x"),
    ):
        response = await cloud.client.post(KEYS, headers=owner, json=body)
        assert response.status_code == 422, body
        assert named in response.text, response.text


async def test_expired_and_malformed_keys_are_refused(quick: Cloud, board: str) -> None:
    _, owner = await signed_in(quick, "BOARD_ADMIN", board_code=board)
    created = await new_key(quick, owner, ["board:read"])
    async with quick.pool.connection() as conn:
        await conn.execute(
            "UPDATE api_keys SET created_at = now() - interval '2 days',"
            " expires_at = now() - interval '1 second' WHERE id = %s",
            (created["id"],),
        )
    expired = await quick.client.get("/api/v1/boards", headers=bearer(created["key"]))
    assert expired.status_code == 401
    assert "expired" in expired.json()["detail"]
    wrong_secret = created["key"][:-4] + ("AAAA" if not created["key"].endswith("AAAA") else "BBBB")
    for token in (wrong_secret, "ggk_nonsense", created["prefix"]):
        response = await quick.client.get("/api/v1/boards", headers=bearer(token))
        assert response.status_code == 401
        assert response.json()["detail"] == "API key is not valid"


async def test_a_deactivated_owner_keys_stop_at_once(quick: Cloud, board: str) -> None:
    _, admin = await signed_in(quick, "STATE_ADMIN", state_code="TS")
    owner_id, owner = await signed_in(quick, "BOARD_ADMIN", board_code=board)
    key = bearer((await new_key(quick, owner, ["board:read"]))["key"])
    assert (await quick.client.get("/api/v1/boards", headers=key)).status_code == 200
    response = await quick.client.delete(f"/api/v1/users/{owner_id}", headers=admin)
    assert response.status_code == 200, response.text
    refused = await quick.client.get("/api/v1/boards", headers=key)
    assert refused.status_code == 401
    assert "no longer active" in refused.json()["detail"]


async def test_after_a_demotion_a_key_does_what_both_allow(quick: Cloud, board: str) -> None:
    """A key keeps what it carries and the new role allows; a promotion adds nothing."""
    _, admin = await signed_in(quick, "STATE_ADMIN", state_code="TS")
    owner_id, owner = await signed_in(quick, "BOARD_ADMIN", board_code=board)
    key = bearer((await new_key(quick, owner, ["board:read", "consumer:create"]))["key"])
    boards = (await quick.client.get("/api/v1/boards", headers=key)).json()["items"]
    consumer = {"board_id": boards[0]["id"], "account_no": uuid.uuid4().hex[:10], "name": "C"}
    assert (
        await quick.client.post("/api/v1/consumers", json=consumer, headers=key)
    ).status_code == 201
    response = await quick.client.patch(
        f"/api/v1/users/{owner_id}", json={"role": "TECHNICIAN"}, headers=admin
    )
    assert response.status_code == 200, response.text
    assert (await quick.client.get("/api/v1/boards", headers=key)).status_code == 200
    consumer["account_no"] = uuid.uuid4().hex[:10]
    demoted = await quick.client.post("/api/v1/consumers", json=consumer, headers=key)
    assert demoted.status_code == 403
    assert "TECHNICIAN" in demoted.json()["detail"]
    await quick.client.patch(
        f"/api/v1/users/{owner_id}", json={"role": "BOARD_ADMIN"}, headers=admin
    )
    assert (await quick.client.get("/api/v1/meters", headers=key)).status_code == 403


async def test_keys_are_not_accepted_by_the_web_app(cloud: Cloud, board: str) -> None:
    _, owner = await signed_in(cloud, "BOARD_ADMIN", board_code=board)
    secret = (await new_key(cloud, owner, ["board:read"]))["key"]
    app = cloud.client._transport.app  # type: ignore[attr-defined]
    async with client_from(app, random_address()) as browser:
        page = await browser.get("/dashboard", headers=bearer(secret))
        assert page.status_code == 303  # sent to sign in
        browser.cookies.set("gg_access", secret)
        assert (await browser.get("/dashboard")).status_code == 303
        assert (await browser.get("/api/v1/boards")).status_code == 401


async def test_every_role_may_hold_keys_of_its_own_permissions(cloud: Cloud, board: str) -> None:
    for role in ROLE_PERMISSIONS:
        if role == "CONSUMER":
            continue  # needs a consumer; the matrix covers it
        scope = {"SUPER_ADMIN": {}, "STATE_ADMIN": {"state_code": "TS"}}.get(
            role, {"board_code": board}
        )
        _, owner = await signed_in(cloud, role, **scope)
        grantable = (await cloud.client.get(KEYS, headers=owner)).json()["grantable"]
        expected = sorted(p.value for p in ROLE_PERMISSIONS[role] if p.value != "user:manage")
        assert grantable == expected
        key = await new_key(cloud, owner, grantable)
        me = await cloud.client.get("/api/v1/auth/me", headers=bearer(key["key"]))
        assert me.json()["role"] == role


async def test_the_secret_is_never_listed_again(cloud: Cloud, board: str) -> None:
    _, owner = await signed_in(cloud, "STATE_ADMIN", state_code="TS")
    created = await new_key(cloud, owner, ["board:read", "audit:read"])
    secret_part = created["key"].split("_", 2)[2]
    listed = await cloud.client.get(KEYS, headers=owner)
    assert secret_part not in listed.text
    assert "key" not in listed.json()["items"][0]
    audit = await cloud.client.get("/api/v1/audit", headers=bearer(created["key"]))
    assert audit.status_code == 200, audit.text
    assert '"entity":"api_key"' in audit.text
    assert secret_part not in audit.text

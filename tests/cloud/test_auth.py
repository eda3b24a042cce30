"""Authentication: login, rate limits, refresh rotation with reuse detection, logout."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import jwt
import pytest

from cloud.errors import InvalidInput
from cloud.services import auth
from tests.cloud.conftest import Cloud

PASSWORD = "correct horse battery"


async def make_user(cloud: Cloud, board: str, role: str = "BOARD_ADMIN") -> str:
    email = f"{uuid.uuid4().hex[:8]}@example.in"
    async with cloud.pool.connection() as conn:
        await auth.create_user(
            conn, email=email, password=PASSWORD, role=role, board_code=board, actor="test"
        )
    return email


async def login(cloud: Cloud, email: str, password: str = PASSWORD):
    return await cloud.client.post(
        "/api/v1/auth/login", json={"email": email, "password": password}
    )


async def test_login_gives_tokens_that_say_who_and_where(cloud: Cloud, board: str) -> None:
    email = await make_user(cloud, board)
    response = await login(cloud, email.upper())  # emails are case-insensitive
    assert response.status_code == 200, response.text
    tokens = response.json()
    assert tokens["expires_in"] == 900
    me = await cloud.client.get(
        "/api/v1/auth/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert me.status_code == 200
    assert me.json()["role"] == "BOARD_ADMIN"
    assert me.json()["board_id"] is not None
    async with cloud.pool.connection() as conn:
        cursor = await conn.execute("SELECT password_hash FROM users WHERE email = %s", (email,))
        assert (await cursor.fetchone())["password_hash"].startswith("$argon2id$")


async def test_wrong_password_and_unknown_account_look_the_same(cloud: Cloud, board: str) -> None:
    email = await make_user(cloud, board)
    wrong = await login(cloud, email, "not the password")
    unknown = await login(cloud, "nobody@example.in", "not the password")
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["detail"] == unknown.json()["detail"]


async def test_logins_are_limited_per_account(cloud: Cloud, board: str) -> None:
    email = await make_user(cloud, board)
    for _ in range(5):
        assert (await login(cloud, email, "wrong password")).status_code == 401
    limited = await login(cloud, email)  # even the right password waits now
    assert limited.status_code == 429
    assert "too many" in limited.json()["detail"]


async def test_logins_are_limited_per_address(cloud: Cloud, board: str) -> None:
    for i in range(20):
        await login(cloud, f"guess{i}@example.in", "wrong password")
    email = await make_user(cloud, board)
    assert (await login(cloud, email)).status_code == 429


async def test_refresh_rotates_and_reuse_revokes_the_family(cloud: Cloud, board: str) -> None:
    email = await make_user(cloud, board)
    first = (await login(cloud, email)).json()
    second = await cloud.client.post(
        "/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert second.status_code == 200
    rotated = second.json()
    assert rotated["refresh_token"] != first["refresh_token"]
    stolen = await cloud.client.post(
        "/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert stolen.status_code == 401
    assert "already used" in stolen.json()["detail"]
    # the legitimate holder's newer token died with the family
    after = await cloud.client.post(
        "/api/v1/auth/refresh", json={"refresh_token": rotated["refresh_token"]}
    )
    assert after.status_code == 401


async def test_logout_revokes_the_session(cloud: Cloud, board: str) -> None:
    email = await make_user(cloud, board)
    tokens = (await login(cloud, email)).json()
    out = await cloud.client.post(
        "/api/v1/auth/logout", json={"refresh_token": tokens["refresh_token"]}
    )
    assert out.status_code == 204
    again = await cloud.client.post(
        "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert again.status_code == 401


async def test_bad_and_expired_access_tokens(cloud: Cloud, board: str) -> None:
    assert (await cloud.client.get("/api/v1/auth/me")).status_code == 401
    forged = jwt.encode(
        {"sub": "1", "role": "SUPER_ADMIN", "exp": datetime.now(UTC) + timedelta(minutes=5)},
        "not-the-server-secret-but-long-enough-to-look-real",
        algorithm="HS256",
    )
    response = await cloud.client.get(
        "/api/v1/auth/me", headers={"Authorization": f"Bearer {forged}"}
    )
    assert response.status_code == 401
    secret = cloud.client._transport.app.state.jwt_secret  # type: ignore[attr-defined]
    expired = jwt.encode(
        {"sub": "1", "role": "SUPER_ADMIN", "exp": datetime.now(UTC) - timedelta(seconds=1)},
        secret,
        algorithm="HS256",
    )
    response = await cloud.client.get(
        "/api/v1/auth/me", headers={"Authorization": f"Bearer {expired}"}
    )
    assert response.status_code == 401
    assert "expired" in response.json()["detail"]


@pytest.mark.parametrize(
    ("role", "scoped", "password", "message"),
    [
        ("BOARD_ADMIN", False, PASSWORD, "scope"),
        ("KING", True, PASSWORD, "role must be one of"),
        ("AUDITOR", False, "short", "10 to 256"),
    ],
)
async def test_users_need_their_scope_and_a_sane_password(
    cloud: Cloud, board: str, role: str, scoped: bool, password: str, message: str
) -> None:
    async with cloud.pool.connection() as conn:
        with pytest.raises(InvalidInput, match=message):
            await auth.create_user(
                conn,
                email=f"{uuid.uuid4().hex[:6]}@x.in",
                password=password,
                role=role,
                board_code=board if scoped else None,
                actor="test",
            )

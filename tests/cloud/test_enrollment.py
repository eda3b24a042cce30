"""Enrollment: one-time expiring tokens, keys checked at the door, rotation and revocation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cloud.services import enrollment
from shared import generate_private_key, public_key_text
from tests.cloud.conftest import Cloud, EnrolledGateway


async def _token(cloud: Cloud, board: str) -> str:
    async with cloud.pool.connection() as conn:
        token, expires = await enrollment.create_token(
            conn, board_code=board, ttl_s=600, actor="test"
        )
    assert expires > datetime.now(UTC) + timedelta(seconds=590)
    return token


def _body(token: str, gateway: str = "gw-enroll-1", key: str | None = None) -> dict:
    return {
        "token": token,
        "gateway_id": gateway,
        "public_key": key or public_key_text(generate_private_key()),
    }


async def test_a_token_enrolls_once(cloud: Cloud, board: str) -> None:
    token = await _token(cloud, board)
    first = await cloud.client.post("/api/v1/gateways/enroll", json=_body(token, "gw-once"))
    assert first.status_code == 201
    assert first.json() == {"gateway_id": "gw-once", "board": board, "status": "active"}
    again = await cloud.client.post("/api/v1/gateways/enroll", json=_body(token, "gw-twice"))
    assert again.status_code == 409
    assert "already used" in again.json()["detail"]


async def test_expired_and_unknown_tokens(cloud: Cloud, board: str) -> None:
    token = await _token(cloud, board)
    async with cloud.pool.connection() as conn:
        await conn.execute("UPDATE enrollment_tokens SET expires_at = now() - interval '1 s'")
        await conn.commit()
    expired = await cloud.client.post("/api/v1/gateways/enroll", json=_body(token, "gw-exp"))
    assert expired.status_code == 401
    assert "expired" in expired.json()["detail"]
    unknown = await cloud.client.post("/api/v1/gateways/enroll", json=_body("x" * 32, "gw-unknown"))
    assert unknown.status_code == 401


async def test_bad_input_names_the_field(cloud: Cloud, board: str) -> None:
    token = await _token(cloud, board)
    bad_key = await cloud.client.post(
        "/api/v1/gateways/enroll", json=_body(token, key="A" * 43 + "!")
    )
    assert bad_key.status_code == 422
    assert bad_key.json()["errors"][0]["field"] == "public_key"
    extra = await cloud.client.post(
        "/api/v1/gateways/enroll", json={**_body(token), "status": "active"}
    )
    assert extra.status_code == 422
    assert "status" in extra.json()["detail"]
    bad_id = await cloud.client.post("/api/v1/gateways/enroll", json=_body(token, "../etc"))
    assert bad_id.status_code == 422
    assert "gateway_id" in bad_id.json()["detail"]


async def test_rotation_replaces_the_key_and_is_audited(
    cloud: Cloud, gateway: EnrolledGateway
) -> None:
    new_key = public_key_text(generate_private_key())
    token = await _token(cloud, gateway.board)
    response = await cloud.client.post(
        "/api/v1/gateways/enroll", json=_body(token, gateway.code, new_key)
    )
    assert response.status_code == 201
    async with cloud.pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT public_key FROM gateways WHERE gateway_code = %s", (gateway.code,)
        )
        assert (await cursor.fetchone())["public_key"] == new_key
        cursor = await conn.execute(
            "SELECT action FROM audit_log WHERE entity = 'gateway' AND after->>'gateway_code' = %s"
            " ORDER BY id",
            (gateway.code,),
        )
        assert [row["action"] for row in await cursor.fetchall()] == ["enroll", "rotate_key"]

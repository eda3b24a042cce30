"""Enrollment: one-time expiring tokens, keys checked at the door, rotation and revocation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cloud.services import enrollment
from shared import generate_private_key, public_key_text
from tests.cloud.conftest import Cloud, EnrolledGateway


async def _token(cloud: Cloud, board: str, gateway: str | None = None) -> str:
    async with cloud.pool.connection() as conn:
        token, expires = await enrollment.create_token(
            conn, board_code=board, ttl_s=600, actor="test", gateway_code=gateway
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
    enrolled = first.json()
    cloud_key = enrolled.pop("cloud_public_key")  # the key the cloud signs commands with
    assert enrolled == {"gateway_id": "gw-once", "board": board, "status": "active"}
    key = await cloud.client.get("/api/v1/control/cloud-key")
    assert key.json() == {"public_key": cloud_key}
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
    token = await _token(cloud, gateway.board, gateway.code)
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


async def _key_of(cloud: Cloud, code: str) -> str:
    async with cloud.pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT public_key FROM gateways WHERE gateway_code = %s", (code,)
        )
        return (await cursor.fetchone())["public_key"]


async def test_a_board_token_cannot_take_over_an_enrolled_gateway(
    cloud: Cloud, gateway: EnrolledGateway, board: str
) -> None:
    """Regression: any holder of a board's token could re-enroll an existing gateway with a new
    key and lock the real one out. The token is not spent by the refusal."""
    key = await _key_of(cloud, gateway.code)
    token = await _token(cloud, gateway.board)
    taken = await cloud.client.post("/api/v1/gateways/enroll", json=_body(token, gateway.code))
    assert taken.status_code == 409
    assert "needs a token issued for it" in taken.json()["detail"]
    assert await _key_of(cloud, gateway.code) == key
    fresh = await cloud.client.post("/api/v1/gateways/enroll", json=_body(token, "gw-newcomer"))
    assert fresh.status_code == 201  # the refused attempt did not use the token up


async def test_another_boards_gateway_gets_the_same_answer(
    cloud: Cloud, gateway: EnrolledGateway
) -> None:
    """A token of board B aimed at board A's gateway learns nothing more than a token of A
    aimed at it: the same status and the same words."""
    async with cloud.pool.connection() as conn:
        other = f"B-{gateway.code[-6:].upper()}"
        await conn.execute(
            "INSERT INTO boards (state_id, code, name) SELECT state_id, %s, 'Other' FROM boards"
            " WHERE code = %s",
            (other, gateway.board),
        )
        await conn.commit()
    own_board = await cloud.client.post(
        "/api/v1/gateways/enroll", json=_body(await _token(cloud, gateway.board), gateway.code)
    )
    other_board = await cloud.client.post(
        "/api/v1/gateways/enroll", json=_body(await _token(cloud, other), gateway.code)
    )
    assert (other_board.status_code, other_board.json()) == (
        own_board.status_code,
        own_board.json(),
    )
    assert "another board" not in other_board.text


async def test_a_rekey_token_serves_only_its_gateway(
    cloud: Cloud, gateway: EnrolledGateway
) -> None:
    token = await _token(cloud, gateway.board, gateway.code)
    wrong = await cloud.client.post("/api/v1/gateways/enroll", json=_body(token, "gw-elsewhere"))
    assert wrong.status_code == 401
    assert "another gateway" in wrong.json()["detail"]
    right = await cloud.client.post("/api/v1/gateways/enroll", json=_body(token, gateway.code))
    assert right.status_code == 201


async def test_revoking_a_gateway_spends_its_rekey_tokens(
    cloud: Cloud, gateway: EnrolledGateway
) -> None:
    token = await _token(cloud, gateway.board, gateway.code)
    async with cloud.pool.connection() as conn:
        await enrollment.revoke(conn, gateway_code=gateway.code, actor="test")
    back = await cloud.client.post("/api/v1/gateways/enroll", json=_body(token, gateway.code))
    assert back.status_code == 401
    assert "expired" in back.json()["detail"]
    fresh = await _token(cloud, gateway.board, gateway.code)  # a token issued after revocation
    assert (
        await cloud.client.post("/api/v1/gateways/enroll", json=_body(fresh, gateway.code))
    ).status_code == 201

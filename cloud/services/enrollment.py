"""Gateway enrollment: one-time, expiring, board-scoped tokens; keys registered, rotated, revoked.

A token is shown once and stored only as its SHA-256. A board token enrolls a new gateway of the
board: it registers the gateway's Ed25519 public key (its private key never leaves the gateway).
Re-keying an enrolled gateway (a replaced SD card, a lost key) needs a token issued for that
gateway: a board token cannot take over a gateway, and its answer for an id that is already
enrolled is the same whether that gateway is on the token's board or another one.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg import AsyncConnection

from shared import KeyInvalid, load_public_key

from ..errors import Conflict, InvalidInput, NotFound, Unauthorized
from . import audit, fleet


def _hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _taken(gateway_code: str) -> Conflict:
    return Conflict(
        f"gateway {gateway_code} is already enrolled; re-keying it needs a token issued for it"
        f" (gridgate cloud admin enroll-token --board BOARD --gateway {gateway_code})"
    )


async def create_token(
    conn: AsyncConnection,
    *,
    board_code: str,
    ttl_s: int,
    actor: str,
    gateway_code: str | None = None,
) -> tuple[str, datetime]:
    """A new enrollment token for a board, or for re-keying one of its gateways:
    (token, expires_at). Only its hash is stored."""
    token = secrets.token_urlsafe(24)
    expires = datetime.now(UTC) + timedelta(seconds=ttl_s)
    async with conn.transaction():
        board = await fleet.board_by_code(conn, board_code)
        gateway_id = None
        if gateway_code is not None:
            cursor = await conn.execute(
                "SELECT id FROM gateways WHERE gateway_code = %s AND board_id = %s",
                (gateway_code, board["id"]),
            )
            gateway = await cursor.fetchone()
            if gateway is None:
                raise NotFound(f"no gateway {gateway_code} on board {board_code}")
            gateway_id = gateway["id"]
        cursor = await conn.execute(
            "INSERT INTO enrollment_tokens (board_id, token_hash, expires_at, for_gateway_id)"
            " VALUES (%s, %s, %s, %s) RETURNING id",
            (board["id"], _hash(token), expires, gateway_id),
        )
        row = await cursor.fetchone()
        await audit.record(
            conn,
            actor=actor,
            action="create",
            entity="enrollment_token",
            entity_id=row["id"],
            after={"board": board_code, "gateway": gateway_code, "expires_at": expires},
        )
    return token, expires


async def enroll(
    conn: AsyncConnection, *, token: str, gateway_code: str, public_key: str
) -> dict[str, Any]:
    try:
        load_public_key(public_key)
    except KeyInvalid as exc:
        raise InvalidInput(str(exc), errors=[("public_key", str(exc))]) from exc
    async with conn.transaction():
        cursor = await conn.execute(
            "SELECT t.*, b.code AS board_code FROM enrollment_tokens t"
            " JOIN boards b ON b.id = t.board_id WHERE token_hash = %s FOR UPDATE OF t",
            (_hash(token),),
        )
        row = await cursor.fetchone()
        if row is None:
            raise Unauthorized("enrollment token is not valid; ask the cloud admin for one")
        if row["used_at"] is not None:
            raise Conflict("enrollment token was already used; ask for a new one")
        if row["expires_at"] <= datetime.now(UTC):
            raise Unauthorized(
                f"enrollment token expired at {row['expires_at']:%Y-%m-%d %H:%M}"
                " UTC; ask for a new one"
            )
        cursor = await conn.execute(
            "SELECT * FROM gateways WHERE gateway_code = %s FOR UPDATE", (gateway_code,)
        )
        existing = await cursor.fetchone()
        if row["for_gateway_id"] is None:
            if existing is not None:  # the same answer for this board's and another's
                raise _taken(gateway_code)
        elif existing is None or existing["id"] != row["for_gateway_id"]:
            raise Unauthorized(
                f"this enrollment token was issued to re-key another gateway, not {gateway_code}"
            )
        if existing is None:
            cursor = await conn.execute(
                "INSERT INTO gateways (board_id, gateway_code, public_key) VALUES (%s, %s, %s)"
                " RETURNING *",
                (row["board_id"], gateway_code, public_key),
            )
            action = "enroll"
        else:
            cursor = await conn.execute(
                "UPDATE gateways SET public_key = %s, status = 'active', key_rotated_at = now()"
                " WHERE id = %s RETURNING *",
                (public_key, existing["id"]),
            )
            action = "rotate_key"
        gateway = await cursor.fetchone()
        await conn.execute(
            "UPDATE enrollment_tokens SET used_at = now(), gateway_id = %s WHERE id = %s",
            (gateway["id"], row["id"]),
        )
        await audit.record(
            conn,
            actor=f"gateway:{gateway_code}",
            action=action,
            entity="gateway",
            entity_id=gateway["id"],
            before=_public(existing),
            after=_public(gateway),
        )
    return {"gateway_id": gateway_code, "board": row["board_code"], "status": gateway["status"]}


async def revoke(conn: AsyncConnection, *, gateway_code: str, actor: str) -> None:
    async with conn.transaction():
        cursor = await conn.execute(
            "SELECT * FROM gateways WHERE gateway_code = %s FOR UPDATE", (gateway_code,)
        )
        gateway = await cursor.fetchone()
        if gateway is None:
            raise NotFound(f"no gateway {gateway_code}")
        if gateway["status"] == "revoked":
            raise Conflict(f"gateway {gateway_code} is already revoked")
        cursor = await conn.execute(
            "UPDATE gateways SET status = 'revoked' WHERE id = %s RETURNING *", (gateway["id"],)
        )
        revoked = await cursor.fetchone()
        # a re-key token issued before the revocation must not bring the gateway back
        await conn.execute(
            "UPDATE enrollment_tokens SET expires_at = least(expires_at, now())"
            " WHERE for_gateway_id = %s AND used_at IS NULL",
            (gateway["id"],),
        )
        await audit.record(
            conn,
            actor=actor,
            action="revoke",
            entity="gateway",
            entity_id=gateway["id"],
            before=_public(gateway),
            after=_public(revoked),
        )


def _public(gateway: dict[str, Any] | None) -> dict[str, Any] | None:
    if gateway is None:
        return None
    return {k: gateway[k] for k in ("gateway_code", "board_id", "status", "public_key")}

"""Consumers: created and changed inside the caller's scope, every write audited."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from psycopg import AsyncConnection, errors

from ..access import Principal
from ..errors import Conflict
from . import audit
from .scoped import BOARDS, CONSUMERS, actor, delete_row, get_row, update_row


async def create(
    conn: AsyncConnection,
    principal: Principal,
    *,
    board_id: int,
    account_no: str,
    name: str,
    category: str,
    sanctioned_load_kw: Decimal,
    email: str | None = None,
    phone: str | None = None,
) -> dict[str, Any]:
    async with conn.transaction():
        await get_row(conn, principal, BOARDS, board_id)  # the board must be in scope
        try:
            cursor = await conn.execute(
                "INSERT INTO consumers"
                " (board_id, account_no, name, category, sanctioned_load_kw, email, phone)"
                " VALUES (%s, %s, %s, %s, %s, lower(%s), %s) RETURNING id",
                (board_id, account_no, name, category, sanctioned_load_kw, email, phone),
            )
        except errors.UniqueViolation as exc:
            raise Conflict(f"account {account_no} already exists on this board") from exc
        new_id = (await cursor.fetchone())["id"]
        row = await get_row(conn, principal, CONSUMERS, new_id)
        await audit.record(
            conn,
            actor=actor(principal),
            action="create",
            entity="consumer",
            entity_id=new_id,
            after=row,
        )
    return row


async def update(
    conn: AsyncConnection, principal: Principal, consumer_id: int, changes: dict[str, Any]
) -> dict[str, Any]:
    if changes.get("email"):
        changes = {**changes, "email": changes["email"].lower()}
    return await update_row(conn, principal, CONSUMERS, consumer_id, changes)


async def delete(conn: AsyncConnection, principal: Principal, consumer_id: int) -> dict[str, Any]:
    """Delete a consumer with no meters, bills or users left; 409 naming what remains."""
    return await delete_row(conn, principal, CONSUMERS, consumer_id)

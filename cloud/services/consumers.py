"""Consumers: created and changed inside the caller's scope, every write audited.

A consumer's generation source (rooftop solar and the like) is four columns of its row, set
together or cleared together (`generation`: kind, capacity in kWp, the day it was connected,
and the generation meter if one measures it). The generation meter must be a meter of the
consumer's board that no consumer is billed on: its export register is the generation, and
its import must not be billed as anyone's consumption.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from psycopg import AsyncConnection, errors

from ..access import Principal
from ..errors import Conflict, InvalidInput
from . import audit
from .scoped import BOARDS, CONSUMERS, METERS, actor, delete_row, get_row, update_row


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
    generation: dict[str, Any] | None = None,
) -> dict[str, Any]:
    async with conn.transaction():
        await get_row(conn, principal, BOARDS, board_id)  # the board must be in scope
        source = await _generation_columns(conn, principal, board_id, generation)
        try:
            cursor = await conn.execute(
                "INSERT INTO consumers"
                " (board_id, account_no, name, category, sanctioned_load_kw, email, phone,"
                " generation_kind, generation_kwp, generation_since, generation_meter_id)"
                " VALUES (%s, %s, %s, %s, %s, lower(%s), %s, %s, %s, %s, %s) RETURNING id",
                (
                    board_id,
                    account_no,
                    name,
                    category,
                    sanctioned_load_kw,
                    email,
                    phone,
                    *source.values(),
                ),
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
    if "generation" in changes:
        changes = dict(changes)
        generation = changes.pop("generation")
        async with conn.transaction():
            consumer = await get_row(conn, principal, CONSUMERS, consumer_id, for_update=True)
            source = await _generation_columns(
                conn, principal, consumer["board_id"], generation, consumer_id
            )
            return await update_row(conn, principal, CONSUMERS, consumer_id, changes | source)
    return await update_row(conn, principal, CONSUMERS, consumer_id, changes)


async def _generation_columns(
    conn: AsyncConnection,
    principal: Principal,
    board_id: int,
    generation: dict[str, Any] | None,
    consumer_id: int | None = None,
) -> dict[str, Any]:
    """The four generation columns for `generation` (all None to clear it), its meter checked."""
    if generation is None:
        return dict.fromkeys(GENERATION_COLUMNS)
    meter_id = generation.get("meter_id")
    if meter_id is not None:
        meter = await get_row(conn, principal, METERS, meter_id)
        if meter["board_id"] != board_id:
            raise InvalidInput(
                f"generation.meter_id: meter {meter['external_id']} is on another board",
                errors=[("generation.meter_id", "another board")],
            )
        if meter["consumer_id"] is not None:
            raise InvalidInput(
                f"generation.meter_id: meter {meter['external_id']} measures consumer"
                f" {meter['consumer_id']}'s consumption; a generation meter is assigned to no"
                " consumer (its import would be billed)",
                errors=[("generation.meter_id", "billed meter")],
            )
        cursor = await conn.execute(
            "SELECT account_no FROM consumers WHERE generation_meter_id = %s"
            " AND id IS DISTINCT FROM %s",
            (meter_id, consumer_id),
        )
        other = await cursor.fetchone()
        if other is not None:
            raise InvalidInput(
                f"generation.meter_id: meter {meter['external_id']} already measures the"
                f" generation of {other['account_no']}",
                errors=[("generation.meter_id", "taken")],
            )
    return dict(
        zip(
            GENERATION_COLUMNS,
            (generation["kind"], generation["capacity_kwp"], generation["since"], meter_id),
            strict=True,
        )
    )


GENERATION_COLUMNS = (
    "generation_kind",
    "generation_kwp",
    "generation_since",
    "generation_meter_id",
)


async def delete(conn: AsyncConnection, principal: Principal, consumer_id: int) -> dict[str, Any]:
    """Delete a consumer with no meters, bills or users left; 409 naming what remains."""
    return await delete_row(conn, principal, CONSUMERS, consumer_id)

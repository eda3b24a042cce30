"""States and boards (the top of the hierarchy), created by the admin CLI and the API.

The CLI acts as an operator on the machine (actor 'cli'); the API checks the caller's scope
first (`cloud.api.fleet`) and passes the caller as the actor.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from psycopg import AsyncConnection, errors

from ..access import Principal
from ..errors import Conflict, InvalidInput, NotFound
from . import audit
from .scoped import BOARDS, STATES, actor, get_row

STATE_CODE = re.compile(r"[A-Z]{2,3}")  # as the API's models and the tables' checks have them
BOARD_CODE = re.compile(r"[A-Z0-9_-]{2,32}")


def check_code(kind: str, code: str) -> None:
    """A state's or a board's code as the tables take it, or a 422 saying what one looks like
    (whoever asks: the API checks it first, the command line and the demo here)."""
    pattern, looks = {
        "state": (STATE_CODE, "2 or 3 capital letters, such as DL"),
        "board": (
            BOARD_CODE,
            "2 to 32 capital letters, digits, dashes or underscores, such as BRPL",
        ),
    }[kind]
    if not pattern.fullmatch(code):
        raise InvalidInput(
            f"{code[:40]!r} is not a {kind}'s code: {looks}", errors=[("code", code[:40])]
        )


async def state_id(conn: AsyncConnection, code: str) -> int:
    """The id of the state with this code; NotFound naming it otherwise."""
    cursor = await conn.execute("SELECT id FROM states WHERE code = %s", (code,))
    row = await cursor.fetchone()
    if row is None:
        raise NotFound(f"no state with code {code}")
    return row["id"]


async def board_by_code(conn: AsyncConnection, code: str) -> dict[str, Any]:
    """The board (id, state_id) with this code; NotFound naming it otherwise."""
    cursor = await conn.execute("SELECT id, state_id FROM boards WHERE code = %s", (code,))
    row = await cursor.fetchone()
    if row is None:
        raise NotFound(f"no board with code {code}")
    return row


async def create_state(
    conn: AsyncConnection, *, code: str, name: str, actor: str
) -> dict[str, Any]:
    check_code("state", code)
    async with conn.transaction():
        try:
            cursor = await conn.execute(
                "INSERT INTO states (code, name) VALUES (%s, %s) RETURNING *", (code, name)
            )
        except errors.UniqueViolation as exc:
            raise Conflict(f"state {code} already exists") from exc
        state = await cursor.fetchone()
        await audit.record(
            conn, actor=actor, action="create", entity="state", entity_id=state["id"], after=state
        )
    return state


async def create_board(
    conn: AsyncConnection,
    *,
    state_code: str,
    code: str,
    name: str,
    time_zone: str = "Asia/Kolkata",
    currency: str = "INR",
    capacity_kw: Decimal | None = None,
    actor: str,
) -> dict[str, Any]:
    check_code("board", code)
    check_time_zone(time_zone)
    async with conn.transaction():
        state = {"id": await state_id(conn, state_code)}
        try:
            cursor = await conn.execute(
                "INSERT INTO boards (state_id, code, name, time_zone, currency, capacity_kw)"
                " VALUES (%s, %s, %s, %s, %s, %s) RETURNING *",
                (state["id"], code, name, time_zone, currency, capacity_kw),
            )
        except errors.UniqueViolation as exc:
            raise Conflict(f"board {code} already exists") from exc
        board = await cursor.fetchone()
        await audit.record(
            conn, actor=actor, action="create", entity="board", entity_id=board["id"], after=board
        )
    return board


async def add_board(
    conn: AsyncConnection,
    principal: Principal,
    *,
    state_id: int,
    code: str,
    name: str,
    time_zone: str,
    currency: str,
    capacity_kw: Decimal | None,
) -> dict[str, Any]:
    """A board in a state of the caller's scope (NotFound outside it), as the caller sees it:
    what the API's `POST /boards` and the boards page both do."""
    state = await get_row(conn, principal, STATES, state_id)
    board = await create_board(
        conn,
        state_code=state["code"],
        code=code,
        name=name,
        time_zone=time_zone,
        currency=currency,
        capacity_kw=capacity_kw,
        actor=actor(principal),
    )
    return await get_row(conn, principal, BOARDS, board["id"])


def check_time_zone(name: str) -> None:
    """Tariffs are cut in the board's zone: it must be a real IANA zone."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise InvalidInput(
            f"{name!r} is not a time zone (one is written like Asia/Kolkata)",
            errors=[("time_zone", name)],
        ) from exc

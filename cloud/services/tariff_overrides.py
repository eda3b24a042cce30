"""Temporary tariff overrides: a board admin prices a category at a flat rate per unit, or
multiplies its energy charge, for a window of the board's days that ends by itself — or takes it
off early. Every change is audited; bills and estimates price the days inside a window under it
(`cloud.billing.overrides`).

The window is given in the board's local days and stored as the UTC instants of their local
midnights. Windows of one category never overlap (checked under a lock on the board and
category), and are at most 366 days. An override taken off early counts up to the board's local
day it was taken off (that day is priced as usual).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from psycopg import AsyncConnection, sql

from ..access import Principal, scope_filter
from ..billing.engine import local_midnight
from ..billing.overrides import OverrideKind, TariffOverride
from ..errors import Conflict, InvalidInput, NotFound
from . import audit
from .scoped import BOARDS, actor, get_row

MAX_WINDOW_DAYS = 366


def _window(row: dict[str, Any], tz: ZoneInfo) -> tuple[date, date]:
    """The local days [start, end) an override counts for (to its removal day if taken off)."""
    start = row["starts_at"].astimezone(tz).date()
    end = row["ends_at"].astimezone(tz).date()
    if row["removed_at"] is not None:
        end = max(start, min(end, row["removed_at"].astimezone(tz).date()))
    return start, end


def _public(row: dict[str, Any], tz: ZoneInfo, now: datetime) -> dict[str, Any]:
    start, end = _window(row, tz)
    if row["removed_at"] is not None and end <= start:
        state = "removed"
    elif now < row["starts_at"]:
        state = "scheduled"
    elif row["removed_at"] is not None and row["removed_at"] <= now:
        state = "removed"
    elif now >= row["ends_at"]:
        state = "ended"
    else:
        state = "active"
    return {
        **row,
        "value": Decimal(row["value"]),
        "starts_on": row["starts_at"].astimezone(tz).date(),
        "ends_on": row["ends_at"].astimezone(tz).date(),
        "applies_until": end,
        "state": state,
    }


async def create(
    conn: AsyncConnection,
    principal: Principal,
    *,
    board_id: int,
    category: str,
    kind: OverrideKind,
    value: Decimal,
    starts_on: date,
    ends_on: date,
    reason: str,
) -> dict[str, Any]:
    """A new override for [starts_on, ends_on) of the board's days (ends_on exclusive)."""
    if ends_on <= starts_on:
        raise InvalidInput(
            "ends_on must be after starts_on (it is the first day the override no longer applies)",
            errors=[("ends_on", ends_on.isoformat())],
        )
    if (ends_on - starts_on).days > MAX_WINDOW_DAYS:
        raise InvalidInput(
            f"an override lasts at most {MAX_WINDOW_DAYS} days; change the tariff with a new"
            " version for anything longer",
            errors=[("ends_on", ends_on.isoformat())],
        )
    if kind == "multiplier" and value == 0:
        raise InvalidInput(
            "a multiplier of 0 makes energy free; give an energy_rate of 0 if that is meant",
            errors=[("value", "0")],
        )
    async with conn.transaction():
        board = await get_row(conn, principal, BOARDS, board_id)
        tz = ZoneInfo(board["time_zone"])
        cursor = await conn.execute(
            "SELECT id FROM tariffs WHERE board_id = %s AND category = %s", (board_id, category)
        )
        if await cursor.fetchone() is None:
            raise InvalidInput(
                f"the board has no {category} tariff to override; create it first",
                errors=[("category", category)],
            )
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtext('tariff_overrides'), hashtext(%s || ':' || %s))",
            (str(board_id), category),
        )
        cursor = await conn.execute(
            "SELECT * FROM tariff_overrides WHERE board_id = %s AND category = %s"
            " AND starts_at < %s AND ends_at > %s",
            (board_id, category, local_midnight(ends_on, tz), local_midnight(starts_on, tz)),
        )
        for other in await cursor.fetchall():
            other_start, other_end = _window(other, tz)
            if other_start < ends_on and starts_on < other_end:
                raise Conflict(
                    f"the window overlaps override {other['id']} ({other_start:%d %b %Y} to"
                    f" {other_end - timedelta(days=1):%d %b %Y}); take that one off first"
                )
        cursor = await conn.execute(
            "INSERT INTO tariff_overrides (board_id, category, kind, value, starts_at, ends_at,"
            " reason, created_by) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING *",
            (
                board_id,
                category,
                kind,
                value,
                local_midnight(starts_on, tz),
                local_midnight(ends_on, tz),
                reason,
                actor(principal),
            ),
        )
        row = _public(await cursor.fetchone(), tz, datetime.now(UTC))
        await audit.record(
            conn,
            actor=actor(principal),
            action="create",
            entity="tariff_override",
            entity_id=row["id"],
            after=row,
        )
    return row


async def list_for_board(
    conn: AsyncConnection,
    principal: Principal,
    board_id: int,
    *,
    category: str | None = None,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """The board's overrides, active, scheduled and past, the latest first."""
    board = await get_row(conn, principal, BOARDS, board_id)
    condition, params = scope_filter(principal, "tariff_override", "o")

    cursor = await conn.execute(
        sql.SQL(
            "SELECT o.* FROM tariff_overrides o WHERE o.board_id = %s"
            " AND (%s::text IS NULL OR o.category = %s) AND {where}"
            " ORDER BY o.starts_at DESC, o.id DESC LIMIT 500"
        ).format(where=condition),
        [board_id, category, category, *params],
    )
    tz = ZoneInfo(board["time_zone"])
    moment = now or datetime.now(UTC)
    return [_public(row, tz, moment) for row in await cursor.fetchall()]


async def remove(conn: AsyncConnection, principal: Principal, override_id: int) -> dict[str, Any]:
    """Take an override off now; the days before today (the board's) stay priced under it."""
    async with conn.transaction():
        condition, params = scope_filter(principal, "tariff_override", "o")

        cursor = await conn.execute(
            sql.SQL("SELECT o.* FROM tariff_overrides o WHERE o.id = %s AND {} FOR UPDATE").format(
                condition
            ),
            [override_id, *params],
        )
        before = await cursor.fetchone()
        if before is None:
            raise NotFound(f"no tariff override {override_id}")
        board = await get_row(conn, principal, BOARDS, before["board_id"])
        tz = ZoneInfo(board["time_zone"])
        now = datetime.now(UTC)
        if before["removed_at"] is not None:
            raise Conflict(f"override {override_id} was already taken off")
        if before["ends_at"] <= now:
            raise Conflict(f"override {override_id} has already ended")
        cursor = await conn.execute(
            "UPDATE tariff_overrides SET removed_at = %s, removed_by = %s WHERE id = %s"
            " RETURNING *",
            (now, actor(principal), override_id),
        )
        after = _public(await cursor.fetchone(), tz, now)
        await audit.record(
            conn,
            actor=actor(principal),
            action="remove",
            entity="tariff_override",
            entity_id=override_id,
            before=_public(before, tz, now),
            after=after,
        )
    return after


async def in_force(
    conn: AsyncConnection, board_id: int, category: str, start: date, end: date, tz: ZoneInfo
) -> list[TariffOverride]:
    """The category's overrides that count for some day of [start, end), for the engine."""
    cursor = await conn.execute(
        "SELECT * FROM tariff_overrides WHERE board_id = %s AND category = %s"
        " AND starts_at < %s AND ends_at > %s ORDER BY starts_at",
        (board_id, category, local_midnight(end, tz), local_midnight(start, tz)),
    )
    found = []
    for row in await cursor.fetchall():
        first, until = _window(row, tz)
        if first < until and first < end and until > start:
            found.append(
                TariffOverride(
                    row["id"], row["kind"], Decimal(row["value"]), first, until, row["reason"]
                )
            )
    return found

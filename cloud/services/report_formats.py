"""A board's report formats: a name, a report kind, the kind's columns it shows (in order, with
headings of the board's choosing), a grouping with totals, a sort and a file type. Checked
against the kind's catalog (`cloud.reports.layouts`) before anything is written, kept per board
(the scope of every read and write), audited. A report asked for with a format follows it
(`services/reports.py` keeps the layout as it stood then)."""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection, errors
from psycopg.types.json import Jsonb

from ..access import Principal
from ..errors import Conflict, InvalidInput
from ..reports import layouts
from . import audit
from .scoped import BOARDS, REPORT_FORMATS, actor, delete_row, get_row, list_rows, update_row

MAX_FORMATS_PER_BOARD = 100


def checked(
    kind: str, columns: list[dict[str, Any]], group_by: str | None, sort_by: str | None
) -> None:
    """The layout, or InvalidInput naming what does not fit the kind."""
    try:
        layouts.check(kind, columns, group_by, sort_by)
    except layouts.LayoutProblem as exc:
        raise InvalidInput(str(exc), errors=[(exc.field, str(exc))]) from exc


def layout_of(row: dict[str, Any]) -> dict[str, Any]:
    """What a report keeps of its format: its layout as it stands now."""
    return {
        "columns": row["columns"],
        "group_by": row["group_by"],
        "sort_by": row["sort_by"],
        "sort_desc": row["sort_desc"],
    }


async def get(conn: AsyncConnection, principal: Principal, format_id: int) -> dict[str, Any]:
    return await get_row(conn, principal, REPORT_FORMATS, format_id)


async def list_for_board(
    conn: AsyncConnection, principal: Principal, board_id: int
) -> list[dict[str, Any]]:
    await get_row(conn, principal, BOARDS, board_id)
    rows, _ = await list_rows(
        conn,
        principal,
        REPORT_FORMATS,
        filters={"board_id": board_id},
        sort="name",
        descending=False,
        limit=MAX_FORMATS_PER_BOARD,
        offset=0,
    )
    return rows


async def create(
    conn: AsyncConnection,
    principal: Principal,
    board_id: int,
    *,
    name: str,
    kind: str,
    file_type: str,
    columns: list[dict[str, Any]],
    group_by: str | None,
    sort_by: str | None,
    sort_desc: bool,
) -> dict[str, Any]:
    checked(kind, columns, group_by, sort_by)
    async with conn.transaction():
        await get_row(conn, principal, BOARDS, board_id, for_update=True)
        cursor = await conn.execute(
            "SELECT count(*) AS n FROM report_formats WHERE board_id = %s", (board_id,)
        )
        if (await cursor.fetchone())["n"] >= MAX_FORMATS_PER_BOARD:
            raise Conflict(
                f"the board has {MAX_FORMATS_PER_BOARD} report formats already; delete one first"
            )
        try:
            async with conn.transaction():
                cursor = await conn.execute(
                    "INSERT INTO report_formats (board_id, name, kind, file_type, columns,"
                    " group_by, sort_by, sort_desc, created_by)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
                    (
                        board_id,
                        name,
                        kind,
                        file_type,
                        Jsonb(columns),
                        group_by,
                        sort_by,
                        sort_desc,
                        actor(principal),
                    ),
                )
        except errors.UniqueViolation as exc:
            raise Conflict(
                f"the board has a report format named {name!r} already; choose another name",
                errors=[("name", name)],
            ) from exc
        row = await get_row(conn, principal, REPORT_FORMATS, (await cursor.fetchone())["id"])
        await audit.record(
            conn,
            actor=actor(principal),
            action="create",
            entity="report_format",
            entity_id=row["id"],
            after=row,
        )
    return row


async def update(
    conn: AsyncConnection,
    principal: Principal,
    format_id: int,
    *,
    name: str,
    kind: str,
    file_type: str,
    columns: list[dict[str, Any]],
    group_by: str | None,
    sort_by: str | None,
    sort_desc: bool,
) -> dict[str, Any]:
    """Replace the format (reports made before keep the layout they were made with)."""
    checked(kind, columns, group_by, sort_by)
    changes = {
        "name": name,
        "kind": kind,
        "file_type": file_type,
        "columns": Jsonb(columns),
        "group_by": group_by,
        "sort_by": sort_by,
        "sort_desc": sort_desc,
    }
    async with conn.transaction():
        row = await update_row(conn, principal, REPORT_FORMATS, format_id, changes)
        await conn.execute(
            "UPDATE report_formats SET updated_at = now() WHERE id = %s", (format_id,)
        )
    return row


async def delete(conn: AsyncConnection, principal: Principal, format_id: int) -> None:
    """Delete a format (refused, 409, while a schedule uses it; reports made with it keep
    their layout)."""
    row = await get_row(conn, principal, REPORT_FORMATS, format_id)
    cursor = await conn.execute(
        "SELECT name FROM report_schedules WHERE format_id = %s ORDER BY name", (format_id,)
    )
    users = [r["name"] for r in await cursor.fetchall()]
    if users:
        raise Conflict(
            f"report format {row['name']!r} is used by the schedule(s) "
            + ", ".join(repr(n) for n in users)
            + "; give them another format or delete them first"
        )
    await delete_row(conn, principal, REPORT_FORMATS, format_id)

"""A board's report schedules: reports that make themselves (set by a person with
`report:generate`, audited). A schedule names one of the board's formats (or a kind and a file
type), a cadence and its recipients: users of the board and addresses outside it. `monthly`
makes the report of a billing period once the board's billing run of that period has completed;
`weekly` runs on a day of the week at a local time in the board's zone (`cloud.reports.when`)
and reports the seven days before. The jobs loop makes and delivers them
(`services/scheduled_reports.py`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from psycopg import AsyncConnection, errors

from ..access import Principal
from ..billing.cycles import next_close
from ..errors import Conflict, InvalidInput
from ..reports import when
from . import audit
from .scoped import (
    BOARDS,
    REPORT_FORMATS,
    REPORT_SCHEDULES,
    actor,
    delete_row,
    get_row,
    list_rows,
)

MAX_SCHEDULES_PER_BOARD = 50


async def _recipients(conn: AsyncConnection, board: dict[str, Any], user_ids: list[int]) -> None:
    """Every user named must be staff of the board (or an admin of its state), and active."""
    cursor = await conn.execute(
        "SELECT id FROM users WHERE id = ANY(%s) AND active AND role <> 'CONSUMER'"
        " AND (board_id = %s OR (role = 'STATE_ADMIN' AND state_id = %s))",
        (user_ids, board["id"], board["state_id"]),
    )
    found = {row["id"] for row in await cursor.fetchall()}
    for index, user_id in enumerate(user_ids):
        if user_id not in found:
            raise InvalidInput(
                f"user {user_id} is not an active staff member of board {board['code']}:"
                " recipients inside GridGate are the board's people",
                errors=[(f"user_ids.{index}", str(user_id))],
            )


async def _checked(
    conn: AsyncConnection, principal: Principal, board: dict[str, Any], values: dict[str, Any]
) -> dict[str, Any]:
    """The schedule's values as stored, or InvalidInput naming what is wrong."""
    if values["format_id"] is not None:
        chosen = await get_row(conn, principal, REPORT_FORMATS, values["format_id"])
        if chosen["board_id"] != board["id"]:
            raise InvalidInput(
                f"report format {chosen['id']} belongs to another board",
                errors=[("format_id", str(chosen["id"]))],
            )
        if values["kind"] is not None or values["file_type"] is not None:
            raise InvalidInput(
                "a schedule with a format takes its kind and file type from it: leave kind"
                " and file_type out",
                errors=[("kind", str(values["kind"]))],
            )
    elif values["kind"] is None or values["file_type"] is None:
        raise InvalidInput(
            "choose a report format, or a kind and a file type",
            errors=[("format_id", "")],
        )
    if values["cadence"] == "weekly":
        if values["weekday"] is None or values["at_time"] is None:
            raise InvalidInput(
                "a weekly schedule needs its day (weekday, 0 Monday ... 6 Sunday) and its time"
                " (at_time, the board's local time)",
                errors=[("weekday" if values["weekday"] is None else "at_time", "")],
            )
    elif values["weekday"] is not None or values["at_time"] is not None:
        raise InvalidInput(
            "a monthly schedule runs after the board's billing run: it takes no weekday or at_time",
            errors=[("weekday", str(values["weekday"]))],
        )
    emails = sorted({address.lower() for address in values["emails"]})
    user_ids = sorted(set(values["user_ids"]))
    if not emails and not user_ids:
        raise InvalidInput(
            "name at least one recipient: a user of the board or an e-mail address",
            errors=[("user_ids", "")],
        )
    await _recipients(conn, board, user_ids)
    return {**values, "emails": emails, "user_ids": user_ids}


async def create(
    conn: AsyncConnection, principal: Principal, board_id: int, **values: Any
) -> dict[str, Any]:
    async with conn.transaction():
        board = await get_row(conn, principal, BOARDS, board_id, for_update=True)
        values = await _checked(conn, principal, board, values)
        cursor = await conn.execute(
            "SELECT count(*) AS n FROM report_schedules WHERE board_id = %s", (board_id,)
        )
        if (await cursor.fetchone())["n"] >= MAX_SCHEDULES_PER_BOARD:
            raise Conflict(
                f"the board has {MAX_SCHEDULES_PER_BOARD} report schedules already;"
                " delete one first"
            )
        try:
            async with conn.transaction():
                cursor = await conn.execute(
                    "INSERT INTO report_schedules (board_id, name, format_id, kind, file_type,"
                    " cadence, weekday, at_time, user_ids, emails, enabled, created_by)"
                    " VALUES (%(board_id)s, %(name)s, %(format_id)s, %(kind)s, %(file_type)s,"
                    " %(cadence)s, %(weekday)s, %(at_time)s, %(user_ids)s, %(emails)s,"
                    " %(enabled)s, %(actor)s) RETURNING id",
                    {**values, "board_id": board_id, "actor": actor(principal)},
                )
        except errors.UniqueViolation as exc:
            raise Conflict(
                f"the board has a report schedule named {values['name']!r} already",
                errors=[("name", values["name"])],
            ) from exc
        schedule_id = (await cursor.fetchone())["id"]
        row = await get_row(conn, principal, REPORT_SCHEDULES, schedule_id)
        await audit.record(
            conn,
            actor=actor(principal),
            action="create",
            entity="report_schedule",
            entity_id=schedule_id,
            after=row,
        )
    return await get(conn, principal, schedule_id)


async def update(
    conn: AsyncConnection, principal: Principal, schedule_id: int, **values: Any
) -> dict[str, Any]:
    """Replace the schedule. Enabled again, or given another cadence, day or time, it takes
    effect from now: nothing that fell due before is made."""
    async with conn.transaction():
        before = await get_row(conn, principal, REPORT_SCHEDULES, schedule_id, for_update=True)
        board = await get_row(conn, principal, BOARDS, before["board_id"])
        values = await _checked(conn, principal, board, values)
        reshaped = (values["enabled"] and not before["enabled"]) or any(
            values[k] != before[k] for k in ("cadence", "weekday", "at_time")
        )
        try:
            async with conn.transaction():
                await conn.execute(
                    "UPDATE report_schedules SET name = %(name)s, format_id = %(format_id)s,"
                    " kind = %(kind)s, file_type = %(file_type)s, cadence = %(cadence)s,"
                    " weekday = %(weekday)s, at_time = %(at_time)s, user_ids = %(user_ids)s,"
                    " emails = %(emails)s, enabled = %(enabled)s, updated_at = now(),"
                    " effective_from = CASE WHEN %(reshaped)s THEN now() ELSE effective_from END"
                    " WHERE id = %(id)s",
                    {**values, "id": schedule_id, "reshaped": reshaped},
                )
        except errors.UniqueViolation as exc:
            raise Conflict(
                f"the board has a report schedule named {values['name']!r} already",
                errors=[("name", values["name"])],
            ) from exc
        after = await get_row(conn, principal, REPORT_SCHEDULES, schedule_id)
        await audit.record(
            conn,
            actor=actor(principal),
            action="update",
            entity="report_schedule",
            entity_id=schedule_id,
            before=before,
            after=after,
        )
    return await get(conn, principal, schedule_id)


async def delete(conn: AsyncConnection, principal: Principal, schedule_id: int) -> None:
    """Delete a schedule (audited); the reports it made stay."""
    await delete_row(conn, principal, REPORT_SCHEDULES, schedule_id)


async def get(conn: AsyncConnection, principal: Principal, schedule_id: int) -> dict[str, Any]:
    row = await get_row(conn, principal, REPORT_SCHEDULES, schedule_id)
    return (await _described(conn, [row]))[0]


async def list_for_board(
    conn: AsyncConnection, principal: Principal, board_id: int
) -> list[dict[str, Any]]:
    await get_row(conn, principal, BOARDS, board_id)
    rows, _ = await list_rows(
        conn,
        principal,
        REPORT_SCHEDULES,
        filters={"board_id": board_id},
        sort="name",
        descending=False,
        limit=MAX_SCHEDULES_PER_BOARD,
        offset=0,
    )
    return await _described(conn, rows)


async def _described(conn: AsyncConnection, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each schedule with its board's zone, its format's name, its recipients' addresses, when
    it runs next and its latest runs."""
    if not rows:
        return []
    ids = [r["id"] for r in rows]
    cursor = await conn.execute(
        "SELECT s.id, b.time_zone, f.name AS format_name, f.kind AS format_kind,"
        " f.file_type AS format_file_type, c.cycle_day, c.cycle, c.enabled AS cycle_enabled,"
        " (SELECT coalesce(array_agg(u.email ORDER BY u.email), '{}') FROM users u"
        "   WHERE u.id = ANY(s.user_ids)) AS user_emails"
        " FROM report_schedules s JOIN boards b ON b.id = s.board_id"
        " LEFT JOIN report_formats f ON f.id = s.format_id"
        " LEFT JOIN billing_cycles c ON c.board_id = s.board_id WHERE s.id = ANY(%s)",
        (ids,),
    )
    extra = {r["id"]: r for r in await cursor.fetchall()}
    cursor = await conn.execute(
        "SELECT * FROM (SELECT r.*, row_number() OVER (PARTITION BY r.schedule_id"
        "   ORDER BY r.claimed_at DESC) AS n FROM report_schedule_runs r"
        "   WHERE r.schedule_id = ANY(%s)) x WHERE n <= 5 ORDER BY claimed_at DESC",
        (ids,),
    )
    runs: dict[int, list[dict[str, Any]]] = {}
    for run in await cursor.fetchall():
        run.pop("n")
        run.pop("worker")
        runs.setdefault(run["schedule_id"], []).append(run)
    now = datetime.now(UTC)
    described = []
    for row in rows:
        more = extra[row["id"]]
        zone = more["time_zone"]
        next_at = next_on = None
        if row["enabled"] and row["cadence"] == "weekly":
            next_at = when.next_weekly_run(now, row["weekday"], row["at_time"], zone)
        elif row["enabled"] and more["cycle_day"] and more["cycle_enabled"]:
            today = now.astimezone(ZoneInfo(zone)).date()
            next_on = next_close(more["cycle_day"], more["cycle"], today)
        described.append(
            {
                **row,
                "time_zone": zone,
                "kind": row["kind"] or more["format_kind"],
                "file_type": row["file_type"] or more["format_file_type"],
                "format_name": more["format_name"],
                "user_emails": more["user_emails"],
                "next_run_at": next_at,  # weekly: the instant (UTC)
                "next_billing_run_on": next_on,  # monthly: the board's cycle's next close
                "runs": runs.get(row["id"], []),
            }
        )
    return described

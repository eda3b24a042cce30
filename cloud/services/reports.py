"""Reports as jobs: asked for (audited), generated in the background into the storage backend,
listed, downloaded and deleted — each inside the asker's scope.

A report asked for with one of its board's formats (`services/report_formats.py`) keeps the
format's layout as it stood then (`reports.layout`) and takes its kind and file type; one asked
for without gets its kind's default layout. Scheduled reports (`services/report_schedules.py`)
are made by the same `generate`."""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Any

import structlog
from psycopg import AsyncConnection
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from ..access import Principal, resolve_in_scope
from ..errors import Conflict, InvalidInput
from ..reports import builders, layouts
from ..reports.formats import WRITERS
from ..reports.storage import ReportStorage
from . import audit, notifications
from .report_formats import layout_of
from .scoped import BOARDS, REPORT_FORMATS, REPORTS, actor, get_row

log = structlog.get_logger(__name__)
MAX_SPAN_DAYS = 400


async def request(
    conn: AsyncConnection,
    principal: Principal,
    *,
    kind: str | None,
    format: str | None,
    board_id: int | None,
    state_id: int | None,
    period_start: date,
    period_end: date,
    granularity: str,
    format_id: int | None = None,
) -> dict[str, Any]:
    """Queue a report (audited). With `format_id` (a format of the report's board) the report
    follows the format: its kind and file type unless given (and then they must agree)."""
    if (board_id is None) == (state_id is None):
        raise InvalidInput("give board_id or state_id (one of them)", errors=[("board_id", "")])
    if period_end <= period_start or (period_end - period_start).days > MAX_SPAN_DAYS:
        raise InvalidInput(
            f"the period must end after it starts and span at most {MAX_SPAN_DAYS} days",
            errors=[("period_end", period_end.isoformat())],
        )
    async with conn.transaction():
        if board_id is not None:
            await get_row(conn, principal, BOARDS, board_id)
        else:  # a state-wide report is for those whose scope covers the whole state
            await resolve_in_scope(conn, principal, {"whole_state": [state_id or 0]})
        layout = None
        if format_id is not None:
            chosen = await get_row(conn, principal, REPORT_FORMATS, format_id)
            if chosen["board_id"] != board_id:
                raise InvalidInput(
                    f"report format {format_id} belongs to another board: a format is its"
                    " board's, for that board's reports",
                    errors=[("format_id", str(format_id))],
                )
            for field, given, own in (
                ("kind", kind, chosen["kind"]),
                ("format", format, chosen["file_type"]),
            ):
                if given is not None and given != own:
                    raise InvalidInput(
                        f"{field} {given!r} disagrees with report format {chosen['name']!r}"
                        f" ({own!r}); leave it out to follow the format",
                        errors=[(field, given)],
                    )
            kind, format, layout = chosen["kind"], chosen["file_type"], layout_of(chosen)
        if kind is None:
            raise InvalidInput("give the report's kind, or a format", errors=[("kind", "")])
        cursor = await conn.execute(
            "INSERT INTO reports (board_id, state_id, kind, format, granularity, period_start,"
            " period_end, created_by, format_id, layout)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
            (
                board_id,
                state_id,
                kind,
                format or "csv",
                granularity,
                period_start,
                period_end,
                actor(principal),
                format_id,
                Jsonb(layout) if layout else None,
            ),
        )
        report = await get_row(conn, principal, REPORTS, (await cursor.fetchone())["id"])
        await audit.record(
            conn,
            actor=actor(principal),
            action="generate",
            entity="report",
            entity_id=report["id"],
            after=report,
        )
    return report


async def generate(
    pool: AsyncConnectionPool, storage: ReportStorage, report_id: int, *, base_url: str
) -> None:
    """Build, write and store one report; its row says how it went, and the person who asked
    for it hears that it is ready (or that it failed)."""
    async with pool.connection() as conn:
        try:
            async with conn.transaction():
                cursor = await conn.execute(
                    "UPDATE reports SET status = 'running' WHERE id = %s AND status = 'queued'"
                    " RETURNING *",
                    (report_id,),
                )
                report = await cursor.fetchone()
            if report is None:
                return
            data = await _build(conn, report)
            layout = report["layout"] or layouts.default_layout(report["kind"])
            data = layouts.apply(data, report["kind"], layout)
            body = await asyncio.to_thread(WRITERS[report["format"]], data)
            key = f"r{report_id}/{report['kind']}-{report['period_start']}.{report['format']}"
            await asyncio.to_thread(storage.put, key, body)
            async with conn.transaction():
                await conn.execute(
                    "UPDATE reports SET status = 'done', storage_key = %s, size_bytes = %s,"
                    " rows = %s, finished_at = now() WHERE id = %s",
                    (key, len(body), len(data.rows), report_id),
                )
                await _tell_requester(conn, report, base_url, done=True)
        except Exception as exc:
            log.error("report failed", report_id=report_id, error=str(exc))
            async with conn.transaction():
                cursor = await conn.execute(
                    "UPDATE reports SET status = 'failed', error = %s, finished_at = now()"
                    " WHERE id = %s RETURNING *",
                    (str(exc)[:500], report_id),
                )
                failed = await cursor.fetchone()
                if failed is not None:
                    await _tell_requester(conn, failed, base_url, done=False)


async def _tell_requester(
    conn: AsyncConnection, report: dict[str, Any], base_url: str, *, done: bool
) -> None:
    requester = report["created_by"] or ""
    if not requester.startswith("user:") or not requester[5:].isdigit():
        return  # asked for by the system, not a person
    what = f"{report['kind'].replace('_', ' ')} report ({report['format'].upper()})"
    await notifications.notify(
        conn,
        [int(requester[5:])],
        notifications.Notice(
            "report_ready",
            f"Your {what} is ready" if done else f"Your {what} could not be made",
            f"For {report['period_start']:%d %b %Y} to {report['period_end']:%d %b %Y}."
            + ("" if done else " Open the reports page to see why and ask again."),
            "/dashboard/reports",
            f"report:{report['id']}",
        ),
        base_url=base_url,
    )


async def _build(conn: AsyncConnection, report: dict[str, Any]) -> builders.ReportData:
    if report["board_id"] is not None:
        cursor = await conn.execute(
            "SELECT id, time_zone FROM boards WHERE id = %s", (report["board_id"],)
        )
    else:
        cursor = await conn.execute(
            "SELECT id, time_zone FROM boards WHERE state_id = %s ORDER BY id",
            (report["state_id"],),
        )
    boards = await cursor.fetchall()
    ids = [b["id"] for b in boards]
    start, end = report["period_start"], report["period_end"]
    tz = boards[0]["time_zone"] if boards else "UTC"
    if report["kind"] == "consumption":
        return await builders.consumption(conn, ids, start, end, tz, report["granularity"])
    if report["kind"] == "billing_summary":
        return await builders.billing_summary(conn, ids, start, end)
    if report["kind"] == "alerts":
        return await builders.alerts(conn, ids, start, end, tz)
    return await builders.fleet_health(conn, ids)


async def download(
    conn: AsyncConnection, principal: Principal, storage: ReportStorage, report_id: int
) -> tuple[dict[str, Any], bytes]:
    report = await get_row(conn, principal, REPORTS, report_id)
    if report["status"] != "done":
        raise Conflict(f"report {report_id} is {report['status']}, not ready to download")
    cursor = await conn.execute("SELECT storage_key FROM reports WHERE id = %s", (report_id,))
    key = (await cursor.fetchone())["storage_key"]
    return report, await asyncio.to_thread(storage.get, key)


async def delete(
    conn: AsyncConnection, principal: Principal, storage: ReportStorage, report_id: int
) -> None:
    async with conn.transaction():
        report = await get_row(conn, principal, REPORTS, report_id, for_update=True)
        cursor = await conn.execute(
            "DELETE FROM reports WHERE id = %s RETURNING storage_key", (report_id,)
        )
        key = (await cursor.fetchone())["storage_key"]
        await audit.record(
            conn,
            actor=actor(principal),
            action="delete",
            entity="report",
            entity_id=report_id,
            before=report,
        )
    if key:
        await asyncio.to_thread(storage.delete, key)

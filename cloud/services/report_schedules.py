"""Reports that make themselves: a board's schedules, and the runs the jobs loop makes of them.

A schedule (`report_schedules`, set by a person with `report:generate`, audited) names one of
the board's formats (or a kind and a file type), a cadence and its recipients: users of the
board and addresses outside it. `monthly` makes the report of a billing period once the board's
billing run of that period has completed (a `billing_runs` row done, by the board's cycle or by
hand, finished after the schedule took effect); `weekly` runs on a day of the week at a local
time in the board's zone (`cloud.reports.when`) and reports the seven days before.

Every process's jobs loop looks for what is due and claims it exactly as billing cycles claim
their periods: one `report_schedule_runs` row per schedule and period, inserted with
`ON CONFLICT DO NOTHING` in the transaction that queues the report, so of several processes
exactly one makes it; the claimant renews a lease while the report is made, and a claim whose
lease ran out (its process died) is taken over (`FOR UPDATE SKIP LOCKED`) and the report made
again from the start. A report that fails is final for that period (the run says why; a person
can ask again), and its recipients are told.

Delivery: board users get a notification (in the app, and by e-mail as their preferences say)
linking to the reports page, where they download it signed in. An address outside the board gets
an e-mail with a download link of its own that works for a week (`report_links`, only the
token's hash kept) — never the file attached: reports run to megabytes, and a link can end.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import secrets
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from psycopg import AsyncConnection, errors
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from ..access import Principal
from ..billing.cycles import next_close
from ..errors import Conflict, InvalidInput, NotFound
from ..formats import local_date, local_time, number
from ..reports import when
from ..reports.storage import ReportStorage
from . import audit, notifications, outbox, reports
from .billing_cycles import worker_name
from .report_formats import layout_of
from .scoped import (
    BOARDS,
    REPORT_FORMATS,
    REPORT_SCHEDULES,
    actor,
    delete_row,
    get_row,
    list_rows,
)

log = structlog.get_logger(__name__)
MAX_SCHEDULES_PER_BOARD = 50
LINK_DAYS = 7
KIND_WORDS = {
    "consumption": "Consumption",
    "billing_summary": "Billing summary",
    "alerts": "Alerts",
    "fleet_health": "Fleet health",
}


# --- the setting -------------------------------------------------------------------------------


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


# --- what is due -------------------------------------------------------------------------------


async def due(conn: AsyncConnection, now: datetime) -> list[tuple[dict[str, Any], date, date]]:
    """Each enabled schedule's period that is due by `now` and not claimed yet."""
    found: list[tuple[dict[str, Any], date, date]] = []
    cursor = await conn.execute(
        "SELECT DISTINCT ON (s.id, r.period_start, r.period_end) s.*, r.period_start,"
        " r.period_end FROM report_schedules s JOIN billing_runs r ON r.board_id = s.board_id"
        " AND r.status = 'done' AND r.finished_at >= s.effective_from"
        " WHERE s.enabled AND s.cadence = 'monthly' AND NOT EXISTS (SELECT 1"
        "   FROM report_schedule_runs x WHERE x.schedule_id = s.id"
        "   AND x.period_start = r.period_start AND x.period_end = r.period_end)"
        " ORDER BY s.id, r.period_start, r.period_end"
    )
    for row in await cursor.fetchall():
        found.append((row, row.pop("period_start"), row.pop("period_end")))
    cursor = await conn.execute(
        "SELECT s.*, b.time_zone, (SELECT max(x.period_end) FROM report_schedule_runs x"
        "   WHERE x.schedule_id = s.id) AS made_to"
        " FROM report_schedules s JOIN boards b ON b.id = s.board_id"
        " WHERE s.enabled AND s.cadence = 'weekly' ORDER BY s.id"
    )
    for row in await cursor.fetchall():
        run = when.last_weekly_run(now, row["weekday"], row["at_time"], row["time_zone"])
        if run < row["effective_from"]:
            continue
        start, end = when.weekly_period(run, row["time_zone"])
        if row["made_to"] is None or row["made_to"] < end:
            found.append((row, start, end))
    return found


# --- claiming ----------------------------------------------------------------------------------


async def claim_new(
    conn: AsyncConnection,
    schedule: dict[str, Any],
    start: date,
    end: date,
    *,
    worker: str,
    lease_s: float,
) -> dict[str, Any] | None:
    """Claim the schedule's report of [start, end) and queue it, in one transaction; None if a
    process already has."""
    async with conn.transaction():
        cursor = await conn.execute(
            "INSERT INTO report_schedule_runs (schedule_id, period_start, period_end, worker,"
            " lease_until) VALUES (%s, %s, %s, %s, now() + make_interval(secs => %s))"
            " ON CONFLICT DO NOTHING RETURNING *",
            (schedule["id"], start, end, worker, lease_s),
        )
        claim = await cursor.fetchone()
        if claim is None:
            return None
        kind, file_type, layout = schedule["kind"], schedule["file_type"], None
        if schedule["format_id"] is not None:
            cursor = await conn.execute(
                "SELECT * FROM report_formats WHERE id = %s", (schedule["format_id"],)
            )
            chosen = await cursor.fetchone()
            kind, file_type, layout = chosen["kind"], chosen["file_type"], layout_of(chosen)
        cursor = await conn.execute(
            "INSERT INTO reports (board_id, kind, format, granularity, period_start, period_end,"
            " created_by, format_id, layout, schedule_id)"
            " VALUES (%s, %s, %s, 'daily', %s, %s, %s, %s, %s, %s) RETURNING id",
            (
                schedule["board_id"],
                kind,
                file_type,
                start,
                end,
                f"schedule:{schedule['id']}",
                schedule["format_id"],
                Jsonb(layout) if layout else None,
                schedule["id"],
            ),
        )
        report_id = (await cursor.fetchone())["id"]
        await conn.execute(
            "UPDATE report_schedule_runs SET report_id = %s WHERE schedule_id = %s"
            " AND period_start = %s AND period_end = %s",
            (report_id, schedule["id"], start, end),
        )
    return {**claim, "report_id": report_id}


async def claim_abandoned(
    conn: AsyncConnection, *, worker: str, lease_s: float
) -> dict[str, Any] | None:
    """Take over one claim whose lease ran out (its process died while the report was made):
    its report is queued again to be made from the start. None when there is none."""
    async with conn.transaction():
        cursor = await conn.execute(
            "UPDATE report_schedule_runs c SET worker = %s, attempts = c.attempts + 1,"
            " lease_until = now() + make_interval(secs => %s)"
            " FROM (SELECT schedule_id, period_start, period_end FROM report_schedule_runs"
            "   WHERE status = 'running' AND lease_until < now() ORDER BY lease_until LIMIT 1"
            "   FOR UPDATE SKIP LOCKED) x WHERE c.schedule_id = x.schedule_id"
            " AND c.period_start = x.period_start AND c.period_end = x.period_end RETURNING c.*",
            (worker, lease_s),
        )
        claim = await cursor.fetchone()
        if claim is not None and claim["report_id"] is not None:
            await conn.execute(
                "UPDATE reports SET status = 'queued', error = NULL, finished_at = NULL"
                " WHERE id = %s AND status IN ('queued', 'running')",
                (claim["report_id"],),
            )
            log.info(
                "scheduled report taken over",
                schedule_id=claim["schedule_id"],
                report_id=claim["report_id"],
                attempt=claim["attempts"],
            )
    return claim


async def _renew(conn: AsyncConnection, claim: dict[str, Any], worker: str, lease_s: float) -> bool:
    cursor = await conn.execute(
        "UPDATE report_schedule_runs SET lease_until = now() + make_interval(secs => %s)"
        " WHERE schedule_id = %s AND period_start = %s AND period_end = %s AND worker = %s"
        " AND status = 'running' RETURNING 1",
        (lease_s, claim["schedule_id"], claim["period_start"], claim["period_end"], worker),
    )
    held = await cursor.fetchone() is not None
    await conn.commit()
    return held


# --- running -----------------------------------------------------------------------------------


async def run_due(
    pool: AsyncConnectionPool,
    storage: ReportStorage,
    *,
    lease_s: float,
    base_url: str,
    worker: str | None = None,
    now: datetime | None = None,
) -> int:
    """One pass: complete every claim this process can get — abandoned ones first, then what
    has fallen due. How many reports it delivered."""
    worker = worker or worker_name()
    completed = 0
    while True:
        async with pool.connection() as conn:
            claim = await claim_abandoned(conn, worker=worker, lease_s=lease_s)
        if claim is None:
            break
        completed += await complete(pool, storage, claim, worker, lease_s, base_url)
    async with pool.connection() as conn:
        found = await due(conn, now or datetime.now(UTC))
    for schedule, start, end in found:
        async with pool.connection() as conn:
            claim = await claim_new(conn, schedule, start, end, worker=worker, lease_s=lease_s)
        if claim is not None:
            completed += await complete(pool, storage, claim, worker, lease_s, base_url)
    return completed


async def complete(
    pool: AsyncConnectionPool,
    storage: ReportStorage,
    claim: dict[str, Any],
    worker: str,
    lease_s: float,
    base_url: str,
) -> int:
    """Make the claimed report while keeping the lease, then tell its recipients; 1 when it
    was delivered, 0 when it failed or the claim was lost."""
    bound = log.bind(schedule_id=claim["schedule_id"], report_id=claim["report_id"])
    if claim["report_id"] is None:  # its report was deleted before it was made
        await _finish(pool, claim, worker, "failed", "the report was deleted", 0)
        return 0
    work = asyncio.create_task(
        reports.generate(pool, storage, claim["report_id"], base_url=base_url)
    )
    while not work.done():
        await asyncio.wait({work}, timeout=lease_s / 3)
        if work.done():
            break
        async with pool.connection() as conn:
            if not await _renew(conn, claim, worker, lease_s):
                work.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await work
                bound.warning("scheduled report lost its claim to another process")
                return 0
    work.result()  # generate records its own failure; anything else is a bug to surface
    async with pool.connection() as conn, conn.transaction():
        cursor = await conn.execute(
            "SELECT r.*, s.name AS schedule_name, s.user_ids, s.emails, b.code AS board_code,"
            " b.name AS board_name, b.time_zone FROM reports r"
            " JOIN report_schedules s ON s.id = %s JOIN boards b ON b.id = r.board_id"
            " WHERE r.id = %s",
            (claim["schedule_id"], claim["report_id"]),
        )
        report = await cursor.fetchone()
        if report is None:
            raise NotFound(f"report {claim['report_id']} of schedule {claim['schedule_id']}")
        cursor = await conn.execute(
            "SELECT 1 FROM report_schedule_runs WHERE schedule_id = %s AND period_start = %s"
            " AND period_end = %s AND worker = %s AND status = 'running' FOR UPDATE",
            (claim["schedule_id"], claim["period_start"], claim["period_end"], worker),
        )
        if await cursor.fetchone() is None:
            bound.warning("scheduled report lost its claim to another process")
            return 0
        done = report["status"] == "done"
        told = await _deliver(conn, report, base_url, done=done)
        await conn.execute(
            "UPDATE report_schedule_runs SET status = %s, delivered = %s, last_error = %s,"
            " finished_at = now() WHERE schedule_id = %s AND period_start = %s"
            " AND period_end = %s",
            (
                "done" if done else "failed",
                told,
                None if done else report["error"],
                claim["schedule_id"],
                claim["period_start"],
                claim["period_end"],
            ),
        )
        await audit.record(
            conn,
            actor=f"schedule:{claim['schedule_id']}",
            action="scheduled_report",
            entity="report_schedule",
            entity_id=claim["schedule_id"],
            after={
                "period_start": claim["period_start"],
                "period_end": claim["period_end"],
                "report_id": report["id"],
                "status": report["status"],
                "recipients_told": told,
            },
        )
    bound.info("scheduled report delivered" if done else "scheduled report failed", told=told)
    return 1 if done else 0


async def _finish(
    pool: AsyncConnectionPool,
    claim: dict[str, Any],
    worker: str,
    status: str,
    error: str | None,
    told: int,
) -> None:
    async with pool.connection() as conn, conn.transaction():
        await conn.execute(
            "UPDATE report_schedule_runs SET status = %s, last_error = %s, delivered = %s,"
            " finished_at = now() WHERE schedule_id = %s AND period_start = %s"
            " AND period_end = %s AND worker = %s",
            (
                status,
                error,
                told,
                claim["schedule_id"],
                claim["period_start"],
                claim["period_end"],
                worker,
            ),
        )


def _describe(report: dict[str, Any]) -> tuple[str, str]:
    what = f"{KIND_WORDS[report['kind']]} report ({report['format'].upper()})"
    last_day = report["period_end"] - timedelta(days=1)
    period = f"{local_date(report['period_start'])} to {local_date(last_day)}"
    return what, period


async def _deliver(
    conn: AsyncConnection, report: dict[str, Any], base_url: str, *, done: bool
) -> int:
    """Tell the schedule's recipients, inside the run's transaction; how many were told."""
    what, period = _describe(report)
    schedule = report["schedule_name"]
    title = (
        f"{schedule}: {what} for {period} is ready"
        if done
        else f"{schedule}: {what} for {period} could not be made"
    )
    body = (
        f"The {what.lower()} of board {report['board_code']} ({report['board_name']}) for"
        f" {period} is ready: {number(report['rows'])} rows."
        if done
        else f"The {what.lower()} of board {report['board_code']} for {period} could not be"
        f" made: {report['error'] or 'unknown error'}. Ask for it again on the reports page."
    )
    told = await notifications.notify(
        conn,
        list(report["user_ids"]),
        notifications.Notice(
            "report_ready", title, body, "/dashboard/reports", f"report:{report['id']}"
        ),
        base_url=base_url,
    )
    if not done:
        return told
    expires = datetime.now(UTC) + timedelta(days=LINK_DAYS)
    for address in report["emails"]:
        token = secrets.token_urlsafe(32)
        queued = await outbox.enqueue(
            conn,
            event_key=f"report-link:{report['id']}:{address}",
            to=address,
            kind="report_link",
            context={
                "title": title,
                "body": body,
                "link": f"{base_url}/api/v1/report-links/{token}",
                "file_type": report["format"].upper(),
                "size": _size(report["size_bytes"]),
                "expires": local_time(expires, report["time_zone"]),
                "board": f"{report['board_name']} ({report['board_code']})",
                "schedule": schedule,
                "to": address,
            },
        )
        if queued is None:
            continue  # this report was mailed to this address before
        await conn.execute(
            "INSERT INTO report_links (token_hash, report_id, email, expires_at)"
            " VALUES (%s, %s, %s, %s)",
            (link_hash(token), report["id"], address, expires),
        )
        told += 1
    return told


def _size(size_bytes: int | None) -> str:
    size = size_bytes or 0
    if size < 1024:
        return f"{size} bytes"
    if size < 1024 * 1024:
        return f"{number(size / 1024, 1)} KB"
    return f"{number(size / 1024 / 1024, 1)} MB"


def link_hash(token: str) -> bytes:
    """What is kept of a download link: the SHA-256 of its 256 random bits (nothing to guess
    from, so no key is needed)."""
    return hashlib.sha256(token.encode()).digest()


async def linked_report(conn: AsyncConnection, token: str) -> dict[str, Any]:
    """The report a download link names, counted; NotFound when the link is unknown, has
    ended or its report is gone."""
    async with conn.transaction():
        cursor = await conn.execute(
            "UPDATE report_links l SET downloads = downloads + 1 FROM reports r"
            " WHERE l.token_hash = %s AND l.expires_at > now() AND r.id = l.report_id"
            " AND r.status = 'done' RETURNING r.id, r.kind, r.format, r.period_start,"
            " r.storage_key",
            (link_hash(token),),
        )
        row = await cursor.fetchone()
    if row is None:
        raise NotFound("this download link is unknown or has ended (links work for a week)")
    return row

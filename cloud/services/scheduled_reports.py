"""The reports a board's schedules (`services/report_schedules.py`) make, and their delivery.

`monthly` is due once the board's billing run of a period has completed (a `billing_runs` row
done, by the board's cycle or by hand, finished after the schedule took effect) and reports that
period; `weekly` is due at its day and local time (`cloud.reports.when`) and reports the seven
days before.

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

import structlog
from psycopg import AsyncConnection
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from ..errors import NotFound
from ..formats import local_date, local_time, number
from ..reports import when
from ..reports.storage import ReportStorage
from . import audit, notifications, outbox, reports
from .billing_cycles import worker_name
from .report_formats import layout_of

log = structlog.get_logger(__name__)
LINK_DAYS = 7
KIND_WORDS = {
    "consumption": "Consumption",
    "billing_summary": "Billing summary",
    "alerts": "Alerts",
    "fleet_health": "Fleet health",
}


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
    # those still on the board's staff (one moved elsewhere since hears nothing of this board)
    cursor = await conn.execute(
        "SELECT u.id FROM users u JOIN boards b ON b.id = %s WHERE u.id = ANY(%s) AND u.active"
        " AND u.role <> 'CONSUMER' AND (u.board_id = b.id"
        " OR (u.role = 'STATE_ADMIN' AND u.state_id = b.state_id))",
        (report["board_id"], list(report["user_ids"])),
    )
    told = await notifications.notify(
        conn,
        [row["id"] for row in await cursor.fetchall()],
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

"""Billing that runs itself: each board's billing cycle and the runs the scheduler makes of it.

A board's cycle (`billing_cycles`: cycle day, monthly or bimonthly, auto issue, enabled) is set
by a person with `billing:generate` and audited. On every pass of the jobs loop each process
looks for boards whose period has just closed in their own zone (`cloud.billing.cycles`) and
claims the period: one `billing_cycle_runs` row per board and closing day, inserted with
`ON CONFLICT DO NOTHING`, so of several processes exactly one gets it. The claimant holds a
lease it renews while it works; a claim whose lease ran out (its process died, or the run
failed and waits to be tried again) is taken over by whichever process finds it first (`FOR
UPDATE SKIP LOCKED`), and the run it left half-way is marked failed.

Completing a claim is the billing run itself (`billing_runs.run`, idempotent: what the dead
process committed is found unchanged, never billed twice; the invoices' unique key per consumer,
period and version holds even if two ever ran at once), then, when the board says so, the
issue of the period's drafts (`invoices.issue_many`, each at most once: only drafts are
issued). The claim row records the outcome: the run, how many bills were issued, and what was
refused or went wrong.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from ..access import Principal
from ..billing.cycles import Cycle, Period, due_period, next_close
from . import audit, billing_runs, invoices
from .scoped import BOARDS, actor, get_row

log = structlog.get_logger(__name__)

# the scheduler acts as the operator (the audit log names it user:0, as the command line)
SCHEDULER = Principal(user_id=0, role="SUPER_ADMIN", state_id=None, board_id=None, consumer_id=None)
MAX_ATTEMPTS = 5  # a claim that failed this often waits for a person
RECENT_RUNS = 12
_FIELDS = ("cycle_day", "cycle", "auto_issue", "enabled")


def worker_name() -> str:
    """How a claim names the process holding it."""
    return f"{socket.gethostname()}:{os.getpid()}"


# --- the setting -------------------------------------------------------------------------------


async def get_cycle(conn: AsyncConnection, principal: Principal, board_id: int) -> dict[str, Any]:
    """The board's cycle (`configured` false and `enabled` false when it has none), the day its
    next run starts, and its latest scheduled runs."""
    board = await get_row(conn, principal, BOARDS, board_id)
    cursor = await conn.execute("SELECT * FROM billing_cycles WHERE board_id = %s", (board_id,))
    row = await cursor.fetchone()
    runs = await _runs(conn, board_id)
    setting: dict[str, Any] = {
        "board_id": board_id,
        "configured": row is not None,
        "cycle_day": None,
        "cycle": None,
        "auto_issue": False,
        "enabled": False,
        "effective_from": None,
        "next_run_on": None,
    }
    if row is not None:
        setting.update({k: row[k] for k in (*_FIELDS, "effective_from")})
    if row is not None and row["enabled"]:
        today = datetime.now(ZoneInfo(board["time_zone"])).date()
        billed_to = max((r["period_end"] for r in runs), default=None)
        pending = due_period(
            row["cycle_day"],
            row["cycle"],
            today,
            effective_from=row["effective_from"],
            billed_to=billed_to,
        )
        setting["next_run_on"] = (
            today if pending is not None else next_close(row["cycle_day"], row["cycle"], today)
        )
    return {**setting, "time_zone": board["time_zone"], "runs": runs}


async def set_cycle(
    conn: AsyncConnection,
    principal: Principal,
    board_id: int,
    *,
    cycle_day: int,
    cycle: Cycle,
    auto_issue: bool,
    enabled: bool,
) -> dict[str, Any]:
    """Set the board's cycle. A new cycle day or length, or a cycle enabled again, takes effect
    from today: the scheduler bills the first period to close from now on, never one that closed
    before (those are billed by hand)."""
    async with conn.transaction():
        board = await get_row(conn, principal, BOARDS, board_id)
        today = datetime.now(ZoneInfo(board["time_zone"])).date()
        cursor = await conn.execute(
            "SELECT * FROM billing_cycles WHERE board_id = %s FOR UPDATE", (board_id,)
        )
        old = await cursor.fetchone()
        reshaped = old is None or (
            (old["cycle_day"], old["cycle"]) != (cycle_day, cycle)
            or (enabled and not old["enabled"])
        )
        effective_from = today if reshaped else old["effective_from"]
        await conn.execute(
            "INSERT INTO billing_cycles (board_id, cycle_day, cycle, auto_issue, enabled,"
            " effective_from) VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (board_id) DO UPDATE"
            " SET cycle_day = excluded.cycle_day, cycle = excluded.cycle,"
            " auto_issue = excluded.auto_issue, enabled = excluded.enabled,"
            " effective_from = excluded.effective_from, updated_at = now()",
            (board_id, cycle_day, cycle, auto_issue, enabled, effective_from),
        )
        await audit.record(
            conn,
            actor=actor(principal),
            action="update",
            entity="billing_cycle",
            entity_id=board_id,
            before=None if old is None else {k: old[k] for k in (*_FIELDS, "effective_from")},
            after={
                "cycle_day": cycle_day,
                "cycle": cycle,
                "auto_issue": auto_issue,
                "enabled": enabled,
                "effective_from": effective_from,
            },
        )
    return await get_cycle(conn, principal, board_id)


async def _runs(conn: AsyncConnection, board_id: int) -> list[dict[str, Any]]:
    """The board's latest scheduled runs with the counts of the billing run that completed each
    (or of the latest attempt while one is under way)."""
    cursor = await conn.execute(
        "SELECT c.period_start, c.period_end, c.period_end - 1 AS last_day, c.cycle_months,"
        " c.status, c.attempts, c.auto_issue,"
        " c.issued, c.not_issued, c.last_error, c.claimed_at, c.finished_at, r.id AS run_id,"
        " coalesce(r.consumers, 0) AS consumers, coalesce(r.measured, 0) AS measured,"
        " coalesce(r.created, 0) + coalesce(r.revised, 0) + coalesce(r.unchanged, 0) AS billed,"
        " coalesce(r.created, 0) AS created, coalesce(r.revised, 0) AS revised,"
        " coalesce(r.estimated, 0) AS estimated, coalesce(r.unmeasured, 0) AS unmeasured,"
        " coalesce(r.failed, 0) AS failed, coalesce(r.errors, '[]') AS errors"
        " FROM billing_cycle_runs c LEFT JOIN LATERAL (SELECT * FROM billing_runs b"
        "   WHERE b.id = c.run_id OR (c.run_id IS NULL AND b.scheduled AND b.board_id = c.board_id"
        "   AND b.period_start = c.period_start AND b.period_end = c.period_end)"
        "   ORDER BY b.id DESC LIMIT 1) r ON true"
        " WHERE c.board_id = %s ORDER BY c.period_end DESC LIMIT %s",
        (board_id, RECENT_RUNS),
    )
    return await cursor.fetchall()


# --- claiming ----------------------------------------------------------------------------------


async def claim_new(
    conn: AsyncConnection, board_id: int, period: Period, *, worker: str, lease_s: float
) -> dict[str, Any] | None:
    """Claim the board's run of `period` for `worker`; None if a process already has (the one
    row per board and closing day is inserted once)."""
    cursor = await conn.execute(
        "INSERT INTO billing_cycle_runs (board_id, period_start, period_end, cycle_months, worker,"
        " lease_until) VALUES (%s, %s, %s, %s, %s, now() + make_interval(secs => %s))"
        " ON CONFLICT (board_id, period_end) DO NOTHING RETURNING *",
        (board_id, period.start, period.end, period.months, worker, lease_s),
    )
    row = await cursor.fetchone()
    await conn.commit()
    return row


async def claim_abandoned(
    conn: AsyncConnection, *, worker: str, lease_s: float
) -> dict[str, Any] | None:
    """Take over one claim whose lease ran out — its process died, or its run failed and may be
    tried again — and mark the billing run it left half-way as failed; None when there is none."""
    cursor = await conn.execute(
        "UPDATE billing_cycle_runs c SET worker = %s,"
        " lease_until = now() + make_interval(secs => %s), attempts = c.attempts + 1"
        " FROM (SELECT board_id, period_end FROM billing_cycle_runs"
        "   WHERE status = 'running' AND lease_until < now() ORDER BY lease_until LIMIT 1"
        "   FOR UPDATE SKIP LOCKED) x"
        " WHERE c.board_id = x.board_id AND c.period_end = x.period_end RETURNING c.*",
        (worker, lease_s),
    )
    row = await cursor.fetchone()
    if row is not None:
        await conn.execute(
            "UPDATE billing_runs SET status = 'failed', finished_at = now(),"
            " errors = errors || %s::jsonb WHERE board_id = %s AND period_start = %s"
            " AND period_end = %s AND scheduled AND status = 'running'",
            (
                json.dumps(["stopped before it finished; the next attempt completes it"]),
                row["board_id"],
                row["period_start"],
                row["period_end"],
            ),
        )
        log.info(
            "billing cycle run taken over",
            board_id=row["board_id"],
            period_end=str(row["period_end"]),
            attempt=row["attempts"],
        )
    await conn.commit()
    return row


async def renew(
    conn: AsyncConnection, claim: dict[str, Any], *, worker: str, lease_s: float
) -> bool:
    """Extend `worker`'s lease on the claim; False if it is no longer `worker`'s."""
    cursor = await conn.execute(
        "UPDATE billing_cycle_runs SET lease_until = now() + make_interval(secs => %s)"
        " WHERE board_id = %s AND period_end = %s AND worker = %s AND status = 'running'"
        " RETURNING 1",
        (lease_s, claim["board_id"], claim["period_end"], worker),
    )
    held = await cursor.fetchone() is not None
    await conn.commit()
    return held


async def due(conn: AsyncConnection, now: datetime) -> list[tuple[int, Period]]:
    """Each enabled board's period that has closed in its zone by `now` and is not claimed yet."""
    cursor = await conn.execute(
        "SELECT c.*, b.time_zone, (SELECT max(period_end) FROM billing_cycle_runs r"
        "   WHERE r.board_id = c.board_id) AS billed_to"
        " FROM billing_cycles c JOIN boards b ON b.id = c.board_id WHERE c.enabled"
        " ORDER BY c.board_id"
    )
    found = []
    for row in await cursor.fetchall():
        today = now.astimezone(ZoneInfo(row["time_zone"])).date()
        period = due_period(
            row["cycle_day"],
            row["cycle"],
            today,
            effective_from=row["effective_from"],
            billed_to=row["billed_to"],
        )
        if period is not None:
            found.append((row["board_id"], period))
    return found


# --- running -----------------------------------------------------------------------------------


async def run_due(
    pool: AsyncConnectionPool, *, lease_s: float, base_url: str, worker: str | None = None
) -> int:
    """One pass of the scheduler: complete every claim this process can get — abandoned ones
    first, then the periods that have just closed. How many it completed."""
    worker = worker or worker_name()
    completed = 0
    while True:
        async with pool.connection() as conn:
            claim = await claim_abandoned(conn, worker=worker, lease_s=lease_s)
        if claim is None:
            break
        completed += await complete(pool, claim, worker=worker, lease_s=lease_s, base_url=base_url)
    async with pool.connection() as conn:
        periods = await due(conn, datetime.now(UTC))
    for board_id, period in periods:
        async with pool.connection() as conn:
            claim = await claim_new(conn, board_id, period, worker=worker, lease_s=lease_s)
        if claim is not None:
            completed += await complete(
                pool, claim, worker=worker, lease_s=lease_s, base_url=base_url
            )
    return completed


async def complete(
    pool: AsyncConnectionPool,
    claim: dict[str, Any],
    *,
    worker: str,
    lease_s: float,
    base_url: str,
) -> int:
    """Run the claimed period's billing (and issue, if the board says so) while keeping the
    lease; record the outcome. 1 when done, 0 when it failed (tried again once the lease runs
    out, up to `MAX_ATTEMPTS` times) or the claim was lost."""
    bound = log.bind(board_id=claim["board_id"], period_end=str(claim["period_end"]))
    work = asyncio.create_task(_bill_and_issue(pool, claim, base_url))
    lost = False
    while not work.done():
        await asyncio.wait({work}, timeout=lease_s / 3)
        if work.done():
            break
        async with pool.connection() as conn:
            if not await renew(conn, claim, worker=worker, lease_s=lease_s):
                lost = True
                work.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await work
    if lost:
        bound.warning("billing cycle run lost its claim to another process")
        return 0
    try:
        outcome = work.result()
    except Exception as exc:
        bound.error("billing cycle run failed", error=str(exc))
        async with pool.connection() as conn:
            await conn.execute(
                "UPDATE billing_cycle_runs SET last_error = %s,"
                " status = CASE WHEN attempts >= %s THEN 'failed' ELSE status END,"
                " finished_at = CASE WHEN attempts >= %s THEN now() END,"
                " lease_until = now() + make_interval(secs => %s)"  # tried again after this
                " WHERE board_id = %s AND period_end = %s AND worker = %s",
                (
                    str(exc)[:2000],
                    MAX_ATTEMPTS,
                    MAX_ATTEMPTS,
                    lease_s,
                    claim["board_id"],
                    claim["period_end"],
                    worker,
                ),
            )
            await conn.commit()
        return 0
    async with pool.connection() as conn:
        await conn.execute(
            "UPDATE billing_cycle_runs SET status = 'done', finished_at = now(), run_id = %s,"
            " auto_issue = %s, issued = issued + %s, not_issued = %s, last_error = NULL"
            " WHERE board_id = %s AND period_end = %s AND worker = %s",
            (
                outcome["run_id"],
                outcome["auto_issue"],
                len(outcome["issued"]),
                json.dumps(outcome["refused"][:50]),
                claim["board_id"],
                claim["period_end"],
                worker,
            ),
        )
        await audit.record(
            conn,
            actor=actor(SCHEDULER),
            action="billing_cycle_run",
            entity="board",
            entity_id=claim["board_id"],
            after={
                "period_start": claim["period_start"],
                "period_end": claim["period_end"],
                "run_id": outcome["run_id"],
                "issued": len(outcome["issued"]),
                "not_issued": len(outcome["refused"]),
            },
        )
        await conn.commit()
    bound.info("billing cycle run done", run_id=outcome["run_id"], issued=len(outcome["issued"]))
    return 1


async def _bill_and_issue(
    pool: AsyncConnectionPool, claim: dict[str, Any], base_url: str
) -> dict[str, Any]:
    async with pool.connection() as conn, billing_runs.spare_connection(pool) as reader:
        summary = await billing_runs.run(
            conn,
            SCHEDULER,
            board_id=claim["board_id"],
            period_start=claim["period_start"],
            period_end=claim["period_end"],
            cycle_months=Decimal(claim["cycle_months"]),
            scheduled=True,
            reader=reader,
        )
        cursor = await conn.execute(
            "SELECT auto_issue FROM billing_cycles WHERE board_id = %s", (claim["board_id"],)
        )
        setting = await cursor.fetchone()
        auto_issue = bool(setting and setting["auto_issue"])
        issued: dict[str, list] = {"issued": [], "refused": []}
        if auto_issue:
            cursor = await conn.execute(
                "SELECT id FROM invoices WHERE board_id = %s AND period_start = %s"
                " AND period_end = %s AND status = 'draft' ORDER BY id",
                (claim["board_id"], claim["period_start"], claim["period_end"]),
            )
            drafts = [row["id"] for row in await cursor.fetchall()]
            await conn.commit()
            issued = await invoices.issue_many(conn, SCHEDULER, drafts, base_url=base_url)
        await conn.commit()
    return {"run_id": summary["run_id"], "auto_issue": auto_issue, **issued}

"""The service's periodic jobs: the console's aggregates, the cloud checks, the expiry of
gateway commands nobody collected and of software updates a gateway went silent about, and the
pruning of ended rate-limit windows every `jobs_interval_s`; retention every
`retention_interval_s` (an hour). One loop per process, waking just after each interval starts;
each job claims its interval (`services/job_runs.py`) before it runs, so however many processes
serve, each job runs once per interval, in whichever process claimed it. A failing job is
recorded and logged; the next interval runs it again.

The boards' billing cycles are looked at on the same beat, in a task of their own (a run of a
large board takes minutes and must not hold the checks back; a new pass starts only once the
last one ended). Every process does this: the claim on each board and period
(`services/billing_cycles.py`) makes exactly one of them run it. The boards' report schedules
(`services/scheduled_reports.py`) are looked at the same way, in a task of their own, and
claimed per schedule and period under the same lease."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from .reports.storage import ReportStorage
from .services import (
    aggregates,
    billing_cycles,
    gateway_control,
    job_runs,
    notifications,
    rate_limits,
    retention,
    scheduled_reports,
    software,
)
from .services.cloud_checks import CheckSettings, run_checks
from .settings import CloudSettings

log = structlog.get_logger(__name__)


def check_settings(settings: CloudSettings) -> CheckSettings:
    return CheckSettings(
        gateway_silent_s=settings.gateway_silent_s, meter_missing_s=settings.meter_missing_s
    )


async def run_billing_cycles(pool: AsyncConnectionPool, settings: CloudSettings) -> None:
    """One pass over the boards' billing cycles; a failure is logged, the next pass tries again."""
    try:
        completed = await billing_cycles.run_due(
            pool, lease_s=settings.billing_lease_s, base_url=notifications.base_url(settings)
        )
        if completed:
            log.info("billing cycles run", completed=completed)
    except Exception as exc:  # keep the loop alive; the next pass may succeed
        log.error("billing cycles failed", error=str(exc))


async def run_report_schedules(
    pool: AsyncConnectionPool, settings: CloudSettings, storage: ReportStorage
) -> None:
    """One pass over the report schedules; a failure is logged, the next pass tries again."""
    try:
        delivered = await scheduled_reports.run_due(
            pool,
            storage,
            lease_s=settings.billing_lease_s,
            base_url=notifications.base_url(settings),
        )
        if delivered:
            log.info("scheduled reports delivered", reports=delivered)
    except Exception as exc:  # keep the loop alive; the next pass may succeed
        log.error("scheduled reports failed", error=str(exc))


JOB_HISTORY_INTERVAL_S = 3600


@dataclass(frozen=True)
class PeriodicJob:
    """A job run once per `every_s` seconds across every process: `work` gets a connection (its
    transaction committed when it returns) and the moment of the pass, and returns what it did
    (logged when not empty)."""

    name: str
    every_s: int
    work: Callable[[AsyncConnection, datetime], Awaitable[Any]]


def periodic_jobs(settings: CloudSettings, storage: ReportStorage) -> list[PeriodicJob]:
    """The jobs the loop runs, in the order a pass runs them."""
    every = settings.jobs_interval_s

    async def refresh_aggregates(conn: AsyncConnection, _now: datetime) -> None:
        await aggregates.refresh(conn)

    async def check(conn: AsyncConnection, now: datetime) -> dict[str, int]:
        found = await run_checks(conn, now, check_settings(settings))
        return {kind: n for kind, n in found.items() if n}

    async def expire_commands(conn: AsyncConnection, now: datetime) -> int:
        expired = await gateway_control.expire(conn, now)
        await conn.execute(  # the gateways' health history: three months
            "DELETE FROM gateway_health WHERE at < now() - interval '90 days'"
        )
        return expired

    async def expire_software(conn: AsyncConnection, now: datetime) -> int:
        return await software.expire_silent(conn, now)

    async def prune_rate_limits(conn: AsyncConnection, _now: datetime) -> None:
        await rate_limits.prune(conn, settings.rate_limit_window_s)

    async def apply_retention(conn: AsyncConnection, now: datetime) -> None:
        await retention.run(conn, now, storage)

    async def prune_job_history(conn: AsyncConnection, _now: datetime) -> int:
        return await job_runs.prune(conn)

    jobs = [
        PeriodicJob("aggregates", every, refresh_aggregates),
        PeriodicJob("cloud_checks", every, check),
        PeriodicJob("gateway_commands_expiry", every, expire_commands),
        PeriodicJob("software_expiry", every, expire_software),
        PeriodicJob("rate_limit_pruning", every, prune_rate_limits),
        PeriodicJob("job_history_pruning", JOB_HISTORY_INTERVAL_S, prune_job_history),
    ]
    if settings.retention_interval_s:
        jobs.append(PeriodicJob("retention", settings.retention_interval_s, apply_retention))
    return jobs


def seconds_to_next_interval(now_s: float, every_s: float) -> float:
    """How long to sleep from the epoch second `now_s` to just after the next multiple of
    `every_s` starts (a twentieth of the interval after, a second at most, so a host whose
    clock runs a little behind the database's still lands inside the new interval)."""
    return every_s - now_s % every_s + min(1.0, every_s / 20)


async def run_jobs(
    pool: AsyncConnectionPool, settings: CloudSettings, storage: ReportStorage
) -> None:
    jobs = periodic_jobs(settings, storage)
    worker = billing_cycles.worker_name()
    cycles: asyncio.Task[None] | None = None
    schedules: asyncio.Task[None] | None = None
    try:
        while True:
            await asyncio.sleep(seconds_to_next_interval(time.time(), settings.jobs_interval_s))
            if cycles is None or cycles.done():
                cycles = asyncio.create_task(run_billing_cycles(pool, settings))
            if schedules is None or schedules.done():
                schedules = asyncio.create_task(run_report_schedules(pool, settings, storage))
            await run_pass(pool, jobs, worker=worker)
    finally:
        for task in (cycles, schedules):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task


async def run_pass(
    pool: AsyncConnectionPool,
    jobs: list[PeriodicJob],
    *,
    worker: str,
    at: datetime | None = None,
) -> list[str]:
    """Each job whose interval holding `at` (the database's now when None) no process has
    claimed yet: claimed, run and its outcome recorded. The names of the jobs this pass ran. A
    failing job is logged and recorded; the others still run."""
    ran = []
    for job in jobs:
        try:
            async with pool.connection() as conn:
                interval = await job_runs.claim(
                    conn, job.name, every_s=job.every_s, worker=worker, at=at
                )
        except Exception as exc:  # the database is away: the next pass tries again
            log.error("claiming a job failed", job=job.name, error=str(exc))
            continue
        if interval is None:
            continue  # another process has this interval's run
        ran.append(job.name)
        error = None
        try:
            async with pool.connection() as conn:
                done = await job.work(conn, at or datetime.now(UTC))
            if done:
                log.info("job done", job=job.name, result=done)
        except Exception as exc:  # keep the loop alive; the next interval may succeed
            error = str(exc) or type(exc).__name__
            log.error("job failed", job=job.name, error=error)
        try:
            async with pool.connection() as conn:
                await job_runs.finish(conn, job.name, interval, error=error)
        except Exception as exc:
            log.error("recording a job's outcome failed", job=job.name, error=str(exc))
    return ran

"""The service's periodic jobs: the console's aggregates, the cloud checks, the expiry of
gateway commands nobody collected and of software updates a gateway went silent about, and the
pruning of ended rate-limit windows every `jobs_interval_s`; retention every
`retention_interval_s` (an hour). One loop per process; a failing pass is logged and the next
one runs on time.

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
from datetime import UTC, datetime

import structlog
from psycopg_pool import AsyncConnectionPool

from .reports.storage import ReportStorage
from .services import (
    aggregates,
    billing_cycles,
    gateway_control,
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


async def run_jobs(
    pool: AsyncConnectionPool, settings: CloudSettings, storage: ReportStorage
) -> None:
    last_retention = 0.0
    cycles: asyncio.Task[None] | None = None
    schedules: asyncio.Task[None] | None = None
    try:
        while True:
            await asyncio.sleep(settings.jobs_interval_s)
            if cycles is None or cycles.done():
                cycles = asyncio.create_task(run_billing_cycles(pool, settings))
            if schedules is None or schedules.done():
                schedules = asyncio.create_task(run_report_schedules(pool, settings, storage))
            last_retention = await _run_pass(pool, settings, storage, last_retention)
    finally:
        for task in (cycles, schedules):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task


async def _run_pass(
    pool: AsyncConnectionPool,
    settings: CloudSettings,
    storage: ReportStorage,
    last_retention: float,
) -> float:
    """The quick jobs once; retention when its interval is up. When retention last ran."""
    try:
        async with pool.connection() as conn:
            await aggregates.refresh(conn)
    except Exception as exc:  # keep the loop alive; the next pass may succeed
        log.error("aggregates failed", error=str(exc))
    try:
        async with pool.connection() as conn:
            found = await run_checks(conn, datetime.now(UTC), check_settings(settings))
        if any(found.values()):
            log.info("cloud checks", **found)
    except Exception as exc:  # keep the loop alive; the next pass may succeed
        log.error("cloud checks failed", error=str(exc))
    try:
        async with pool.connection() as conn:
            expired = await gateway_control.expire(conn, datetime.now(UTC))
            await conn.execute(  # the gateways' health history: three months
                "DELETE FROM gateway_health WHERE at < now() - interval '90 days'"
            )
        if expired:
            log.info("gateway commands expired", commands=expired)
    except Exception as exc:  # keep the loop alive; the next pass may succeed
        log.error("expiring gateway commands failed", error=str(exc))
    try:
        async with pool.connection() as conn:
            silent = await software.expire_silent(conn, datetime.now(UTC))
        if silent:
            log.info("software updates failed for silence", updates=silent)
    except Exception as exc:  # keep the loop alive; the next pass may succeed
        log.error("expiring software updates failed", error=str(exc))
    try:
        async with pool.connection() as conn:
            await rate_limits.prune(conn, settings.rate_limit_window_s)
    except Exception as exc:  # keep the loop alive; the next pass may succeed
        log.error("rate limit pruning failed", error=str(exc))
    due = time.monotonic() - last_retention >= settings.retention_interval_s
    if settings.retention_interval_s and due:
        last_retention = time.monotonic()
        try:
            async with pool.connection() as conn:
                await retention.run(conn, datetime.now(UTC), storage)
        except Exception as exc:
            log.error("retention failed", error=str(exc))
    return last_retention

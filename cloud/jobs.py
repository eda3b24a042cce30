"""The service's periodic jobs: the console's aggregates, the cloud checks, the expiry of
gateway commands nobody collected and of software updates a gateway went silent about, and the
pruning of ended rate-limit windows every `jobs_interval_s`; retention every
`retention_interval_s` (an hour). One loop per process; a failing pass is logged and the next
one runs on time."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import structlog
from psycopg_pool import AsyncConnectionPool

from .reports.storage import ReportStorage
from .services import aggregates, gateway_control, rate_limits, retention, software
from .services.cloud_checks import CheckSettings, run_checks
from .settings import CloudSettings

log = structlog.get_logger(__name__)


def check_settings(settings: CloudSettings) -> CheckSettings:
    return CheckSettings(
        gateway_silent_s=settings.gateway_silent_s, meter_missing_s=settings.meter_missing_s
    )


async def run_jobs(
    pool: AsyncConnectionPool, settings: CloudSettings, storage: ReportStorage
) -> None:
    last_retention = 0.0
    while True:
        await asyncio.sleep(settings.jobs_interval_s)
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

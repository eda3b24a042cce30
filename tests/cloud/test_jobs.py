"""The periodic jobs loop inside a served app: it runs the cloud checks on its own."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from cloud.app import create_app
from cloud.settings import CloudSettings
from tests.cloud.conftest import Cloud, EnrolledGateway


async def test_the_jobs_loop_runs_the_checks(
    cloud: Cloud, gateway: EnrolledGateway, database_url: str, tmp_path: Path
) -> None:
    async with cloud.pool.connection() as conn:
        await conn.execute(
            "UPDATE gateways SET last_seen_at = now() - interval '2 hours' WHERE gateway_code = %s",
            (gateway.code,),
        )
        await conn.commit()
    settings = CloudSettings(
        database_url=database_url,
        data_dir=tmp_path / "jobs",
        jobs_interval_s=1,
        retention_interval_s=0,  # retention has its own test; here only the checks
        pool_min_size=1,
        pool_max_size=2,
    )
    app = create_app(settings, database_url)
    # A pass checks every gateway in the session's database (hundreds, enrolled by earlier
    # tests, many silent by now and opening alerts of their own): on a loaded machine the first
    # pass takes many seconds. The deadline is about speed; a loop that never raises the alert
    # still fails.
    deadline = time.monotonic() + 90
    async with app.router.lifespan_context(app):
        while time.monotonic() < deadline:
            async with cloud.pool.connection() as conn:
                cursor = await conn.execute(
                    "SELECT state FROM alerts a JOIN gateways g ON g.id = a.gateway_id"
                    " WHERE g.gateway_code = %s AND a.kind = 'gateway_silent'",
                    (gateway.code,),
                )
                if await cursor.fetchone():
                    break
            await asyncio.sleep(0.2)
        else:
            raise AssertionError("the jobs loop raised no gateway_silent alert")

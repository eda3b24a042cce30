"""The periodic jobs run once per interval however many server processes run them: two pools
stand for two processes, and their passes are driven directly, side by side (no sleeps)."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from psycopg import AsyncConnection

from cloud.db import open_pool
from cloud.jobs import PeriodicJob, periodic_jobs, run_pass, seconds_to_next_interval
from cloud.migrate import migrate
from cloud.reports.storage import storage_for
from cloud.settings import CloudSettings


def settings_for(database_url: str, data_dir: Path, **changes: object) -> CloudSettings:
    return CloudSettings(
        database_url=database_url,
        data_dir=data_dir,
        pool_min_size=1,
        pool_max_size=2,
        **changes,
    )


async def test_two_processes_run_each_job_once_per_interval(
    database_url: str, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:8]
    calls: dict[str, list[datetime]] = {"counted": [], "failing": []}

    async def counted(conn: AsyncConnection, now: datetime) -> None:
        await conn.execute("SELECT 1")
        await asyncio.sleep(0)  # let the other process's pass try its claim meanwhile
        calls["counted"].append(now)

    async def failing(_conn: AsyncConnection, now: datetime) -> None:
        calls["failing"].append(now)
        raise RuntimeError("the disk is full")

    jobs = [
        PeriodicJob(f"counted-{tag}", 60, counted),
        PeriodicJob(f"failing-{tag}", 60, failing),
        PeriodicJob(f"hourly-{tag}", 3600, counted),
    ]
    settings = settings_for(database_url, tmp_path)
    # minutes 0..4 after 10:00, hit by each process at two moments within each minute
    base = datetime(2031, 5, 6, 10, 0, tzinfo=UTC)
    moments = [base + timedelta(minutes=m, seconds=s) for m in range(5) for s in (1, 59)]
    async with open_pool(database_url, settings) as one, open_pool(database_url, settings) as two:
        async with one.connection() as conn:
            await migrate(conn)
        for at in moments:
            await asyncio.gather(
                run_pass(one, jobs, worker="host-a:1", at=at),
                run_pass(two, jobs, worker="host-b:2", at=at),
            )
        async with one.connection() as conn:
            cursor = await conn.execute(
                "SELECT job, interval_start, worker, outcome, error,"
                " finished_at IS NOT NULL AS done"
                " FROM job_runs WHERE job LIKE %s ORDER BY job, interval_start",
                (f"%-{tag}",),
            )
            rows = await cursor.fetchall()

    minutes = [base + timedelta(minutes=m) for m in range(5)]
    # the counted job ran five times for the minutes, once for the hour: six calls in all
    assert sorted(calls["counted"]) == sorted(
        [base + timedelta(minutes=m, seconds=1) for m in range(5)] + [base + timedelta(seconds=1)]
    )
    assert sorted(calls["failing"]) == [m + timedelta(seconds=1) for m in minutes]
    by_job: dict[str, list[dict]] = {}
    for row in rows:
        by_job.setdefault(row["job"], []).append(row)
    assert [r["interval_start"] for r in by_job[f"counted-{tag}"]] == minutes
    assert [r["interval_start"] for r in by_job[f"hourly-{tag}"]] == [base]
    assert [r["interval_start"] for r in by_job[f"failing-{tag}"]] == minutes
    assert {r["outcome"] for r in by_job[f"counted-{tag}"]} == {"ok"}
    assert {(r["outcome"], r["error"]) for r in by_job[f"failing-{tag}"]} == {
        ("failed", "the disk is full")
    }
    assert all(r["done"] for r in rows)
    assert {r["worker"] for r in rows} <= {"host-a:1", "host-b:2"}


async def test_the_service_jobs_run_once_between_two_processes(
    database_url: str, tmp_path: Path
) -> None:
    settings = settings_for(database_url, tmp_path, retention_interval_s=3600)
    # the service's jobs under names of this test's own: other tests' loops claim the real ones
    tag = uuid.uuid4().hex[:8]
    jobs = [
        replace(job, name=f"{job.name}-{tag}")
        for job in periodic_jobs(settings, storage_for(tmp_path, None, None))
    ]
    every = {job.name: job.every_s for job in jobs}
    assert sorted(every) == sorted(
        f"{name}-{tag}"
        for name in (
            "aggregates",
            "cloud_checks",
            "gateway_commands_expiry",
            "software_expiry",
            "rate_limit_pruning",
            "job_history_pruning",
            "retention",
        )
    )
    async with open_pool(database_url, settings) as one, open_pool(database_url, settings) as two:
        async with one.connection() as conn:
            await migrate(conn)
        at = datetime.now(UTC)  # every pass at one moment: a slow one cannot cross into a new hour
        passes = await asyncio.gather(
            run_pass(one, jobs, worker="host-a:1", at=at),
            run_pass(two, jobs, worker="host-b:2", at=at),
            run_pass(one, jobs, worker="host-a:1", at=at),
        )
        async with one.connection() as conn:
            cursor = await conn.execute(
                "SELECT job, interval_start, outcome FROM job_runs WHERE job LIKE %s",
                (f"%-{tag}",),
            )
            rows = await cursor.fetchall()
    assert sorted(name for ran in passes for name in ran) == sorted(every)
    epoch = at.timestamp()
    assert {r["job"]: r["interval_start"].timestamp() for r in rows} == {
        name: epoch - epoch % seconds for name, seconds in every.items()
    }
    assert {r["outcome"] for r in rows} == {"ok"}


@pytest.mark.parametrize(
    ("now_s", "every_s", "expected"),
    [
        (120.5, 60, 60.5),  # 59.5 s to the next minute, then a second in
        (179.0, 60, 2.0),
        (10.25, 1, 0.8),  # a twentieth of a one-second interval in
        (0.0, 3600, 3601.0),
    ],
)
def test_the_loop_wakes_just_inside_the_next_interval(
    now_s: float, every_s: int, expected: float
) -> None:
    assert seconds_to_next_interval(now_s, every_s) == pytest.approx(expected)

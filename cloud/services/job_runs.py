"""The periodic jobs' claims (`job_runs`): each job runs once per interval, whichever server
process claims that interval first. The claim commits before the job starts, so every other
process sees it at once; a process that dies mid-job leaves its claim unfinished and the job
runs again in the next interval, never twice in one.

Intervals are counted on the database's clock (one clock for every process, whatever host it
runs on): a job of every 60 s claims the minute `now()` falls in.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg import AsyncConnection

HISTORY_DAYS = 7  # finished claims are kept this long (when each job last ran, and how)


async def claim(
    conn: AsyncConnection, job: str, *, every_s: int, worker: str, at: datetime | None = None
) -> datetime | None:
    """Claim `job`'s interval of `every_s` seconds holding `at` (the database's now when None)
    for `worker`, and commit; the interval's start, or None when another process claimed it."""
    cursor = await conn.execute(
        "INSERT INTO job_runs (job, interval_start, worker)"
        " SELECT %(job)s,"
        "  to_timestamp(floor(extract(epoch FROM coalesce(%(at)s, now())) / %(every)s)"
        "   * %(every)s),"
        "  %(worker)s"
        " ON CONFLICT DO NOTHING RETURNING interval_start",
        {"job": job, "at": at, "every": every_s, "worker": worker},
    )
    row = await cursor.fetchone()
    await conn.commit()
    return None if row is None else row["interval_start"]


async def finish(
    conn: AsyncConnection, job: str, interval_start: datetime, *, error: str | None = None
) -> None:
    """Record how the claimed run ended (`error` None: it succeeded), and commit."""
    await conn.execute(
        "UPDATE job_runs SET finished_at = clock_timestamp(), outcome = %s, error = %s"
        " WHERE job = %s AND interval_start = %s",
        ("ok" if error is None else "failed", error and error[:2000], job, interval_start),
    )
    await conn.commit()


async def prune(conn: AsyncConnection) -> int:
    """Forget claims older than HISTORY_DAYS; how many were dropped."""
    cursor = await conn.execute(
        "DELETE FROM job_runs WHERE started_at < now() - make_interval(days => %s)",
        (HISTORY_DAYS,),
    )
    return cursor.rowcount


async def latest(conn: AsyncConnection) -> list[dict[str, Any]]:
    """Each job's newest run: when, by which process, and how it went."""
    cursor = await conn.execute(
        "SELECT DISTINCT ON (job) job, interval_start, worker, started_at, finished_at, outcome,"
        " error FROM job_runs ORDER BY job, interval_start DESC"
    )
    return await cursor.fetchall()

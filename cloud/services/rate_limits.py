"""Request rate limits, counted in PostgreSQL so that they hold across every server process.

Each request counts once against each of its subjects — `user:<id>` (a session or any of the
user's keys), `key:<id>` (one API key) or, for a request without valid credentials,
`address:<ip>` — in one statement: an upsert of the subjects' rows in `rate_counters` that
returns the new counts. A subject's window opens at its first request and lasts
`rate_limit_window_s`; the request that brings a count over its limit is refused (429) with the
seconds until the window ends. Refused requests count too (a client that keeps knocking stays
refused until the window ends; it cannot open a new one early). The upsert takes each row's
lock, so concurrent requests on any number of processes are counted exactly: the limit is met
at the configured number, not a few requests later. Rows of ended windows are pruned by the
periodic jobs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from ..settings import CloudSettings

_MAX_COUNT = 2_000_000_000  # the column is an integer; a flood stops counting here


@dataclass(frozen=True)
class RateLimits:
    window_s: int
    per_user: int
    per_key: int
    per_address: int

    @classmethod
    def from_settings(cls, settings: CloudSettings) -> RateLimits:
        return cls(
            window_s=settings.rate_limit_window_s,
            per_user=settings.rate_limit_per_user,
            per_key=settings.rate_limit_per_key,
            per_address=settings.rate_limit_per_address,
        )

    def limit_of(self, subject: str) -> int:
        kind = subject.partition(":")[0]
        return {"user": self.per_user, "key": self.per_key, "address": self.per_address}[kind]


@dataclass(frozen=True)
class Refusal:
    subject: str
    limit: int
    retry_after_s: int


async def count(
    pool: AsyncConnectionPool, subjects: list[str], limits: RateLimits
) -> Refusal | None:
    """Count one request against each subject (one statement, committed); the first limit it
    goes over, or None."""
    limited = sorted({s for s in subjects if limits.limit_of(s) > 0})  # one lock order
    if not limited:
        return None
    async with pool.connection() as conn:
        cursor = await conn.execute(
            """
            INSERT INTO rate_counters AS c (subject, window_start, count)
            SELECT s, now(), 1 FROM unnest(%(subjects)s::text[]) WITH ORDINALITY AS u(s, n)
            ORDER BY n
            ON CONFLICT (subject) DO UPDATE SET
                window_start = CASE WHEN c.window_start <= now() - %(window)s
                                    THEN now() ELSE c.window_start END,
                count = CASE WHEN c.window_start <= now() - %(window)s
                             THEN 1 ELSE least(c.count + 1, %(max)s) END
            RETURNING subject, count,
                -- a window another process opened in a transaction that began after this one
                -- ends a little more than a window after this one's now(): never say more
                least(%(window_s)s, greatest(1, ceil(extract(epoch FROM
                    window_start + %(window)s - now())))::int) AS retry_after_s
            """,
            {
                "subjects": limited,
                "window": _interval(limits.window_s),
                "window_s": limits.window_s,
                "max": _MAX_COUNT,
            },
        )
        rows = await cursor.fetchall()
    for row in sorted(rows, key=lambda r: r["subject"]):
        limit = limits.limit_of(row["subject"])
        if row["count"] > limit:
            return Refusal(row["subject"], limit, row["retry_after_s"])
    return None


def _interval(seconds: int) -> timedelta:
    return timedelta(seconds=seconds)


async def prune(conn: AsyncConnection, window_s: int) -> int:
    """Forget the counters whose window has ended; how many."""
    async with conn.transaction():
        cursor = await conn.execute(
            "DELETE FROM rate_counters WHERE window_start <= now() - make_interval(secs => %s)",
            (window_s,),
        )
        return cursor.rowcount

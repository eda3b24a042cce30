"""Whether the database answers."""

from __future__ import annotations

from psycopg_pool import AsyncConnectionPool


async def database_problem(pool: AsyncConnectionPool, timeout_s: float = 5) -> str | None:
    """None when the database answers a query within `timeout_s`; else what went wrong."""
    try:
        async with pool.connection(timeout=timeout_s) as conn:
            await conn.execute("SELECT 1")
    except Exception as exc:  # any failure to reach the database is the answer, said plainly
        return str(exc)[:200]
    return None

"""Versioned SQL migrations: `cloud/migrations/NNNN_name.sql`, each applied once, in order.

Applied versions are recorded in `schema_migrations`. An advisory lock makes concurrent start-ups
(several API processes) apply each migration exactly once; each file runs in its own transaction,
so a failing migration leaves the schema as it was.
"""

from __future__ import annotations

import re
from importlib import resources

import structlog
from psycopg import AsyncConnection

log = structlog.get_logger(__name__)
LOCK_KEY = 0x6772_6467  # "grdg"
_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


def available_migrations() -> list[tuple[int, str, str]]:
    """(version, name, sql) of every shipped migration, in order."""
    found = []
    for entry in resources.files("cloud").joinpath("migrations").iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry.name, entry.read_text()))
    found.sort()
    versions = [version for version, _, _ in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"two migrations share a version: {versions}")
    return found


async def migrate(conn: AsyncConnection) -> list[str]:
    """Apply what is missing; return the names applied now."""
    applied_now = []
    was_autocommit = conn.autocommit
    await conn.set_autocommit(True)
    await conn.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        cursor = await conn.execute("SELECT version FROM schema_migrations")
        done = {
            row[0] if isinstance(row, tuple) else row["version"] for row in await cursor.fetchall()
        }
        for version, name, sql in available_migrations():
            if version in done:
                continue
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (version, name)
                )
            log.info("migration applied", migration=name)
            applied_now.append(name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
        await conn.set_autocommit(was_autocommit)  # hand the connection back as it came
    return applied_now

"""The database: the configured PostgreSQL, or an embedded one; the connection pool.

Every query runs through the pool; SQL lives beside the service that owns its tables.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import structlog
from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from .settings import CloudSettings

log = structlog.get_logger(__name__)


@contextlib.contextmanager
def database_url(settings: CloudSettings) -> Iterator[str]:
    """The configured URL, or that of an embedded PostgreSQL kept in the data directory."""
    if settings.database_url:
        yield settings.database_url
        return
    folder = Path(settings.data_dir) / "postgres"
    folder.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # pgserver asks platformdirs for a runtime dir (on import too); on servers without
        # XDG_RUNTIME_DIR it warns and falls back to /tmp, which is fine for a socket folder
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")
        import pgserver

        server = pgserver.get_server(str(folder), cleanup_mode="stop")
    log.info("embedded postgresql started", data_dir=str(folder))
    try:
        yield server.get_uri()
    finally:
        server.cleanup()


async def _transactional(conn: AsyncConnection) -> None:
    """Every connection goes back to the pool in one mode: statements open a transaction that
    the `pool.connection()` block commits (or rolls back on an error), and `conn.transaction()`
    inside is a savepoint unless it is the first statement. Work that must commit whatever the
    request's outcome checks that no transaction is open first (`login_limits`)."""
    if conn.autocommit:
        await conn.set_autocommit(False)


def application_name(role: str = "gridgate-cloud") -> str:
    """How this process's connections name themselves to the server (`pg_stat_activity`): the
    role and the process id, so an operator sees which server process holds which connection."""
    return f"{role} {os.getpid()}"


@contextlib.asynccontextmanager
async def open_pool(
    url: str, settings: CloudSettings, *, role: str = "gridgate-cloud"
) -> AsyncIterator[AsyncConnectionPool]:
    pool = AsyncConnectionPool(
        url,
        min_size=settings.pool_min_size,
        max_size=settings.pool_max_size,
        open=False,
        kwargs={"row_factory": dict_row, "application_name": application_name(role)},
        reset=_transactional,
        name=role,
    )
    await pool.open(wait=True, timeout=30)
    try:
        yield pool
    finally:
        await pool.close()

"""Migrations from an empty database, applied once, recorded."""

from __future__ import annotations

import psycopg
from psycopg.rows import dict_row

from cloud.migrate import available_migrations, migrate
from tests.support.services import isolated_database


async def test_migrations_from_empty_apply_once(postgres_server: str) -> None:
    with isolated_database(postgres_server) as url:
        async with await psycopg.AsyncConnection.connect(url, row_factory=dict_row) as conn:
            first = await migrate(conn)
            second = await migrate(conn)
            assert first == [name for _, name, _ in available_migrations()]
            assert second == []
            cursor = await conn.execute(
                "SELECT count(*) AS n FROM information_schema.tables WHERE table_name = ANY(%s)",
                (
                    [
                        "states",
                        "boards",
                        "consumers",
                        "meters",
                        "gateways",
                        "readings",
                        "events",
                        "audit_log",
                        "enrollment_tokens",
                        "ingest_batches",
                    ],
                ),
            )
            assert (await cursor.fetchone())["n"] == 10
            cursor = await conn.execute("SELECT ensure_readings_partition('2026-02-14')")
            cursor = await conn.execute(
                "SELECT pg_get_expr(relpartbound, oid) AS bound FROM pg_class"
                " WHERE relname = 'readings_2026_02'"
            )
            bound = (await cursor.fetchone())["bound"]
            assert "2026-02-01 00:00:00+00" in bound
            assert "2026-03-01 00:00:00+00" in bound

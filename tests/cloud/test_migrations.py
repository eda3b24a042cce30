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
            cursor = await conn.execute(
                "SELECT reloptions FROM pg_class WHERE relname = 'readings_2026_02'"
            )
            options = (await cursor.fetchone())["reloptions"]
            assert "autovacuum_vacuum_insert_scale_factor=0.01" in options


async def test_a_meters_reads_are_scanned_from_the_index_alone(postgres_server: str) -> None:
    """Billing's scan of a meter's month never visits the table once the partition is
    vacuumed: value and quality ride in the primary key's index."""
    with isolated_database(postgres_server) as url:
        async with await psycopg.AsyncConnection.connect(url, row_factory=dict_row) as conn:
            await migrate(conn)
            await conn.set_autocommit(True)  # VACUUM runs outside a transaction
            await conn.execute("SELECT ensure_readings_partition('2026-10-01')")
            await conn.execute(
                "INSERT INTO readings (meter_id, quantity, ts, value, quality, gateway_id)"
                " SELECT m, '1.8.0', t, 1, 'ok', 1 FROM generate_series(1, 50) m,"
                " generate_series('2026-10-01'::timestamptz, '2026-10-31', '1 hour') t"
            )
            await conn.execute("VACUUM ANALYZE readings")
            await conn.execute("SET enable_seqscan = off")
            await conn.execute("SET enable_bitmapscan = off")
            cursor = await conn.execute(
                "EXPLAIN (ANALYZE, FORMAT JSON) SELECT ts, value FROM readings"
                " WHERE meter_id = 7 AND quantity = '1.8.0' AND quality = ANY('{ok,estimated}')"
                " AND ts >= '2026-10-02' AND ts <= '2026-10-20' ORDER BY ts"
            )
            plan = (await cursor.fetchone())["QUERY PLAN"][0]["Plan"]
            while "Plans" in plan and plan["Node Type"] != "Index Only Scan":
                [plan] = plan["Plans"]
            assert plan["Node Type"] == "Index Only Scan", plan
            assert plan["Heap Fetches"] == 0
            assert plan["Actual Rows"] == 18 * 24 + 1

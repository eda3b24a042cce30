"""A board's cycle runs by itself at its cycle day with two service processes, and the one
running it is killed mid-run: the other takes the claim over once its lease runs out and
finishes the run, so every consumer is billed (and issued) exactly once.

The run is held in the middle by a lock, not caught there by luck: the test locks the first
consumer of the second chunk (`FOR UPDATE`), so inserting that consumer's invoice (whose foreign
key takes a share lock on it) waits, with the first chunk committed and the second not — however
quickly a run bills."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import psycopg
import pytest
from psycopg.rows import dict_row

from cloud.migrate import migrate
from cloud.services import billing_runs, fleet
from tests.cloud.billing.test_cycles import last_closed, populate
from tests.cloud.test_crash import start
from tests.support.services import free_tcp_port, isolated_database

CHUNK = billing_runs.CHUNK
CONSUMERS = 3 * CHUNK  # three chunks: the kill lands after the first is committed
LEASE_S = 3
# an upper bound on each wait, met in seconds on a quiet machine; a machine loaded to several
# times its cores bills a chunk of consumers minutes later, and a real stall still fails the test
WAIT_S = 600
FLAT = {"energy": {"mode": "flat", "rate": "5.00"}}


async def prepare(url: str) -> tuple[int, list[int]]:
    """A board whose monthly cycle (day 1) closed its last period today or before, set before
    that period began (the clock set by data), with auto issue, a flat tariff and a read at each
    end of the period for every consumer."""
    period = last_closed("Asia/Kolkata")
    async with await psycopg.AsyncConnection.connect(url, row_factory=dict_row) as conn:
        await migrate(conn)
        await conn.set_autocommit(False)
        await fleet.create_state(conn, code="CY", name="Cycles", actor="test")
        board = await fleet.create_board(
            conn, state_code="CY", code="CYCLE", name="Cycle", actor="test"
        )
        cursor = await conn.execute(
            "INSERT INTO tariffs (board_id, category, name) VALUES (%s, 'domestic', 'D')"
            " RETURNING id",
            (board["id"],),
        )
        tariff = (await cursor.fetchone())["id"]
        await conn.execute(
            "INSERT INTO tariff_versions (tariff_id, effective_from, spec)"
            " VALUES (%s, '2020-01-01', %s)",
            (tariff, json.dumps(FLAT)),
        )
        consumers = await populate(conn, board["id"], period, CONSUMERS)
        await conn.execute(
            "INSERT INTO billing_cycles (board_id, cycle_day, cycle, auto_issue, effective_from)"
            " VALUES (%s, 1, 'monthly', true, %s)",
            (board["id"], period.start),
        )
        await conn.commit()
    return board["id"], consumers


def wait_for(url: str, query: str, args: tuple, *, timeout_s: float, what: str) -> dict:
    """Poll `query` until it returns a row (the condition the test waits on), or fail."""
    deadline = time.monotonic() + timeout_s
    with psycopg.connect(url, row_factory=dict_row, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(query, args).fetchone()
            if row is not None:
                return row
            time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.slow
def test_a_cycle_killed_mid_run_bills_every_consumer_once(
    postgres_server: str, tmp_path: Path
) -> None:
    with isolated_database(postgres_server) as url:
        board, consumers = asyncio.run(prepare(url))
        period = last_closed("Asia/Kolkata")
        settings = {
            "jobs_interval_s": "1",
            "billing_lease_s": str(LEASE_S),
            "retention_interval_s": "0",
        }
        processes = {}
        # the second chunk's first consumer, locked until the run's process is killed
        holder = psycopg.connect(url)
        holder.execute(
            "SELECT id FROM consumers WHERE id = %s FOR UPDATE", (sorted(consumers)[CHUNK],)
        )
        for name in ("a", "b"):
            process = start(url, free_tcp_port(), tmp_path / f"{name}.log", **settings)
            processes[process.pid] = process
        try:
            # the first chunk of the scheduled run is committed, the run is not finished
            running = wait_for(
                url,
                "SELECT c.worker, r.id, r.measured FROM billing_cycle_runs c JOIN billing_runs r"
                " ON r.board_id = c.board_id AND r.period_end = c.period_end AND r.scheduled"
                " WHERE c.board_id = %s AND r.status = 'running' AND r.measured >= %s",
                (board, billing_runs.CHUNK),
                timeout_s=WAIT_S,
                what="the scheduled run's first chunk",
            )
            pid = int(running["worker"].rsplit(":", 1)[1])
            assert pid in processes, running["worker"]
            os.kill(pid, signal.SIGKILL)
            processes.pop(pid).wait()
            holder.rollback()  # the killed run's backend goes on, finds no client, rolls back
            [survivor] = processes.values()
            done = wait_for(
                url,
                "SELECT * FROM billing_cycle_runs WHERE board_id = %s AND status = 'done'",
                (board,),
                timeout_s=WAIT_S,
                what="the survivor to finish the run",
            )
            assert done["worker"].endswith(f":{survivor.pid}")
            assert done["attempts"] == 2
            assert done["issued"] == CONSUMERS  # the kill landed while billing, before issuing
        finally:
            holder.close()
            for process in processes.values():
                process.send_signal(signal.SIGTERM)
            for process in processes.values():
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
        with psycopg.connect(url, row_factory=dict_row) as conn:
            rows = conn.execute(
                "SELECT consumer_id, count(*) AS n, min(version) AS version,"
                " bool_and(status = 'issued') AS issued FROM invoices"
                " WHERE board_id = %s AND period_start = %s AND period_end = %s"
                " GROUP BY consumer_id",
                (board, period.start, period.end),
            ).fetchall()
            runs = conn.execute(
                "SELECT id, status, created, unchanged FROM billing_runs WHERE board_id = %s"
                " ORDER BY id",
                (board,),
            ).fetchall()
        assert sorted(r["consumer_id"] for r in rows) == sorted(consumers)
        assert all(r["n"] == 1 for r in rows), "a consumer was billed twice"
        assert all(r["version"] == 1 and r["issued"] for r in rows)
        # the killed run is marked failed; the one that finished found its bills unchanged
        assert [r["status"] for r in runs] == ["failed", "done"]
        assert runs[1]["created"] + runs[1]["unchanged"] == CONSUMERS
        assert runs[1]["unchanged"] >= billing_runs.CHUNK

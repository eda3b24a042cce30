"""Billing a board: 10,000 consumers, each with a month of 15-minute register reads.

Fills a fresh database (GRIDGATE_BENCH_DATABASE_URL's server, else an embedded PostgreSQL) with
the board, its consumers and meters, the Delhi domestic tariff, and ~30 million readings made
by the server itself in time order, as gateways deliver them (not timed), then times the billing
run that makes every invoice, and a second run (which must create nothing). Prints JSON lines:

    generate_s     the first run: every consumer's invoice             target < 60 s
    rerun_s        the same period again: nothing new is created
    invoices       invoices created (must equal consumers)

`--context-days D` also fills D days of reads before and after the month, as a board in steady
operation has: the run must not pay for reading them. `--time-of-day` prices the board under a
time-of-day tariff instead: the reads around each local hour's end leave the database (one an
hour), where every read did before. `--both` bills the same fill under the slab tariff and then,
its bills taken away, under the time-of-day one: the two side by side, each line saying which.
The run reads ahead on a second connection where the code billed has `run(reader=…)`; run with
PYTHONPATH at an older checkout, the bench measures that code on the same terms.

Measured on the shared 2-core machine, one fill of 10,000 consumers and 29.8M reads billed in
turn by the code before and after the hourly spread was thinned (seconds, generate / rerun; load
average about 3, other engineers' suites running):

    time of day   before 446.0 / -        after 85.5 / 66.2
    slab          before 40.4 / 28.5      after 31.9 / 30.7

The time-of-day run before rose to a load of about 6. Under heavier load (about 7) an hour
earlier: time of day 710.9 before, 142.8 after; slab 97.1 before, 146.3 after with the read-ahead
and 129.5 without it (tests ran beside the last) — the slab figures swing with the machine's
load more than with the code, whose slab path changed only in reading ahead.

Run: python bench/billing.py [--consumers 10000] [--context-days 0] [--time-of-day | --both]
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg
from psycopg.rows import dict_row

sys.path.insert(0, str(Path(__file__).parent))
from cloud_ingest import fresh_database

from cloud.access import Principal
from cloud.billing.examples import DELHI_DOMESTIC_2015
from cloud.billing.tariff import TariffSpec
from cloud.migrate import migrate
from cloud.services import billing_runs, fleet

DELHI = {
    **DELHI_DOMESTIC_2015,
    "taxes": [{"name": "Electricity duty", "percent": 5, "base": "energy"}],
}
EVENING_PEAK = ["off_peak"] * 6 + ["normal"] * 12 + ["peak"] * 4 + ["normal"] * 2
TIME_OF_DAY = {
    **DELHI,
    "energy": {
        "mode": "time_of_day",
        "rates": {"off_peak": "3.50", "normal": "5.00", "peak": "7.50"},
        "weekday": [EVENING_PEAK] * 12,
        "weekend": [["off_peak"] * 6 + ["normal"] * 18] * 12,
    },
}


# the run reads the next chunk on a second connection while it bills this one, where the code
# billed has that (the bench also measures the code before it, on the same fill)
READ_AHEAD = "reader" in inspect.signature(billing_runs.run).parameters


def emit(figure: str, value: float, unit: str, **extra: object) -> None:
    line = {"bench": "billing", "figure": figure, "value": round(value, 2), "unit": unit}
    print(json.dumps({**line, **extra}), flush=True)


async def fill(url: str, consumers: int, context_days: int, tariff: dict) -> int:
    async with await psycopg.AsyncConnection.connect(url, row_factory=dict_row) as conn:
        await migrate(conn)
        await conn.set_autocommit(False)
        await fleet.create_state(conn, code="BB", name="Bench", actor="bench")
        board = await fleet.create_board(
            conn, state_code="BB", code="BILL", name="Bench board", actor="bench"
        )
        board_id = board["id"]
        started = time.perf_counter()
        async with conn.transaction():
            await conn.execute(
                "INSERT INTO gateways (board_id, gateway_code, public_key)"
                " VALUES (%s, 'bench-gw', 'k')",
                (board_id,),
            )
            await conn.execute(
                "INSERT INTO consumers (board_id, account_no, name, sanctioned_load_kw)"
                " SELECT %s, 'AC' || n, 'Consumer ' || n, 1 + n %% 8"
                " FROM generate_series(1, %s) n",
                (board_id, consumers),
            )
            await conn.execute(
                "INSERT INTO meters (board_id, external_id, consumer_id, model)"
                " SELECT board_id, 'm-' || id, id, 'sdm120' FROM consumers WHERE board_id = %s",
                (board_id,),
            )
            cursor = await conn.execute(
                "INSERT INTO tariffs (board_id, category, name) VALUES (%s, 'domestic', 'D')"
                " RETURNING id",
                (board_id,),
            )
            tariff_id = (await cursor.fetchone())["id"]
            await conn.execute(
                "INSERT INTO tariff_versions (tariff_id, effective_from, spec)"
                " VALUES (%s, '2026-01-01', %s)",
                (tariff_id, TariffSpec.model_validate(tariff).model_dump_json()),
            )
            first = date(2026, 10, 1) - timedelta(days=context_days + 1)
            last = date(2026, 11, 1) + timedelta(days=context_days + 1)
            month = first.replace(day=1)
            while month <= last:
                await conn.execute("SELECT ensure_readings_partition(%s)", (month,))
                month = (month + timedelta(days=32)).replace(day=1)
        # a month of 15-minute reads per meter, and one either side (or `context_days` of them),
        # made by the server a day at a time in time order, as gateways deliver them: a meter's
        # reads lie scattered over the table, not side by side
        day = datetime(2026, 9, 30, 18, 15, tzinfo=UTC) - timedelta(days=context_days)
        last_read = datetime(2026, 10, 31, 18, 45, tzinfo=UTC) + timedelta(days=context_days)
        while day <= last_read:
            await conn.execute(
                """
                INSERT INTO readings (meter_id, quantity, ts, value, quality, gateway_id)
                SELECT m.id, '1.8.0', t,
                       3000 + (m.id %% 13) + extract(epoch FROM t - '2026-09-30 18:15+00') / 900.0
                           * (0.05 + (m.id %% 17) / 40.0),
                       'ok', g.id
                FROM generate_series(%s::timestamptz, %s, '15 minutes') t
                CROSS JOIN meters m CROSS JOIN gateways g
                WHERE m.board_id = %s
                ORDER BY t, m.id
                """,
                (day, min(last_read, day + timedelta(days=1, minutes=-15)), board_id),
            )
            day += timedelta(days=1)
        await conn.commit()
        # what autovacuum has done by the time a closed month is billed (each partition is
        # vacuumed after every 1 % of growth): statistics, and pages marked all-visible
        await conn.set_autocommit(True)
        await conn.execute("VACUUM (ANALYZE) readings")
        rows = (await (await conn.execute("SELECT count(*) AS n FROM readings")).fetchone())["n"]
        emit("fill_s", time.perf_counter() - started, "s", readings=rows, note="setup, not timed")
        return board_id


async def bill(url: str, board_id: int, consumers: int, tariff: str) -> None:
    principal = Principal(
        user_id=0, role="SUPER_ADMIN", state_id=None, board_id=None, consumer_id=None
    )
    async with (
        await psycopg.AsyncConnection.connect(url, row_factory=dict_row) as conn,
        await psycopg.AsyncConnection.connect(url, row_factory=dict_row) as reader,
    ):
        for figure in ("generate_s", "rerun_s"):
            started = time.perf_counter()
            summary = await billing_runs.run(
                conn,
                principal,
                board_id=board_id,
                period_start=date(2026, 10, 1),
                period_end=date(2026, 11, 1),
                **({"reader": reader} if READ_AHEAD else {}),
            )
            elapsed = time.perf_counter() - started
            emit(
                figure,
                elapsed,
                "s",
                target="< 60" if figure == "generate_s" else None,
                tariff=tariff,
                consumers=consumers,
                **{k: v for k, v in summary.items() if k not in ("errors", "consumers")},
            )
        count = await (await conn.execute("SELECT count(*) AS n FROM invoices")).fetchone()
        emit("invoices", count["n"], "invoices", tariff=tariff, consumers=consumers)


async def reprice(url: str, tariff: dict) -> None:
    """The board's tariff version made `tariff`, and its bills taken away: the same reads billed
    afresh under another tariff."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute("TRUNCATE invoices, invoice_lines, billing_runs CASCADE")
        await conn.execute(
            "UPDATE tariff_versions SET spec = %s",
            (TariffSpec.model_validate(tariff).model_dump_json(),),
        )


async def main(consumers: int, context_days: int, time_of_day: bool, both: bool) -> None:
    tariffs = [("slab", DELHI), ("time_of_day", TIME_OF_DAY)]
    if not both:
        tariffs = [tariffs[1] if time_of_day else tariffs[0]]
    with tempfile.TemporaryDirectory() as folder, fresh_database(Path(folder)) as url:
        board_id = await fill(url, consumers, context_days, tariffs[0][1])
        for i, (name, tariff) in enumerate(tariffs):
            if i:
                await reprice(url, tariff)
            await bill(url, board_id, consumers, name)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--consumers", type=int, default=10_000)
    parser.add_argument("--context-days", type=int, default=0)
    parser.add_argument("--time-of-day", action="store_true")
    parser.add_argument("--both", action="store_true")
    args = parser.parse_args()
    asyncio.run(main(args.consumers, args.context_days, args.time_of_day, args.both))

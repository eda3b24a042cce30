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
time-of-day tariff instead: the database sums each meter's hours by tariff class (about fifty
rows a meter) where the run once took a read per hour. `--both` bills the same fill under the
slab tariff and then, its bills taken away, under the time-of-day one: the two side by side,
each line saying which. `--baseline CHECKOUT` bills each of them first with the code of another
checkout (this script run again with PYTHONPATH at it, so it must have `cloud/`), then with this
one, on the same fill, and says how many of the invoices are the same (lines, totals, details):

    identical_bills   invoices whose lines, totals and details match the baseline's  (= consumers)

The run reads ahead on a second connection where the code billed has `run(reader=…)`.

Measured on the shared 2-core machine (two CPU hogs and other engineers' suites running beside
it, load average 8 to 11), one fill of 10,000 consumers and 29.8M reads, `--both --baseline` at
the main branch before the hourly sums (seconds, generate / rerun):

    time of day   main 125.7 / 83.7       this 27.6 / 26.0      10,000 of 10,000 bills identical
    slab          main 34.5 / 29.0        this 22.9 / 22.2      10,000 of 10,000 bills identical

Half an hour earlier, at a load of 5 to 6 and before the reads' queries stopped being prepared
(a generic plan from a connection's eleventh run sorted every meter's reads: the reruns): time
of day main 68.2 / 79.4, this 31.3 / 79.3; slab main 27.6 / 21.0, this 19.7 / 19.9. The step
before (the hourly spread thinned to a read an hour) had taken time of day from 446.0 to 85.5.

Run: python bench/billing.py [--consumers 10000] [--context-days 0] [--time-of-day | --both]
                             [--baseline /path/to/older/checkout]
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import os
import subprocess
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


async def bill(url: str, board_id: int, consumers: int, tariff: str, code: str = "this") -> None:
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
                code=code,
                consumers=consumers,
                **{k: v for k, v in summary.items() if k not in ("errors", "consumers")},
            )
        count = await (await conn.execute("SELECT count(*) AS n FROM invoices")).fetchone()
        emit("invoices", count["n"], "invoices", tariff=tariff, code=code, consumers=consumers)


async def reprice(url: str, tariff: dict) -> None:
    """The board's tariff version made `tariff`, and its bills taken away: the same reads billed
    afresh under another tariff."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute("TRUNCATE invoices, invoice_lines, billing_runs CASCADE")
        await conn.execute(
            "UPDATE tariff_versions SET spec = %s",
            (TariffSpec.model_validate(tariff).model_dump_json(),),
        )


_BILLS = """
SELECT i.consumer_id, i.version, i.units::text, i.total::text, i.amount_due::text, i.estimated,
       i.details::text,
       (SELECT json_agg(json_build_array(l.position, l.code, l.description, l.quantity::text,
                                         l.unit, l.rate::text, l.amount::text)
                        ORDER BY l.position)::text
        FROM invoice_lines l WHERE l.invoice_id = i.id)
FROM invoices i ORDER BY i.consumer_id, i.version
"""


async def bills_made(url: str) -> list[tuple]:
    """Every invoice with its lines, as text (what a comparison of two runs' bills needs)."""
    async with await psycopg.AsyncConnection.connect(url) as conn:
        return await (await conn.execute(_BILLS)).fetchall()


def bill_with(checkout: str, url: str, board_id: int, consumers: int, tariff: str) -> None:
    """Bill the fill at `url` with the code of another checkout, in a process of its own (this
    script, its `cloud` taken from `checkout`): its JSON lines go to our output."""
    subprocess.run(
        [
            sys.executable,
            __file__,
            "--bill-only",
            url,
            "--board",
            str(board_id),
            "--consumers",
            str(consumers),
            "--tariff",
            tariff,
        ],
        env={**os.environ, "PYTHONPATH": checkout},
        check=True,
    )


async def main(
    consumers: int, context_days: int, time_of_day: bool, both: bool, baseline: str | None
) -> None:
    tariffs = [("slab", DELHI), ("time_of_day", TIME_OF_DAY)]
    if not both:
        tariffs = [tariffs[1] if time_of_day else tariffs[0]]
    with tempfile.TemporaryDirectory() as folder, fresh_database(Path(folder)) as url:
        board_id = await fill(url, consumers, context_days, tariffs[0][1])
        for i, (name, tariff) in enumerate(tariffs):
            if i:
                await reprice(url, tariff)
            before = None
            if baseline:
                bill_with(baseline, url, board_id, consumers, name)
                before = await bills_made(url)
                await reprice(url, tariff)
            await bill(url, board_id, consumers, name)
            if before is not None:
                after = await bills_made(url)
                same = sum(a == b for a, b in zip(before, after, strict=False))
                emit(
                    "identical_bills",
                    same,
                    "invoices",
                    tariff=name,
                    of=max(len(before), len(after)),
                    note="invoices whose lines, totals and details match the baseline's",
                )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--consumers", type=int, default=10_000)
    parser.add_argument("--context-days", type=int, default=0)
    parser.add_argument("--time-of-day", action="store_true")
    parser.add_argument("--both", action="store_true")
    parser.add_argument(
        "--baseline",
        metavar="CHECKOUT",
        help="also bill each fill with the code of this checkout first, and compare the bills",
    )
    parser.add_argument("--bill-only", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--board", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--tariff", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bill_only:  # the baseline's side of --baseline (see bill_with)
        asyncio.run(bill(args.bill_only, args.board, args.consumers, args.tariff, "baseline"))
    else:
        asyncio.run(
            main(args.consumers, args.context_days, args.time_of_day, args.both, args.baseline)
        )

"""Does the API keep answering while people log in? /health's latency idle and during a dozen
concurrent logins (Argon2id: tens of milliseconds of CPU and 64 MiB each), side by side.

Starts `gridgate cloud serve` as its own process on a free port, against a fresh database on
GRIDGATE_BENCH_DATABASE_URL's server (else an embedded PostgreSQL), creates one account, then
prints JSON lines:

    health_idle_p50_ms, health_idle_p95_ms        /health alone, one request after another
    health_under_logins_p50_ms, ..._p95_ms        the same while --logins clients log in in a loop
    login_p50_ms, login_p95_ms, logins_per_s      what those logins cost

Hashing runs in worker threads, at most one per core (cloud/services/passwords.py); before that
change /health took 260-500 ms during a dozen logins on a 2-core machine, against 4 ms idle.

Run: python bench/login_load.py [--logins 12] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psycopg
from psycopg.rows import dict_row

sys.path.insert(0, str(Path(__file__).parent))
from cloud_ingest import cloud_server, fresh_database

from cloud.migrate import migrate
from cloud.services import auth, fleet

EMAIL, PASSWORD = "bench@example.in", "correct horse battery"


def emit(figure: str, value: float, unit: str, **extra: object) -> None:
    line = {"bench": "login_load", "figure": figure, "value": round(value, 2), "unit": unit}
    print(json.dumps({**line, **extra}), flush=True)


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[18]


async def setup(url: str) -> None:
    async with await psycopg.AsyncConnection.connect(url, row_factory=dict_row) as conn:
        await migrate(conn)
        await fleet.create_state(conn, code="BN", name="Bench", actor="bench")
        await fleet.create_board(conn, state_code="BN", code="BENCH", name="Bench", actor="bench")
        await auth.create_user(
            conn, email=EMAIL, password=PASSWORD, role="BOARD_ADMIN", board_code="BENCH", actor="b"
        )


async def health_latencies(client: httpx.AsyncClient, seconds: float) -> list[float]:
    latencies = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.perf_counter()
        (await client.get("/health")).raise_for_status()
        latencies.append(time.perf_counter() - started)
    return latencies


async def log_in_until(base: str, stop: asyncio.Event, n: int, out: list[float]) -> None:
    # each client logs in from an address of its own (the server believes X-Forwarded-For
    # from 127.0.0.1), so the per-address limits of real traffic apply, not one shared one
    headers = {"X-Forwarded-For": f"10.9.0.{n + 1}"}
    async with httpx.AsyncClient(base_url=base, timeout=60, headers=headers) as client:
        while not stop.is_set():
            started = time.perf_counter()
            response = await client.post(
                "/api/v1/auth/login", json={"email": EMAIL, "password": PASSWORD}
            )
            response.raise_for_status()
            out.append(time.perf_counter() - started)


async def main(logins: int, seconds: float) -> None:
    with tempfile.TemporaryDirectory() as folder, fresh_database(Path(folder)) as url:
        await setup(url)
        async with cloud_server(url, Path(folder), jobs_interval_s="0") as base:
            async with httpx.AsyncClient(base_url=base, timeout=60) as client:
                idle = await health_latencies(client, seconds)
                stop, login_times = asyncio.Event(), []
                workers = [
                    asyncio.create_task(log_in_until(base, stop, n, login_times))
                    for n in range(logins)
                ]
                loaded = await health_latencies(client, seconds)
                stop.set()
                await asyncio.gather(*workers)
            emit("health_idle_p50_ms", statistics.median(idle) * 1000, "ms")
            emit("health_idle_p95_ms", p95(idle) * 1000, "ms")
            emit(
                "health_under_logins_p50_ms",
                statistics.median(loaded) * 1000,
                "ms",
                concurrent_logins=logins,
            )
            emit(
                "health_under_logins_p95_ms",
                p95(loaded) * 1000,
                "ms",
                concurrent_logins=logins,
                was="260-500 ms with hashing on the event loop",
            )
            emit("login_p50_ms", statistics.median(login_times) * 1000, "ms")
            emit("login_p95_ms", p95(login_times) * 1000, "ms")
            emit("logins_per_s", len(login_times) / seconds, "logins/s", cores=os.cpu_count())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logins", type=int, default=12)
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()
    asyncio.run(main(args.logins, args.seconds))

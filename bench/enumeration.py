"""Do the sign-up and forgotten-password answers give away whether an account exists, by their
timing? Median answer times for a matching and a non-matching request, interleaved, side by side.

Starts `gridgate cloud serve` as its own process on a free port, against a fresh database on
GRIDGATE_BENCH_DATABASE_URL's server (else an embedded PostgreSQL), with one consumer record
(account number and e-mail) and one user, and no SMTP server (messages wait in the outbox, so
only the request's own work is measured). Each try alternates the matching and the
non-matching request, so a drift in the machine's load falls on both. Prints JSON lines:

    signup_match_median_ms, signup_no_match_median_ms, signup_difference_ms
    forgot_match_median_ms, forgot_no_match_median_ms, forgot_difference_ms

Target (the accounts issue): difference of medians < 5 ms over 200 tries each.

Run: python bench/enumeration.py [--tries 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
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

ACCOUNT, EMAIL = "EN-0001", "household@example.in"
STAFF, PASSWORD = "staff@example.in", "correct horse battery"


def emit(figure: str, value: float, unit: str, **extra: object) -> None:
    line = {"bench": "enumeration", "figure": figure, "value": round(value, 2), "unit": unit}
    print(json.dumps({**line, **extra}), flush=True)


async def setup(url: str) -> None:
    async with await psycopg.AsyncConnection.connect(url, row_factory=dict_row) as conn:
        await migrate(conn)
        await fleet.create_state(conn, code="EN", name="Bench", actor="bench")
        board = await fleet.create_board(
            conn, state_code="EN", code="ENUM", name="Bench", actor="bench"
        )
        await conn.execute(
            "INSERT INTO consumers (board_id, account_no, name, email) VALUES (%s, %s, %s, %s)",
            (board["id"], ACCOUNT, "Bench household", EMAIL),
        )
        await auth.create_user(
            conn, email=STAFF, password=PASSWORD, role="BOARD_ADMIN", board_code="ENUM", actor="b"
        )
        await conn.commit()


async def timed(client: httpx.AsyncClient, path: str, body: dict) -> float:
    started = time.perf_counter()
    response = await client.post(path, json=body)
    elapsed = time.perf_counter() - started
    if response.status_code != 202:
        raise RuntimeError(f"{path} answered {response.status_code}: {response.text}")
    return elapsed * 1000


async def compare(
    client: httpx.AsyncClient, name: str, path: str, match: dict, other: dict, tries: int
) -> None:
    for _ in range(10):  # warm both paths up
        await timed(client, path, match)
        await timed(client, path, other)
    matched, unmatched = [], []
    for _ in range(tries):
        matched.append(await timed(client, path, match))
        unmatched.append(await timed(client, path, other))
    a, b = statistics.median(matched), statistics.median(unmatched)
    emit(f"{name}_match_median_ms", a, "ms", tries=tries)
    emit(f"{name}_no_match_median_ms", b, "ms", tries=tries)
    emit(f"{name}_difference_ms", abs(a - b), "ms", target="< 5")


async def main(tries: int) -> None:
    with tempfile.TemporaryDirectory() as folder, fresh_database(Path(folder)) as url:
        await setup(url)
        limits = {
            "jobs_interval_s": "0",
            "account_requests_per_subject": "1000",
            "account_requests_per_address": "100000",
        }
        async with (
            cloud_server(url, Path(folder), **limits) as base,
            httpx.AsyncClient(base_url=base, timeout=60) as client,
        ):
            await compare(
                client,
                "signup",
                "/api/v1/auth/signup",
                {"account_no": ACCOUNT, "email": EMAIL},
                {"account_no": "EN-9999", "email": "nobody@example.in"},
                tries,
            )
            await compare(
                client,
                "forgot",
                "/api/v1/auth/password/forgot",
                {"email": STAFF},
                {"email": "nobody@example.in"},
                tries,
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tries", type=int, default=200)
    asyncio.run(main(parser.parse_args().tries))

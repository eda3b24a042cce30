"""Cloud ingest throughput: signed 5,000-reading batches from concurrent gateways over HTTP.

Starts `gridgate cloud serve` as its own process on a free port, against a fresh database on
GRIDGATE_BENCH_DATABASE_URL's server (else an embedded PostgreSQL), enrolls the gateways, seals
every batch before the clock starts (sealing is the gateway's work), then prints JSON lines:

    readings_per_s, batch_p50_ms, batch_p95_ms       each batch sent once
    resend_readings_per_s, resend_p50_ms, ...        each batch sent twice (idempotency cost)

Run: python bench/cloud_ingest.py [--gateways 4] [--batches 10] [--readings 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from cloud.migrate import migrate
from cloud.services import enrollment, fleet
from shared import Batch, Reading, SignedBody, generate_private_key, public_key_text, seal_batch


def emit(figure: str, value: float, unit: str, **extra: object) -> None:
    print(
        json.dumps(
            {
                "bench": "cloud_ingest",
                "figure": figure,
                "value": round(value, 2),
                "unit": unit,
                **extra,
            }
        ),
        flush=True,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def fresh_database(folder: Path):
    server = os.environ.get("GRIDGATE_BENCH_DATABASE_URL")
    embedded = None
    if not server:
        import pgserver

        embedded = pgserver.get_server(str(folder / "pg"), cleanup_mode="stop")
        server = embedded.get_uri()
    name = f"gridgate_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = psycopg.conninfo.make_conninfo(server, dbname=name)
    try:
        yield url
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
        if embedded is not None:
            embedded.cleanup()


def batches_for(
    gateway: str,
    key,
    count: int,
    size: int,
    month_start: datetime,
) -> list[SignedBody]:
    sealed = []
    seq = 1
    quantities = ("1.8.0", "16.7.0", "32.7.0", "31.7.0", "14.7.0")
    for b in range(count):
        readings = []
        for i in range(size):
            n = b * size + i
            readings.append(
                Reading(
                    seq=seq + i,
                    meter_id=f"{gateway}-m{n % 16}",
                    quantity=quantities[n % 5],
                    ts=month_start + timedelta(minutes=n // 80),
                    value=1000.0 + n * 0.01,
                )
            )
        batch = Batch(
            gateway_id=gateway,
            batch_id=uuid.uuid4(),
            first_seq=seq,
            last_seq=seq + size - 1,
            sent_at=datetime.now(UTC),
            readings=readings,
        )
        sealed.append(seal_batch(batch, key))
        seq += size
    return sealed


async def send_all(
    base: str, work: dict[str, list[SignedBody]], repeat: int
) -> tuple[float, list[float]]:
    latencies: list[float] = []

    async def sender(bodies: list[SignedBody]) -> None:
        async with httpx.AsyncClient(base_url=base, timeout=60) as client:
            for body in bodies:
                for _ in range(repeat):
                    started = time.perf_counter()
                    response = await client.post(
                        "/api/v1/ingest/batches", content=body.body, headers=body.headers
                    )
                    response.raise_for_status()
                    latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(sender(bodies) for bodies in work.values()))
    return time.perf_counter() - started, latencies


def _start(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("w") as log_file:
        return subprocess.Popen(
            [sys.executable, "-m", "gridgate", "--log-level", "WARNING", "cloud", "serve"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log_file,
        )


@contextlib.asynccontextmanager
async def cloud_server(url: str, folder: Path, **settings: str) -> AsyncIterator[str]:
    """`gridgate cloud serve` on `url`'s database in its own process on a free port, with these
    GRIDGATE_ settings; its base URL once /health answers. Stopped on the way out, and any
    traceback it logged printed to stderr."""
    port = free_port()
    env = {
        **os.environ,
        "GRIDGATE_DATABASE_URL": url,
        "GRIDGATE_PORT": str(port),
        "GRIDGATE_DATA_DIR": str(folder),
        **{f"GRIDGATE_{name.upper()}": value for name, value in settings.items()},
    }
    log_path = folder / "server.log"
    server = _start(env, log_path)
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base) as client:
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get("/health")).status_code == 200:
                        break
                if server.poll() is not None:
                    raise RuntimeError(f"the cloud server stopped: {log_path.read_text()[-2000:]}")
                await asyncio.sleep(0.1)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=30)
        text = log_path.read_text()
        if "Traceback" in text:
            print(text[-3000:], file=sys.stderr)


async def setup(url: str, gateways: int) -> dict[str, tuple[str, object]]:
    async with await psycopg.AsyncConnection.connect(url, row_factory=dict_row) as conn:
        await migrate(conn)
        await conn.set_autocommit(False)
        await fleet.create_state(conn, code="BN", name="Bench", actor="bench")
        await fleet.create_board(conn, state_code="BN", code="BENCH", name="Bench", actor="bench")
        tokens = {}
        for i in range(gateways):
            key = generate_private_key()
            token, _ = await enrollment.create_token(
                conn, board_code="BENCH", ttl_s=600, actor="bench"
            )
            tokens[f"bench-gw-{i}"] = (token, key)
    return tokens


async def main(gateways: int, batches: int, size: int) -> None:
    with tempfile.TemporaryDirectory() as folder, fresh_database(Path(folder)) as url:
        tokens = await setup(url, gateways)
        async with cloud_server(url, Path(folder)) as base:
            async with httpx.AsyncClient(base_url=base) as client:
                for code, (token, key) in tokens.items():
                    response = await client.post(
                        "/api/v1/gateways/enroll",
                        json={
                            "token": token,
                            "gateway_id": code,
                            "public_key": public_key_text(key),
                        },
                    )  # type: ignore[arg-type]
                    response.raise_for_status()
            month = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
            first = {
                code: batches_for(code, key, batches, size, month)
                for code, (_, key) in tokens.items()
            }
            second = {
                code: batches_for(code, key, batches, size, month - timedelta(days=40))
                for code, (_, key) in tokens.items()
            }
            total = gateways * batches * size
            took, latencies = await send_all(base, first, repeat=1)
            emit(
                "readings_per_s",
                total / took,
                "readings/s",
                target=">= 50000",
                gateways=gateways,
                batch_readings=size,
                batches=gateways * batches,
            )
            emit("batch_p50_ms", statistics.median(latencies) * 1000, "ms")
            emit("batch_p95_ms", statistics.quantiles(latencies, n=20)[18] * 1000, "ms")
            took_twice, latencies = await send_all(base, second, repeat=2)
            emit(
                "resend_readings_per_s",
                total / took_twice,
                "readings/s",
                note="every batch sent twice; counts unique readings",
            )
            emit("resend_p50_ms", statistics.median(latencies) * 1000, "ms")
            emit("idempotent_cost_ratio", took_twice / took, "x", target="<= 2")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gateways", type=int, default=4)
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--readings", type=int, default=5000)
    args = parser.parse_args()
    asyncio.run(main(args.gateways, args.batches, args.readings))

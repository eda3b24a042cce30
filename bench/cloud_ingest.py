"""Cloud ingest throughput: signed 5,000-reading batches from concurrent gateways over HTTP.

For each server configuration — `--workers` 1 and 2 by default (`gridgate cloud serve
--workers N`), and first those of another checkout when `--baseline` names one, so old and new
run side by side under the same load — starts the server in its own process(es) on a free port,
against a fresh database on GRIDGATE_BENCH_DATABASE_URL's server (else an embedded PostgreSQL),
enrolls the gateways, seals every batch before the clock starts (sealing is the gateway's
work), then prints JSON lines labelled with the server and its workers:

    load_average_1m                                  the machine's load before the configuration
    readings_per_s, batch_p50_ms, batch_p95_ms       each batch sent once
    {server,postgres,client}_cpu_ms_per_1000_readings
                                                     CPU of the server's processes, of its
                                                     PostgreSQL backends, of this client: a figure
                                                     other load on the machine disturbs little
    cpu_bound_readings_per_s                         the cores over that CPU: an estimate for an
                                                     idle machine, not a measurement
    replay_readings_per_s, replay_p50_ms,            each batch of a second set sent twice, the
    idempotent_cost_ratio, idempotent_cpu_ratio      same bytes: time (CPU) against sending once
    replay_alone_cpu_ratio                           the second set once more: a replay's CPU
                                                     against a send's
    resend_cost_ratio, resend_cpu_ratio              the first set's readings again under new
                                                     batch ids, as a gateway does when an ack was
                                                     lost over two minutes before (sooner, it
                                                     sends the same bytes): (send + resend) / send

and last, PostgreSQL alone (`postgres_copy_readings_per_s`, `postgres_copy_cpu_ms_per_1000_
readings`): the same readings COPYed straight into `readings` by one connection a gateway from
bytes encoded before the clock, the ceiling no ingest figure can pass on this machine.

What a batch costs now (docs/architecture.md, "Ingest at scale"): the readings are parsed into
plain dicts (`shared.ReceivedBatch`), and new readings are COPYed straight into the table,
ON CONFLICT only for a batch that may hold stored ones (`cloud/services/ingest_readings.py`).

Run: python bench/cloud_ingest.py [--gateways 4] [--batches 10] [--readings 5000]
                                  [--workers 1 2] [--baseline /work/main]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
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
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg
from psycopg import sql
from psycopg.copy import Copy, FileWriter
from psycopg.rows import dict_row

from cloud.migrate import migrate
from cloud.services import enrollment, fleet
from shared import (
    Batch,
    Reading,
    SignedBody,
    configure_logging,
    decompress,
    generate_private_key,
    public_key_text,
    seal_batch,
)

HERE = Path(__file__).resolve().parent.parent  # the checkout this bench belongs to


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


QUANTITIES = ("1.8.0", "16.7.0", "32.7.0", "31.7.0", "14.7.0")


def rows_for(
    batch: int, size: int, month_start: datetime
) -> list[tuple[int, str, datetime, float]]:
    """(meter number 0..15, quantity, ts, value) of a gateway's `batch`-th batch: 16 meters of
    five quantities each, a reading of every series each minute."""
    rows = []
    for i in range(size):
        n = batch * size + i
        rows.append(
            (n % 16, QUANTITIES[n % 5], month_start + timedelta(minutes=n // 80), 1000.0 + n * 0.01)
        )
    return rows


def batches_for(
    gateway: str,
    key,
    count: int,
    size: int,
    month_start: datetime,
) -> list[SignedBody]:
    sealed = []
    seq = 1
    for b in range(count):
        readings = [
            Reading(seq=seq + i, meter_id=f"{gateway}-m{meter}", quantity=q, ts=ts, value=value)
            for i, (meter, q, ts, value) in enumerate(rows_for(b, size, month_start))
        ]
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


def _start(env: dict[str, str], log_path: Path, tree: Path) -> subprocess.Popen[bytes]:
    with log_path.open("w") as log_file:
        return subprocess.Popen(
            [sys.executable, "-m", "gridgate", "--log-level", "WARNING", "cloud", "serve"],
            env={**env, "PYTHONPATH": str(tree)},
            cwd=tree,  # `python -m` looks in the working directory first
            stdout=subprocess.DEVNULL,
            stderr=log_file,
        )


@contextlib.asynccontextmanager
async def cloud_server(
    url: str, folder: Path, *, tree: Path | None = None, **settings: str
) -> AsyncIterator[str]:
    """`gridgate cloud serve` on `url`'s database in its own process on a free port, with these
    GRIDGATE_ settings, run from `tree` (a checkout; this one by default); its base URL once
    /health answers. Stopped on the way out, and any traceback it logged printed to stderr."""
    async with cloud_process(url, folder, tree=tree, **settings) as (base, _):
        yield base


@contextlib.asynccontextmanager
async def cloud_process(
    url: str, folder: Path, *, tree: Path | None = None, **settings: str
) -> AsyncIterator[tuple[str, int]]:
    """`cloud_server`, yielding its process id too; with `workers` set, once every worker
    process has opened its pool (each names its connections with its pid)."""
    port = free_port()
    env = {
        **os.environ,
        "GRIDGATE_DATABASE_URL": url,
        "GRIDGATE_PORT": str(port),
        "GRIDGATE_DATA_DIR": str(folder),
        **{f"GRIDGATE_{name.upper()}": value for name, value in settings.items()},
    }
    log_path = folder / "server.log"
    server = _start(env, log_path, tree or HERE)
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
        for _ in range(600):
            if await _serving_processes(url) >= int(settings.get("workers", 1)):
                break
            await asyncio.sleep(0.1)
        yield base, server.pid
    finally:
        server.terminate()
        server.wait(timeout=30)
        text = log_path.read_text()
        if "Traceback" in text:
            print(text[-3000:], file=sys.stderr)


async def _serving_processes(url: str) -> int:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        cursor = await conn.execute(
            "SELECT count(DISTINCT application_name) FROM pg_stat_activity"
            " WHERE datname = current_database() AND application_name LIKE 'gridgate-cloud %'"
        )
        return (await cursor.fetchone())[0]


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


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) the process has used, from /proc; 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _process_tree(pid: int) -> list[int]:
    """`pid` and its descendants (uvicorn's supervisor and its workers)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{current}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
    return found


class CpuMeter:
    """CPU seconds spent by the server's processes and by its PostgreSQL backends over a phase:
    a figure the machine's other load disturbs far less than wall-clock throughput. Only when
    PostgreSQL runs on this machine (its backends' /proc entries readable); otherwise None."""

    def __init__(self, url: str, server_pid: int) -> None:
        self.url, self.server_pid = url, server_pid

    async def _backends(self) -> list[int]:
        async with await psycopg.AsyncConnection.connect(self.url) as conn:
            cursor = await conn.execute(
                "SELECT pid FROM pg_stat_activity"
                " WHERE datname = current_database() AND application_name LIKE 'gridgate-cloud%'"
            )
            return [pid for (pid,) in await cursor.fetchall()]

    async def snapshot(self) -> dict[str, dict[int, float]]:
        return {
            "server": {pid: _cpu_s(pid) for pid in _process_tree(self.server_pid)},
            "postgres": {pid: _cpu_s(pid) for pid in await self._backends()},
            "client": {os.getpid(): _cpu_s(os.getpid())},  # this bench: HTTP, 4 gateways
        }

    @staticmethod
    def spent(before: dict, after: dict) -> dict[str, float | None]:
        used: dict[str, float | None] = {}
        for side in ("server", "postgres", "client"):
            pids = after[side]
            if not any(pids.values()):
                used[side] = None  # not readable here (PostgreSQL on another machine)
                continue
            used[side] = sum(now - before[side].get(pid, 0.0) for pid, now in pids.items())
        return used


def reseal(bodies: list[SignedBody], key) -> list[SignedBody]:
    """The same readings under new batch ids, as a gateway sends them when an ack was lost (it
    builds a new batch from its log; `edge/sync.py`)."""
    resealed = []
    for body in bodies:
        batch = Batch.model_validate_json(decompress(body.body, "zstd"))
        resealed.append(seal_batch(batch.model_copy(update={"batch_id": uuid.uuid4()}), key))
    return resealed


async def run_server(
    url: str, folder: Path, tree: Path, workers: int, gateways: int, batches: int, size: int
) -> None:
    """One server configuration: its own database, its own process(es), the three phases."""
    label = {"server": "this tree" if tree == HERE else str(tree), "workers": workers}
    emit("load_average_1m", os.getloadavg()[0], "", **label)
    tokens = await setup(url, gateways)
    async with cloud_process(url, folder, tree=tree, workers=str(workers)) as (base, pid):
        async with httpx.AsyncClient(base_url=base) as client:
            for code, (token, key) in tokens.items():
                response = await client.post(
                    "/api/v1/gateways/enroll",
                    json={"token": token, "gateway_id": code, "public_key": public_key_text(key)},
                )  # type: ignore[arg-type]
                response.raise_for_status()
        month = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        first = {
            code: batches_for(code, key, batches, size, month) for code, (_, key) in tokens.items()
        }
        second = {
            code: batches_for(code, key, batches, size, month - timedelta(days=40))
            for code, (_, key) in tokens.items()
        }
        again = {code: reseal(first[code], key) for code, (_, key) in tokens.items()}
        total = gateways * batches * size
        meter = CpuMeter(url, pid)

        async def phase(work: dict[str, list[SignedBody]], repeat: int) -> Phase:
            before = await meter.snapshot()
            took, latencies = await send_all(base, work, repeat)
            return Phase(took, latencies, CpuMeter.spent(before, await meter.snapshot()))

        once = await phase(first, repeat=1)
        emit(
            "readings_per_s",
            total / once.took_s,
            "readings/s",
            target=">= 120000 (moonshot 200000)",
            gateways=gateways,
            batch_readings=size,
            batches=gateways * batches,
            **label,
        )
        emit("batch_p50_ms", statistics.median(once.latencies_s) * 1000, "ms", **label)
        emit("batch_p95_ms", statistics.quantiles(once.latencies_s, n=20)[18] * 1000, "ms", **label)
        for side, seconds in once.cpu_s.items():
            if seconds is not None:
                emit(f"{side}_cpu_ms_per_1000_readings", seconds * 1e6 / total, "ms", **label)
        if once.cpu_total_s:
            cores = os.cpu_count() or 1
            emit(
                "cpu_bound_readings_per_s",
                cores * total / once.cpu_total_s,
                "readings/s",
                note=f"{cores} cores over the CPU a reading took (server, PostgreSQL, client): what"
                " the machine would allow were it idle and CPU the only bound; not a measurement",
                **label,
            )

        twice = await phase(second, repeat=2)
        emit(
            "replay_readings_per_s",
            total / twice.took_s,
            "readings/s",
            note="every batch sent twice, the same bytes; counts unique readings",
            **label,
        )
        emit("replay_p50_ms", statistics.median(twice.latencies_s) * 1000, "ms", **label)
        emit("idempotent_cost_ratio", twice.took_s / once.took_s, "x", target="<= 1.5", **label)
        if once.cpu_total_s and twice.cpu_total_s:
            emit(
                "idempotent_cpu_ratio",
                twice.cpu_total_s / once.cpu_total_s,
                "x",
                note="the same by CPU seconds (server, PostgreSQL, client): steadier on a busy"
                " machine",
                **label,
            )

        replayed = await phase(second, repeat=1)  # every one taken already
        if once.cpu_total_s and replayed.cpu_total_s:
            emit(
                "replay_alone_cpu_ratio",
                replayed.cpu_total_s / once.cpu_total_s,
                "x",
                note="the second set sent a third time, every batch taken before: a replay's CPU"
                " against a send's",
                **label,
            )

        resent = await phase(again, repeat=1)
        emit(
            "resend_cost_ratio",
            (once.took_s + resent.took_s) / once.took_s,
            "x",
            note="the first phase's readings sent again under new batch ids, as a gateway"
            " does when an ack was lost over two minutes before (sooner it resends the same"
            " bytes): (first send + resend) / first send",
            **label,
        )
        if once.cpu_total_s and resent.cpu_total_s:
            emit(
                "resend_cpu_ratio",
                (once.cpu_total_s + resent.cpu_total_s) / once.cpu_total_s,
                "x",
                **label,
            )


@dataclass(frozen=True)
class Phase:
    took_s: float
    latencies_s: list[float]
    cpu_s: dict[str, float | None]

    @property
    def cpu_total_s(self) -> float | None:
        if any(seconds is None for seconds in self.cpu_s.values()):
            return None
        return sum(self.cpu_s.values())  # type: ignore[arg-type]


async def postgres_ceiling(url: str, gateways: int, batches: int, size: int) -> None:
    """What PostgreSQL alone does with the same readings on this machine: each gateway's batches
    COPYed straight into `readings` by its own connection, one transaction a batch, from bytes
    encoded before the clock starts (no HTTP, no parsing, no Python per row). The ingest
    figures cannot pass this one."""
    async with await psycopg.AsyncConnection.connect(url) as conn:
        await migrate(conn)
    month = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    payloads = []
    with psycopg.connect(url) as conn:
        conn.execute("SELECT ensure_readings_partition(%s)", (month.date(),))
        conn.commit()
        for g in range(gateways):
            mine = []
            for b in range(batches):
                buffer = io.BytesIO()
                with (
                    conn.cursor() as cur,
                    Copy(cur, binary=True, writer=FileWriter(buffer)) as copy,
                ):
                    copy.set_types(["int8", "text", "timestamptz", "float8", "text", "int8"])
                    for meter, quantity, ts, value in rows_for(b, size, month):
                        copy.write_row((g * 16 + meter + 1, quantity, ts, value, "ok", g + 1))
                mine.append(buffer.getvalue())
            payloads.append(mine)
    connections = [
        await psycopg.AsyncConnection.connect(url, application_name="gridgate-bench copy")
        for _ in range(gateways)
    ]
    try:
        backends = [conn.info.backend_pid for conn in connections]
        cpu_before = sum(_cpu_s(pid) for pid in backends)

        async def copier(conn: psycopg.AsyncConnection, mine: list[bytes]) -> None:
            for payload in mine:
                async with (
                    conn.transaction(),
                    conn.cursor() as cur,
                    cur.copy(
                        "COPY readings (meter_id, quantity, ts, value, quality, gateway_id)"
                        " FROM STDIN (FORMAT BINARY)"
                    ) as copy,
                ):
                    await copy.write(payload)

        started = time.perf_counter()
        await asyncio.gather(
            *(copier(c, mine) for c, mine in zip(connections, payloads, strict=True))
        )
        took = time.perf_counter() - started
        cpu = sum(_cpu_s(pid) for pid in backends) - cpu_before
    finally:
        for conn in connections:
            await conn.close()
    total = gateways * batches * size
    label = {"server": "postgresql alone", "gateways": gateways, "batch_readings": size}
    emit("postgres_copy_readings_per_s", total / took, "readings/s", **label)
    if cpu:
        emit("postgres_copy_cpu_ms_per_1000_readings", cpu * 1e6 / total, "ms", **label)


async def main(
    gateways: int, batches: int, size: int, workers: list[int], baseline: Path | None
) -> None:
    trees = ([baseline] if baseline else []) + [HERE]
    for tree in trees:
        for count in workers:
            with tempfile.TemporaryDirectory() as folder, fresh_database(Path(folder)) as url:
                await run_server(url, Path(folder), tree, count, gateways, batches, size)
    with tempfile.TemporaryDirectory() as folder, fresh_database(Path(folder)) as url:
        await postgres_ceiling(url, gateways, batches, size)
    emit("load_average_1m", os.getloadavg()[0], "", note="at the end")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gateways", type=int, default=4)
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--readings", type=int, default=5000)
    parser.add_argument(
        "--workers",
        type=int,
        nargs="+",
        default=[1, 2],
        help="server processes (`gridgate cloud serve --workers N`); each count is run in turn",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        help="another checkout (e.g. /work/main) whose server is run first, the same way",
    )
    args = parser.parse_args()
    configure_logging("WARNING")  # stdout carries the JSON lines alone; warnings go to stderr
    asyncio.run(main(args.gateways, args.batches, args.readings, args.workers, args.baseline))

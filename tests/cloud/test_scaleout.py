"""Scale-out through real `gridgate cloud serve` processes: workers sharing a port on one
embedded PostgreSQL, and two service processes with a streaming replica — the periodic jobs run
once per interval between them, an alert raised through one reaches a stream on the other, and
the charts are read from the replica."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psutil
import psycopg
import pytest
from psycopg.rows import dict_row

from cloud.migrate import migrate
from cloud.services import auth, enrollment, fleet
from shared import (
    Batch,
    Event,
    EventStatus,
    Reading,
    Severity,
    generate_private_key,
    public_key_text,
    seal_batch,
)
from tests.support.clusters import primary_and_replica, wait_for_replay
from tests.support.services import free_tcp_port

pytestmark = pytest.mark.slow
# at INFO: a failure shows how far a start or a stop got
GRIDGATE = [sys.executable, "-m", "gridgate", "--log-level", "INFO", "cloud", "serve"]
EMAIL, PASSWORD = "ops@example.in", "correct horse battery"
QUICK_JOBS = {
    "aggregates",
    "cloud_checks",
    "gateway_commands_expiry",
    "software_expiry",
    "rate_limit_pruning",
}


def launch(port: int, log: Path, env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    """`gridgate cloud serve` on `port` with `env` over this process's environment."""
    environment = {k: v for k, v in os.environ.items() if k != "GRIDGATE_DATABASE_URL"}
    environment.update(env, GRIDGATE_PORT=str(port))
    with log.open("a") as sink:
        return subprocess.Popen([*GRIDGATE, *args], env=environment, stdout=sink, stderr=sink)


def wait_healthy(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    # spawning workers and an embedded PostgreSQL takes a while on a loaded machine
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    process.kill()
    raise AssertionError(f"the cloud did not start: {log.read_text()[-3000:]}")


@contextlib.contextmanager
def stopped_at_end(*processes: subprocess.Popen[bytes]) -> Iterator[None]:
    try:
        yield
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=30)


def stop_code(process: subprocess.Popen[bytes], log: Path) -> int:
    """The exit code of a process asked to stop, or a failure showing how far its stop got."""
    try:
        return process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"no stop within 60 s: {log.read_text()[-3000:]}") from None


def poll(check, what: str, timeout_s: float = 90):
    """`check()`'s first true answer, asked until `timeout_s` runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        answer = check()
        if answer:
            return answer
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout_s} s")


def worker_pids(url: str) -> set[int]:
    """The server processes holding connections, by their connections' application_name."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT DISTINCT application_name FROM pg_stat_activity"
            " WHERE application_name LIKE 'gridgate-cloud %'"
        ).fetchall()
    return {int(name.rsplit(" ", 1)[1]) for (name,) in rows}


def job_intervals(url: str) -> dict:
    """{interval start: {job: (worker, outcome)}} of the quick jobs' claims."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT interval_start, job, worker, outcome FROM job_runs WHERE job = ANY(%s)",
            (sorted(QUICK_JOBS),),
        ).fetchall()
    found: dict = {}
    for start, job, worker, outcome in rows:
        found.setdefault(start, {})[job] = (worker, outcome)
    return found


def health_answers(port: int) -> float:
    """The service's count of /health requests answered 200, as one scrape of /metrics has it."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    wanted = 'gridgate_http_requests_total{method="GET",route="/health",status="200"} '
    line = next((line for line in text.splitlines() if line.startswith(wanted)), None)
    return 0.0 if line is None else float(line.split()[1])  # None: no /health answered yet


def embedded_url(data_dir: Path) -> str:
    lines = (data_dir / "postgres" / "postmaster.pid").read_text().splitlines()
    return f"postgresql://postgres@/postgres?host={lines[4]}&port={lines[3]}"


def test_workers_share_the_port_on_one_embedded_postgresql(tmp_path: Path) -> None:
    data_dir, port, log = tmp_path / "cloud", free_tcp_port(), tmp_path / "cloud.log"
    env = {
        "GRIDGATE_DATA_DIR": str(data_dir),
        "GRIDGATE_JOBS_INTERVAL_S": "1",
        "GRIDGATE_METRICS_PUBLIC": "true",
    }
    parent = launch(port, log, env, "--workers", "2")
    with stopped_at_end(parent):
        wait_healthy(parent, port, log)
        postmaster = (data_dir / "postgres" / "postmaster.pid").read_text().splitlines()[0]
        url = embedded_url(data_dir)

        def children() -> set[int]:
            return {p.pid for p in psutil.Process(parent.pid).children()}

        # two workers, both children of the one serve process, each with its own pool
        workers = poll(lambda: len(worker_pids(url)) == 2 and worker_pids(url), "two workers")
        assert workers <= children()
        # the jobs: three intervals with every quick job claimed, by one of the workers
        names = {f"{os.uname().nodename}:{pid}" for pid in workers}
        full = poll(
            lambda: [s for s, jobs in job_intervals(url).items() if set(jobs) == QUICK_JOBS][2:],
            "three intervals of jobs",
        )
        assert full
        ran = job_intervals(url)
        assert {w for jobs in ran.values() for w, _ in jobs.values()} <= names
        assert {o for jobs in ran.values() for _, o in jobs.values()} <= {"ok", None}

        # /metrics counts every worker's requests, whichever worker a scrape reaches
        before = health_answers(port)
        for _ in range(40):  # each on a new connection: the kernel deals them to both workers
            assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=10).status_code == 200
        assert {health_answers(port) for _ in range(8)} == {before + 40}

        # a worker killed outright is replaced; the port keeps answering meanwhile
        victim = min(workers)
        os.kill(victim, signal.SIGKILL)
        poll(lambda: len(worker_pids(url) - {victim}) == 2, "a replacement worker")
        assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=10).status_code == 200
        # one embedded server all along: the parent's, never restarted by a worker
        pid_file = data_dir / "postgres" / "postmaster.pid"
        assert pid_file.read_text().splitlines()[0] == postmaster

        parent.send_signal(signal.SIGTERM)
        assert parent.wait(timeout=60) == 0, log.read_text()[-3000:]
        assert not pid_file.exists(), "the embedded PostgreSQL outlived the service"


async def prepare(url: str) -> str:
    """A board with an admin on a fresh database; an enrollment token for its gateway."""
    async with await psycopg.AsyncConnection.connect(url, row_factory=dict_row) as conn:
        await migrate(conn)
        await conn.set_autocommit(False)
        await fleet.create_state(conn, code="SO", name="Scale-out", actor="test")
        await fleet.create_board(conn, state_code="SO", code="SCALE", name="Scale", actor="test")
        await auth.create_user(
            conn, email=EMAIL, password=PASSWORD, role="BOARD_ADMIN", board_code="SCALE",
            actor="test",
        )  # fmt: skip
        token, _ = await enrollment.create_token(conn, board_code="SCALE", ttl_s=600, actor="test")
        await conn.commit()
    return token


T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=6)


def sealed_batch(key, seqs: range, *, event: str | None = None):
    """Energy readings of meter m-1 a minute apart (seq n at T0 + n minutes, value n), then an
    event with the next seq."""
    readings = [
        Reading(seq=n, meter_id="m-1", quantity="1.8.0", ts=T0 + timedelta(minutes=n), value=n)
        for n in seqs
    ]
    events = []
    if event is not None:
        events = [
            Event(
                seq=seqs[-1] + 1, ts=T0 + timedelta(minutes=seqs[-1]), kind=event,
                status=EventStatus.RAISED, severity=Severity.MEDIUM, meter_id="m-1",
                message=f"{event} raised",
            )
        ]  # fmt: skip
    batch = Batch(
        gateway_id="gw-scale",
        batch_id=uuid.uuid4(),
        first_seq=seqs[0],
        last_seq=seqs[-1] + len(events),
        sent_at=datetime.now(UTC),
        readings=readings,
        events=events,
    )
    return seal_batch(batch, key)


async def test_two_processes_share_jobs_and_streams_and_read_charts_from_a_replica(
    tmp_path: Path,
) -> None:
    with primary_and_replica() as (primary, replica):
        token = await prepare(primary)
        env = {
            "GRIDGATE_DATABASE_URL": primary,
            "GRIDGATE_REPLICA_URL": replica,
            "GRIDGATE_DATA_DIR": str(tmp_path / "cloud"),  # shared: one signing secret
            "GRIDGATE_JOBS_INTERVAL_S": "1",
            "GRIDGATE_POOL_MIN_SIZE": "1",
            "GRIDGATE_POOL_MAX_SIZE": "3",
        }
        ports = free_tcp_port(), free_tcp_port()
        logs = tmp_path / "a.log", tmp_path / "b.log"
        processes = [launch(port, log, env) for port, log in zip(ports, logs, strict=True)]
        with stopped_at_end(*processes):
            for process, port, log in zip(processes, ports, logs, strict=True):
                wait_healthy(process, port, log)
            await _stream_and_charts(primary, replica, token, ports)
            # the jobs ran in both processes' loops, each interval's claim taken by one
            names = {f"{os.uname().nodename}:{p.pid}" for p in processes}
            full = poll(
                lambda: [s for s, j in job_intervals(primary).items() if set(j) == QUICK_JOBS][1:],
                "two intervals of jobs",
            )
            assert full
            ran = job_intervals(primary)
            assert {w for jobs in ran.values() for w, _ in jobs.values()} <= names
            for process, log in zip(processes, logs, strict=True):
                process.send_signal(signal.SIGTERM)
                # uvicorn ends a single server by raising the signal again once it has stopped
                assert stop_code(process, log) in (0, -signal.SIGTERM)


async def _stream_and_charts(
    primary: str, replica: str, token: str, ports: tuple[int, int]
) -> None:
    key = generate_private_key()
    a = httpx.AsyncClient(base_url=f"http://127.0.0.1:{ports[0]}", timeout=30)
    b = httpx.AsyncClient(base_url=f"http://127.0.0.1:{ports[1]}", timeout=30)
    async with a, b:
        enrolled = await a.post(
            "/api/v1/gateways/enroll",
            json={"token": token, "gateway_id": "gw-scale", "public_key": public_key_text(key)},
        )
        assert enrolled.status_code == 201, enrolled.text
        login = await a.post("/api/v1/auth/login", json={"email": EMAIL, "password": PASSWORD})
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}

        # a stream on B hears the alert a batch through A raises
        ready, seen = asyncio.Event(), asyncio.Queue()

        async def listen() -> None:
            async with b.stream("GET", "/api/v1/alerts/stream", headers=headers) as response:
                assert response.status_code == 200
                event = None
                async for line in response.aiter_lines():
                    if line.startswith("event:"):
                        event = line.split(":", 1)[1].strip()
                        if event == "ready":
                            ready.set()
                    elif line.startswith("data:") and event == "alert":
                        await seen.put(json.loads(line.split(":", 1)[1]))

        listener = asyncio.create_task(listen())
        try:
            await asyncio.wait_for(ready.wait(), 30)
            sent = await a.post("/api/v1/ingest/batches", **_body(key, range(1, 11), "outage"))
            assert sent.status_code == 200, sent.text
            alert = await asyncio.wait_for(seen.get(), 30)
            while alert["kind"] != "outage":  # the cloud's own checks may speak first
                alert = await asyncio.wait_for(seen.get(), 30)
            assert alert["state"] == "active"
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener

        # the charts read the replica: while its replay is paused they stay where it stopped,
        # though the primary (and the routes reading it) have moved on
        with psycopg.connect(primary) as conn:
            meter = conn.execute("SELECT id FROM meters WHERE external_id = 'm-1'").fetchone()[0]
        chart = (
            f"/api/v1/meters/{meter}/readings?quantity=1.8.0&interval=raw"
            f"&from={_iso(T0)}&to={_iso(T0 + timedelta(days=1))}"
        )
        await asyncio.to_thread(wait_for_replay, primary, replica)
        assert await _points(b, chart, headers) == list(range(1, 11))
        with psycopg.connect(replica, autocommit=True) as conn:
            conn.execute("SELECT pg_wal_replay_pause()")
            poll(
                lambda: (
                    conn.execute("SELECT pg_get_wal_replay_pause_state()").fetchone()[0] == "paused"
                ),
                "replay paused",
            )
            sent = await a.post(
                "/api/v1/ingest/batches", **_body(key, range(12, 17), "voltage_swell")
            )
            assert sent.status_code == 200, sent.text
            with psycopg.connect(primary) as check:
                count = check.execute("SELECT count(*) FROM readings").fetchone()[0]
            assert count == 15
            for client in (a, b):
                assert await _points(client, chart, headers) == list(range(1, 11))
            alerts = await b.get("/api/v1/alerts?limit=50", headers=headers)  # the primary's
            kinds = {x["kind"] for x in alerts.json()["items"]}
            # both batches' alerts (the cloud's checks may add meter_data_missing: old reads)
            assert {"outage", "voltage_swell"} <= kinds
            conn.execute("SELECT pg_wal_replay_resume()")
        await asyncio.to_thread(wait_for_replay, primary, replica)
        assert await _points(b, chart, headers) == [*range(1, 11), *range(12, 17)]


def _body(key, seqs: range, event: str) -> dict:
    sealed = sealed_batch(key, seqs, event=event)
    return {"content": sealed.body, "headers": sealed.headers}


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


async def _points(client: httpx.AsyncClient, path: str, headers: dict[str, str]) -> list[float]:
    response = await client.get(path, headers=headers)
    assert response.status_code == 200, response.text
    return [point["value"] for point in response.json()["points"]]

"""kill -9 of the cloud process mid-ingest: nothing half-written, and the resend succeeds."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg
import pytest
from psycopg.rows import dict_row

from cloud.migrate import migrate
from cloud.services import enrollment, fleet
from shared import Batch, Reading, generate_private_key, public_key_text, seal_batch
from tests.support.services import free_tcp_port, isolated_database

GRIDGATE = [sys.executable, "-m", "gridgate", "--log-level", "WARNING", "cloud", "serve"]


def start(url: str, port: int, log: Path, **settings: str) -> subprocess.Popen[bytes]:
    """`gridgate cloud serve` on `port`, with `settings` as GRIDGATE_* variables."""
    env = {
        **os.environ,
        "GRIDGATE_DATABASE_URL": url,
        "GRIDGATE_PORT": str(port),
        **{f"GRIDGATE_{name.upper()}": value for name, value in settings.items()},
    }
    with log.open("a") as sink:
        process = subprocess.Popen(GRIDGATE, env=env, stdout=sink, stderr=sink)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise AssertionError(f"cloud did not start: {log.read_text()[-2000:]}")


async def prepare(url: str) -> tuple[str, str]:
    async with await psycopg.AsyncConnection.connect(url, row_factory=dict_row) as conn:
        await migrate(conn)
        await conn.set_autocommit(False)
        await fleet.create_state(conn, code="CR", name="Crash", actor="test")
        await fleet.create_board(conn, state_code="CR", code="CRASH", name="Crash", actor="test")
        token, _ = await enrollment.create_token(conn, board_code="CRASH", ttl_s=600, actor="test")
    return token, "gw-crash"


def count(url: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT count(*) FROM readings").fetchone()[0]


@pytest.mark.slow
def test_kill_during_ingest_leaves_all_or_nothing(postgres_server: str, tmp_path: Path) -> None:
    with isolated_database(postgres_server) as url:
        token, code = asyncio.run(prepare(url))
        key = generate_private_key()
        port = free_tcp_port()
        log = tmp_path / "cloud.log"
        process = start(url, port, log)
        base = f"http://127.0.0.1:{port}"
        httpx.post(
            f"{base}/api/v1/gateways/enroll",
            json={"token": token, "gateway_id": code, "public_key": public_key_text(key)},
            timeout=10,
        ).raise_for_status()
        t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
        expected = 0
        seq = 1
        for attempt, delay in enumerate([0.0, 0.02, 0.05, 0.08, 0.12, 0.2]):
            readings = [
                Reading(
                    seq=seq + i,
                    meter_id=f"m{i % 8}",
                    quantity="1.8.0",
                    ts=t0 + timedelta(seconds=attempt * 10_000 + i // 8),
                    value=float(i),
                )
                for i in range(10_000)
            ]
            batch = Batch(
                gateway_id=code,
                batch_id=uuid.uuid4(),
                first_seq=seq,
                last_seq=seq + 9_999,
                sent_at=datetime.now(UTC),
                readings=readings,
            )
            seq += 10_000
            sealed = seal_batch(batch, key)
            before = count(url)
            sender = subprocess.Popen(  # a separate process, so the kill can land mid-request
                [
                    sys.executable,
                    "-c",
                    "import sys, httpx; httpx.post(sys.argv[1], "
                    "content=open(sys.argv[2],'rb').read(), headers=eval(sys.argv[3]), timeout=30)",
                    f"{base}/api/v1/ingest/batches",
                    str(_write(tmp_path, sealed.body)),
                    repr(sealed.headers),
                ],
                stderr=subprocess.DEVNULL,
            )
            time.sleep(delay)
            process.send_signal(signal.SIGKILL)
            process.wait()
            sender.wait(timeout=30)
            after_kill = count(url)
            assert after_kill in (before, before + 10_000), "a batch was half written"
            process = start(url, port, log)
            response = httpx.post(
                f"{base}/api/v1/ingest/batches",
                content=sealed.body,
                headers=sealed.headers,
                timeout=30,
            )
            assert response.status_code == 200, response.text
            assert response.json()["acked_through_seq"] == batch.last_seq
            expected += 10_000
            assert count(url) == expected
        process.terminate()
        process.wait(timeout=30)


def _write(folder: Path, body: bytes) -> Path:
    path = folder / f"{uuid.uuid4().hex}.bin"
    path.write_bytes(body)
    return path


pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")

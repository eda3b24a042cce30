"""kill -9 of PostgreSQL itself, a dozen times mid-ingest, while gateways sync through two
service processes: every reading lands once, none is lost, and both processes serve on."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg
import pytest
from psycopg.rows import dict_row

from cloud.migrate import migrate
from cloud.services import enrollment, fleet
from shared import Batch, Reading, generate_private_key, public_key_text, seal_batch
from tests.cloud.test_scaleout import launch, stopped_at_end, wait_healthy
from tests.support.clusters import own_cluster
from tests.support.services import free_tcp_port

pytestmark = pytest.mark.slow
GATEWAYS, BATCHES, READINGS, KILLS = 3, 16, 400, 12
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)


async def prepare(url: str) -> list[str]:
    async with await psycopg.AsyncConnection.connect(url, row_factory=dict_row) as conn:
        await migrate(conn)
        await conn.set_autocommit(False)
        await fleet.create_state(conn, code="PK", name="Power cut", actor="test")
        await fleet.create_board(conn, state_code="PK", code="CUT", name="Cut", actor="test")
        tokens = [
            (await enrollment.create_token(conn, board_code="CUT", ttl_s=600, actor="test"))[0]
            for _ in range(GATEWAYS)
        ]
        await conn.commit()
    return tokens


class Gateway(threading.Thread):
    """Sends its batches in order, each until acknowledged, alternating between the service
    processes on every try — as a gateway behind a load balancer would."""

    def __init__(self, number: int, ports: tuple[int, int], progress: threading.Event) -> None:
        super().__init__(daemon=True)
        self.code, self.key, self.ports = f"gw-cut-{number}", generate_private_key(), ports
        self.number, self.progress = number, progress
        self.failures: list[str] = []
        self.acked = 0

    def batches(self) -> list:
        sealed = []
        for b in range(BATCHES):
            first = b * READINGS + 1
            readings = [
                Reading(
                    seq=seq,
                    meter_id=f"m-{self.number}-{seq % 4}",
                    quantity="1.8.0",
                    ts=T0 + timedelta(seconds=seq),
                    value=seq,
                )
                for seq in range(first, first + READINGS)
            ]
            batch = Batch(
                gateway_id=self.code,
                batch_id=uuid.uuid4(),
                first_seq=first,
                last_seq=first + READINGS - 1,
                sent_at=datetime.now(UTC),
                readings=readings,
            )
            sealed.append((batch.last_seq, seal_batch(batch, self.key)))
        return sealed

    def run(self) -> None:
        tries = 0
        for last_seq, sealed in self.batches():
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                port = self.ports[tries % 2]
                tries += 1
                try:
                    response = httpx.post(
                        f"http://127.0.0.1:{port}/api/v1/ingest/batches",
                        content=sealed.body,
                        headers=sealed.headers,
                        timeout=30,
                    )
                except httpx.HTTPError as exc:
                    self.failures.append(type(exc).__name__)
                else:
                    if response.status_code == 200:
                        assert response.json()["acked_through_seq"] == last_seq
                        self.acked += 1
                        self.progress.set()
                        break
                    self.failures.append(str(response.status_code))
                time.sleep(0.2)  # the gateway's back-off before it resends
            else:
                self.failures.append(f"batch through {last_seq} never acknowledged")
                return


def test_postgresql_killed_mid_ingest_loses_and_doubles_nothing(tmp_path: Path) -> None:
    with own_cluster() as cluster:
        tokens = asyncio.run(prepare(cluster.url))
        env = {
            "GRIDGATE_DATABASE_URL": cluster.url,
            "GRIDGATE_DATA_DIR": str(tmp_path / "cloud"),
            "GRIDGATE_JOBS_INTERVAL_S": "1",  # the jobs run through the crashes too
            "GRIDGATE_POOL_MIN_SIZE": "1",
            "GRIDGATE_POOL_MAX_SIZE": "4",
        }
        ports = free_tcp_port(), free_tcp_port()
        logs = tmp_path / "a.log", tmp_path / "b.log"
        processes = [launch(port, log, env) for port, log in zip(ports, logs, strict=True)]
        with stopped_at_end(*processes):
            for process, port, log in zip(processes, ports, logs, strict=True):
                wait_healthy(process, port, log)
            progress = threading.Event()
            gateways = [Gateway(n, ports, progress) for n in range(GATEWAYS)]
            for gateway, token in zip(gateways, tokens, strict=True):
                httpx.post(
                    f"http://127.0.0.1:{ports[gateway.number % 2]}/api/v1/gateways/enroll",
                    json={
                        "token": token,
                        "gateway_id": gateway.code,
                        "public_key": public_key_text(gateway.key),
                    },
                    timeout=30,
                ).raise_for_status()
            for gateway in gateways:
                gateway.start()
            kills = 0
            while kills < KILLS and any(g.is_alive() for g in gateways):
                # a batch acknowledged since the last restart: the gateways are mid-stream
                if not progress.wait(timeout=120):
                    break
                progress.clear()
                cluster.kill()
                kills += 1
                cluster.start()
            for gateway in gateways:
                gateway.join(timeout=600)
            assert kills == KILLS, f"the gateways finished after {kills} kills"
            assert not any(g.is_alive() for g in gateways)
            assert [g.acked for g in gateways] == [BATCHES] * GATEWAYS, [
                g.failures[-5:] for g in gateways
            ]
            with psycopg.connect(cluster.url) as conn:
                total, distinct, value_sum = conn.execute(
                    "SELECT count(*), count(DISTINCT (meter_id, quantity, ts)), sum(value)"
                    " FROM readings"
                ).fetchone()
            sent = BATCHES * READINGS
            assert (total, distinct) == (GATEWAYS * sent, GATEWAYS * sent)
            assert value_sum == GATEWAYS * sent * (sent + 1) // 2
            # the kills were felt (requests refused or cut off), and both processes serve on
            refused = Counter(f for g in gateways for f in g.failures)
            print(f"{kills} kills; tries refused or cut off: {dict(refused)}")  # shown with -s
            assert refused
            for port in ports:
                assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=30).status_code == 200

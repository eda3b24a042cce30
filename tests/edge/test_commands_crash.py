"""kill -9 of the daemon in the middle of a command from the cloud: after the restart the
command is reported as interrupted and is never started again (a real `gridgate cloud serve`, a
real `gridgate edge run`, a simulated meter that takes its time: it does not answer)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import sys
import time
import uuid
from pathlib import Path

import httpx
import psycopg
import pytest

from firmware_sim.clock import SimClock
from firmware_sim.fleet import MeterSpec, build_modbus_meters
from firmware_sim.tcp_server import ModbusTcpServer
from shared import generate_private_key, public_key_text, write_private_key
from tests.cloud.test_crash import prepare, start
from tests.support.services import free_tcp_port, isolated_database
from tests.support.timing import HTTP_TIMEOUT_S

DAEMON = [sys.executable, "-m", "gridgate", "--log-level", "INFO", "edge", "run", "--config"]
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.name != "posix", reason="signals"),
]


def config_text(gateway: str, cloud: str, tcp_port: int) -> str:
    return f"""
[gateway]
id = "{gateway}"
data_dir = "data"

[cloud]
url = "{cloud}"
sync_interval_s = 0.2
retry_max_s = 1
timeout_s = 3

[store]
commit_interval_s = 0.1

[clock]
require_ntp = false

[[buses]]
name = "tcp"
kind = "modbus-tcp"
host = "127.0.0.1"
tcp_port = {tcp_port}

[[buses.meters]]
id = "tcp-1"
unit = 1
profile = "sdm630"
fast_s = 0.5
slow_s = 1.0

[[buses.meters]]
id = "tcp-9"
unit = 9
profile = "sdm630"
fast_s = 60
slow_s = 60
timeout_s = 8
"""


def command_state(store: Path, uid: str) -> dict | None:
    """The gateway's record of the command, read beside the running daemon (WAL)."""
    if not store.exists():
        return None
    with sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=5) as conn:
        try:
            row = conn.execute(
                "SELECT value FROM state WHERE key = ?", (f"command:{uid}",)
            ).fetchone()
        except sqlite3.OperationalError:  # the store is being created
            return None
    return json.loads(row[0]) if row else None


async def until(check, what: str, timeout: float = 90):
    deadline = time.monotonic() + timeout
    while True:
        found = await asyncio.to_thread(check)
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def test_kill_nine_during_a_command_never_runs_it_twice(
    postgres_server: str, tmp_path: Path
) -> None:
    clock = SimClock()
    tcp = ModbusTcpServer(
        build_modbus_meters([MeterSpec(1, "sdm630")], clock, seed=9, turnaround_s=0.002),
        "127.0.0.1",
        0,
    )
    with isolated_database(postgres_server) as url:
        token, code = await prepare(url)
        port = free_tcp_port()
        cloud = await asyncio.to_thread(start, url, port, tmp_path / "cloud.log")
        key = generate_private_key()
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", timeout=HTTP_TIMEOUT_S
        ) as client:
            enrolled = await client.post(
                "/api/v1/gateways/enroll",
                json={"token": token, "gateway_id": code, "public_key": public_key_text(key)},
            )
            assert enrolled.status_code == 201
        write_private_key(tmp_path / "data" / "gateway.key", key)
        (tmp_path / "data" / "cloud.pub").write_text(enrolled.json()["cloud_public_key"])
        uid = str(uuid.uuid4())
        with psycopg.connect(url) as conn:  # the slow meter, assigned, and a read of it queued
            gateway = conn.execute(
                "SELECT id, board_id FROM gateways WHERE gateway_code = %s", (code,)
            ).fetchone()
            meter = conn.execute(
                "INSERT INTO meters (board_id, external_id, gateway_id, model, confirmed_at)"
                " VALUES (%s, 'tcp-9', %s, 'sdm630', now()) RETURNING id",
                (gateway[1], gateway[0]),
            ).fetchone()[0]
            conn.execute(
                "INSERT INTO gateway_commands (uid, gateway_id, board_id, kind, meter_id,"
                " expires_at) VALUES (%s, %s, %s, 'read_now', %s, now() + interval '1 day')",
                (uid, gateway[0], gateway[1], meter),
            )
        await tcp.start()
        config = tmp_path / "edge.toml"
        config.write_text(config_text(code, f"http://127.0.0.1:{port}", tcp.port))
        store = tmp_path / "data" / "edge.sqlite"
        daemon_log = tmp_path / "daemon.log"
        try:
            with daemon_log.open("ab") as sink:
                daemon = await asyncio.create_subprocess_exec(
                    *DAEMON, str(config), stdout=sink, stderr=sink
                )
            started = await until(
                lambda: (command_state(store, uid) or {}).get("started_at"), "the command to start"
            )
            daemon.send_signal(signal.SIGKILL)
            await daemon.wait()
            killed = command_state(store, uid)
            assert killed["started_at"] == started
            assert "finished_at" not in killed, "the read of a silent meter ended too soon"

            with daemon_log.open("ab") as sink:
                daemon = await asyncio.create_subprocess_exec(
                    *DAEMON, str(config), stdout=sink, stderr=sink
                )

            def reported() -> tuple | None:
                with psycopg.connect(url) as conn:
                    row = conn.execute(
                        "SELECT status, detail FROM gateway_commands WHERE uid = %s", (uid,)
                    ).fetchone()
                return row if row[0] != "delivered" else None

            status, detail = await until(reported, "the interrupted command's report")
            daemon.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(daemon.wait(), 60) == 0
        finally:
            await tcp.stop()
            if cloud.poll() is None:
                cloud.terminate()
                await asyncio.to_thread(cloud.wait)
        assert status == "interrupted"
        assert "not run again" in detail
        final = command_state(store, uid)
        assert final["started_at"] == started  # never started a second time
        assert final["outcome"] == "interrupted"
        runs = [
            line
            for line in daemon_log.read_text().splitlines()
            if "running a command" in line and uid in line
        ]
        assert len(runs) == 1, runs
        assert "Traceback" not in daemon_log.read_text()

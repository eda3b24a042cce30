"""kill -9 of the daemon while it applies settings from the cloud: it starts again on the
settings it ran before (never half of the new ones), tries the new version once more from the
start, and after a second kill gives it up and reports it rolled back (a real `gridgate cloud
serve`, a real `gridgate edge run`, a simulated meter; the new bus's meter never answers, so the
apply is still waiting for it when the kill comes)."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
from pathlib import Path

import httpx
import psycopg
import pytest

from edge.config import load_config
from firmware_sim.clock import SimClock
from firmware_sim.fleet import MeterSpec, build_modbus_meters
from firmware_sim.tcp_server import ModbusTcpServer
from shared import generate_private_key, public_key_text, write_private_key
from tests.cloud.test_crash import prepare, start
from tests.edge.test_commands_crash import DAEMON, config_text, until
from tests.support.services import free_tcp_port, isolated_database
from tests.support.timing import HTTP_TIMEOUT_S

pytestmark = pytest.mark.slow


def state(store: Path, key: str) -> dict | None:
    if not store.exists():
        return None
    with sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=5) as conn:
        try:
            row = conn.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        except sqlite3.OperationalError:  # the store is being created
            return None
    return json.loads(row[0]) if row else None


async def test_kill_nine_while_applying_never_leaves_half_a_configuration(
    postgres_server: str, tmp_path: Path
) -> None:
    tcp = ModbusTcpServer(
        build_modbus_meters([MeterSpec(1, "sdm630")], SimClock(), seed=9, turnaround_s=0.002),
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
        await tcp.start()
        config = tmp_path / "edge.toml"
        config.write_text(
            config_text(code, f"http://127.0.0.1:{port}", tcp.port)
            + "\n[remote]\napply_grace_s = 120\n"
        )
        settings = load_config(config).settings().model_dump(mode="json")
        settings["buses"].append(  # a second line whose only meter never answers
            {
                "name": "tcp-2",
                "kind": "modbus-tcp",
                "host": "127.0.0.1",
                "tcp_port": tcp.port,
                "meters": [{"id": "tcp-42", "unit": 42, "profile": "sdm630", "timeout_s": 5}],
            }
        )
        with psycopg.connect(url) as conn:
            gateway_id, board_id = conn.execute(
                "SELECT id, board_id FROM gateways WHERE gateway_code = %s", (code,)
            ).fetchone()
            conn.execute(
                "INSERT INTO gateway_configs (gateway_id, board_id, version, settings)"
                " VALUES (%s, %s, 1, %s)",
                (gateway_id, board_id, json.dumps(settings)),
            )
        store = tmp_path / "data" / "edge.sqlite"
        daemon_log = tmp_path / "daemon.log"

        async def run_daemon() -> asyncio.subprocess.Process:
            with daemon_log.open("ab") as sink:
                return await asyncio.create_subprocess_exec(
                    *DAEMON, str(config), stdout=sink, stderr=sink
                )

        try:
            for attempt in (1, 2):
                daemon = await run_daemon()
                await until(
                    lambda n=attempt: (state(store, "config:candidate") or {}).get("attempts") == n,
                    f"attempt {attempt} at the new settings",
                )
                daemon.send_signal(signal.SIGKILL)
                await daemon.wait()
                assert state(store, "config:good") is None  # never recorded as running

            daemon = await run_daemon()

            def reported() -> tuple | None:
                with psycopg.connect(url) as conn:
                    row = conn.execute(
                        "SELECT c.status, c.detail, g.config_version, g.config_settings"
                        " FROM gateway_configs c JOIN gateways g ON g.id = c.gateway_id"
                        " WHERE c.gateway_id = %s AND c.version = 1",
                        (gateway_id,),
                    ).fetchone()
                return row if row[0] == "rolled_back" else None

            _, detail, running, running_settings = await until(
                reported, "the version reported rolled back", timeout=120
            )
            daemon.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(daemon.wait(), 60) == 0
        finally:
            await tcp.stop()
            if cloud.poll() is None:
                cloud.terminate()
                await asyncio.to_thread(cloud.wait)
        assert "stopped 2 times while applying it" in detail
        assert running == 0  # its own file, whole
        assert [b["name"] for b in running_settings["buses"]] == ["tcp"]
        assert state(store, "config:candidate") is None
        assert state(store, "config:good") is None
        log = daemon_log.read_text()
        assert log.count("applying a configuration from the cloud") == 2
        assert "Traceback" not in log

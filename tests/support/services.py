"""Real PostgreSQL and MQTT brokers for tests: the configured ones, else embedded ones.

`GRIDGATE_TEST_DATABASE_URL` / `GRIDGATE_TEST_MQTT_URL` name running services (CI sets them);
without them an embedded PostgreSQL (pgserver) and an embedded broker (amqtt) are started, so
the suite runs on a fresh machine with no services. Each test session gets its own database and
its own MQTT topic prefix, so parallel sessions never see each other's data.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from protocols.mqtt.embedded_broker import embedded_broker_thread, free_port


def free_tcp_port() -> int:
    """A port the OS says is free now; never a fixed well-known one."""
    return free_port()


@contextmanager
def postgres_server_url(data_dir: Path) -> Iterator[str]:
    """URL of a PostgreSQL server: the configured one, else an embedded pgserver."""
    configured = os.environ.get("GRIDGATE_TEST_DATABASE_URL")
    if configured:
        yield configured
        return
    import pgserver

    server = pgserver.get_server(str(data_dir), cleanup_mode="stop")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()


def _with_database(url: str, database: str) -> str:
    """`url` with its database replaced; handles both `host=/socket` query and host:port forms."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


@contextmanager
def isolated_database(server_url: str) -> Iterator[str]:
    """Create a fresh database on the server for this session and drop it afterwards."""
    name = f"gridgate_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield _with_database(server_url, name)
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@dataclass(frozen=True)
class MqttBroker:
    host: str
    port: int
    topic_prefix: str  # unique per test session; every test topic starts with it

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"


@contextmanager
def mqtt_broker() -> Iterator[MqttBroker]:
    """A real MQTT broker: the configured one, else an embedded amqtt broker on a free port."""
    prefix = f"gridgate-test/{uuid.uuid4().hex[:12]}"
    configured = os.environ.get("GRIDGATE_TEST_MQTT_URL")
    if configured:
        parts = urlsplit(configured)
        yield MqttBroker(parts.hostname or "127.0.0.1", parts.port or 1883, prefix)
        return
    with embedded_broker_thread() as port:
        yield MqttBroker("127.0.0.1", port, prefix)

"""Session-wide real services: a PostgreSQL database and an MQTT broker (see tests/support).

hypothesis is imported here, at collection, because its pytest plugin otherwise imports it
lazily in the terminal summary, where CPython 3.11.7's ast.parse can fail with "AST constructor
recursion depth mismatch" (gh-106905) after asyncio-heavy tests.
"""

from __future__ import annotations

from collections.abc import Iterator

import hypothesis  # noqa: F401  (imported at collection: see below)
import pytest

from tests.support.services import (
    MqttBroker,
    isolated_database,
    mqtt_broker,
    postgres_server_url,
)


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a running PostgreSQL server (configured, else embedded)."""
    with postgres_server_url(tmp_path_factory.mktemp("pgdata")) as url:
        yield url


@pytest.fixture(scope="session")
def database_url(postgres_server: str) -> Iterator[str]:
    """URL of an empty database created for this test session and dropped after it."""
    with isolated_database(postgres_server) as url:
        yield url


@pytest.fixture(scope="session")
def mqtt(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MqttBroker]:
    """A real MQTT broker (configured, else embedded) and a topic prefix unique to this session."""
    with mqtt_broker() as broker:
        yield broker

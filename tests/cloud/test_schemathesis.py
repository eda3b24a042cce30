"""schemathesis against the served OpenAPI schema, as a super admin: no input makes a 5xx."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from psycopg.rows import dict_row
from schemathesis.checks import not_a_server_error

from cloud.migrate import migrate
from cloud.services import auth, fleet
from tests.support.services import free_tcp_port, isolated_database

PASSWORD = "correct horse battery"


async def _admin(url: str) -> None:
    async with await psycopg.AsyncConnection.connect(url, row_factory=dict_row) as conn:
        await migrate(conn)
        await conn.set_autocommit(False)
        await auth.create_user(
            conn, email="root@example.in", password=PASSWORD, role="SUPER_ADMIN", actor="test"
        )
        # a consumer who allows automatic answers, for the routes only a consumer reaches
        await fleet.create_state(conn, code="FZ", name="Fuzz state", actor="test")
        board = await fleet.create_board(
            conn, state_code="FZ", code="FZB", name="Fuzz board", actor="test"
        )
        cursor = await conn.execute(
            "INSERT INTO consumers (board_id, account_no, name) VALUES (%s, 'FZ-1', 'Fuzz')"
            " RETURNING id",
            (board["id"],),
        )
        consumer = (await cursor.fetchone())["id"]
        user = await auth.create_user(
            conn,
            email="consumer@example.in",
            password=PASSWORD,
            role="CONSUMER",
            consumer_id=consumer,
            actor="test",
        )
        await conn.execute(
            "INSERT INTO consents (user_id, consumer_id, kind, granted)"
            " VALUES (%s, %s, 'automated_support', true)",
            (user["id"], consumer),
        )
        await conn.commit()


@pytest.fixture(scope="module")
def served(
    postgres_server: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, dict[str, str]]]:
    """(base URL, access tokens of a super admin and a consumer) of a real `gridgate cloud
    serve` on a fresh database."""
    with isolated_database(postgres_server) as url:
        asyncio.run(_admin(url))
        port = free_tcp_port()
        log = tmp_path_factory.mktemp("schemathesis") / "cloud.log"
        env = {
            **os.environ,
            "GRIDGATE_DATABASE_URL": url,
            "GRIDGATE_PORT": str(port),
            "GRIDGATE_DATA_DIR": str(log.parent),
            # every generated case reaches its route (the limits have their own tests)
            "GRIDGATE_RATE_LIMIT_PER_USER": "0",
            "GRIDGATE_API_KEYS_PER_USER": "1000",
            # the payment webhook checks what it is sent (unset, it answers 503 to everything)
            "GRIDGATE_PAYMENT_WEBHOOK_SECRET": "a-webhook-secret-the-fuzzer-does-not-know",
        }
        with Path(log).open("w") as sink:
            process = subprocess.Popen(
                [sys.executable, "-m", "gridgate", "--log-level", "WARNING", "cloud", "serve"],
                env=env,
                stdout=sink,
                stderr=sink,
            )
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(150):
                try:
                    if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
            tokens = {
                who: httpx.post(
                    f"{base}/api/v1/auth/login",
                    json={"email": f"{who}@example.in", "password": PASSWORD},
                ).json()["access_token"]
                for who in ("root", "consumer")
            }
            yield base, tokens
        finally:
            process.terminate()
            process.wait(timeout=30)
            assert "Traceback" not in log.read_text(), log.read_text()[-3000:]


def fuzz(base: str, token: str, wanted: Callable[[str], bool]) -> int:
    """Up to 30 generated cases (GRIDGATE_FUZZ_EXAMPLES) for each operation whose path is
    `wanted`; how many were sent (schemathesis's pytest plugin, 4.32, does not load lazily
    under pytest 9, so its strategies are driven here directly)."""
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    calls = 0
    for operation in operations:
        if not wanted(operation.path):
            continue
        if operation.path == "/api/v1/auth/login":
            continue  # generated logins would only trip the (tested) rate limit
        if operation.path in ("/api/v1/alerts/stream", "/api/v1/notifications/stream"):
            continue  # a stream never ends; test_alerts and test_notifications read them

        @given(case=operation.as_strategy())
        @settings(
            max_examples=int(os.environ.get("GRIDGATE_FUZZ_EXAMPLES", "30")),
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: schemathesis.Case) -> None:
            nonlocal calls
            calls += 1
            case.call_and_validate(
                base_url=base,
                timeout=60,
                headers={"Authorization": f"Bearer {token}"},
                checks=[not_a_server_error],
            )

        check()
    return calls


@pytest.mark.slow
def test_no_input_makes_a_server_error(served: tuple[str, dict[str, str]]) -> None:
    """Every operation, as a super admin."""
    base, tokens = served
    calls = fuzz(base, tokens["root"], lambda path: True)
    assert calls >= 100  # the cases were really generated and sent


@pytest.mark.slow
def test_no_consumer_input_to_the_support_desk_makes_a_server_error(
    served: tuple[str, dict[str, str]],
) -> None:
    """The support desk and the inbox as a consumer who allows automatic answers: generated
    queries are opened, classified and drafted for real."""
    base, tokens = served
    calls = fuzz(
        base,
        tokens["consumer"],
        lambda path: path.startswith(("/api/v1/support", "/api/v1/notifications")),
    )
    assert calls >= 30

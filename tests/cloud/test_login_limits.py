"""Login limits hold at exactly the configured numbers — sequential or concurrent, with any pool
size, across two server processes — and an attacker's failures do not lock the owner out.

Regression: the attempt row was written inside the request's transaction and rolled back with
the 401, so with a pool of 4 the first 429 came at the 20th wrong password instead of the 6th.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cloud.services import auth
from tests.cloud.conftest import Cloud, client_from, open_cloud, random_address
from tests.support.services import free_tcp_port

PASSWORD = "correct horse battery"
WRONG = "not the password at all"


async def make_user(cloud: Cloud, board: str) -> str:
    email = f"{uuid.uuid4().hex[:10]}@example.in"
    async with cloud.pool.connection() as conn:
        await auth.create_user(
            conn, email=email, password=PASSWORD, role="BOARD_ADMIN", board_code=board, actor="t"
        )
    return email


async def attempt(client: httpx.AsyncClient, email: str, password: str = WRONG) -> int:
    response = await client.post("/api/v1/auth/login", json={"email": email, "password": password})
    return response.status_code


@pytest.mark.parametrize("pool_size", [1, 4, 16])
async def test_the_limit_holds_exactly_with_any_pool_size(
    database_url: str, tmp_path: Path, board: str, pool_size: int
) -> None:
    """Twelve wrong passwords at once: five are checked (401), seven refused (429); then the
    right password is refused too, from that address."""
    async with open_cloud(
        database_url, tmp_path / "c", pool_max_size=pool_size, pool_min_size=1
    ) as cloud:
        email = await make_user(cloud, board)
        codes = await asyncio.gather(*(attempt(cloud.client, email) for _ in range(12)))
        assert Counter(codes) == {401: 5, 429: 7}
        assert await attempt(cloud.client, email, PASSWORD) == 429
        sequential = await make_user(cloud, board)
        codes = [await attempt(cloud.client, sequential) for _ in range(7)]
        assert codes == [401] * 5 + [429] * 2


async def test_the_address_limit_holds_exactly(cloud: Cloud, board: str) -> None:
    """Credential stuffing: one address trying many accounts is refused after 20 failures."""
    emails = [await make_user(cloud, board) for _ in range(6)]
    codes = await asyncio.gather(*(attempt(cloud.client, emails[i % 6]) for i in range(26)))
    assert Counter(codes) == {401: 20, 429: 6}


async def test_an_attacker_does_not_lock_the_owner_out(
    database_url: str, tmp_path: Path, board: str
) -> None:
    async with open_cloud(
        database_url, tmp_path / "c", login_failures_per_account=8, login_slowdown_s=300
    ) as cloud:
        email = await make_user(cloud, board)
        app = cloud.client._transport.app  # type: ignore[attr-defined]
        owner_address = random_address()
        async with client_from(app, owner_address) as owner:
            assert await attempt(owner, email, PASSWORD) == 200  # the owner's usual address
            for _ in range(3):  # a botnet: three addresses, each up to its own limit
                async with client_from(app, random_address()) as attacker:
                    codes = [await attempt(attacker, email) for _ in range(6)]
                    assert codes[-1] == 429
            async with client_from(app, random_address()) as newcomer:
                slowed = await newcomer.post(
                    "/api/v1/auth/login", json={"email": email, "password": WRONG}
                )
                assert slowed.status_code == 429
                assert "try again in" in slowed.json()["detail"]
                assert int(slowed.headers["retry-after"]) > 0
            assert await attempt(owner, email, PASSWORD) == 200


async def test_a_busy_address_still_lets_in_the_accounts_that_use_it(
    cloud: Cloud, board: str
) -> None:
    """People behind one NAT share an address: stuffing from it must not lock out the owners
    who sign in from it every day (an account that never signed in from it is refused)."""
    regular = await make_user(cloud, board)
    app = cloud.client._transport.app  # type: ignore[attr-defined]
    async with client_from(app, random_address()) as office:
        assert await attempt(office, regular, PASSWORD) == 200
        for n in range(20):
            assert await attempt(office, f"nobody{n}@example.in") == 401
        assert await attempt(office, "nobody-else@example.in") == 429
        assert await attempt(office, regular, PASSWORD) == 200
        stranger = await make_user(cloud, board)
        assert await attempt(office, stranger, PASSWORD) == 429


def _serve(url: str, data_dir: Path, log: Path) -> tuple[subprocess.Popen, str]:
    port = free_tcp_port()
    env = {
        **os.environ,
        "GRIDGATE_DATABASE_URL": url,
        "GRIDGATE_PORT": str(port),
        "GRIDGATE_DATA_DIR": str(data_dir),
        "GRIDGATE_JOBS_INTERVAL_S": "0",
    }
    with log.open("w") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "gridgate", "--log-level", "WARNING", "cloud", "serve"],
            env=env,
            stdout=sink,
            stderr=sink,
        )
    return process, f"http://127.0.0.1:{port}"


def _healthy(base: str) -> bool:
    try:
        return httpx.get(f"{base}/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture
def two_servers(database_url: str, tmp_path: Path) -> Iterator[list[str]]:
    """Two `gridgate cloud serve` processes on one database (and one JWT secret)."""
    started = [
        _serve(database_url, tmp_path / "data", tmp_path / f"server{n}.log") for n in range(2)
    ]
    try:
        for n, (process, base) in enumerate(started):
            while not _healthy(base):
                assert process.poll() is None, (tmp_path / f"server{n}.log").read_text()[-2000:]
        yield [base for _, base in started]
    finally:
        for process, _ in started:
            process.terminate()
            process.wait(timeout=30)


async def test_the_limit_holds_across_two_server_processes(
    cloud: Cloud, board: str, two_servers: list[str]
) -> None:
    email = await make_user(cloud, board)
    clients = [httpx.AsyncClient(base_url=base, timeout=30) for base in two_servers]
    try:
        codes = await asyncio.gather(*(attempt(clients[i % 2], email) for i in range(12)))
    finally:
        for client in clients:
            await client.aclose()
    assert Counter(codes) == {401: 5, 429: 7}

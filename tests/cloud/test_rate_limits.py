"""Rate limits hold at exactly their configured numbers — per API key, per user (sessions and
keys together), per client address without credentials — concurrently and across two server
processes; the request over a limit gets 429 with Retry-After; ingest, /health, /metrics and
static files are never counted.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.cloud.conftest import Cloud, client_from, open_cloud, random_address
from tests.cloud.test_api_keys import bearer, new_key, signed_in
from tests.cloud.test_login_limits import _healthy
from tests.support.services import free_tcp_port

HOUR = 3600  # windows longer than any test, so none ends during one


async def codes_of(requests) -> Counter:
    return Counter(r.status_code for r in await asyncio.gather(*requests))


def assert_refused(response: httpx.Response) -> None:
    assert response.status_code == 429
    assert 0 < int(response.headers["retry-after"]) <= HOUR
    assert "try again in" in response.json()["detail"]


@pytest.fixture
async def limited(database_url: str, tmp_path: Path):
    async with open_cloud(
        database_url,
        tmp_path / "limited",
        rate_limit_window_s=HOUR,
        rate_limit_per_key=5,
        rate_limit_per_user=10,
        rate_limit_per_address=4,
    ) as cloud:
        yield cloud


async def test_a_key_gets_exactly_its_limit(limited: Cloud, board: str) -> None:
    _, owner = await signed_in(limited, "BOARD_ADMIN", board_code=board)  # user: 1
    key = bearer((await new_key(limited, owner, ["board:read"]))["key"])  # user: 2
    codes = await codes_of(limited.client.get("/api/v1/boards", headers=key) for _ in range(7))
    assert codes == {200: 5, 429: 2}
    assert_refused(await limited.client.get("/api/v1/boards", headers=key))
    # every request counts against the user, refused ones too: the owner's session has
    # 10 - 1 (the key's creation) - 8 (the key's requests) = 1 left
    assert (await limited.client.get("/api/v1/boards", headers=owner)).status_code == 200
    over = await limited.client.get("/api/v1/boards", headers=owner)
    assert_refused(over)
    assert "your account" in over.json()["detail"]


async def test_requests_without_credentials_count_per_address(limited: Cloud) -> None:
    app = limited.client._transport.app  # type: ignore[attr-defined]
    async with client_from(app, random_address()) as stranger:
        codes = await codes_of(stranger.get("/api/v1/auth/me") for _ in range(6))
        assert codes == {401: 4, 429: 2}
        bad_key = bearer("ggk_0123456789abcdef_" + "A" * 43)
        assert_refused(await stranger.get("/api/v1/boards", headers=bad_key))
        for _ in range(6):  # never counted
            assert (await stranger.get("/health")).status_code == 200
            assert (await stranger.get("/dashboard/static/style.css")).status_code == 200
            ingest = await stranger.post("/api/v1/ingest/batches", content=b"{}")
            assert ingest.status_code != 429
    async with client_from(app, random_address()) as neighbour:
        assert (await neighbour.get("/api/v1/auth/me")).status_code == 401


def _serve(url: str, data_dir: Path, log: Path) -> tuple[subprocess.Popen, str]:
    port = free_tcp_port()
    env = {
        **os.environ,
        "GRIDGATE_DATABASE_URL": url,
        "GRIDGATE_PORT": str(port),
        "GRIDGATE_DATA_DIR": str(data_dir),
        "GRIDGATE_JOBS_INTERVAL_S": "0",
        "GRIDGATE_RATE_LIMIT_WINDOW_S": str(HOUR),
        "GRIDGATE_RATE_LIMIT_PER_KEY": "7",
        "GRIDGATE_RATE_LIMIT_PER_ADDRESS": "5",
    }
    with log.open("w") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "gridgate", "--log-level", "INFO", "cloud", "serve"],
            env=env,
            stdout=sink,
            stderr=sink,
        )
    return process, f"http://127.0.0.1:{port}"


@pytest.fixture
def two_limited_servers(database_url: str, tmp_path: Path) -> Iterator[list[str]]:
    """Two `gridgate cloud serve` processes on one database, with small limits."""
    logs = [tmp_path / f"server{n}.log" for n in range(2)]
    started = [_serve(database_url, tmp_path / "data", log) for log in logs]
    try:
        for log, (process, base) in zip(logs, started, strict=True):
            while not _healthy(base):
                assert process.poll() is None, log.read_text()[-2000:]
        yield [base for _, base in started]
    finally:
        for process, _ in started:
            process.terminate()
            process.wait(timeout=30)


async def test_the_limits_hold_across_two_server_processes(
    cloud: Cloud, board: str, two_limited_servers: list[str], tmp_path: Path
) -> None:
    _, owner = await signed_in(cloud, "BOARD_ADMIN", board_code=board)
    created = await new_key(cloud, owner, ["board:read"])
    key = bearer(created["key"])
    clients = [httpx.AsyncClient(base_url=base, timeout=30) for base in two_limited_servers]
    try:
        responses = await asyncio.gather(
            *(clients[i % 2].get("/api/v1/boards", headers=key) for i in range(12))
        )
        assert Counter(r.status_code for r in responses) == {200: 7, 429: 5}
        for response in responses:
            if response.status_code == 429:
                assert_refused(response)
        via_proxy = {"X-Forwarded-For": random_address()}  # the servers believe 127.0.0.1
        anonymous = await asyncio.gather(
            *(clients[i % 2].get("/api/v1/auth/me", headers=via_proxy) for i in range(9))
        )
        assert Counter(r.status_code for r in anonymous) == {401: 5, 429: 4}
    finally:
        for client in clients:
            await client.aclose()
    logs = "".join((tmp_path / f"server{n}.log").read_text() for n in range(2))
    assert created["key"].split("_", 2)[2] not in logs

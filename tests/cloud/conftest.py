"""The cloud app on the session's real PostgreSQL (in-process, over ASGI) and fleet helpers."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import uvicorn
from psycopg_pool import AsyncConnectionPool

from cloud.app import create_app
from cloud.services import auth, enrollment, fleet
from cloud.settings import CloudSettings
from shared import PrivateKey, generate_private_key, public_key_text
from tests.support.services import free_tcp_port

METRICS_TOKEN = "scraper-token-for-the-tests"


@dataclass
class Cloud:
    client: httpx.AsyncClient
    pool: AsyncConnectionPool


@dataclass
class EnrolledGateway:
    code: str
    board: str
    key: PrivateKey
    cloud_key: str = ""  # the cloud's public key, as enrollment gives it


def quiet_outboxes(database_url: str) -> None:
    """Messages earlier tests left waiting (every test shares the session's database) are
    settled before a test starts a sender: its own mail is not queued behind hundreds of digests
    to other tests' people, and no other test's mail reaches its server."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        for table in ("email_outbox", "sms_outbox"):
            # not migrated yet: nothing waits
            with contextlib.suppress(psycopg.errors.UndefinedTable):
                conn.execute(
                    f"UPDATE {table} SET status = 'failed', last_error = 'left by an earlier test'"
                    " WHERE status IN ('pending', 'sending')"
                )


@contextlib.asynccontextmanager
async def open_cloud(
    database_url: str, data_dir: Path, **overrides: object
) -> AsyncIterator[Cloud]:
    """The app on the session's database, in-process, with settings of the test's choosing;
    its client calls from an address of its own (`client_from` gives more)."""
    if overrides.get("smtp_url") or overrides.get("sms_webhook_url"):
        quiet_outboxes(database_url)
    settings = CloudSettings(
        **{
            "database_url": database_url,
            "data_dir": data_dir,
            "pool_min_size": 1,
            "pool_max_size": 4,
            "jobs_interval_s": 0,
            "metrics_token": METRICS_TOKEN,
            **overrides,
        }
    )
    app = create_app(settings, database_url)
    async with app.router.lifespan_context(app), client_from(app, random_address()) as client:
        yield Cloud(client, app.state.pool)


def random_address() -> str:
    """A client address of this test's own, so per-address login limits stay per test."""
    return "10." + ".".join(str(b) for b in uuid.uuid4().bytes[:3])


def client_from(app, address: str, *, scheme: str = "http") -> httpx.AsyncClient:
    """A client of the in-process app whose requests come from `address`."""
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url=f"{scheme}://cloud")


@pytest.fixture
async def cloud(database_url: str, tmp_path: Path) -> AsyncIterator[Cloud]:
    async with open_cloud(database_url, tmp_path / "cloud") as opened:
        yield opened


@pytest.fixture
async def board(cloud: Cloud) -> str:
    """A fresh board under the shared test state; its code is unique to this test."""
    letters = "".join(chr(ord("A") + int(c, 16) % 26) for c in uuid.uuid4().hex[:8])
    async with cloud.pool.connection() as conn:
        cursor = await conn.execute("SELECT 1 FROM states WHERE code = 'TS'")
        if await cursor.fetchone() is None:
            await fleet.create_state(conn, code="TS", name="Test state", actor="test")
        code = f"B-{letters}"
        await fleet.create_board(
            conn, state_code="TS", code=code, name=f"Board {letters}", actor="test"
        )
    return code


STAFF_PASSWORD = "correct horse battery"


async def staff_token(cloud: Cloud, board: str, role: str = "BOARD_ADMIN") -> str:
    """An access token of a new user with `role` on `board`."""
    email = f"{role.lower()}-{uuid.uuid4().hex[:8]}@example.in"
    async with cloud.pool.connection() as conn:
        await auth.create_user(
            conn, email=email, password=STAFF_PASSWORD, role=role, board_code=board, actor="t"
        )
    response = await cloud.client.post(
        "/api/v1/auth/login", json={"email": email, "password": STAFF_PASSWORD}
    )
    return response.json()["access_token"]


async def staff_headers(cloud: Cloud, board: str, role: str = "BOARD_ADMIN") -> dict[str, str]:
    return {"Authorization": f"Bearer {await staff_token(cloud, board, role)}"}


async def enroll_gateway(cloud: Cloud, board: str) -> EnrolledGateway:
    key = generate_private_key()
    code = f"gw-{uuid.uuid4().hex[:8]}"
    async with cloud.pool.connection() as conn:
        token, _ = await enrollment.create_token(conn, board_code=board, ttl_s=600, actor="test")
    response = await cloud.client.post(
        "/api/v1/gateways/enroll",
        json={"token": token, "gateway_id": code, "public_key": public_key_text(key)},
    )
    assert response.status_code == 201, response.text
    return EnrolledGateway(code, board, key, response.json()["cloud_public_key"])


@pytest.fixture
async def gateway(cloud: Cloud, board: str) -> EnrolledGateway:
    return await enroll_gateway(cloud, board)


@pytest.fixture
async def served(database_url: str, tmp_path):
    """The app on a real port (httpx's in-process transport cannot stream); it shares the
    in-process app's data directory, so the same tokens are valid on both."""
    settings = CloudSettings(
        data_dir=tmp_path / "cloud",
        database_url=database_url,
        pool_min_size=1,
        pool_max_size=4,
        jobs_interval_s=0,
    )
    port = free_tcp_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, database_url), host="127.0.0.1", port=port, log_config=None
        )
    )
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn offers no event to await
        await asyncio.sleep(0.05)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
        yield client
    server.should_exit = True
    await task


@dataclass
class Served:
    client: httpx.AsyncClient
    app: Any
    pool: AsyncConnectionPool


@pytest.fixture
async def served_app(database_url: str, tmp_path: Path) -> AsyncIterator[Served]:
    """The app on a real port (the alert stream needs one), with its pool for the world."""
    settings = CloudSettings(
        database_url=database_url,
        data_dir=tmp_path / "cloud",
        pool_min_size=1,
        pool_max_size=8,
        jobs_interval_s=0,
    )
    app = create_app(settings, database_url)
    port = free_tcp_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None))
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn offers no event to await
        await asyncio.sleep(0.05)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
        yield Served(client, app, app.state.pool)
    server.should_exit = True
    await task


async def outbox_link_token(pool: AsyncConnectionPool, address: str) -> str:
    """The token of the latest link e-mailed to `address`, read from the outbox (with no SMTP
    server configured, messages wait there with their bodies)."""
    async with pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT body_text FROM email_outbox WHERE to_address = %s AND body_text LIKE %s"
            " ORDER BY id DESC LIMIT 1",
            (address.lower(), "%token=%"),
        )
        row = await cursor.fetchone()
    assert row is not None, f"no link was e-mailed to {address}"
    match = re.search(r"token=([A-Za-z0-9_-]+)", row["body_text"])
    assert match is not None
    return match.group(1)


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if os.environ.get("GRIDGATE_REQUIRE_BROWSER"):
            pytest.fail("chromium is required (apt-get install chromium)")
        pytest.skip("no chromium on this machine (apt-get install chromium)")
    return path


BROWSER_WAIT_MS = 120_000


@pytest.fixture
async def browser() -> AsyncIterator:
    from playwright.async_api import async_playwright

    executable = chromium()
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=executable,
            args=["--no-sandbox", "--disable-background-networking", "--disable-component-update"],
        )
        opened = launched.new_context

        async def new_context(*args, **kwargs):
            """A context whose waits allow for a loaded machine (Playwright's 30 s default was
            met by a sign-up's password hashing next to two busy cores): a wait still ends on
            the event it waits for, only its give-up point moves."""
            context = await opened(*args, **kwargs)
            context.set_default_timeout(BROWSER_WAIT_MS)
            context.set_default_navigation_timeout(BROWSER_WAIT_MS)
            return context

        launched.new_context = new_context
        yield launched
        await launched.close()

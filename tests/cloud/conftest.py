"""The cloud app on the session's real PostgreSQL (in-process, over ASGI) and fleet helpers."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from psycopg_pool import AsyncConnectionPool

from cloud.app import create_app
from cloud.services import enrollment, fleet
from cloud.settings import CloudSettings
from shared import generate_private_key, public_key_text
from tests.support.services import free_tcp_port


@dataclass
class Cloud:
    client: httpx.AsyncClient
    pool: AsyncConnectionPool


@dataclass
class EnrolledGateway:
    code: str
    board: str
    key: Ed25519PrivateKey


@pytest.fixture
async def cloud(database_url: str, tmp_path: Path) -> AsyncIterator[Cloud]:
    settings = CloudSettings(
        database_url=database_url,
        data_dir=tmp_path / "cloud",
        pool_min_size=1,
        pool_max_size=4,
        jobs_interval_s=0,
    )
    app = create_app(settings, database_url)
    async with app.router.lifespan_context(app):
        # each test calls from its own address, so per-address login limits stay per test
        address = ".".join(str(b) for b in uuid.uuid4().bytes[:3])
        transport = httpx.ASGITransport(app=app, client=(f"10.{address}", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://cloud") as client:
            yield Cloud(client, app.state.pool)


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
    return EnrolledGateway(code, board, key)


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

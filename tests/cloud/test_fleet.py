"""RBAC and scope over the fleet API: every role against every endpoint, BOLA, mass assignment."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest

from cloud.permissions import ROLE_PERMISSIONS, Permission
from cloud.services import auth, fleet
from tests.cloud.conftest import Cloud

PASSWORD = "correct horse battery"


@dataclass
class World:
    board_a: int
    board_b: int
    consumer_a: int
    consumer_a2: int
    consumer_b: int
    tokens: dict[str, str]  # role -> access token (scoped to board A / state TS / consumer_a)


async def _consumer(cloud: Cloud, board_id: int, account: str) -> int:
    async with cloud.pool.connection() as conn:
        cursor = await conn.execute(
            "INSERT INTO consumers (board_id, account_no, name) VALUES (%s, %s, %s) RETURNING id",
            (board_id, account, f"Consumer {account}"),
        )
        row = await cursor.fetchone()
        await conn.commit()
        return row["id"]


@pytest.fixture
async def world(cloud: Cloud) -> World:
    tag = uuid.uuid4().hex[:6].upper()
    state_code = "TS"  # the shared test state: its admin sees other tests' boards too
    async with cloud.pool.connection() as conn:
        cursor = await conn.execute("SELECT 1 FROM states WHERE code = %s", (state_code,))
        if await cursor.fetchone() is None:
            await fleet.create_state(conn, code=state_code, name="Test state", actor="test")
        a = await fleet.create_board(
            conn, state_code=state_code, code=f"A-{tag}", name="A", actor="test"
        )
        b = await fleet.create_board(
            conn, state_code=state_code, code=f"B-{tag}", name="B", actor="test"
        )
    consumer_a = await _consumer(cloud, a["id"], f"A1-{tag}")
    consumer_a2 = await _consumer(cloud, a["id"], f"A2-{tag}")
    consumer_b = await _consumer(cloud, b["id"], f"B1-{tag}")
    tokens = {}
    for role in ROLE_PERMISSIONS:
        email = f"{role.lower()}-{tag}@example.in"
        scope = {
            "STATE_ADMIN": {"state_code": state_code},
            "CONSUMER": {"consumer_id": consumer_a},
        }.get(role, {})
        if role not in ("SUPER_ADMIN", "STATE_ADMIN", "CONSUMER"):
            scope = {"board_code": f"A-{tag}"}
        async with cloud.pool.connection() as conn:
            await auth.create_user(
                conn, email=email, password=PASSWORD, role=role, actor="test", **scope
            )
        response = await cloud.client.post(
            "/api/v1/auth/login", json={"email": email, "password": PASSWORD}
        )
        tokens[role] = response.json()["access_token"]
    return World(a["id"], b["id"], consumer_a, consumer_a2, consumer_b, tokens)


def as_role(world: World, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {world.tokens[role]}"}


ENDPOINTS = [
    ("GET", "/api/v1/consumers", Permission.CONSUMER_READ),
    ("GET", "/api/v1/consumers/{consumer_a}", Permission.CONSUMER_READ),
    ("POST", "/api/v1/consumers", Permission.CONSUMER_CREATE),
    ("PATCH", "/api/v1/consumers/{consumer_a}", Permission.CONSUMER_UPDATE),
    ("GET", "/api/v1/meters", Permission.METER_READ),
    ("GET", "/api/v1/gateways", Permission.GATEWAY_READ),
]


@pytest.mark.parametrize("role", list(ROLE_PERMISSIONS))
async def test_every_role_against_every_endpoint(cloud: Cloud, world: World, role: str) -> None:
    for method, template, permission in ENDPOINTS:
        url = template.format(consumer_a=world.consumer_a)
        body = None
        if method == "POST":
            body = {"board_id": world.board_a, "account_no": f"N-{role}", "name": "New"}
        elif method == "PATCH":
            body = {"name": f"Renamed by {role}"}
        response = await cloud.client.request(method, url, json=body, headers=as_role(world, role))
        allowed = permission in ROLE_PERMISSIONS[role]
        if allowed:
            assert response.status_code in (200, 201), (role, method, url, response.text)
        else:
            assert response.status_code == 403, (role, method, url, response.text)
            assert permission.value in response.json()["detail"]


async def test_a_board_admin_cannot_reach_another_board(cloud: Cloud, world: World) -> None:
    headers = as_role(world, "BOARD_ADMIN")
    other = world.consumer_b
    assert (
        await cloud.client.get(f"/api/v1/consumers/{other}", headers=headers)
    ).status_code == 404
    patch = await cloud.client.patch(
        f"/api/v1/consumers/{other}", json={"name": "x"}, headers=headers
    )
    assert patch.status_code == 404
    listed = await cloud.client.get(f"/api/v1/consumers?board_id={world.board_b}", headers=headers)
    assert listed.json()["total"] == 0
    everything = await cloud.client.get("/api/v1/consumers?limit=200", headers=headers)
    assert {c["board_id"] for c in everything.json()["items"]} == {world.board_a}
    create = await cloud.client.post(
        "/api/v1/consumers",
        headers=headers,
        json={"board_id": world.board_b, "account_no": "SNEAK", "name": "Sneak"},
    )
    assert create.status_code == 404
    async with cloud.pool.connection() as conn:
        cursor = await conn.execute("SELECT name FROM consumers WHERE id = %s", (other,))
        assert (await cursor.fetchone())["name"].startswith("Consumer")


async def test_a_state_admin_sees_both_boards(cloud: Cloud, world: World) -> None:
    response = await cloud.client.get(
        "/api/v1/consumers?limit=200", headers=as_role(world, "STATE_ADMIN")
    )
    assert {world.board_a, world.board_b} <= {c["board_id"] for c in response.json()["items"]}


async def test_a_consumer_sees_only_itself(cloud: Cloud, world: World) -> None:
    headers = as_role(world, "CONSUMER")
    listed = await cloud.client.get("/api/v1/consumers", headers=headers)
    assert [c["id"] for c in listed.json()["items"]] == [world.consumer_a]
    neighbour = await cloud.client.get(f"/api/v1/consumers/{world.consumer_a2}", headers=headers)
    assert neighbour.status_code == 404


async def test_mass_assignment_and_bounds_are_refused(cloud: Cloud, world: World) -> None:
    headers = as_role(world, "BOARD_ADMIN")
    sneaky = await cloud.client.patch(
        f"/api/v1/consumers/{world.consumer_a}", headers=headers, json={"board_id": world.board_b}
    )
    assert sneaky.status_code == 422
    assert "board_id" in sneaky.json()["detail"]
    forged = await cloud.client.post(
        "/api/v1/consumers",
        headers=headers,
        json={"id": 1, "board_id": world.board_a, "account_no": "X1", "name": "X"},
    )
    assert forged.status_code == 422
    for query in ("limit=201", "offset=-1", "sort=password", "order=sideways"):
        response = await cloud.client.get(f"/api/v1/consumers?{query}", headers=headers)
        assert response.status_code == 422, query


async def test_writes_are_audited_with_before_and_after(cloud: Cloud, world: World) -> None:
    headers = as_role(world, "BOARD_ADMIN")
    created = await cloud.client.post(
        "/api/v1/consumers",
        headers=headers,
        json={
            "board_id": world.board_a,
            "account_no": "AUD-1",
            "name": "Before",
            "sanctioned_load_kw": "3.5",
        },
    )
    assert created.status_code == 201
    consumer_id = created.json()["id"]
    await cloud.client.patch(
        f"/api/v1/consumers/{consumer_id}", headers=headers, json={"name": "After"}
    )
    async with cloud.pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT action, actor, before->>'name' AS before, after->>'name' AS after"
            " FROM audit_log WHERE entity = 'consumer' AND entity_id = %s ORDER BY id",
            (str(consumer_id),),
        )
        rows = await cursor.fetchall()
    assert [(r["action"], r["before"], r["after"]) for r in rows] == [
        ("create", None, "Before"),
        ("update", "Before", "After"),
    ]
    assert all(r["actor"].startswith("user:") for r in rows)


async def test_nul_and_control_characters_are_refused_not_crashed_on(
    cloud: Cloud, world: World
) -> None:
    """Regression (found by schemathesis): a NUL reached PostgreSQL and made a 500."""
    headers = as_role(world, "BOARD_ADMIN")
    listed = await cloud.client.get("/api/v1/consumers?account_no=%00", headers=headers)
    assert listed.status_code == 422
    created = await cloud.client.post(
        "/api/v1/consumers",
        headers=headers,
        json={"board_id": world.board_a, "account_no": "NUL-1", "name": "bad\u0000name"},
    )
    assert created.status_code == 422
    assert "name" in created.json()["detail"]
    login = await cloud.client.post(
        "/api/v1/auth/login", json={"email": "a\u0000@b.in", "password": "x"}
    )
    assert login.status_code == 422

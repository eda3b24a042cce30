"""Regressions of the security probe's findings on writes, inputs and small holes (each written to
fail against the code before the fix): a cross-tenant overdue run, a state-wide report by a board
admin, a super admin listed to a state admin, `?status=` ignored, a billing run in year 9999,
and a password anyone would guess."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from cloud.services import auth
from tests.cloud.conftest import Cloud
from tests.cloud.world import PASSWORD, World, add_actor, build_world


@pytest.fixture
async def world(cloud: Cloud) -> World:
    async with cloud.pool.connection() as conn:
        return await build_world(conn)


async def _as(cloud: Cloud, world: World, role: str) -> dict[str, str]:
    async with cloud.pool.connection() as conn:
        email = await add_actor(conn, world, role)
    response = await cloud.client.post(
        "/api/v1/auth/login", json={"email": email, "password": PASSWORD}
    )
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def _statuses(cloud: Cloud, board: int) -> list[str]:
    async with cloud.pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT status FROM invoices WHERE board_id = %s ORDER BY id", (board,)
        )
        return [row["status"] for row in await cursor.fetchall()]


async def test_overdue_runs_stay_in_scope(cloud: Cloud, world: World) -> None:
    """A state admin aiming at another state's board got 200 and marked its bills overdue; a
    board admin aiming at another board got 200 with nothing marked. Both now get 404."""
    other_state, other_board = world.boards["C"], world.boards["B"]
    before = await _statuses(cloud, other_state)
    state_admin = await _as(cloud, world, "STATE_ADMIN")
    response = await cloud.client.post(
        f"/api/v1/billing/overdue?board_id={other_state}", headers=state_admin
    )
    assert response.status_code == 404
    assert await _statuses(cloud, other_state) == before
    board_admin = await _as(cloud, world, "BOARD_ADMIN")
    response = await cloud.client.post(
        f"/api/v1/billing/overdue?board_id={other_board}", headers=board_admin
    )
    assert response.status_code == 404
    own = await cloud.client.post(
        f"/api/v1/billing/overdue?board_id={world.boards['A']}", headers=board_admin
    )
    assert own.status_code == 200
    assert own.json()["marked_overdue"] == 6  # three issued bills of each of its consumers
    async with cloud.pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT count(*) AS n FROM audit_log WHERE action = 'mark_overdue'"
            " AND entity_id = ANY(%s)",
            ([str(other_state), str(other_board)],),
        )
        assert (await cursor.fetchone())["n"] == 0


async def test_a_board_admin_cannot_order_a_state_wide_report(cloud: Cloud, world: World) -> None:
    headers = await _as(cloud, world, "BOARD_ADMIN")
    body = {
        "kind": "alerts",
        "state_id": world.states["S1"],
        "period_start": "2026-10-01",
        "period_end": "2026-10-02",
    }
    response = await cloud.client.post("/api/v1/reports", json=body, headers=headers)
    assert response.status_code == 404
    async with cloud.pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT count(*) AS n FROM reports WHERE state_id = %s", (world.states["S1"],)
        )
        assert (await cursor.fetchone())["n"] == 0
    state_admin = await _as(cloud, world, "STATE_ADMIN")
    allowed = await cloud.client.post("/api/v1/reports", json=body, headers=state_admin)
    assert allowed.status_code == 202


async def test_a_super_admin_is_not_listed_to_a_state_admin(cloud: Cloud, world: World) -> None:
    email = f"root-{uuid.uuid4().hex[:6]}@example.in"
    async with cloud.pool.connection() as conn:
        cursor = await conn.execute("SELECT code FROM states WHERE id = %s", (world.states["S1"],))
        code = (await cursor.fetchone())["code"]
        root = await auth.create_user(
            conn, email=email, password=PASSWORD, role="SUPER_ADMIN", state_code=code, actor="t"
        )
    headers = await _as(cloud, world, "STATE_ADMIN")
    listed = await cloud.client.get("/api/v1/users?limit=200", headers=headers)
    assert root["id"] not in {u["id"] for u in listed.json()["items"]}
    direct = await cloud.client.get(f"/api/v1/users/{root['id']}", headers=headers)
    assert direct.status_code == 404


async def test_invoices_filter_on_status(cloud: Cloud, world: World) -> None:
    """`?status=paid` was silently ignored (the parameter was published as `status_`)."""
    headers = await _as(cloud, world, "BOARD_ADMIN")
    disputed = await cloud.client.get("/api/v1/invoices?status=disputed&limit=200", headers=headers)
    assert disputed.status_code == 200
    assert {i["status"] for i in disputed.json()["items"]} == {"disputed"}
    assert disputed.json()["total"] == 2  # the own consumer's and its sibling's
    bad = await cloud.client.get("/api/v1/invoices?status=lost", headers=headers)
    assert bad.status_code == 422


@pytest.mark.parametrize(
    "body",
    [
        {"period_start": "9999-11-01", "period_end": "9999-12-31"},
        {"period_start": "0001-01-01", "period_end": "0001-02-01"},
        {"period_start": "2026-10-01", "period_end": "10000-01-01"},
    ],
)
async def test_dates_outside_the_calendar_are_refused(
    cloud: Cloud, world: World, body: dict
) -> None:
    """A billing run for a period near year 9999 answered 500 (date overflow)."""
    headers = await _as(cloud, world, "BOARD_ADMIN")
    response = await cloud.client.post(
        "/api/v1/billing/runs", json={"board_id": world.boards["A"], **body}, headers=headers
    )
    assert response.status_code == 422
    assert "period_" in response.json()["detail"]


async def test_the_api_never_takes_a_password_for_a_new_user(cloud: Cloud, world: World) -> None:
    """New users are invited and choose their own; an administrator never sets one."""
    headers = await _as(cloud, world, "STATE_ADMIN")
    response = await cloud.client.post(
        "/api/v1/users",
        json={
            "email": "new.tech@example.in",
            "password": "lantern orchard pebble",
            "role": "TECHNICIAN",
            "board_id": world.boards["A"],
        },
        headers=headers,
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "body.password"


async def test_a_role_takes_only_the_scope_it_needs(cloud: Cloud, world: World) -> None:
    """A board admin created with another board's consumer_id showed up in that board's lists."""
    headers = await _as(cloud, world, "STATE_ADMIN")
    response = await cloud.client.post(
        "/api/v1/users",
        json={
            "email": "stray@example.in",
            "role": "BOARD_ADMIN",
            "board_id": world.boards["A"],
            "consumer_id": world.site("other_board").consumer.id,
        },
        headers=headers,
    )
    assert response.status_code == 422
    assert response.json()["errors"] == [{"field": "consumer_id", "message": "not for this role"}]


async def test_a_new_occupant_sees_nothing_of_the_last_ones_readings(
    cloud: Cloud, world: World
) -> None:
    own = world.site("own")
    admin = await _as(cloud, world, "BOARD_ADMIN")
    consumer = await _as(cloud, world, "CONSUMER")  # the own consumer, the meter's occupant
    now = datetime.now(UTC)
    query = {
        "quantity": "1.8.0",
        "interval": "hour",
        "from": (now - timedelta(days=60)).isoformat(),
        "to": (now + timedelta(days=1)).isoformat(),
    }
    before = await cloud.client.get(
        f"/api/v1/meters/{own.meter.id}/readings", params=query, headers=consumer
    )
    assert len(before.json()["points"]) > 100, before.text  # forty days of own reads
    # the occupant moves out; the meter goes to the sibling consumer, who signs in
    moved = await cloud.client.post(
        f"/api/v1/meters/{own.meter.id}/assign",
        json={"consumer_id": world.site("sibling").consumer.id},
        headers=admin,
    )
    assert moved.status_code == 200, moved.text
    async with cloud.pool.connection() as conn:
        email = f"newcomer-{uuid.uuid4().hex[:6]}@example.in"
        await auth.create_user(
            conn,
            email=email,
            password=PASSWORD,
            role="CONSUMER",
            consumer_id=world.site("sibling").consumer.id,
            actor="t",
        )
    token = (
        await cloud.client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    ).json()["access_token"]
    after = await cloud.client.get(
        f"/api/v1/meters/{own.meter.id}/readings",
        params=query,
        headers={"Authorization": f"Bearer {token}"},
    )
    assert after.status_code == 200
    assert after.json()["points"] == []
    staff = await cloud.client.get(
        f"/api/v1/meters/{own.meter.id}/readings", params=query, headers=admin
    )
    assert len(staff.json()["points"]) == len(before.json()["points"])  # staff see it all


async def test_the_consumer_page_needs_the_permission(cloud: Cloud, world: World) -> None:
    """The dashboard showed a consumer's details to a technician, whom the API refuses."""
    async with cloud.pool.connection() as conn:
        email = await add_actor(conn, world, "TECHNICIAN")
    token = (
        await cloud.client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    ).json()["access_token"]
    cloud.client.cookies.set("gg_access", token)
    try:
        page = await cloud.client.get(f"/dashboard/consumers/{world.site('own').consumer.id}")
    finally:
        cloud.client.cookies.clear()
    assert page.status_code == 403
    assert "acct-" not in page.text  # no account number shown

"""Scope over the fleet API in depth: BOLA by path and body, mass assignment, bounds, audit rows
with before and after. (Every route against every role is test_authorization_matrix.py.)"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import pytest

from cloud.access import ROLE_PERMISSIONS
from cloud.services import auth, fleet
from shared import generate_private_key, public_key_text
from tests.cloud.conftest import Cloud, outbox_link_token
from tests.cloud.world import free_state_code

PASSWORD = "correct horse battery"


@dataclass
class World:
    tag: str
    state: int
    board_a: int
    board_b: int
    board_empty: int
    consumer_a: int
    consumer_a2: int
    consumer_b: int
    meter_a: int  # consumer_a's
    meter_a2: int  # unassigned
    meter_spare: int  # unassigned, no readings
    meter_b: int
    gateway_a: int
    gateway_b: int
    tokens: dict[str, str]  # role -> access token (scoped to board A / state TS / consumer_a)
    user_ids: dict[str, int] = field(default_factory=dict)
    technicians: list[int] = field(default_factory=list)


async def _insert(cloud: Cloud, query: str, params: tuple) -> int:
    async with cloud.pool.connection() as conn:
        cursor = await conn.execute(query + " RETURNING id", params)
        row = await cursor.fetchone()
        await conn.commit()
        return row["id"]


async def _consumer(cloud: Cloud, board_id: int, account: str) -> int:
    return await _insert(
        cloud,
        "INSERT INTO consumers (board_id, account_no, name) VALUES (%s, %s, %s)",
        (board_id, account, f"Consumer {account}"),
    )


async def _meter(cloud: Cloud, board_id: int, external: str, consumer: int | None = None) -> int:
    return await _insert(
        cloud,
        "INSERT INTO meters (board_id, external_id, consumer_id, model) VALUES (%s, %s, %s, %s)",
        (board_id, external, consumer, "sdm630"),
    )


async def _gateway(cloud: Cloud, board_id: int, code: str) -> int:
    return await _insert(
        cloud,
        "INSERT INTO gateways (board_id, gateway_code, public_key) VALUES (%s, %s, %s)",
        (board_id, code, public_key_text(generate_private_key())),
    )


async def _login(cloud: Cloud, email: str) -> str:
    response = await cloud.client.post(
        "/api/v1/auth/login", json={"email": email, "password": PASSWORD}
    )
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


@pytest.fixture
async def world(cloud: Cloud) -> World:
    tag = uuid.uuid4().hex[:6].upper()
    state_code = "TS"  # the shared test state: its admin sees other tests' boards too
    async with cloud.pool.connection() as conn:
        cursor = await conn.execute("SELECT id FROM states WHERE code = %s", (state_code,))
        if await cursor.fetchone() is None:
            await fleet.create_state(conn, code=state_code, name="Test state", actor="test")
        boards = [
            await fleet.create_board(
                conn, state_code=state_code, code=f"{name}-{tag}", name=name, actor="test"
            )
            for name in ("A", "B", "E")
        ]
    a, b, empty = (board["id"] for board in boards)
    consumer_a = await _consumer(cloud, a, f"A1-{tag}")
    consumer_b = await _consumer(cloud, b, f"B1-{tag}")
    world = World(
        tag=tag,
        state=boards[0]["state_id"],
        board_a=a,
        board_b=b,
        board_empty=empty,
        consumer_a=consumer_a,
        consumer_a2=await _consumer(cloud, a, f"A2-{tag}"),
        consumer_b=consumer_b,
        meter_a=await _meter(cloud, a, f"ma-{tag}", consumer_a),
        meter_a2=await _meter(cloud, a, f"ma2-{tag}"),
        meter_spare=await _meter(cloud, a, f"spare-{tag}"),
        meter_b=await _meter(cloud, b, f"mb-{tag}", consumer_b),
        gateway_a=await _gateway(cloud, a, f"gwa-{tag}"),
        gateway_b=await _gateway(cloud, b, f"gwb-{tag}"),
        tokens={},
    )
    for role in ROLE_PERMISSIONS:
        email = f"{role.lower()}-{tag}@example.in"
        scope = {
            "STATE_ADMIN": {"state_code": state_code},
            "CONSUMER": {"consumer_id": consumer_a},
            "SUPER_ADMIN": {},
        }.get(role, {"board_code": f"A-{tag}"})
        async with cloud.pool.connection() as conn:
            user = await auth.create_user(
                conn, email=email, password=PASSWORD, role=role, actor="test", **scope
            )
        world.user_ids[role] = user["id"]
        world.tokens[role] = await _login(cloud, email)
    for n in range(2):
        async with cloud.pool.connection() as conn:
            user = await auth.create_user(
                conn,
                email=f"tech{n}-{tag}@example.in",
                password=PASSWORD,
                role="TECHNICIAN",
                board_code=f"A-{tag}",
                actor="test",
            )
        world.technicians.append(user["id"])
    return world


def as_role(world: World, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {world.tokens[role]}"}


READINGS_QUERY = "?quantity=1.8.0&interval=day&from=2026-10-01T00:00Z&to=2026-10-02T00:00Z"


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
    assert listed.status_code == 404
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


async def _snapshot(cloud: Cloud, world: World) -> list:
    async with cloud.pool.connection() as conn:
        rows = []
        for table, row_id in (
            ("boards", world.board_b),
            ("meters", world.meter_b),
            ("gateways", world.gateway_b),
            ("consumers", world.consumer_b),
        ):
            cursor = await conn.execute(f"SELECT * FROM {table} WHERE id = %s", (row_id,))
            rows.append(await cursor.fetchone())
        return rows


async def test_a_board_admin_cannot_touch_another_boards_fleet(cloud: Cloud, world: World) -> None:
    """BOLA over every kind of object and every verb, by path and by body: 404, nothing changes."""
    headers = as_role(world, "BOARD_ADMIN")
    before = await _snapshot(cloud, world)
    w = world
    attempts = [
        ("GET", f"/api/v1/boards/{w.board_b}", None),
        ("GET", f"/api/v1/boards/{w.board_b}/readings" + READINGS_QUERY, None),
        ("GET", f"/api/v1/meters/{w.meter_b}", None),
        ("GET", f"/api/v1/meters/{w.meter_b}/history", None),
        ("GET", f"/api/v1/meters/{w.meter_b}/readings" + READINGS_QUERY, None),
        ("PATCH", f"/api/v1/meters/{w.meter_b}", {"model": "x"}),
        ("POST", f"/api/v1/meters/{w.meter_b}/assign", {"consumer_id": None}),
        (
            "POST",
            f"/api/v1/meters/{w.meter_b}/replace",
            {"external_id": "stolen", "replaced_at": "2026-11-01T00:00:00Z"},
        ),
        ("DELETE", f"/api/v1/consumers/{w.consumer_b}", None),
        # naming another board's objects in a body of one's own board
        ("POST", f"/api/v1/meters/{w.meter_a2}/assign", {"consumer_id": w.consumer_b}),
        ("POST", f"/api/v1/meters/{w.meter_a2}/assign", {"gateway_id": w.gateway_b}),
        ("POST", "/api/v1/meters", {"board_id": w.board_b, "external_id": "planted"}),
        ("GET", f"/api/v1/gateways/{w.gateway_b}", None),
        ("POST", f"/api/v1/gateways/{w.gateway_b}/revoke", None),
        ("POST", "/api/v1/gateways/enrollment-tokens", {"board_id": w.board_b}),
    ]
    for method, url, body in attempts:
        response = await cloud.client.request(method, url, json=body, headers=headers)
        assert response.status_code == 404, (method, url, response.text)
    for query in (
        f"board_id={w.board_b}",
        f"consumer_id={w.consumer_b}",
        f"gateway_id={w.gateway_b}",
    ):
        listed = await cloud.client.get(f"/api/v1/meters?{query}", headers=headers)
        assert listed.status_code == 404, query  # a filter naming another board's row
    gateways = await cloud.client.get("/api/v1/gateways?limit=200", headers=headers)
    assert {g["board_id"] for g in gateways.json()["items"]} == {w.board_a}
    assert await _snapshot(cloud, world) == before


async def test_meters_are_assigned_within_their_board(cloud: Cloud, world: World) -> None:
    headers = as_role(world, "SUPER_ADMIN")  # sees both boards, still may not mix them
    across = await cloud.client.post(
        f"/api/v1/meters/{world.meter_a2}/assign",
        json={"consumer_id": world.consumer_b},
        headers=headers,
    )
    assert across.status_code == 422
    assert "another board" in across.json()["detail"]
    assigned = await cloud.client.post(
        f"/api/v1/meters/{world.meter_a2}/assign",
        json={"consumer_id": world.consumer_a2, "gateway_id": world.gateway_a},
        headers=headers,
    )
    assert assigned.status_code == 200
    assert (assigned.json()["consumer_id"], assigned.json()["gateway_id"]) == (
        world.consumer_a2,
        world.gateway_a,
    )
    cleared = await cloud.client.post(
        f"/api/v1/meters/{world.meter_a2}/assign", json={"gateway_id": None}, headers=headers
    )
    assert (cleared.json()["consumer_id"], cleared.json()["gateway_id"]) == (
        world.consumer_a2,
        None,
    )


async def test_a_replacement_keeps_the_history(cloud: Cloud, world: World) -> None:
    headers = as_role(world, "BOARD_ADMIN")
    replaced = await cloud.client.post(
        f"/api/v1/meters/{world.meter_a}/replace",
        json={"external_id": f"new-{world.tag}", "replaced_at": "2026-11-01T06:00:00+05:30"},
        headers=headers,
    )
    assert replaced.status_code == 201, replaced.text
    new = replaced.json()
    assert new["replaces_id"] == world.meter_a
    assert new["consumer_id"] == world.consumer_a
    assert new["model"] == "sdm630"  # inherited
    assert new["installed_at"].startswith("2026-11-01T00:30:00")
    old = (await cloud.client.get(f"/api/v1/meters/{world.meter_a}", headers=headers)).json()
    assert old["replaced_at"].startswith("2026-11-01T00:30:00")
    assert old["consumer_id"] == world.consumer_a  # its reads until the swap are still theirs
    for meter in (world.meter_a, new["id"]):
        history = await cloud.client.get(f"/api/v1/meters/{meter}/history", headers=headers)
        assert [m["id"] for m in history.json()] == [world.meter_a, new["id"]]
    again = await cloud.client.post(
        f"/api/v1/meters/{world.meter_a}/replace",
        json={"external_id": "third", "replaced_at": "2026-11-02T00:00:00Z"},
        headers=headers,
    )
    assert again.status_code == 409
    reassign = await cloud.client.post(
        f"/api/v1/meters/{world.meter_a}/assign",
        json={"consumer_id": world.consumer_a},
        headers=headers,
    )
    assert reassign.status_code == 409
    naive = await cloud.client.post(
        f"/api/v1/meters/{new['id']}/replace",
        json={"external_id": "fourth", "replaced_at": "2026-11-02T00:00:00"},
        headers=headers,
    )
    assert naive.status_code == 422
    consumer = as_role(world, "CONSUMER")  # the consumer sees the swap of its meter
    mine = await cloud.client.get(f"/api/v1/meters/{new['id']}/history", headers=consumer)
    assert [m["id"] for m in mine.json()] == [world.meter_a, new["id"]]


async def test_what_is_referred_to_is_not_deleted(cloud: Cloud, world: World) -> None:
    headers = as_role(world, "SUPER_ADMIN")
    board = await cloud.client.delete(f"/api/v1/boards/{world.board_a}", headers=headers)
    assert board.status_code == 409
    assert "still referred to" in board.json()["detail"]
    consumer = await cloud.client.delete(f"/api/v1/consumers/{world.consumer_a}", headers=headers)
    assert consumer.status_code == 409
    async with cloud.pool.connection() as conn:
        await conn.execute("SELECT ensure_readings_partition('2026-10-01')")
        await conn.execute(
            "INSERT INTO readings (meter_id, quantity, ts, value, quality, gateway_id)"
            " VALUES (%s, '1.8.0', '2026-10-01T00:00Z', 1, 'good', %s)",
            (world.meter_a2, world.gateway_a),
        )
        await conn.commit()
    meter = await cloud.client.delete(f"/api/v1/meters/{world.meter_a2}", headers=headers)
    assert meter.status_code == 409
    assert "replace it" in meter.json()["detail"]
    gone = await cloud.client.delete(f"/api/v1/meters/{world.meter_spare}", headers=headers)
    assert gone.status_code == 200
    assert (
        await cloud.client.get(f"/api/v1/meters/{world.meter_spare}", headers=headers)
    ).status_code == 404


async def test_patches_refuse_nulls_and_foreign_fields(cloud: Cloud, world: World) -> None:
    headers = as_role(world, "SUPER_ADMIN")
    for url, body, field_name in (
        (f"/api/v1/meters/{world.meter_a}", {"board_id": world.board_b}, "board_id"),
        (f"/api/v1/meters/{world.meter_a}", {"ct_ratio": None}, "ct_ratio"),
        (f"/api/v1/consumers/{world.consumer_a}", {"name": None}, "name"),
        (f"/api/v1/boards/{world.board_a}", {"time_zone": "Mars/Olympus"}, "time_zone"),
        (f"/api/v1/boards/{world.board_a}", {"time_zone": None}, "time_zone"),
        (f"/api/v1/users/{world.technicians[0]}", {"state_id": world.state}, "state_id"),
        (f"/api/v1/users/{world.technicians[0]}", {"password_hash": "x"}, "password_hash"),
    ):
        response = await cloud.client.patch(url, json=body, headers=headers)
        assert response.status_code == 422, (url, body, response.text)
        assert field_name in response.text, (url, body)


async def test_user_managers_grant_only_what_they_may(cloud: Cloud, world: World) -> None:
    headers = as_role(world, "STATE_ADMIN")
    for role in ("SUPER_ADMIN", "STATE_ADMIN"):
        response = await cloud.client.post(
            "/api/v1/users",
            json={
                "email": f"climb-{role}-{world.tag}@example.in",
                "role": role,
                "state_id": world.state,
            },
            headers=headers,
        )
        assert response.status_code == 403, role
    promote = await cloud.client.patch(
        f"/api/v1/users/{world.technicians[0]}", json={"role": "STATE_ADMIN"}, headers=headers
    )
    assert promote.status_code == 403
    touch_super = await cloud.client.patch(
        f"/api/v1/users/{world.user_ids['SUPER_ADMIN']}", json={"active": False}, headers=headers
    )
    assert touch_super.status_code == 404  # a super admin is outside every other scope
    async with cloud.pool.connection() as conn:
        other = await fleet.create_state(
            conn, code=await free_state_code(conn), name="Other", actor="test"
        )
        far = await fleet.create_board(
            conn, state_code=other["code"], code=f"F-{world.tag}", name="Far", actor="test"
        )
    elsewhere = await cloud.client.post(
        "/api/v1/users",
        json={
            "email": f"far-{world.tag}@example.in",
            "role": "BOARD_ADMIN",
            "board_id": far["id"],
        },
        headers=headers,
    )
    assert elsewhere.status_code == 404
    for method, url, body in (
        ("GET", f"/api/v1/boards/{far['id']}", None),
        ("PATCH", f"/api/v1/boards/{far['id']}", {"name": "mine"}),
        ("DELETE", f"/api/v1/boards/{far['id']}", None),
        ("GET", f"/api/v1/states/{other['id']}", None),
        ("POST", "/api/v1/boards", {"state_id": other["id"], "code": "PLANT", "name": "x"}),
    ):
        response = await cloud.client.request(method, url, json=body, headers=headers)
        assert response.status_code == 404, (method, url, response.text)
    unscoped = await cloud.client.post(
        "/api/v1/users",
        json={"email": f"u-{world.tag}@example.in", "role": "AUDITOR"},
        headers=headers,
    )
    assert unscoped.status_code == 422


async def test_deactivation_and_password_reset_end_sessions(cloud: Cloud, world: World) -> None:
    headers = as_role(world, "STATE_ADMIN")
    email = f"tech0-{world.tag}@example.in"
    session = (
        await cloud.client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    ).json()
    reset = await cloud.client.post(
        f"/api/v1/users/{world.technicians[0]}/password-reset", headers=headers
    )
    assert reset.status_code == 202
    assert "password_hash" not in reset.text
    token = await outbox_link_token(cloud.pool, email)
    refreshed = await cloud.client.post(
        "/api/v1/auth/refresh", json={"refresh_token": session["refresh_token"]}
    )
    assert refreshed.status_code == 401
    chosen = await cloud.client.post(
        "/api/v1/auth/password/reset", json={"token": token, "password": "a brand new passphrase"}
    )
    assert chosen.status_code == 204
    fresh = await cloud.client.post(
        "/api/v1/auth/login", json={"email": email, "password": "a brand new passphrase"}
    )
    assert fresh.status_code == 200
    gone = await cloud.client.delete(f"/api/v1/users/{world.technicians[0]}", headers=headers)
    assert gone.json()["active"] is False
    refused = await cloud.client.post(
        "/api/v1/auth/login", json={"email": email, "password": "a brand new passphrase"}
    )
    assert refused.status_code == 401
    self_delete = await cloud.client.delete(
        f"/api/v1/users/{world.user_ids['STATE_ADMIN']}", headers=headers
    )
    assert self_delete.status_code == 422
    async with cloud.pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT action FROM audit_log WHERE entity = 'user' AND entity_id = %s ORDER BY id",
            (str(world.technicians[0]),),
        )
        actions = [row["action"] for row in await cursor.fetchall()]
    assert actions[-3:] == ["reset_password", "login", "update"]


async def test_enrollment_tokens_and_revocation_over_the_api(cloud: Cloud, world: World) -> None:
    issued = await cloud.client.post(
        "/api/v1/gateways/enrollment-tokens",
        json={"board_id": world.board_a, "ttl_s": 600},
        headers=as_role(world, "TECHNICIAN"),
    )
    assert issued.status_code == 201
    code = f"gw-api-{world.tag}".lower()
    enrolled = await cloud.client.post(
        "/api/v1/gateways/enroll",
        json={
            "token": issued.json()["token"],
            "gateway_id": code,
            "public_key": public_key_text(generate_private_key()),
        },
    )
    assert enrolled.status_code == 201
    assert enrolled.json()["board"] == f"A-{world.tag}"
    admin = as_role(world, "BOARD_ADMIN")
    listed = await cloud.client.get(f"/api/v1/gateways?board_id={world.board_a}", headers=admin)
    gateway = next(g for g in listed.json()["items"] if g["gateway_code"] == code)
    revoked = await cloud.client.post(f"/api/v1/gateways/{gateway['id']}/revoke", headers=admin)
    assert revoked.json()["status"] == "revoked"
    again = await cloud.client.post(f"/api/v1/gateways/{gateway['id']}/revoke", headers=admin)
    assert again.status_code == 409
    too_long = await cloud.client.post(
        "/api/v1/gateways/enrollment-tokens",
        json={"board_id": world.board_a, "ttl_s": 365 * 86400},
        headers=admin,
    )
    assert too_long.status_code == 422


async def test_a_role_change_that_breaks_the_scope_rule_is_refused(
    cloud: Cloud, world: World
) -> None:
    """Regression (found by schemathesis): a board user made CONSUMER has no consumer: 500."""
    response = await cloud.client.patch(
        f"/api/v1/users/{world.technicians[0]}",
        json={"role": "CONSUMER"},
        headers=as_role(world, "SUPER_ADMIN"),
    )
    assert response.status_code == 422
    assert "role" in response.json()["detail"]


async def test_the_audit_log_shows_what_happened_in_scope(cloud: Cloud, world: World) -> None:
    """Auditors see what the users of their scope did, not what the operator did elsewhere."""
    await cloud.client.patch(
        f"/api/v1/consumers/{world.consumer_a}",
        json={"name": "Audited"},
        headers=as_role(world, "BOARD_ADMIN"),
    )
    await cloud.client.patch(
        f"/api/v1/consumers/{world.consumer_b}",
        json={"name": "Elsewhere"},
        headers=as_role(world, "SUPER_ADMIN"),
    )

    async def actors(role: str) -> set[str]:
        response = await cloud.client.get("/api/v1/audit?limit=200", headers=as_role(world, role))
        assert response.status_code == 200
        return {row["actor"] for row in response.json()["items"]}

    board_admin = f"user:{world.user_ids['BOARD_ADMIN']}"
    operator = f"user:{world.user_ids['SUPER_ADMIN']}"
    assert board_admin in await actors("AUDITOR")
    assert operator not in await actors("AUDITOR")
    assert board_admin in await actors("STATE_ADMIN")
    assert {board_admin, operator} <= await actors("SUPER_ADMIN")

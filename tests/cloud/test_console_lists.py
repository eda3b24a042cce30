"""The console's lists as files: every list an operator exports downloads as CSV with readable
headers, names instead of ids, and only the rows of the viewer's scope."""

from __future__ import annotations

import csv
import io
import re

import pytest

from cloud.services import aggregates
from tests.cloud.conftest import Cloud
from tests.cloud.world import PASSWORD, World, add_actor, build_world


@pytest.fixture
async def admin(cloud: Cloud) -> tuple[World, Cloud]:
    async with cloud.pool.connection() as conn:
        world = await build_world(conn)
        email = await add_actor(conn, world, "BOARD_ADMIN")
        await conn.execute(
            "INSERT INTO aggregates_dirty (board_id, day) SELECT %s, d::date FROM"
            " generate_series(now() - interval '41 days', now(), interval '1 day') d",
            (world.boards["A"],),
        )
        await conn.commit()
        # every dirty day, earlier tests' too (a pass does 400 at most)
        while await aggregates.refresh(conn):
            pass
    token = (
        await cloud.client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    ).json()["access_token"]
    cloud.client.cookies.set("gg_access", token)
    return world, cloud


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text.lstrip("\ufeff"))))


async def _names(cloud: Cloud, world: World, sites: tuple[str, ...]) -> set[str]:
    """What identifies the objects of these sites in a list: account numbers, consumer names,
    meter ids and gateway codes."""
    ids = {
        kind: [world.site(s).objects[kind].id for s in sites if kind in world.site(s).objects]
        for kind in ("consumer", "meter", "gateway")
    }
    async with cloud.pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT account_no AS n FROM consumers WHERE id = ANY(%(c)s)"
            " UNION SELECT name FROM consumers WHERE id = ANY(%(c)s)"
            " UNION SELECT external_id FROM meters WHERE id = ANY(%(m)s)"
            " UNION SELECT gateway_code FROM gateways WHERE id = ANY(%(g)s)",
            {"c": ids["consumer"], "m": ids["meter"], "g": ids["gateway"]},
        )
        return {row["n"] for row in await cursor.fetchall()}


@pytest.mark.parametrize(
    ("path", "header", "named"),
    [
        ("/dashboard/meters?format=csv", "meter", "meter"),
        ("/dashboard/gateways?format=csv", "gateway", "board"),
        ("/dashboard/consumers?format=csv", "account_no", "name"),
        ("/dashboard/billing?format=csv&period=2026-01", "account_no", "consumer"),
        ("/dashboard/analytics?format=csv&group_by=consumer", "consumer", "consumer"),
    ],
)
async def test_lists_download_as_csv_inside_the_scope(
    admin: tuple[World, Cloud], path: str, header: str, named: str
) -> None:
    world, cloud = admin
    response = await cloud.client.get(path)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    rows = _rows(response.text)
    assert rows, path
    assert header in rows[0]
    assert all(row[named] for row in rows)  # names, not blanks
    # a cell names one thing ("Consumer own") or a thing and its number ("Consumer own (acct-1)")
    cells = {part for row in rows for cell in row.values() for part in re.split(r" \(|\)$", cell)}
    assert cells & await _names(cloud, world, ("own", "sibling")), "the board's own rows are there"
    leaked = cells & await _names(cloud, world, ("other_board", "other_state"))
    assert not leaked, f"rows of another board or state: {leaked}"


async def test_the_audit_names_what_was_changed_and_downloads(cloud: Cloud) -> None:
    async with cloud.pool.connection() as conn:
        world = await build_world(conn)
        email = await add_actor(conn, world, "STATE_ADMIN")
    token = (
        await cloud.client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    ).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    consumer = world.site("own").consumer.id
    renamed = await cloud.client.patch(
        f"/api/v1/consumers/{consumer}", json={"name": "Asha Rao"}, headers=headers
    )
    assert renamed.status_code == 200, renamed.text
    account = renamed.json()["account_no"]
    alert = world.site("own").alert_ack.id
    acknowledged = await cloud.client.post(
        f"/api/v1/alerts/{alert}/acknowledge", json={"note": "on it"}, headers=headers
    )
    assert acknowledged.status_code == 200, acknowledged.text
    async with cloud.pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT a.kind, m.external_id FROM alerts a JOIN meters m ON m.id = a.meter_id"
            " WHERE a.id = %s",
            (alert,),
        )
        about = await cursor.fetchone()
    cloud.client.cookies.set("gg_access", token)
    page = await cloud.client.get("/dashboard/audit")
    assert page.status_code == 200
    assert f"consumer Asha Rao ({account})" in page.text  # named, not "consumer 12"
    kind = about["kind"].replace("_", " ")
    assert f"alert {kind} on {about['external_id']} (Asha Rao)" in page.text
    assert "Asia/Kolkata" in page.text  # every board in view keeps one zone: times in it
    download = await cloud.client.get("/dashboard/audit?format=csv")
    rows = _rows(download.text)
    assert {"when_utc", "who", "action", "kind", "what"} <= set(rows[0])
    assert any(r["what"] == f"Asha Rao ({account})" and r["who"] == email for r in rows)

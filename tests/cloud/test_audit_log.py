"""The audit log through the API against real PostgreSQL: filters (actor, entity, action, time
range) with clear 422s, one entry with what changed, 404 outside the caller's scope, and the CSV
streamed with a byte-order mark and formulas neutralised."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime, timedelta

import httpx

from cloud.services import audit
from tests.cloud.conftest import Cloud, staff_headers, staff_token


async def me(cloud: Cloud, headers: dict[str, str]) -> int:
    return (await cloud.client.get("/api/v1/users/me", headers=headers)).json()["id"]


async def recorded(cloud: Cloud, actor: str, **entry: object) -> int:
    async with cloud.pool.connection() as conn:
        await audit.record(conn, actor=actor, **entry)
        cursor = await conn.execute("SELECT max(id) AS id FROM audit_log")
        await conn.commit()
        return (await cursor.fetchone())["id"]


async def test_the_audit_log_filtered_and_one_entry_with_its_changes(
    cloud: Cloud, board: str
) -> None:
    headers = await staff_headers(cloud, board, "AUDITOR")
    actor = f"user:{await me(cloud, headers)}"
    tag = uuid.uuid4().hex[:8]
    changed = await recorded(
        cloud,
        actor,
        action="update",
        entity="meter",
        entity_id=tag,
        before={"model": "EM-1", "phases": 1, "ct_ratio": "1"},
        after={"model": "EM-2", "phases": 1, "ct_ratio": "40"},
    )
    await recorded(cloud, actor, action="create", entity="meter", entity_id=tag, after={"a": 1})
    listed = await cloud.client.get(
        "/api/v1/audit",
        params={"actor": actor, "entity": "meter", "entity_id": tag, "action": "update"},
        headers=headers,
    )
    assert listed.status_code == 200, listed.text
    assert [e["id"] for e in listed.json()["items"]] == [changed]
    by_part = await cloud.client.get(
        "/api/v1/audit", params={"actor_contains": actor.upper(), "entity_id": tag}, headers=headers
    )
    assert by_part.json()["total"] == 2
    hour = datetime.now(UTC) - timedelta(hours=1)
    window = {
        "entity_id": tag,
        "from": hour.isoformat(),
        "to": (hour + timedelta(hours=2)).isoformat(),
    }
    assert (await cloud.client.get("/api/v1/audit", params=window, headers=headers)).json()[
        "total"
    ] == 2
    earlier = {"entity_id": tag, "to": hour.isoformat()}
    assert (await cloud.client.get("/api/v1/audit", params=earlier, headers=headers)).json()[
        "total"
    ] == 0

    one = await cloud.client.get(f"/api/v1/audit/{changed}", headers=headers)
    assert one.status_code == 200, one.text
    assert one.json()["before"]["model"] == "EM-1"
    assert one.json()["changes"] == [
        {"key": "ct_ratio", "old": "1", "new": "40"},
        {"key": "model", "old": "EM-1", "new": "EM-2"},
    ]


async def test_bad_filters_are_refused_with_a_reason(cloud: Cloud, board: str) -> None:
    headers = await staff_headers(cloud, board, "AUDITOR")
    for params, field in (
        ({"from": "2026-10-01T00:00:00"}, "from"),  # no zone
        ({"from": "2026-10-02T00:00Z", "to": "2026-10-01T00:00Z"}, "to"),  # backwards
        ({"actor": "x" * 81}, "actor"),
        ({"action": ""}, "action"),
        ({"entity": "a\x00b"}, "entity"),
    ):
        for path in ("/api/v1/audit", "/api/v1/audit/export.csv"):
            response = await cloud.client.get(path, params=params, headers=headers)
            assert response.status_code == 422, (params, response.text)
            assert field in response.text, response.text


async def test_an_entry_outside_the_scope_is_not_found(cloud: Cloud, board: str) -> None:
    from tests.cloud.test_alerts import _another_board

    mine = await staff_headers(cloud, board, "AUDITOR")
    other = await staff_headers(cloud, await _another_board(cloud), "AUDITOR")
    theirs = await recorded(
        cloud, f"user:{await me(cloud, other)}", action="update", entity="meter", entity_id="1"
    )
    assert (await cloud.client.get(f"/api/v1/audit/{theirs}", headers=mine)).status_code == 404
    assert (await cloud.client.get(f"/api/v1/audit/{theirs}", headers=other)).status_code == 200
    by_cli = await recorded(cloud, "cli", action="update", entity="meter", entity_id="1")
    assert (await cloud.client.get(f"/api/v1/audit/{by_cli}", headers=mine)).status_code == 404
    listed = await cloud.client.get("/api/v1/audit", params={"actor": "cli"}, headers=mine)
    assert listed.json()["total"] == 0


async def test_the_csv_is_streamed_with_a_bom_and_formulas_neutralised(
    cloud: Cloud, board: str, served: httpx.AsyncClient
) -> None:
    headers = await staff_headers(cloud, board, "AUDITOR")
    actor = f"user:{await me(cloud, headers)}"
    tag = f"=HYPERLINK({uuid.uuid4().hex[:6]})"
    total = 1234  # more than one page of the export
    async with cloud.pool.connection() as conn:
        await conn.execute(
            "INSERT INTO audit_log (actor, action, entity, entity_id, before, after)"
            " SELECT %s, 'update', 'meter', %s, NULL, jsonb_build_object('n', n, 'name', '₹ +1')"
            " FROM generate_series(1, %s) n",
            (actor, tag, total),
        )
        await conn.commit()
    async with served.stream(
        "GET", "/api/v1/audit/export.csv", params={"entity_id": tag}, headers=headers
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/csv")
        assert "content-length" not in response.headers  # streamed, not built whole
        body = b"".join([chunk async for chunk in response.aiter_bytes()])
    assert body.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(body.decode("utf-8").removeprefix("\ufeff"))))
    assert rows[0] == list(audit.EXPORT_COLUMNS)
    assert len(rows) == total + 1
    assert {r[5] for r in rows[1:]} == {"'" + tag}
    ids = [int(r[0]) for r in rows[1:]]
    assert ids == sorted(ids, reverse=True)
    assert len(set(ids)) == total
    assert rows[1][7] == f'{{"n": {total}, "name": "₹ +1"}}'
    assert rows[1][1].endswith("Z")


async def test_the_audit_page_filters_links_each_entry_and_shows_its_changes(
    cloud: Cloud, board: str
) -> None:
    token = await staff_token(cloud, board, "AUDITOR")
    headers = {"Authorization": f"Bearer {token}"}
    actor = f"user:{await me(cloud, headers)}"
    tag = uuid.uuid4().hex[:8]
    changed = await recorded(
        cloud,
        actor,
        action="update",
        entity="meter",
        entity_id=tag,
        before={"model": "EM-1"},
        after={
            "model": "EM-2",
            "phases": 3,
            "confirmed_at": "2026-11-29T00:41:13.004392+00:00",
            "created_by": actor,
            "kinds": ["spike", "drop"],
            "enabled": False,
            "starts_on": "2026-12-01",
            "ends_on": "2026-12-11",  # a window's end as the API takes it: the day after
        },
    )
    cloud.client.cookies.set("gg_access", token)
    page = await cloud.client.get(
        "/dashboard/audit", params={"entity_id": tag, "from": "2026-01-01"}
    )
    assert page.status_code == 200
    assert f'href="/dashboard/audit/{changed}"' in page.text
    export = "/api/v1/audit/export.csv?entity_id=" + tag + "&amp;from=2026-01-01T00%3A00%3A00"
    assert export in page.text  # the CSV with the page's filters (from midnight, local)
    other = await cloud.client.get("/dashboard/audit", params={"entity_id": uuid.uuid4().hex})
    assert f'href="/dashboard/audit/{changed}"' not in other.text
    assert "No entries match these filters." in other.text
    # kinds and actions are chosen by their words, not typed as codes
    kinds = await cloud.client.get("/dashboard/audit", params={"entity": "tariff_override"})
    assert '<option value="tariff_override" selected>Tariff override</option>' in kinds.text
    assert '<option value="queue_command">Command sent to the gateway</option>' in kinds.text
    refused = await cloud.client.get("/dashboard/audit", params={"from": "yesterday"})
    assert refused.status_code == 200
    assert "a date such as 2026-10-01" in refused.text
    entry = await cloud.client.get(f"/dashboard/audit/{changed}")
    assert entry.status_code == 200
    changes = entry.text[entry.text.index('id="audit-changes"') :]
    assert "<del>EM-1</del>" in changes
    assert "<ins>EM-2</ins>" in changes
    assert ">Phases</td>" in changes
    # a time in the viewer's zone, a user by address, a list as a list: no raw values
    assert "29 Nov 2026, 06:11:13 IST" in changes, changes
    assert ">Created by</td>" in changes
    assert "user:" not in changes
    assert "<ins>spike, drop</ins>" in changes
    assert "<ins>no</ins>" in changes  # not "false"
    # days in words, and a window's last day, not the first day it no longer covers
    assert "<ins>1 Dec 2026</ins>" in changes
    assert ">Last day</td>" in changes
    assert "<ins>10 Dec 2026</ins>" in changes
    assert "11 Dec" not in changes
    assert ">Ends on</td>" not in changes
    assert (await cloud.client.get("/dashboard/audit/999999999999")).status_code == 404

"""A meter's status through the API against real PostgreSQL: set with a reason, audited, listed
by status; the cloud's checks expect no readings from a meter inactive or under maintenance and
raise one alert for a faulty one."""

from __future__ import annotations

from datetime import timedelta

from cloud.api.deps import CSRF_COOKIE
from cloud.services.cloud_checks import CheckSettings, run_checks
from shared import Reading
from tests.cloud.conftest import Cloud, EnrolledGateway, staff_headers, staff_token
from tests.cloud.test_alerts import NOW, alerts_of, send


async def meter_ids(cloud: Cloud, board: str) -> dict[str, int]:
    async with cloud.pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT m.external_id, m.id FROM meters m JOIN boards b ON b.id = m.board_id"
            " WHERE b.code = %s",
            (board,),
        )
        return {row["external_id"]: row["id"] for row in await cursor.fetchall()}


async def set_status(cloud: Cloud, headers: dict, meter: int, status: str, reason: str = "visit"):
    return await cloud.client.post(
        f"/api/v1/meters/{meter}/status",
        json={"status": status, "reason": reason},
        headers=headers,
    )


async def test_a_status_is_set_with_a_reason_audited_and_listed(
    cloud: Cloud, gateway: EnrolledGateway
) -> None:
    headers = await staff_headers(cloud, gateway.board)
    await send(
        cloud,
        gateway,
        readings=[Reading(seq=1, meter_id="s-1", quantity="1.8.0", ts=NOW, value=1.0)],
    )
    meter = (await meter_ids(cloud, gateway.board))["s-1"]
    assert (await cloud.client.get(f"/api/v1/meters/{meter}", headers=headers)).json()[
        "status"
    ] == "active"
    for body in (
        {"status": "broken", "reason": "visit"},
        {"status": "faulty"},
        {"status": "faulty", "reason": ""},
        {"status": "faulty", "reason": "x", "extra": 1},
    ):
        response = await cloud.client.post(
            f"/api/v1/meters/{meter}/status", json=body, headers=headers
        )
        assert response.status_code == 422, (body, response.text)
    changed = await set_status(cloud, headers, meter, "under_maintenance", "CT replaced")
    assert changed.status_code == 200, changed.text
    assert (changed.json()["status"], changed.json()["status_reason"]) == (
        "under_maintenance",
        "CT replaced",
    )
    again = await set_status(cloud, headers, meter, "under_maintenance", "CT replaced")
    assert again.status_code == 409
    assert "already under maintenance" in again.json()["detail"]
    reason = await set_status(cloud, headers, meter, "under_maintenance", "waiting for the CT")
    assert reason.json()["status_since"] == changed.json()["status_since"]
    listed = await cloud.client.get(
        "/api/v1/meters", params={"status": "under_maintenance"}, headers=headers
    )
    assert [m["id"] for m in listed.json()["items"]] == [meter]
    assert (
        await cloud.client.get("/api/v1/meters", params={"status": "asleep"}, headers=headers)
    ).status_code == 422
    auditor = await staff_headers(cloud, gateway.board, "AUDITOR")
    entries = await cloud.client.get(
        "/api/v1/audit",
        params={"entity": "meter", "entity_id": str(meter), "action": "status"},
        headers=auditor,
    )
    entry = entries.json()["items"][-1]  # the first change; newest first
    changes = (await cloud.client.get(f"/api/v1/audit/{entry['id']}", headers=auditor)).json()[
        "changes"
    ]
    assert {c["key"]: (c["old"], c["new"]) for c in changes if c["key"] != "status_since"} == {
        "status": ("active", "under_maintenance"),
        "status_reason": (None, "CT replaced"),
    }


async def test_the_checks_go_by_the_status(cloud: Cloud, gateway: EnrolledGateway) -> None:
    headers = await staff_headers(cloud, gateway.board)
    names = ("active", "inactive", "under_maintenance", "faulty")
    await send(
        cloud,
        gateway,
        readings=[
            Reading(seq=10 + i, meter_id=f"c-{name}", quantity="1.8.0", ts=NOW, value=1.0)
            for i, name in enumerate(names)
        ],
    )
    ids = await meter_ids(cloud, gateway.board)
    for name in names[1:]:
        assert (await set_status(cloud, headers, ids[f"c-{name}"], name)).status_code == 200
    settings = CheckSettings(gateway_silent_s=10**6, meter_missing_s=3600)
    later = NOW + timedelta(hours=2)  # nothing read since: every meter is silent
    for step in range(2):  # a second run opens nothing new
        async with cloud.pool.connection() as conn:
            await run_checks(conn, later + timedelta(minutes=step), settings)
    missing = await alerts_of(cloud, headers, kind="meter_data_missing")
    assert [(a["meter_id"], a["state"]) for a in missing] == [(ids["c-active"], "active")]
    [faulty] = await alerts_of(cloud, headers, kind="meter_faulty")
    assert (faulty["meter_id"], faulty["state"]) == (ids["c-faulty"], "active")
    assert "marked faulty: visit" in faulty["message"]
    # repaired: the faulty alert is resolved, and its silence is now missing data
    assert (await set_status(cloud, headers, ids["c-faulty"], "active")).status_code == 200
    async with cloud.pool.connection() as conn:
        await run_checks(conn, later + timedelta(minutes=5), settings)
    [faulty] = await alerts_of(cloud, headers, kind="meter_faulty")
    assert faulty["state"] == "resolved"
    missing = await alerts_of(cloud, headers, kind="meter_data_missing")
    assert sorted(a["meter_id"] for a in missing) == sorted([ids["c-active"], ids["c-faulty"]])


async def test_the_meter_pages_show_filter_and_change_the_status(
    cloud: Cloud, gateway: EnrolledGateway
) -> None:
    token = await staff_token(cloud, gateway.board)
    await send(
        cloud,
        gateway,
        readings=[Reading(seq=30, meter_id="p-1", quantity="1.8.0", ts=NOW, value=1.0)],
    )
    meter = (await meter_ids(cloud, gateway.board))["p-1"]
    cloud.client.cookies.set("gg_access", token)
    cloud.client.cookies.set(CSRF_COOKIE, "form-token")
    here = f"/dashboard/meters/{meter}"
    refused = await cloud.client.post(
        f"{here}/status", data={"csrf": "form-token", "status": "faulty", "reason": "x"}
    )
    assert refused.headers["location"] == f"{here}?status_error=reason"
    forged = await cloud.client.post(
        f"{here}/status", data={"csrf": "other", "status": "faulty", "reason": "display dead"}
    )
    assert forged.status_code == 303
    assert "Faulty" not in (await cloud.client.get(here)).text.split('id="meter-status"')[1][:200]
    saved = await cloud.client.post(
        f"{here}/status", data={"csrf": "form-token", "status": "faulty", "reason": "display dead"}
    )
    assert saved.headers["location"] == f"{here}#meter-status"
    page = await cloud.client.get(here)
    status = page.text.split('id="meter-status"')[1][:300]
    assert "Faulty" in status
    assert "display dead" in status
    listed = await cloud.client.get("/dashboard/meters", params={"status": "faulty"})
    assert f'href="/dashboard/meters/{meter}"' in listed.text
    others = await cloud.client.get("/dashboard/meters", params={"status": "inactive"})
    assert f'href="/dashboard/meters/{meter}"' not in others.text


async def test_a_refused_supply_switch_keeps_what_was_typed_and_says_why(
    cloud: Cloud, gateway: EnrolledGateway
) -> None:
    await send(
        cloud,
        gateway,
        readings=[Reading(seq=40, meter_id="s-1", quantity="1.8.0", ts=NOW, value=1.0)],
    )
    meter = (await meter_ids(cloud, gateway.board))["s-1"]
    async with cloud.pool.connection() as conn:
        await conn.execute(
            "UPDATE gateways SET status = 'revoked' WHERE gateway_code = %s", (gateway.code,)
        )
    cloud.client.cookies.set("gg_access", await staff_token(cloud, gateway.board))
    cloud.client.cookies.set(CSRF_COOKIE, "form-token")
    reason = "Dues paid at the counter, receipt 4411"
    refused = await cloud.client.post(
        f"/dashboard/meters/{meter}/supply",
        data={"csrf": "form-token", "action": "reconnect", "reason": reason},
    )
    assert refused.status_code == 409
    form = refused.text[refused.text.index('id="supply"') :]
    assert f'value="{reason}"' in form  # not typed again
    assert '<option value="reconnect" selected>' in form
    assert "The command could not be queued" in form
    assert f"gateway {gateway.code} is revoked: it takes no commands" in form

"""A board's report formats: a report asked for with one follows it (its columns in its order
under its headings, grouped with totals, sorted, in its file type), checked by parsing the file
and comparing with SQL of the test's own over the readings; bad formats are refused naming what
is wrong, with nothing stored; formats are the board's alone."""

from __future__ import annotations

import csv
import io
import json
import uuid
from datetime import timedelta
from decimal import Decimal as D
from xml.etree import ElementTree as ET

from cloud.services import auth, fleet
from tests.cloud.billing.test_invoices import (
    PASSWORD,
    Board,
    add_reads,
    ist,
    login,
    setup,  # noqa: F401 - the fixture
)
from tests.cloud.conftest import Cloud
from tests.cloud.test_reports import download, make_report

FIRST_HALF = {"period_start": "2026-10-01", "period_end": "2026-10-16"}
# (category, gateway, kWh a day on day d: a + b*d) — uneven, so sums and sorts mean something
CONSUMERS = [
    ("domestic", 0, 2, 1),
    ("domestic", 1, 7, 0),
    ("commercial", 0, 3, 2),
    ("commercial", 1, 1, 3),
]


async def world(cloud: Cloud, board: Board) -> dict[str, str]:
    """Four consumers on two gateways, read at every local midnight of 1-16 October; their
    accounts by index."""
    tag = uuid.uuid4().hex[:6]
    accounts = {}
    async with cloud.pool.connection() as conn:
        gateways = []
        for g in range(2):
            cursor = await conn.execute(
                "INSERT INTO gateways (board_id, gateway_code, public_key) VALUES (%s, %s, 'k')"
                " RETURNING id",
                (board.id, f"gw-{tag}-{g}"),
            )
            gateways.append((await cursor.fetchone())["id"])
        meters = []
        for i, (category, g, _, _) in enumerate(CONSUMERS):
            cursor = await conn.execute(
                "INSERT INTO consumers (board_id, account_no, name, category, sanctioned_load_kw)"
                " VALUES (%s, %s, %s, %s, 3) RETURNING id",
                (board.id, f"AC-{tag}-{i}", f"Consumer {i}", category),
            )
            consumer = (await cursor.fetchone())["id"]
            cursor = await conn.execute(
                "INSERT INTO meters (board_id, external_id, consumer_id, gateway_id)"
                " VALUES (%s, %s, %s, %s) RETURNING id",
                (board.id, f"m-{tag}-{i}", consumer, gateways[g]),
            )
            meters.append((await cursor.fetchone())["id"])
            accounts[i] = f"AC-{tag}-{i}"
        await conn.commit()
    for i, (_, _, a, b) in enumerate(CONSUMERS):
        total, reads = 100.0, []
        for d in range(17):  # midnights of 1..17 October
            reads.append((ist(1) + timedelta(days=d), total))
            total += a + b * (d + 1)
        await add_reads(cloud, meters[i], reads)
    return accounts


# the energy of each consumer per local day of the period, straight from the readings
DAILY = """
    WITH d AS (
        SELECT c.account_no, c.category, g.gateway_code, m.external_id,
               ((r.ts - interval '1 microsecond') AT TIME ZONE 'Asia/Kolkata')::date AS day,
               r.value - lag(r.value) OVER (PARTITION BY r.meter_id ORDER BY r.ts) AS delta
        FROM readings r JOIN meters m ON m.id = r.meter_id JOIN consumers c ON c.id = m.consumer_id
        JOIN gateways g ON g.id = m.gateway_id
        WHERE m.board_id = %(board)s AND r.quantity = '1.8.0'
    )
    SELECT * FROM d WHERE delta IS NOT NULL AND day >= '2026-10-01' AND day < '2026-10-16'
"""


async def expected(cloud: Cloud, board: Board, select: str) -> list[dict]:
    async with cloud.pool.connection() as conn:
        cursor = await conn.execute(f"WITH days AS ({DAILY}) {select}", {"board": board.id})
        return await cursor.fetchall()


async def create_format(cloud: Cloud, board: Board, body: dict) -> dict:
    response = await cloud.client.post(
        f"/api/v1/boards/{board.id}/report-formats", json=body, headers=board.admin
    )
    assert response.status_code == 201, response.text
    return response.json()


async def test_a_report_follows_its_boards_format(cloud: Cloud, setup: Board) -> None:  # noqa: F811
    accounts = await world(cloud, setup)

    # CSV: category and account (headed as the board says) and energy, by week, the biggest
    # consumers first within each week
    weekly = await create_format(
        cloud,
        setup,
        {
            "name": "Weekly energy by account",
            "kind": "consumption",
            "file_type": "csv",
            "columns": [
                {"column": "category", "label": "Tariff category"},
                {"column": "account_no"},
                {"column": "energy_kwh", "label": "Units (kWh)"},
            ],
            "group_by": "week",
            "sort_by": "energy_kwh",
            "sort_desc": True,
        },
    )
    report = await make_report(
        cloud, setup.admin, format_id=weekly["id"], board_id=setup.id, **FIRST_HALF
    )
    assert (report["kind"], report["format"], report["format_id"]) == (
        "consumption",
        "csv",
        weekly["id"],
    )
    lines = list(csv.reader(io.StringIO((await download(cloud, setup.admin, report)).decode())))
    assert lines[0] == ["Week (from Monday)", "Tariff category", "Account", "Units (kWh)"]
    want = await expected(
        cloud,
        setup,
        "SELECT date_trunc('week', day)::date AS week, category, account_no,"
        " sum(delta) AS kwh FROM days GROUP BY 1, 2, 3 ORDER BY 1, 4 DESC",
    )
    details = [line for line in lines[1:] if not line[0].endswith("otal")]
    assert [(w, c, a, D(k)) for w, c, a, k in details] == [
        (r["week"].isoformat(), r["category"], r["account_no"], D(str(r["kwh"]))) for r in want
    ]
    weeks = sorted({r["week"] for r in want})  # 28 Sep, 5 Oct, 12 Oct: three weeks in part
    assert len(weeks) == 3
    subtotals = {line[0]: D(line[3]) for line in lines if line[0].endswith(" total")}
    assert subtotals == {
        f"{week.isoformat()} total": sum(D(str(r["kwh"])) for r in want if r["week"] == week)
        for week in weeks
    }
    assert lines[-1][0] == "Total"
    assert D(lines[-1][3]) == sum(D(str(r["kwh"])) for r in want)
    assert lines[-1][1:3] == ["", ""]  # only amounts are totalled
    assert set(accounts.values()) == {r["account_no"] for r in want}

    # JSON: meter and gateway first, by category, sorted by meter
    by_category = await create_format(
        cloud,
        setup,
        {
            "name": "By category",
            "kind": "consumption",
            "file_type": "json",
            "columns": [{"column": "meter"}, {"column": "gateway"}, {"column": "energy_kwh"}],
            "group_by": "category",
            "sort_by": "meter",
        },
    )
    report = await make_report(
        cloud, setup.admin, format_id=by_category["id"], board_id=setup.id, **FIRST_HALF
    )
    body = json.loads(await download(cloud, setup.admin, report))
    want = await expected(
        cloud,
        setup,
        "SELECT category, external_id, gateway_code, sum(delta) AS kwh FROM days"
        " GROUP BY 1, 2, 3 ORDER BY 1, 2",
    )
    assert body["group_by"] == "category"
    assert [g["group"] for g in body["groups"]] == ["commercial", "domestic"]
    for group in body["groups"]:
        mine = [r for r in want if r["category"] == group["group"]]
        assert [list(r) for r in group["rows"][0:1]] == [["Meter", "Gateway", "Energy (kWh)"]]
        assert [(r["Meter"], r["Gateway"], D(r["Energy (kWh)"])) for r in group["rows"]] == [
            (r["external_id"], r["gateway_code"], D(str(r["kwh"]))) for r in mine
        ]
        assert D(group["totals"]["Energy (kWh)"]) == sum(D(str(r["kwh"])) for r in mine)
        assert group["totals"]["Meter"] == ""

    # XML: energy per gateway and day, grouped by gateway; the elements keep the column keys
    by_gateway = await create_format(
        cloud,
        setup,
        {
            "name": "Gateways by day",
            "kind": "consumption",
            "file_type": "xml",
            "columns": [{"column": "period", "label": "Day"}, {"column": "energy_kwh"}],
            "group_by": "gateway",
        },
    )
    report = await make_report(
        cloud, setup.admin, format_id=by_gateway["id"], board_id=setup.id, **FIRST_HALF
    )
    root = ET.fromstring(await download(cloud, setup.admin, report))
    assert [(c.get("key"), c.get("heading")) for c in root.find("columns")] == [
        ("period", "Day"),
        ("energy_kwh", "Energy (kWh)"),
    ]
    want = await expected(
        cloud,
        setup,
        "SELECT gateway_code, day, sum(delta) AS kwh FROM days GROUP BY 1, 2 ORDER BY 1, 2",
    )
    got = [
        (group.get("key"), row.findtext("period"), D(row.findtext("energy_kwh")))
        for group in root.find("groups")
        for row in group.findall("row")
    ]
    assert sorted(got) == [
        (r["gateway_code"], r["day"].isoformat(), D(str(r["kwh"]))) for r in want
    ]
    assert len(got) == 2 * 15  # two gateways, fifteen days: one row each, meters folded
    totals = {g.get("key"): D(g.find("totals").findtext("energy_kwh")) for g in root.find("groups")}
    for gateway, total in totals.items():
        assert total == sum(D(str(r["kwh"])) for r in want if r["gateway_code"] == gateway)

    # a report asked for with a format may not contradict it
    response = await cloud.client.post(
        "/api/v1/reports",
        json={"format_id": weekly["id"], "kind": "alerts", "board_id": setup.id, **FIRST_HALF},
        headers=setup.admin,
    )
    assert response.status_code == 422, response.text
    assert "Weekly energy by account" in response.json()["detail"]


GOOD = {
    "name": "Good",
    "kind": "consumption",
    "file_type": "csv",
    "columns": [{"column": "meter"}, {"column": "energy_kwh"}],
}


BAD_FORMATS = [  # (change, field named, words of the message)
    (
        {"columns": [{"column": "meter"}, {"column": "voltage"}]},
        "columns.1.column",
        ["'voltage'", "consumption", "energy_kwh"],
    ),
    (
        {"columns": [{"column": "meter"}, {"column": "meter"}]},
        "columns.1.column",
        ["'meter'", "twice"],
    ),
    ({"group_by": "severity"}, "group_by", ["'severity'", "week", "category"]),
    ({"sort_by": "period"}, "sort_by", ["'period'", "chosen columns"]),
    (
        {
            "columns": [
                {"column": "meter", "label": "X"},
                {"column": "energy_kwh", "label": "x"},
            ]
        },
        "columns.1.label",
        ["'x'", "twice"],
    ),
    ({"kind": "alerts"}, "columns.0.column", ["'meter'", "alerts"]),
    ({"columns": []}, "body.columns", ["at least 1"]),
    ({"file_type": "xlsx"}, "body.file_type", []),
    ({"colour": "red"}, "body.colour", []),
    ({"columns": [{"column": "meter", "label": "x" * 61}]}, "body.columns.0.label", []),
    ({"columns": [{"column": "Meter; DROP"}]}, "body.columns.0.column", []),
]


async def test_bad_formats_are_refused_naming_what_is_wrong(
    cloud: Cloud,
    setup: Board,  # noqa: F811
) -> None:
    for change, field, words in BAD_FORMATS:
        response = await cloud.client.post(
            f"/api/v1/boards/{setup.id}/report-formats",
            json={**GOOD, **change},
            headers=setup.admin,
        )
        assert response.status_code == 422, (change, response.text)
        problem = response.json()
        assert field in [e["field"] for e in problem["errors"]], (change, problem)
        for word in words:
            assert word in problem["detail"], (change, problem)
    async with cloud.pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT count(*) AS n FROM report_formats WHERE board_id = %s", (setup.id,)
        )
        assert (await cursor.fetchone())["n"] == 0


async def test_formats_are_the_boards_edited_audited_and_kept_while_used(
    cloud: Cloud,
    setup: Board,  # noqa: F811
) -> None:
    made = await create_format(cloud, setup, GOOD)
    assert (
        await cloud.client.post(
            f"/api/v1/boards/{setup.id}/report-formats", json=GOOD, headers=setup.admin
        )
    ).status_code == 409  # one name per board

    # another board's admin neither sees nor uses nor changes it
    code = f"RF-{uuid.uuid4().hex[:6].upper()}"
    async with cloud.pool.connection() as conn:
        await fleet.create_board(conn, state_code="TS", code=code, name="Other", actor="t")
        email = f"other-{uuid.uuid4().hex[:6]}@example.in"
        await auth.create_user(
            conn, email=email, password=PASSWORD, role="BOARD_ADMIN", board_code=code, actor="t"
        )
    other = await login(cloud, email)
    url = f"/api/v1/report-formats/{made['id']}"
    assert (await cloud.client.get(url, headers=other)).status_code == 404
    assert (await cloud.client.put(url, json=GOOD, headers=other)).status_code == 404
    assert (await cloud.client.delete(url, headers=other)).status_code == 404
    response = await cloud.client.post(
        "/api/v1/reports",
        json={"format_id": made["id"], "board_id": setup.id, **FIRST_HALF},
        headers=other,
    )
    assert response.status_code == 404

    # edited: a report made before keeps the layout it was made with
    before = await make_report(
        cloud, setup.admin, format_id=made["id"], board_id=setup.id, **FIRST_HALF
    )
    edited = {**GOOD, "columns": [{"column": "energy_kwh", "label": "All units"}]}
    response = await cloud.client.put(url, json=edited, headers=setup.admin)
    assert response.status_code == 200, response.text
    assert response.json()["columns"] == [{"column": "energy_kwh", "label": "All units"}]
    assert (await download(cloud, setup.admin, before)).decode().startswith("Meter,Energy (kWh)")
    after = await make_report(
        cloud, setup.admin, format_id=made["id"], board_id=setup.id, **FIRST_HALF
    )
    assert (await download(cloud, setup.admin, after)).decode().startswith("All units")

    # in use by a schedule: kept, saying by which
    admin_id = await _user_id(cloud, setup)
    response = await cloud.client.post(
        f"/api/v1/boards/{setup.id}/report-schedules",
        json={
            "name": "Monthly",
            "format_id": made["id"],
            "cadence": "monthly",
            "user_ids": [admin_id],
        },
        headers=setup.admin,
    )
    assert response.status_code == 201, response.text
    response = await cloud.client.delete(url, headers=setup.admin)
    assert response.status_code == 409
    assert "'Monthly'" in response.json()["detail"]
    schedule_id = await _schedule(cloud, setup)
    response = await cloud.client.delete(
        f"/api/v1/report-schedules/{schedule_id}", headers=setup.admin
    )
    assert response.status_code == 204
    assert (await cloud.client.delete(url, headers=setup.admin)).status_code == 204

    async with cloud.pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT action FROM audit_log WHERE entity = 'report_format' AND entity_id = %s"
            " ORDER BY id",
            (str(made["id"]),),
        )
        assert [r["action"] for r in await cursor.fetchall()] == ["create", "update", "delete"]
        cursor = await conn.execute("SELECT layout FROM reports WHERE id = %s", (before["id"],))
        assert [c["column"] for c in (await cursor.fetchone())["layout"]["columns"]] == [
            "meter",
            "energy_kwh",
        ]


async def _user_id(cloud: Cloud, board: Board) -> int:
    response = await cloud.client.get("/api/v1/auth/me", headers=board.admin)
    return response.json()["user_id"]


async def _schedule(cloud: Cloud, board: Board) -> int:
    response = await cloud.client.get(
        f"/api/v1/boards/{board.id}/report-schedules", headers=board.admin
    )
    return response.json()[0]["id"]


def test_yes_and_no_are_written_as_files_write_them() -> None:
    """A gateway's clock_synced is 'true' in XML, JSON and CSV, not Python's 'True'."""
    from cloud.reports.formats import ReportData, to_csv, to_json, to_xml

    data = ReportData(title="Fleet", columns=["gateway", "clock_synced"], rows=[["gw-1", True]])
    data.rows.append(["gw-2", False])
    root = ET.fromstring(to_xml(data))
    assert [e.text for e in root.iter("clock_synced")] == ["true", "false"]
    assert [r["clock_synced"] for r in json.loads(to_json(data))["rows"]] == ["true", "false"]
    assert list(csv.reader(io.StringIO(to_csv(data).decode())))[1:] == [
        ["gw-1", "true"],
        ["gw-2", "false"],
    ]

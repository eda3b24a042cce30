"""Reports as jobs in every format, parsed back and compared with the database; scope and audit."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import uuid
from decimal import Decimal as D
from xml.etree import ElementTree as ET

from pypdf import PdfReader

from cloud.services import auth, fleet
from tests.cloud.billing.test_invoices import (
    PASSWORD,
    Board,
    consumer_with_meter,
    ist,
    login,
    run,
    setup,  # noqa: F401 - the fixture
    tariff,
)
from tests.cloud.conftest import Cloud

OCTOBER = {"period_start": "2026-10-01", "period_end": "2026-11-01"}


async def make_report(cloud: Cloud, headers: dict, **body: object) -> dict:
    response = await cloud.client.post("/api/v1/reports", json=body, headers=headers)
    assert response.status_code == 202, response.text
    report_id = response.json()["id"]
    for _ in range(100):
        report = (await cloud.client.get(f"/api/v1/reports/{report_id}", headers=headers)).json()
        if report["status"] in ("done", "failed"):
            assert report["status"] == "done", report
            return report
        await asyncio.sleep(0.1)
    raise AssertionError("the report did not finish")


async def download(cloud: Cloud, headers: dict, report: dict) -> bytes:
    response = await cloud.client.get(f"/api/v1/reports/{report['id']}/download", headers=headers)
    assert response.status_code == 200
    return response.content


async def test_a_downloaded_report_is_named_by_its_kind_and_its_whole_period(
    cloud: Cloud,
    setup: Board,  # noqa: F811
) -> None:
    report = await make_report(
        cloud, setup.admin, kind="alerts", format="csv", board_id=setup.id, **OCTOBER
    )
    response = await cloud.client.get(
        f"/api/v1/reports/{report['id']}/download", headers=setup.admin
    )
    disposition = response.headers["content-disposition"]
    assert disposition == 'attachment; filename="alerts-2026-10-01-to-2026-10-31.csv"'


async def test_reports_in_every_format_match_the_database(cloud: Cloud, setup: Board) -> None:  # noqa: F811
    headers = setup.admin
    await tariff(
        cloud,
        setup,
        [{"effective_from": "2026-01-01", "spec": {"energy": {"mode": "flat", "rate": "5"}}}],
    )
    # two consumers, reads at every local midnight: 10 and 20 kWh a day
    for per_day in (10, 20):
        await consumer_with_meter(
            cloud,
            setup,
            [
                (
                    ist(1, month=10) if d == 0 else ist(d + 1) if d < 31 else ist(1, month=11),
                    per_day * d,
                )
                for d in range(32)
            ],
        )
    await run(cloud, setup)
    listed = (await cloud.client.get("/api/v1/invoices?limit=10", headers=headers)).json()["items"]
    await cloud.client.post(f"/api/v1/invoices/{listed[0]['id']}/issue", headers=headers)
    await cloud.client.post(
        f"/api/v1/invoices/{listed[0]['id']}/payments", json={"amount": "100"}, headers=headers
    )
    base = {"board_id": setup.id, **OCTOBER}

    # consumption, daily, as CSV: 31 days x 2 meters, 10 and 20 kWh each day
    report = await make_report(cloud, headers, kind="consumption", format="csv", **base)
    rows = list(csv.DictReader(io.StringIO((await download(cloud, headers, report)).decode())))
    assert len(rows) == 62 == report["rows"]
    assert {D(r["energy_kwh"]) for r in rows} == {D(10), D(20)}
    assert {r["period"] for r in rows} == {f"2026-10-{d:02d}" for d in range(1, 32)}
    # ... and monthly as JSON: 310 + 620
    report = await make_report(
        cloud, headers, kind="consumption", format="json", granularity="monthly", **base
    )
    body = json.loads(await download(cloud, headers, report))
    assert sorted(D(r["energy_kwh"]) for r in body["rows"]) == [D(310), D(620)]
    assert D(body["summary"]["energy_kwh"]) == D(930)

    # billing summary as XML, against the invoices table
    report = await make_report(cloud, headers, kind="billing_summary", format="xml", **base)
    root = ET.fromstring(await download(cloud, headers, report))
    xml_rows = {r.findtext("status"): r for r in root.iter("row")}
    async with cloud.pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT status, count(*) AS n, sum(total) AS billed, sum(paid) AS paid FROM invoices"
            " WHERE board_id = %s GROUP BY status",
            (setup.id,),
        )
        expected = {r["status"]: r for r in await cursor.fetchall()}
    assert set(xml_rows) == set(expected) == {"draft", "issued"}
    for status_, row in expected.items():
        assert int(xml_rows[status_].findtext("invoices")) == row["n"]
        assert D(xml_rows[status_].findtext("billed")) == row["billed"]
        assert D(xml_rows[status_].findtext("paid")) == row["paid"]
    # revenue is what was paid within the period: the payment came in November
    assert D(root.find("summary").findtext("revenue")) == D(0)
    november = {"board_id": setup.id, "period_start": "2026-11-01", "period_end": "2026-12-01"}
    report = await make_report(cloud, headers, kind="billing_summary", format="json", **november)
    assert D(json.loads(await download(cloud, headers, report))["summary"]["revenue"]) == D(100)

    # fleet health as PDF (text extracted), alerts as CSV
    report = await make_report(cloud, headers, kind="fleet_health", format="pdf", **base)
    pdf = PdfReader(io.BytesIO(await download(cloud, headers, report)))
    text = " ".join(page.extract_text() for page in pdf.pages)
    assert "Fleet health" in text
    async with cloud.pool.connection() as conn:
        gateways = (
            await (
                await conn.execute(
                    "SELECT count(*) AS n FROM gateways WHERE board_id = %s", (setup.id,)
                )
            ).fetchone()
        )["n"]
    assert f"gateways: {gateways}" in text
    report = await make_report(cloud, headers, kind="alerts", format="csv", **base)
    assert (
        (await download(cloud, headers, report)).decode().startswith("kind,severity,state,alerts")
    )


async def test_reports_are_scoped_deletable_and_audited(cloud: Cloud, setup: Board) -> None:  # noqa: F811
    report = await make_report(
        cloud, setup.admin, kind="fleet_health", format="json", board_id=setup.id, **OCTOBER
    )
    code = f"RP-{uuid.uuid4().hex[:6].upper()}"
    async with cloud.pool.connection() as conn:
        await fleet.create_board(conn, state_code="TS", code=code, name="Other", actor="t")
        email = f"other-{uuid.uuid4().hex[:6]}@example.in"
        await auth.create_user(
            conn, email=email, password=PASSWORD, role="BOARD_ADMIN", board_code=code, actor="t"
        )
    other = await login(cloud, email)
    url = f"/api/v1/reports/{report['id']}"
    assert (await cloud.client.get(url, headers=other)).status_code == 404
    assert (await cloud.client.get(f"{url}/download", headers=other)).status_code == 404
    sneaky = await cloud.client.post(
        "/api/v1/reports",
        json={"kind": "alerts", "board_id": setup.id, **OCTOBER},
        headers=other,
    )
    assert sneaky.status_code == 404
    bad = await cloud.client.post(
        "/api/v1/reports",
        json={
            "kind": "alerts",
            "board_id": setup.id,
            "period_start": "2026-11-01",
            "period_end": "2026-10-01",
        },
        headers=setup.admin,
    )
    assert bad.status_code == 422
    assert (await cloud.client.delete(url, headers=setup.admin)).status_code == 204
    assert (await cloud.client.get(url, headers=setup.admin)).status_code == 404
    async with cloud.pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT action FROM audit_log WHERE entity = 'report' AND entity_id = %s ORDER BY id",
            (str(report["id"]),),
        )
        assert [r["action"] for r in await cursor.fetchall()] == ["generate", "delete"]

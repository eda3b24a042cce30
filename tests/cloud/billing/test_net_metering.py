"""Net metering billed end to end, to the paisa: a gateway's signed import (1.8.0) and export
(2.8.0) reads, a consumer with rooftop solar on its record, a tariff with net-metering terms,
billing runs through the API, and the invoice lines and the bank compared with hand
computations. Four months: import above export (billed on the net units, slabs on net units);
export above import (banked as units for the next bill); the settlement month (the bank paid at
the feed-in rate, more than the bill's charges: the rest carried as a credit, the total zero);
then the credit brought forward. Running any month again carries nothing twice."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal as D

import httpx
import pytest

from cloud.services import auth
from shared import Batch, Heartbeat, Reading, seal_batch
from tests.cloud.billing.test_invoices import IST
from tests.cloud.conftest import Cloud, enroll_gateway, staff_headers
from tests.cloud.test_web_app import VIEWPORTS, Visit
from tests.cloud.world import PASSWORD

FEED_IN = D("2.50")
SPEC = {
    "energy": {
        "mode": "telescopic",
        "slabs": [
            {"up_to": "100", "rate": "3.00"},
            {"up_to": "300", "rate": "4.50"},
            {"rate": "6.00"},
        ],
    },
    "fixed": {"per_connection": "50.00"},
    "net_metering": {"feed_in_rate": str(FEED_IN), "settlement_month": 9},
}
MONTHS = ["2026-07-01", "2026-08-01", "2026-09-01", "2026-10-01", "2026-11-01"]
# the register at each month's first local midnight, as the meter shows it
IMPORT = [5000.0, 5350.25, 5530.65, 5680.95, 5891.65]  # +350.25, +180.4, +150.3, +210.7
EXPORT = [800.0, 920.5, 1181.15, 1276.275, 1316.475]  # +120.5, +260.65, +95.125, +40.2


async def _world(cloud: Cloud, board: str) -> tuple[int, int, int, dict[str, str]]:
    """The board's net-metering tariff, a solar household and a neighbour without generation
    (whose meter exports too, and is billed on its import alone); (board, solar, plain, admin)."""
    admin = await staff_headers(cloud, board)
    gateway = await enroll_gateway(cloud, board)
    async with cloud.pool.connection() as conn:
        board_id = (
            await (await conn.execute("SELECT id FROM boards WHERE code = %s", (board,))).fetchone()
        )["id"]
        for month in MONTHS:
            await conn.execute("SELECT ensure_readings_partition(%s)", (month,))
        await conn.commit()
    tariff = await cloud.client.post(
        "/api/v1/tariffs",
        json={"board_id": board_id, "category": "domestic", "name": "Domestic net metering"},
        headers=admin,
    )
    assert tariff.status_code == 201, tariff.text
    version = await cloud.client.post(
        f"/api/v1/tariffs/{tariff.json()['id']}/versions",
        json={"effective_from": "2026-04-01", "spec": SPEC},
        headers=admin,
    )
    assert version.status_code == 201, version.text
    tag = uuid.uuid4().hex[:6]
    readings = []
    for meter in (f"solar-{tag}", f"plain-{tag}"):
        for day, imported, exported in zip(MONTHS, IMPORT, EXPORT, strict=True):
            ts = datetime.fromisoformat(day).replace(tzinfo=IST).astimezone(UTC)
            for quantity, value in (("1.8.0", imported), ("2.8.0", exported)):
                readings.append(
                    Reading(
                        seq=len(readings) + 1, meter_id=meter, quantity=quantity, ts=ts, value=value
                    )
                )
    # mid-October, for the projection: 100.25 imported and 20.125 exported in 15 days
    middle = datetime(2026, 10, 16, tzinfo=IST).astimezone(UTC)
    for quantity, value in (("1.8.0", IMPORT[3] + 100.25), ("2.8.0", EXPORT[3] + 20.125)):
        readings.append(
            Reading(
                seq=len(readings) + 1,
                meter_id=f"solar-{tag}",
                quantity=quantity,
                ts=middle,
                value=value,
            )
        )
    sealed = seal_batch(
        Batch(
            gateway_id=gateway.code,
            batch_id=uuid.uuid4(),
            first_seq=1,
            last_seq=len(readings),
            sent_at=datetime.now(UTC),
            readings=readings,
            heartbeat=Heartbeat(software_version="t", backlog_readings=0, clock_synced=True),
        ),
        gateway.key,
    )
    sent = await cloud.client.post(
        "/api/v1/ingest/batches", content=sealed.body, headers=sealed.headers
    )
    assert sent.status_code == 200, sent.text
    solar = await cloud.client.post(
        "/api/v1/consumers",
        json={
            "board_id": board_id,
            "account_no": "SOLAR-1",
            "name": "Sun house",
            "generation": {"kind": "rooftop_solar", "capacity_kwp": "3.2", "since": "2026-06-15"},
        },
        headers=admin,
    )
    assert solar.status_code == 201, solar.text
    assert (solar.json()["generation_kind"], D(solar.json()["generation_kwp"])) == (
        "rooftop_solar",
        D("3.2"),
    )
    plain = await cloud.client.post(
        "/api/v1/consumers",
        json={"board_id": board_id, "account_no": "PLAIN-1", "name": "Shade house"},
        headers=admin,
    )
    assert plain.status_code == 201, plain.text
    meters = await cloud.client.get(
        "/api/v1/meters", params={"board_id": board_id, "limit": 100}, headers=admin
    )
    by_name = {m["external_id"]: m["id"] for m in meters.json()["items"]}
    for meter, consumer in ((f"solar-{tag}", solar), (f"plain-{tag}", plain)):
        assigned = await cloud.client.post(
            f"/api/v1/meters/{by_name[meter]}/assign",
            json={"consumer_id": consumer.json()["id"]},
            headers=admin,
        )
        assert assigned.status_code == 200, assigned.text
    return board_id, solar.json()["id"], plain.json()["id"], admin


async def _run(cloud: Cloud, board_id: int, admin: dict, month: int) -> dict:
    start, end = MONTHS[month], MONTHS[month + 1]
    ran = await cloud.client.post(
        "/api/v1/billing/runs",
        json={"board_id": board_id, "period_start": start, "period_end": end},
        headers=admin,
    )
    assert ran.status_code == 200, ran.text
    assert ran.json()["failed"] == 0, ran.json()
    return ran.json()


async def _invoice(cloud: Cloud, admin: dict, consumer_id: int, month: int) -> dict:
    listed = await cloud.client.get(
        "/api/v1/invoices",
        params={"consumer_id": consumer_id, "period_start": MONTHS[month]},
        headers=admin,
    )
    latest = max(listed.json()["items"], key=lambda i: i["version"])
    return (await cloud.client.get(f"/api/v1/invoices/{latest['id']}", headers=admin)).json()


def _lines(invoice: dict) -> list[tuple[str, D, D, D]]:
    return [
        (ln["code"], D(ln["quantity"]), D(ln["rate"]), D(ln["amount"])) for ln in invoice["lines"]
    ]


def _readings(imported: str, exported: str, banked_in: str, billed: str, banked_out: str):
    return [
        ("net_metering", D(imported), D(0), D(0)),
        ("net_metering", D(exported), D(0), D(0)),
        ("net_metering", D(banked_in), D(0), D(0)),
        ("net_metering", D(billed), D(0), D(0)),
        ("net_metering", D(banked_out), D(0), D(0)),
    ]


async def _ledger(cloud: Cloud, consumer_id: int) -> list[tuple]:
    async with cloud.pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT period_start::text, banked_in_kwh, billed_kwh, banked_out_kwh, settled_kwh,"
            " settled_amount, credit_in, credit_out FROM net_metering_ledger"
            " WHERE consumer_id = %s ORDER BY period_start",
            (consumer_id,),
        )
        return [tuple(row.values()) for row in await cursor.fetchall()]


async def test_net_metering_through_the_year_to_the_paisa(cloud: Cloud, board: str) -> None:
    board_id, solar, plain, admin = await _world(cloud, board)

    # July: 350.25 imported, 120.5 exported, nothing banked: 229.75 net units on the slabs
    # 100 x 3.00 + 129.75 x 4.50 (583.875, rounded once: 583.88) + 50.00 fixed
    await _run(cloud, board_id, admin, 0)
    july = await _invoice(cloud, admin, solar, 0)
    assert _lines(july) == [
        *_readings("350.25", "120.5", "0", "229.75", "0"),
        ("energy", D(100), D("3.00"), D("300.00")),
        ("energy", D("129.75"), D("4.50"), D("583.88")),
        ("fixed", D(1), D("50.00"), D("50.00")),
    ]
    assert D(july["total"]) == D("933.88")
    assert D(july["units"]) == D("229.75")
    assert [ln["description"] for ln in july["lines"][:2]] == [
        "Imported from the grid (register 1.8.0)",
        "Exported to the grid (register 2.8.0)",
    ]
    # the neighbour without generation: its import alone, 350.25 units, export ignored
    neighbour = await _invoice(cloud, admin, plain, 0)
    assert D(neighbour["units"]) == D("350.25")
    assert D(neighbour["total"]) == D(300) + D(900) + D("50.25") * 6 + 50  # 1551.50
    assert "net_metering" not in (neighbour["details"] or {})

    # August: 180.4 imported, 260.65 exported: 80.25 units banked, only the fixed charge
    await _run(cloud, board_id, admin, 1)
    august = await _invoice(cloud, admin, solar, 1)
    assert _lines(august) == [
        *_readings("180.4", "260.65", "0", "0", "80.25"),
        ("fixed", D(1), D("50.00"), D("50.00")),
    ]
    assert D(august["total"]) == D("50.00")

    # September, the settlement month: 150.3 - 95.125 - 80.25 banked = -25.075: a surplus of
    # 25.075 units paid at 2.50 (62.6875: 62.69); the charges are 50.00, so 12.69 is carried
    # to the next bill as a credit and the bill is zero
    await _run(cloud, board_id, admin, 2)
    september = await _invoice(cloud, admin, solar, 2)
    assert _lines(september) == [
        *_readings("150.3", "95.125", "80.25", "0", "0"),
        ("fixed", D(1), D("50.00"), D("50.00")),
        ("net_metering_settlement", D("25.075"), -FEED_IN, D("-62.69")),
        ("credit_carried_forward", D(1), D("12.69"), D("12.69")),
    ]
    assert D(september["total"]) == D("0.00")
    assert D(september["amount_due"]) == D("0.00")
    pdf = await cloud.client.get(f"/api/v1/invoices/{september['id']}/pdf", headers=admin)
    assert pdf.status_code == 200, pdf.text
    assert pdf.content.startswith(b"%PDF")

    # October: 210.7 - 40.2 = 170.5 net: 300.00 + 70.5 x 4.50 (317.25) + 50.00 = 667.25,
    # less the 12.69 credit brought forward: 654.56
    await _run(cloud, board_id, admin, 3)
    october = await _invoice(cloud, admin, solar, 3)
    assert _lines(october) == [
        *_readings("210.7", "40.2", "0", "170.5", "0"),
        ("energy", D(100), D("3.00"), D("300.00")),
        ("energy", D("70.5"), D("4.50"), D("317.25")),
        ("fixed", D(1), D("50.00"), D("50.00")),
        ("credit_brought_forward", D(1), D("-12.69"), D("-12.69")),
    ]
    assert D(october["total"]) == D("654.56")
    for invoice in (july, august, september, october):
        assert sum(amount for *_, amount in _lines(invoice)) == D(invoice["total"])

    expected = [
        ("2026-07-01", D(0), D("229.75"), D(0), D(0), D(0), D(0), D(0)),
        ("2026-08-01", D(0), D(0), D("80.25"), D(0), D(0), D(0), D(0)),
        ("2026-09-01", D("80.25"), D(0), D(0), D("25.075"), D("62.69"), D(0), D("12.69")),
        ("2026-10-01", D(0), D("170.5"), D(0), D(0), D(0), D("12.69"), D(0)),
    ]
    assert await _ledger(cloud, solar) == expected

    # the projection of October as it stood on the 16th: 15 days of 31, so 100.25 x 31/15
    # imported and 20.125 x 31/15 exported, netted: 165.591666... units; 300.00 + 65.591666 x
    # 4.50 (295.1625: 295.16) + 50.00 fixed, less the 12.69 September carried: 632.47
    projected = await cloud.client.get(
        f"/api/v1/consumers/{solar}/estimate",
        params={"as_of": datetime(2026, 10, 16, tzinfo=IST).isoformat()},
        headers=admin,
    )
    assert projected.status_code == 200, projected.text
    assert D(projected.json()["projected_total"]) == D("632.47"), projected.json()
    assert "net_metering" in [line["code"] for line in projected.json()["lines"]]
    # panels connected only after the cycle: that cycle's bill nets nothing, nor its estimate
    async with cloud.pool.connection() as conn:
        cursor = await conn.execute(
            "UPDATE consumers SET generation_since = '2026-11-05' WHERE id = %s"
            " RETURNING (SELECT generation_since FROM consumers WHERE id = %s) AS since",
            (solar, solar),
        )
        since = (await cursor.fetchone())["since"]
        await conn.commit()
    unnetted = await cloud.client.get(
        f"/api/v1/consumers/{solar}/estimate",
        params={"as_of": datetime(2026, 10, 16, tzinfo=IST).isoformat()},
        headers=admin,
    )
    assert unnetted.status_code == 200, unnetted.text
    assert "net_metering" not in [line["code"] for line in unnetted.json()["lines"]]
    assert D(unnetted.json()["projected_total"]) > D("632.47")
    async with cloud.pool.connection() as conn:
        await conn.execute(
            "UPDATE consumers SET generation_since = %s WHERE id = %s", (since, solar)
        )
        await conn.commit()

    # every month billed again, in any order: nothing changes, nothing is carried twice
    for month in (1, 2, 0, 3, 2):
        again = await _run(cloud, board_id, admin, month)
        assert (again["created"], again["revised"], again["unchanged"]) == (0, 0, 2), again
    assert await _ledger(cloud, solar) == expected
    assert D((await _invoice(cloud, admin, solar, 2))["total"]) == D("0.00")
    assert (await _invoice(cloud, admin, solar, 3))["version"] == 1


async def test_settling_each_period_and_terms_missing(cloud: Cloud, board: str) -> None:
    board_id, solar, _, admin = await _world(cloud, board)
    # August alone under terms that settle every period: 80.25 x 2.50 = 200.625 -> 200.63,
    # against 50.00 of charges: 150.63 carried
    async with cloud.pool.connection() as conn:
        await conn.execute(
            "UPDATE tariff_versions SET spec = jsonb_set(spec, '{net_metering,surplus}',"
            " '\"settle_each_period\"') WHERE tariff_id IN (SELECT id FROM tariffs"
            " WHERE board_id = %s)",
            (board_id,),
        )
        await conn.commit()
    await _run(cloud, board_id, admin, 1)
    august = await _invoice(cloud, admin, solar, 1)
    assert _lines(august)[-2:] == [
        ("net_metering_settlement", D("80.25"), -FEED_IN, D("-200.63")),
        ("credit_carried_forward", D(1), D("150.63"), D("150.63")),
    ]
    assert D(august["total"]) == 0
    # terms taken off the version: the solar household's bill fails, saying what to add
    async with cloud.pool.connection() as conn:
        await conn.execute(
            "UPDATE tariff_versions SET spec = spec - 'net_metering' WHERE tariff_id IN"
            " (SELECT id FROM tariffs WHERE board_id = %s)",
            (board_id,),
        )
        await conn.commit()
    ran = await cloud.client.post(
        "/api/v1/billing/runs",
        json={"board_id": board_id, "period_start": MONTHS[2], "period_end": MONTHS[3]},
        headers=admin,
    )
    assert ran.json()["failed"] == 1
    assert "has no net_metering terms" in " ".join(ran.json()["errors"])


async def test_bad_generation_sources_and_terms_are_refused(cloud: Cloud, board: str) -> None:
    admin = await staff_headers(cloud, board)
    async with cloud.pool.connection() as conn:
        board_id = (
            await (await conn.execute("SELECT id FROM boards WHERE code = %s", (board,))).fetchone()
        )["id"]
    base = {"board_id": board_id, "account_no": "G-1", "name": "Generator"}
    for generation, field in (
        ({"kind": "rooftop_solar", "capacity_kwp": "-3", "since": "2026-01-01"}, "capacity_kwp"),
        ({"kind": "rooftop_solar", "capacity_kwp": "0", "since": "2026-01-01"}, "capacity_kwp"),
        ({"kind": "rooftop_solar", "capacity_kwp": "20000", "since": "2026-01-01"}, "capacity_kwp"),
        ({"kind": "nuclear", "capacity_kwp": "3", "since": "2026-01-01"}, "kind"),
        ({"kind": "rooftop_solar", "capacity_kwp": "3", "since": "soon"}, "since"),
        (
            {"kind": "rooftop_solar", "capacity_kwp": "3", "since": "2026-01-01", "tilt": 20},
            "tilt",
        ),
        ({"kind": "rooftop_solar", "since": "2026-01-01"}, "capacity_kwp"),
    ):
        answer = await cloud.client.post(
            "/api/v1/consumers", json={**base, "generation": generation}, headers=admin
        )
        assert answer.status_code == 422, (generation, answer.text)
        assert field in answer.text, answer.text
    created = await cloud.client.post("/api/v1/consumers", json=base, headers=admin)
    assert created.status_code == 201
    assert created.json()["generation_kind"] is None
    consumer_id = created.json()["id"]
    changed = await cloud.client.patch(
        f"/api/v1/consumers/{consumer_id}",
        json={"generation": {"kind": "wind", "capacity_kwp": "1.5", "since": "2025-04-01"}},
        headers=admin,
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["generation_since"] == "2025-04-01"
    async with cloud.pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT before->>'generation_kind' AS b, after->>'generation_kind' AS a FROM audit_log"
            " WHERE entity = 'consumer' AND entity_id = %s AND action = 'update'",
            (str(consumer_id),),
        )
        assert await cursor.fetchall() == [{"b": None, "a": "wind"}]
    cleared = await cloud.client.patch(
        f"/api/v1/consumers/{consumer_id}", json={"generation": None}, headers=admin
    )
    assert cleared.status_code == 200
    assert cleared.json()["generation_kwp"] is None
    # net-metering terms: unknown fields, a feed-in rate below zero, a month 13, time of day
    tariff = await cloud.client.post(
        "/api/v1/tariffs",
        json={"board_id": board_id, "category": "domestic", "name": "T"},
        headers=admin,
    )
    tod = {
        "mode": "time_of_day",
        "rates": {"peak": "8", "normal": "5"},
        "weekday": [["normal"] * 24] * 12,
        "weekend": [["normal"] * 24] * 12,
    }
    for terms, energy, words in (
        ({"feed_in_rate": "2", "bonus": 1}, None, "bonus"),
        ({"feed_in_rate": "-2"}, None, "feed_in_rate"),
        ({"feed_in_rate": "2", "settlement_month": 13}, None, "settlement_month"),
        ({"feed_in_rate": "2"}, tod, "time_of_day"),
    ):
        spec = {"energy": energy or {"mode": "flat", "rate": "5"}, "net_metering": terms}
        answer = await cloud.client.post(
            f"/api/v1/tariffs/{tariff.json()['id']}/versions",
            json={"effective_from": "2026-04-01", "spec": spec},
            headers=admin,
        )
        assert answer.status_code == 422, answer.text
        assert words in answer.text, answer.text


@pytest.mark.browser
@pytest.mark.slow
async def test_a_settlement_bill_reads_well_in_the_browser(
    cloud: Cloud, board: str, served: httpx.AsyncClient, browser
) -> None:
    board_id, solar, _, admin = await _world(cloud, board)
    for month in (0, 1, 2):
        await _run(cloud, board_id, admin, month)
    september = await _invoice(cloud, admin, solar, 2)
    email = f"billing-{uuid.uuid4().hex[:8]}@example.in"
    async with cloud.pool.connection() as conn:
        await auth.create_user(
            conn, email=email, password=PASSWORD, role="BOARD_ADMIN", board_code=board, actor="t"
        )
    base = str(served.base_url).rstrip("/")
    for viewport, (width, height) in VIEWPORTS.items():
        context = await browser.new_context(viewport={"width": width, "height": height})
        visit = Visit(await context.new_page(), base)
        await visit.sign_in(email)
        await visit.open(f"/dashboard/invoices/{september['id']}", f"net-metering-bill-{viewport}")
        text = await visit.page.inner_text("#lines-table")
        for words in (
            "Exported to the grid (register 2.8.0)",
            "Net metering settlement: 25.075 kWh banked, paid at the feed-in rate",
            "−₹62.69",
            "Credit carried to the next bill",
            "25.075 kWh",
            "/ kWh",  # each rate with its unit and currency, not a bare 4.0000
        ):
            assert words in text, (words, text)
        assert "0000" not in text, text
        await context.close()

"""Billing runs and invoices against real PostgreSQL: worked bills, idempotent runs, late data
trued up by a new version, rollover, meter replacement, a tariff change mid-cycle, the invoice
lifecycle, and bad input refused with nothing stored."""

from __future__ import annotations

import io
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal as D
from zoneinfo import ZoneInfo

import pytest
from pypdf import PdfReader

from cloud.services import auth, billing_runs
from tests.cloud.billing.test_tariff import DELHI
from tests.cloud.conftest import Cloud

IST = ZoneInfo("Asia/Kolkata")
PASSWORD = "correct horse battery"
OCTOBER = {"period_start": "2026-10-01", "period_end": "2026-11-01"}


def ist(day: int, hour: int = 0, month: int = 10) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=IST)


@dataclass
class Board:
    id: int
    code: str
    admin: dict[str, str]


async def login(cloud: Cloud, email: str) -> dict[str, str]:
    response = await cloud.client.post(
        "/api/v1/auth/login", json={"email": email, "password": PASSWORD}
    )
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


@pytest.fixture
async def setup(cloud: Cloud, board: str) -> Board:
    async with cloud.pool.connection() as conn:
        board_id = (
            await (await conn.execute("SELECT id FROM boards WHERE code = %s", (board,))).fetchone()
        )["id"]
        for month in ("2026-08-01", "2026-09-01", "2026-10-01", "2026-11-01"):
            await conn.execute("SELECT ensure_readings_partition(%s)", (month,))
        await conn.commit()
        email = f"admin-{uuid.uuid4().hex[:8]}@example.in"
        await auth.create_user(
            conn, email=email, password=PASSWORD, role="BOARD_ADMIN", board_code=board, actor="t"
        )
    return Board(board_id, board, await login(cloud, email))


async def consumer_with_meter(
    cloud: Cloud, board: Board, reads: list[tuple[datetime, float]], kw: str = "3"
) -> tuple[int, int]:
    tag = uuid.uuid4().hex[:8]
    async with cloud.pool.connection() as conn:
        consumer = (
            await (
                await conn.execute(
                    "INSERT INTO consumers (board_id, account_no, name, sanctioned_load_kw)"
                    " VALUES (%s, %s, 'C', %s) RETURNING id",
                    (board.id, f"AC-{tag}", kw),
                )
            ).fetchone()
        )["id"]
        meter = (
            await (
                await conn.execute(
                    "INSERT INTO meters (board_id, external_id, consumer_id) VALUES (%s, %s, %s)"
                    " RETURNING id",
                    (board.id, f"m-{tag}", consumer),
                )
            ).fetchone()
        )["id"]
        await conn.commit()
    await add_reads(cloud, meter, reads)
    return consumer, meter


async def add_reads(
    cloud: Cloud, meter: int, reads: list[tuple[datetime, float]], quantity: str = "1.8.0"
) -> None:
    async with cloud.pool.connection() as conn:
        gateway = await _any_gateway(conn)
        for ts, value in reads:
            await conn.execute(
                "INSERT INTO readings (meter_id, quantity, ts, value, quality, gateway_id)"
                " VALUES (%s, %s, %s, %s, 'ok', %s)",
                (meter, quantity, ts, value, gateway),
            )
        await conn.commit()


def flat_tariff(**spec: object) -> dict:
    """A tariff version in force all year: every unit at 5.00, plus `spec`."""
    return {
        "effective_from": "2026-01-01",
        "spec": {"energy": {"mode": "flat", "rate": "5.00"}, **spec},
    }


async def _any_gateway(conn) -> int:
    row = await (await conn.execute("SELECT id FROM gateways LIMIT 1")).fetchone()
    if row:
        return row["id"]
    board = (await (await conn.execute("SELECT id FROM boards LIMIT 1")).fetchone())["id"]
    cursor = await conn.execute(
        "INSERT INTO gateways (board_id, gateway_code, public_key) VALUES (%s, %s, 'k')"
        " RETURNING id",
        (board, f"gw-bill-{uuid.uuid4().hex[:6]}"),
    )
    return (await cursor.fetchone())["id"]


async def tariff(cloud: Cloud, board: Board, versions: list[dict]) -> int:
    created = await cloud.client.post(
        "/api/v1/tariffs",
        json={"board_id": board.id, "category": "domestic", "name": "Domestic"},
        headers=board.admin,
    )
    assert created.status_code == 201, created.text
    for version in versions:
        response = await cloud.client.post(
            f"/api/v1/tariffs/{created.json()['id']}/versions", json=version, headers=board.admin
        )
        assert response.status_code == 201, response.text
    return created.json()["id"]


async def run(cloud: Cloud, board: Board, period: dict = OCTOBER) -> dict:
    response = await cloud.client.post(
        "/api/v1/billing/runs", json={"board_id": board.id, **period}, headers=board.admin
    )
    assert response.status_code == 200, response.text
    return response.json()


async def invoices_of(cloud: Cloud, board: Board, consumer: int) -> list[dict]:
    listed = await cloud.client.get(
        f"/api/v1/invoices?consumer_id={consumer}&sort=id", headers=board.admin
    )
    return [
        (await cloud.client.get(f"/api/v1/invoices/{i['id']}", headers=board.admin)).json()
        for i in listed.json()["items"]
    ]


DELHI_VERSION = {"effective_from": "2026-04-01", "spec": DELHI.model_dump(mode="json")}


async def test_a_month_billed_from_interpolated_boundaries(cloud: Cloud, setup: Board) -> None:
    await tariff(cloud, setup, [DELHI_VERSION])
    consumer, _ = await consumer_with_meter(
        cloud,
        setup,
        [
            (ist(30, 22, month=9), 1000.0),
            (ist(1, 2), 1004.0),  # 1 Oct 00:00 lies half way: 1002.0
            (ist(15, 12), 1200.0),
            (ist(31, 23), 1450.0),
            (ist(1, 1, month=11), 1452.0),  # 1 Nov 00:00 lies half way: 1451.0
        ],
    )
    assert (await run(cloud, setup))["created"] == 1
    [invoice] = await invoices_of(cloud, setup, consumer)
    # 1451 - 1002 = 449 units: 200 x 4.00 + 200 x 5.95 + 49 x 7.30 = 800 + 1190 + 357.70;
    # fixed charge for 3 kW (2-5 kW band) 100
    assert D(invoice["units"]) == D(449)
    assert [D(line["amount"]) for line in invoice["lines"]] == [
        D("800.00"),
        D("1190.00"),
        D("357.70"),
        D("100.00"),
    ]
    assert D(invoice["total"]) == D(invoice["amount_due"]) == D("2447.70")
    assert invoice["status"] == "draft"
    assert invoice["estimated"] is False
    again = await run(cloud, setup)
    assert (again["created"], again["revised"], again["unchanged"]) == (0, 0, 1)
    assert len(await invoices_of(cloud, setup, consumer)) == 1


async def test_late_data_is_trued_up_by_a_version_billing_the_difference(
    cloud: Cloud, setup: Board
) -> None:
    flat = {"energy": {"mode": "flat", "rate": "5.00"}}
    await tariff(cloud, setup, [{"effective_from": "2026-01-01", "spec": flat}])
    consumer, meter = await consumer_with_meter(
        cloud,
        setup,
        [(ist(1, month=9), 100.0), (ist(1, month=10), 400.0), (ist(20), 600.0)],
    )
    september = {"period_start": "2026-09-01", "period_end": "2026-10-01"}
    assert (await run(cloud, setup, september))["created"] == 1  # 300 units in 30 days
    assert (await run(cloud, setup))["created"] == 1
    _, october = await invoices_of(cloud, setup, consumer)
    # no read after 1 Nov yet: estimated at September's 10 units a day x 31 days x 5.00
    assert october["estimated"] is True
    assert D(october["units"]) == D(310)
    assert D(october["total"]) == D("1550.00")
    await add_reads(cloud, meter, [(ist(1, month=11), 720.0)])  # the data arrives
    revised = await run(cloud, setup)
    assert revised["revised"] == 1
    *_, v1, v2 = await invoices_of(cloud, setup, consumer)
    assert (v2["version"], v2["previous_id"], v2["estimated"]) == (2, v1["id"], False)
    # measured: 720 - 400 = 320 units x 5.00 = 1600.00; version 1 billed 1550.00
    assert D(v2["total"]) == D("1600.00")
    assert D(v2["amount_due"]) == D("50.00")
    assert [D(line["amount"]) for line in v2["lines"]] == [D("1600.00"), D("-1550.00")]
    assert sum(D(line["amount"]) for line in v2["lines"]) == D(v2["amount_due"])
    assert D(v1["total"]) == D("1550.00")  # the first version is untouched
    assert (await run(cloud, setup))["unchanged"] == 1


async def test_rollover_and_replacement_lose_no_energy(cloud: Cloud, setup: Board) -> None:
    await tariff(
        cloud,
        setup,
        [{"effective_from": "2026-01-01", "spec": {"energy": {"mode": "flat", "rate": "5"}}}],
    )
    consumer, old = await consumer_with_meter(
        cloud,
        setup,
        [(ist(1), 99_900.0), (ist(10), 99_990.0), (ist(15), 50.0), (ist(20), 80.0)],
    )
    headers = setup.admin
    replaced = await cloud.client.post(
        f"/api/v1/meters/{old}/replace",
        json={"external_id": f"new-{old}", "replaced_at": ist(20).isoformat()},
        headers=headers,
    )
    assert replaced.status_code == 201, replaced.text
    await add_reads(cloud, replaced.json()["id"], [(ist(20), 0.0), (ist(1, month=11), 120.0)])
    await run(cloud, setup)
    [invoice] = await invoices_of(cloud, setup, consumer)
    # old meter: 99,900 -> wraps at 100,000 -> 80: 180 units; new meter 0 -> 120: 300 in all
    assert D(invoice["units"]) == D(300)
    assert D(invoice["total"]) == D(1500)


async def test_a_tariff_change_mid_cycle_is_prorated_by_days(cloud: Cloud, setup: Board) -> None:
    await tariff(
        cloud,
        setup,
        [
            {
                "effective_from": "2026-01-01",
                "effective_to": "2026-10-16",
                "spec": {"energy": {"mode": "flat", "rate": "4.00"}},
            },
            {"effective_from": "2026-10-16", "spec": {"energy": {"mode": "flat", "rate": "6.00"}}},
        ],
    )
    consumer, _ = await consumer_with_meter(
        cloud, setup, [(ist(1), 0.0), (ist(1, month=11), 310.0)]
    )
    await run(cloud, setup)
    [invoice] = await invoices_of(cloud, setup, consumer)
    # 15 of 31 days at 4.00: 150 units = 600.00; 16 days at 6.00: 160 units = 960.00
    assert [(D(x["quantity"]), D(x["amount"])) for x in invoice["lines"]] == [
        (D(150), D("600.00")),
        (D(160), D("960.00")),
    ]
    assert D(invoice["total"]) == D("1560.00")
    assert len(invoice["details"]["segments"]) == 2


async def test_the_invoice_lifecycle(cloud: Cloud, setup: Board) -> None:
    tariff_id = await tariff(cloud, setup, [DELHI_VERSION])
    consumer, _ = await consumer_with_meter(
        cloud, setup, [(ist(1), 0.0), (ist(1, month=11), 100.0)]
    )
    neighbour, _ = await consumer_with_meter(
        cloud, setup, [(ist(1), 0.0), (ist(1, month=11), 50.0)]
    )
    await run(cloud, setup)
    [invoice] = await invoices_of(cloud, setup, consumer)
    url = f"/api/v1/invoices/{invoice['id']}"
    admin = setup.admin
    assert (
        await cloud.client.post(f"{url}/payments", json={"amount": "1"}, headers=admin)
    ).status_code == 409  # a draft takes no payments
    issued = await cloud.client.post(f"{url}/issue", headers=admin)
    assert issued.json()["status"] == "issued"
    # due 15 days after October ends, or after the bill is issued if that is later
    assert date.fromisoformat(issued.json()["due_date"]) >= max(
        date(2026, 11, 16), date.today() + timedelta(days=14)
    )
    # the tariff version is now locked
    version = (await cloud.client.get(f"/api/v1/tariffs/{tariff_id}", headers=admin)).json()[
        "versions"
    ][0]
    assert version["locked"] is True
    edit = await cloud.client.patch(
        f"/api/v1/tariffs/{tariff_id}/versions/{version['id']}",
        json={"effective_to": "2027-01-01"},
        headers=admin,
    )
    assert edit.status_code == 409
    # 100 units x 4.00 + fixed 100 = 500.00
    assert D(issued.json()["amount_due"]) == D("500.00")
    part = await cloud.client.post(
        f"{url}/payments", json={"amount": "200.00", "reference": "UPI-1"}, headers=admin
    )
    assert part.status_code == 201
    assert part.json()["status"] == "issued"
    over = await cloud.client.post(f"{url}/payments", json={"amount": "300.01"}, headers=admin)
    assert over.status_code == 422
    # the consumer sees its own bill (recorded), not its neighbour's, and disputes it
    async with cloud.pool.connection() as conn:
        email = f"consumer-{uuid.uuid4().hex[:8]}@example.in"
        await auth.create_user(
            conn, email=email, password=PASSWORD, role="CONSUMER", consumer_id=consumer, actor="t"
        )
    me = await login(cloud, email)
    mine = await cloud.client.get("/api/v1/invoices", headers=me)
    assert [i["id"] for i in mine.json()["items"]] == [invoice["id"]]
    [other] = await invoices_of(cloud, setup, neighbour)
    assert (
        await cloud.client.get(f"/api/v1/invoices/{other['id']}", headers=me)
    ).status_code == 404
    seen = await cloud.client.get(url, headers=me)
    assert seen.json()["viewed_at"] is not None
    disputed = await cloud.client.post(
        f"{url}/disputes", json={"reason": "I was away half the month"}, headers=me
    )
    assert disputed.json()["status"] == "disputed"
    assert (await cloud.client.post(f"{url}/issue", headers=me)).status_code == 403
    async with cloud.pool.connection() as conn:  # the dispute took weeks: the bill fell due
        await conn.execute(
            "UPDATE invoices SET due_date = current_date - 1 WHERE id = %s", (invoice["id"],)
        )
        await conn.commit()
    rejected = await cloud.client.post(
        f"{url}/disputes/resolve",
        json={"upheld": False, "resolution": "Readings verified on site"},
        headers=admin,
    )
    # the dispute is over and so is the due date: the bill is overdue
    assert rejected.json()["status"] == "overdue"
    paid = await cloud.client.post(f"{url}/payments", json={"amount": "300.00"}, headers=admin)
    assert paid.json()["status"] == "paid"
    full = (await cloud.client.get(url, headers=admin)).json()
    assert [D(p["amount"]) for p in full["payments"]] == [D("200.00"), D("300.00")]
    assert full["disputes"][0]["status"] == "rejected"
    async with cloud.pool.connection() as conn:
        actions = [
            row["action"]
            for row in await (
                await conn.execute(
                    "SELECT action FROM audit_log WHERE entity = 'invoice' AND entity_id = %s"
                    " ORDER BY id",
                    (str(invoice["id"]),),
                )
            ).fetchall()
        ]
    assert actions == ["create", "issue", "pay", "view", "dispute", "resolve", "pay"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"effective_from": "2026-06-01", "spec": DELHI.model_dump(mode="json")}, "overlaps"),
        (
            {"effective_from": "2027-01-01", "spec": {"energy": {"mode": "flat", "rate": "-2"}}},
            "rate",
        ),
        (
            {
                "effective_from": "2027-01-01",
                "spec": {
                    "energy": {
                        "mode": "telescopic",
                        "slabs": [{"up_to": 100, "rate": 1}, {"up_to": 50, "rate": 2}, {"rate": 3}],
                    }
                },
            },
            "slabs.1.up_to",
        ),
        (
            {
                "effective_from": "2027-01-01",
                "spec": {
                    "energy": {
                        "mode": "time_of_day",
                        "rates": {"day": 1},
                        "weekday": [["day"] * 24] * 12,
                        "weekend": [["day"] * 23] * 12,
                    }
                },
            },
            "12 months x 24 hours",
        ),
        (
            {
                "effective_from": "2027-02-01",
                "effective_to": "2027-01-01",
                "spec": {"energy": {"mode": "flat", "rate": 1}},
            },
            "effective_to",
        ),
    ],
)
async def test_bad_tariffs_are_refused_with_nothing_stored(
    cloud: Cloud, setup: Board, body: dict, field: str
) -> None:
    tariff_id = await tariff(cloud, setup, [DELHI_VERSION])
    response = await cloud.client.post(
        f"/api/v1/tariffs/{tariff_id}/versions", json=body, headers=setup.admin
    )
    assert response.status_code == 422
    assert field in response.text
    versions = (await cloud.client.get(f"/api/v1/tariffs/{tariff_id}", headers=setup.admin)).json()
    assert len(versions["versions"]) == 1
    backwards = await cloud.client.post(
        "/api/v1/billing/runs",
        json={"board_id": setup.id, "period_start": "2026-11-01", "period_end": "2026-10-01"},
        headers=setup.admin,
    )
    assert backwards.status_code == 422
    assert "period" in backwards.text


async def test_the_invoice_pdf_and_the_running_estimate(cloud: Cloud, setup: Board) -> None:
    await tariff(
        cloud,
        setup,
        [flat_tariff()],
    )
    consumer, _meter = await consumer_with_meter(
        cloud,
        setup,
        [(ist(1), 0.0)]
        + [(ist(day, 12), 10.0 * day - 5) for day in range(1, 32)]
        + [(ist(1, month=11), 310.0), (ist(11, month=11), 410.0)],
    )
    await run(cloud, setup)
    [invoice] = await invoices_of(cloud, setup, consumer)
    response = await cloud.client.get(f"/api/v1/invoices/{invoice['id']}/pdf", headers=setup.admin)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/pdf"
    document = PdfReader(io.BytesIO(response.content))
    text = " ".join(page.extract_text() for page in document.pages)
    assert f"Bill {invoice['id']} for 1 Oct 2026 to 31 Oct 2026" in text
    assert "Draft — not yet issued" in text
    assert "Units used: 310.00 kWh" in text
    assert "1,550.00" in text  # 310 units x 5.00
    assert "5.00" in text  # the rate, to its paise
    disposition = response.headers["content-disposition"]
    assert disposition.startswith('inline; filename="bill-AC-')
    assert disposition.endswith('-2026-10.pdf"')
    assert any(page.images for page in document.pages), "the consumption chart is drawn"
    # November so far: 100 units in the 10 days to 11 Nov; 300 projected for 30 days x 5.00
    estimate = await cloud.client.get(
        f"/api/v1/consumers/{consumer}/estimate",
        params={"as_of": ist(11, 12, month=11).isoformat()},
        headers=setup.admin,
    )
    assert estimate.status_code == 200, estimate.text
    body = estimate.json()
    assert (body["cycle_start"], body["cycle_end"]) == ("2026-11-01", "2026-12-01")
    assert D(body["units_so_far"]) == D(100)
    assert D(body["projected_units"]) == D(300)
    assert D(body["projected_total"]) == D("1500.00")


async def test_urdb_import_and_export_over_the_api(cloud: Cloud, setup: Board) -> None:
    tariff_id = await tariff(cloud, setup, [])
    url = f"/api/v1/tariffs/{tariff_id}/versions/urdb"
    bad = await cloud.client.post(
        url,
        json={"effective_from": "2026-01-01", "urdb": {"energyratestructure": [[{"rate": -5}]]}},
        headers=setup.admin,
    )
    assert bad.status_code == 422
    assert "rate" in bad.json()["detail"]
    from cloud.billing.urdb import to_urdb

    good = await cloud.client.post(
        url, json={"effective_from": "2026-01-01", "urdb": to_urdb(DELHI)}, headers=setup.admin
    )
    assert good.status_code == 201, good.text
    exported = await cloud.client.get(
        f"/api/v1/tariffs/{tariff_id}/versions/{good.json()['id']}/urdb", headers=setup.admin
    )
    assert exported.json()["energyratestructure"][0][0] == {"rate": "4.00", "max": "200"}


async def test_time_of_day_bills_hours_and_holidays_in_the_boards_zone(
    cloud: Cloud, setup: Board
) -> None:
    evening = ["day"] * 18 + ["peak"] * 4 + ["day"] * 2  # 18:00-22:00 local is peak
    await tariff(
        cloud,
        setup,
        [
            {
                "effective_from": "2026-01-01",
                "spec": {
                    "energy": {
                        "mode": "time_of_day",
                        "rates": {"day": "4.00", "peak": "8.00"},
                        "weekday": [evening] * 12,
                        "weekend": [["day"] * 24] * 12,
                    }
                },
            }
        ],
    )
    holiday = await cloud.client.put(
        f"/api/v1/boards/{setup.id}/holidays/2026-10-02",
        json={"name": "Gandhi Jayanti"},
        headers=setup.admin,
    )
    assert holiday.status_code == 204
    # one unit an hour all October, read every hour on the hour, India time
    hours = 31 * 24
    consumer, _ = await consumer_with_meter(
        cloud, setup, [(ist(1) + timedelta(hours=h), float(h)) for h in range(hours + 1)]
    )
    await run(cloud, setup)
    [invoice] = await invoices_of(cloud, setup, consumer)
    # October 2026: 22 weekdays but 2 Oct is a holiday -> 21 weekdays with 4 peak hours each
    peak_units = 21 * 4
    lines = {line["description"]: line for line in invoice["lines"]}
    assert D(lines["Energy, peak hours"]["quantity"]) == peak_units
    assert D(lines["Energy, day hours"]["quantity"]) == hours - peak_units
    assert D(invoice["total"]) == (hours - peak_units) * D(4) + peak_units * D(8)


async def test_the_load_tier_follows_the_boards_mean_load(cloud: Cloud, setup: Board) -> None:
    """Board capacity 10 kW, one meter drawing 8 kW all month: 80 % load -> +10 % tier."""
    await tariff(
        cloud,
        setup,
        [
            flat_tariff(
                dynamic=[
                    {"min_load_pct": 90, "adjust_pct": 20},
                    {"min_load_pct": 75, "adjust_pct": 10},
                    {"min_load_pct": 50, "adjust_pct": 0},
                    {"min_load_pct": 0, "adjust_pct": -5},
                ]
            )
        ],
    )
    consumer, meter = await consumer_with_meter(
        cloud, setup, [(ist(1), 0.0), (ist(1, month=11), 100.0)]
    )
    async with cloud.pool.connection() as conn:
        await conn.execute("UPDATE boards SET capacity_kw = 10 WHERE id = %s", (setup.id,))
        await conn.commit()
    await add_reads(cloud, meter, [(ist(day, 12), 8.0) for day in range(1, 32)], "1.7.0")
    await run(cloud, setup)
    [invoice] = await invoices_of(cloud, setup, consumer)
    lines = {line["code"]: D(line["amount"]) for line in invoice["lines"]}
    # 100 units x 5.00 = 500.00; mean load 8 of 10 kW = 80 % -> +10 % of 500.00 = 50.00
    assert lines == {"energy": D("500.00"), "dynamic": D("50.00")}
    assert D(invoice["total"]) == D("550.00")


async def test_fixed_charges_follow_the_maximum_demand_recorded_in_the_month(
    cloud: Cloud, setup: Board
) -> None:
    """Sanctioned 2 kW, fixed 30 a kW on the higher of load and demand; the meter's demand reads
    (each the mean of the 15-minute period before it) peak at 4.2 kW in October."""
    await tariff(
        cloud, setup, [flat_tariff(fixed={"per_kw": "30", "basis": "higher_of_load_and_demand"})]
    )
    consumer, meter = await consumer_with_meter(
        cloud, setup, [(ist(1), 0.0), (ist(1, month=11), 100.0)], kw="2"
    )
    demand_reads = [
        (ist(1) + timedelta(minutes=5), 9.9),  # 30 Sep 23:45-24:00: September's, not billed
        (ist(1) + timedelta(minutes=16), 1.5),
        (ist(12, 20) + timedelta(minutes=1), 3.75),
        (ist(1, month=11) + timedelta(minutes=10), 4.2),  # 31 Oct 23:45-24:00: October's
        (ist(1, month=11) + timedelta(minutes=20), 8.0),  # November's first period
    ]
    await add_reads(cloud, meter, demand_reads, "1.5.0")
    await run(cloud, setup)
    [invoice] = await invoices_of(cloud, setup, consumer)
    lines = {line["code"]: (line["description"], D(line["amount"])) for line in invoice["lines"]}
    # 100 units x 5.00 = 500.00; 4.2 kW x 30 = 126.00 (not 2 kW x 30 = 60.00)
    assert lines == {
        "energy": ("Energy", D("500.00")),
        "fixed": ("Fixed charge, 4.2 kW maximum demand", D("126.00")),
    }
    assert "maximum demand recorded: 4.200 kW" in invoice["details"]["notes"]
    # November's running estimate goes by November's demand: 8.0 kW x 30 = 240.00
    await add_reads(cloud, meter, [(ist(1, 6, month=11), 103.0)])
    estimate = await cloud.client.get(
        f"/api/v1/consumers/{consumer}/estimate",
        params={"as_of": ist(1, 12, month=11).isoformat()},
        headers=setup.admin,
    )
    assert estimate.status_code == 200, estimate.text
    fixed = [line for line in estimate.json()["lines"] if line["code"] == "fixed"]
    assert [(f["description"], D(f["amount"])) for f in fixed] == [
        ("Fixed charge, 8 kW maximum demand", D("240.00"))
    ]
    future = await cloud.client.get(
        f"/api/v1/consumers/{consumer}/estimate",
        params={"as_of": "2999-01-01T00:00:00+00:00"},
        headers=setup.admin,
    )
    assert future.status_code == 422
    assert "as_of" in future.text
    ancient = await cloud.client.get(
        f"/api/v1/consumers/{consumer}/estimate",
        params={"as_of": "0001-01-01T00:00:00+14:00"},
        headers=setup.admin,
    )
    assert ancient.status_code == 422, ancient.text


async def test_a_meter_silent_across_a_boundary_is_interpolated_from_weeks_away(
    cloud: Cloud, setup: Board
) -> None:
    """Reads ten days either side of each boundary (the gateway was offline): the nearest read
    outside a boundary is found up to 35 days away."""
    await tariff(cloud, setup, [flat_tariff()])
    consumer, _ = await consumer_with_meter(
        cloud,
        setup,
        [
            (ist(21, month=9), 1000.0),
            (ist(11), 1200.0),  # 10 a day: 1 Oct 00:00 reads 1100
            (ist(21), 1300.0),
            (ist(10, month=11), 1500.0),  # 10 a day: 1 Nov 00:00 reads 1410
        ],
    )
    summary = await run(cloud, setup)
    assert summary["created"] == 1, summary
    [invoice] = await invoices_of(cloud, setup, consumer)
    assert D(invoice["units"]) == D(310)  # 1410 - 1100
    assert D(invoice["total"]) == D("1550.00")
    assert invoice["estimated"] is False


async def test_a_read_beyond_the_reach_leaves_the_boundary_unmeasured(
    cloud: Cloud, setup: Board
) -> None:
    """The only read before 1 October is 41 days earlier: the start cannot be measured, and
    with no history to estimate from the run says so and bills nothing for this consumer."""
    await tariff(cloud, setup, [flat_tariff()])
    consumer, meter = await consumer_with_meter(
        cloud,
        setup,
        [(ist(21, month=8), 800.0), (ist(11), 1200.0), (ist(1, month=11), 1410.0)],
    )
    summary = await run(cloud, setup)
    assert (summary["created"], summary["failed"]) == (0, 1), summary
    [error] = summary["errors"]
    async with cloud.pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT c.account_no, m.external_id FROM consumers c JOIN meters m"
            " ON m.consumer_id = c.id WHERE m.id = %s",
            (meter,),
        )
        names = await cursor.fetchone()
    # the consumer and meter as people know them, the instant in the board's zone
    assert error.startswith(f"C ({names['account_no']}): ")
    assert f"meter {names['external_id']}: no reads on both sides of 1 Oct 2026 00:00 IST" in error
    assert await invoices_of(cloud, setup, consumer) == []


async def test_a_register_falling_across_a_boundary_loses_no_energy(
    cloud: Cloud, setup: Board
) -> None:
    """The fall lies between the last read outside the period and the first inside (a reset at
    the start) or the last inside and the first outside (a rollover at the end)."""
    await tariff(cloud, setup, [flat_tariff()])
    consumer, _ = await consumer_with_meter(
        cloud,
        setup,
        [
            (ist(30, 12, month=9), 700.0),  # 12 hours before 1 October, then a reset
            (ist(1, 12), 6.0),  # counting from zero since the reset: 1 Oct 00:00 reads 703
            (ist(15), 400.0),
            (ist(31, 12), 999_980.0),
            (ist(1, 12, month=11), 20.0),  # wrapped at 1,000,000: 1 Nov 00:00 reads 1,000,000
        ],
    )
    summary = await run(cloud, setup)
    assert summary["created"] == 1, summary
    [invoice] = await invoices_of(cloud, setup, consumer)
    # unwrapped: 700 | 706, 1100, 1,000,680 | 1,000,720; 1 Oct at 703, 1 Nov at 1,000,700
    assert D(invoice["units"]) == D(999_997)
    assert invoice["estimated"] is False


async def test_a_board_is_billed_a_chunk_of_consumers_at_a_time(
    cloud: Cloud, setup: Board, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(billing_runs, "CHUNK", 2)
    await tariff(cloud, setup, [flat_tariff()])
    consumers = [
        (
            await consumer_with_meter(
                cloud, setup, [(ist(1), 100.0 * n), (ist(1, month=11), 100.0 * n + 10 * n)]
            )
        )[0]
        for n in range(1, 6)
    ]
    summary = await run(cloud, setup)
    assert (summary["created"], summary["failed"]) == (5, 0), summary
    for n, consumer in enumerate(consumers, start=1):
        [invoice] = await invoices_of(cloud, setup, consumer)
        assert D(invoice["units"]) == 10 * n


async def test_a_period_that_has_not_begun_is_not_billed(cloud: Cloud, setup: Board) -> None:
    start = datetime.now(UTC).date().replace(day=1) + timedelta(days=62)
    start = start.replace(day=1)
    response = await cloud.client.post(
        "/api/v1/billing/runs",
        json={
            "board_id": setup.id,
            "period_start": start.isoformat(),
            "period_end": (start + timedelta(days=30)).isoformat(),
        },
        headers=setup.admin,
    )
    assert response.status_code == 422
    assert "the period has not begun" in response.json()["detail"]

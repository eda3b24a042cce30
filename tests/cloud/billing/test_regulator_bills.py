"""The regulators' worked examples billed end to end, to the paisa: a gateway's signed readings
are ingested, the meters assigned to consumers, the board's billing run made through the API,
and the invoice lines compared with the hand computations of test_schedules.py."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal as D

from cloud.billing.examples import KSEB_DOMESTIC_2019, TANGEDCO_DOMESTIC_2022
from shared import Batch, Heartbeat, Reading, seal_batch
from tests.cloud.billing.test_invoices import IST
from tests.cloud.billing.test_schedules import KSEB_MONTH
from tests.cloud.conftest import Cloud, EnrolledGateway, enroll_gateway, staff_headers


async def bill_through_the_api(
    cloud: Cloud,
    board: str,
    spec: dict,
    units: list[str],
    period: tuple[str, str],
    before_run: Callable[[int, dict[str, str]], Awaitable[None]] | None = None,
    reads_from: str | None = None,
) -> dict[str, dict]:
    """Each of `units` a consumer's use over `period` (local dates), sent as signed 1.8.0 reads
    at the period's two local midnights (the first at `reads_from`'s, if given); the board
    billed for the period; each consumer's invoice by its units. `before_run(board_id, admin
    headers)`: called just before the run."""
    admin = await staff_headers(cloud, board)
    gateway: EnrolledGateway = await enroll_gateway(cloud, board)
    async with cloud.pool.connection() as conn:
        board_id = (
            await (await conn.execute("SELECT id FROM boards WHERE code = %s", (board,))).fetchone()
        )["id"]
        for month in ("2026-08-01", "2026-09-01", "2026-10-01", "2026-11-01"):
            await conn.execute("SELECT ensure_readings_partition(%s)", (month,))
        await conn.commit()
    created = await cloud.client.post(
        "/api/v1/tariffs",
        json={"board_id": board_id, "category": "domestic", "name": "Domestic"},
        headers=admin,
    )
    assert created.status_code == 201, created.text
    version = await cloud.client.post(
        f"/api/v1/tariffs/{created.json()['id']}/versions",
        json={"effective_from": "2026-04-01", "spec": spec},
        headers=admin,
    )
    assert version.status_code == 201, version.text
    start, end = (
        datetime.fromisoformat(day).replace(tzinfo=IST).astimezone(UTC)
        for day in (reads_from or period[0], period[1])
    )
    readings = []
    for index, used in enumerate(units):
        meter = f"m-{index}-{uuid.uuid4().hex[:6]}"
        first = 10_000.0 + index * 1_000
        for ts, value in ((start, first), (end, first + float(used))):
            readings.append(
                Reading(seq=len(readings) + 1, meter_id=meter, quantity="1.8.0", ts=ts, value=value)
            )
    batch = Batch(
        gateway_id=gateway.code,
        batch_id=uuid.uuid4(),
        first_seq=1,
        last_seq=len(readings),
        sent_at=datetime.now(UTC),
        readings=readings,
        heartbeat=Heartbeat(software_version="t", backlog_readings=0, clock_synced=True),
    )
    sealed = seal_batch(batch, gateway.key)
    response = await cloud.client.post(
        "/api/v1/ingest/batches", content=sealed.body, headers=sealed.headers
    )
    assert response.status_code == 200, response.text
    assert response.json()["readings_new"] == len(readings)
    consumers = {}
    for index, used in enumerate(units):
        consumer = await cloud.client.post(
            "/api/v1/consumers",
            json={"board_id": board_id, "account_no": f"AC-{index}", "name": f"Home {used}"},
            headers=admin,
        )
        assert consumer.status_code == 201, consumer.text
        meters = await cloud.client.get(
            "/api/v1/meters", params={"board_id": board_id, "limit": 100}, headers=admin
        )
        [meter] = [m for m in meters.json()["items"] if m["external_id"].startswith(f"m-{index}-")]
        assigned = await cloud.client.post(
            f"/api/v1/meters/{meter['id']}/assign",
            json={"consumer_id": consumer.json()["id"]},
            headers=admin,
        )
        assert assigned.status_code == 200, assigned.text
        consumers[consumer.json()["id"]] = used
    if before_run is not None:
        await before_run(board_id, admin)
    billed = await cloud.client.post(
        "/api/v1/billing/runs",
        json={"board_id": board_id, "period_start": period[0], "period_end": period[1]},
        headers=admin,
    )
    assert billed.status_code == 200, billed.text
    assert billed.json()["created"] == len(units), billed.json()
    invoices = {}
    for consumer_id, used in consumers.items():
        listed = await cloud.client.get(
            "/api/v1/invoices", params={"consumer_id": consumer_id}, headers=admin
        )
        [item] = listed.json()["items"]
        invoice = await cloud.client.get(f"/api/v1/invoices/{item['id']}", headers=admin)
        invoices[used] = invoice.json()
    return invoices


def lines_of(invoice: dict) -> list[tuple[str, D, D, D]]:
    return [
        (line["description"], D(line["quantity"]), D(line["rate"]), D(line["amount"]))
        for line in invoice["lines"]
    ]


async def test_kseb_a_month_at_the_orders_examples(cloud: Cloud, board: str) -> None:
    invoices = await bill_through_the_api(
        cloud, board, KSEB_DOMESTIC_2019, list(KSEB_MONTH), ("2026-10-01", "2026-11-01")
    )
    for units, hand in KSEB_MONTH.items():
        invoice = invoices[units]
        assert D(invoice["units"]) == D(units)
        assert D(invoice["total"]) == hand.quantize(D("0.01")), units
        assert sum(amount for *_, amount in lines_of(invoice)) == D(invoice["total"])
    assert lines_of(invoices["250.5"]) == [
        (
            "Energy, 250.5 units: above 250 and up to 300, all units at ₹5.80",
            D("250.5"),
            D("5.80"),
            D("1452.90"),
        )
    ]
    # 180 units: telescopic, 50 x 3.15 + 50 x 3.70 + 50 x 4.80 + 30 x 6.40
    assert [(q, r, a) for _, q, r, a in lines_of(invoices["180"])] == [
        (D(50), D("3.15"), D("157.50")),
        (D(50), D("3.70"), D("185.00")),
        (D(50), D("4.80"), D("240.00")),
        (D(30), D("6.40"), D("192.00")),
    ]
    assert lines_of(invoices["180"])[0][0] == (
        "Energy, slab 0 to 50 kWh (180 units: up to 250, each slab at its rate)"
    )


async def test_kseb_two_months_doubles_the_limits(cloud: Cloud, board: str) -> None:
    # 1 Sep to 1 Nov: two months, telescopic up to 500 units (0-100, 101-200, ...)
    invoices = await bill_through_the_api(
        cloud, board, KSEB_DOMESTIC_2019, ["360", "500", "640.5"], ("2026-09-01", "2026-11-01")
    )
    # 100 x 3.15 + 100 x 3.70 + 100 x 4.80 + 60 x 6.40 = 315 + 370 + 480 + 384
    assert D(invoices["360"]["total"]) == D("1549.00")
    assert [a for *_, a in lines_of(invoices["360"])] == [
        D("315.00"),
        D("370.00"),
        D("480.00"),
        D("384.00"),
    ]
    assert lines_of(invoices["360"])[3][0] == (
        "Energy, slab 300 to 400 kWh (360 units: up to 500, each slab at its rate)"
        " (limits for 2 months)"
    )
    # 500 units: 1549.00 + 40 x 6.40 + 100 x 7.60
    assert D(invoices["500"]["total"]) == D("1549.00") + D("256.00") + D("760.00")
    # 640.5 units: past 500 and within 600-700, all at 6.60
    assert lines_of(invoices["640.5"]) == [
        (
            "Energy, 640.5 units: above 600 and up to 700, all units at ₹6.60"
            " (limits for 2 months)",
            D("640.5"),
            D("6.60"),
            D("4227.30"),
        )
    ]


async def test_tangedco_a_cycle_below_and_above_500_units(cloud: Cloud, board: str) -> None:
    invoices = await bill_through_the_api(
        cloud,
        board,
        TANGEDCO_DOMESTIC_2022,
        ["480", "500", "520", "1200.5"],
        ("2026-09-01", "2026-11-01"),
    )
    hand = {
        "480": 100 * D("2.25") + 200 * D("4.50") + 80 * D(6),  # 225 + 900 + 480
        "500": 100 * D("2.25") + 200 * D("4.50") + 100 * D(6),  # 1725
        "520": 300 * D("4.50") + 100 * D(6) + 20 * D(8),  # 1350 + 600 + 160
        "1200.5": 300 * D("4.50")
        + 100 * D(6)
        + 100 * D(8)
        + 200 * D(9)
        + 200 * D(10)
        + D("200.5") * 11,  # 1350 + 600 + 800 + 1800 + 2000 + 2205.50
    }
    assert hand == {"480": 1605, "500": 1725, "520": 2110, "1200.5": D("8755.50")}
    for units, amount in hand.items():
        assert D(invoices[units]["total"]) == amount, units
    assert [(q, r) for _, q, r, _ in lines_of(invoices["520"])] == [
        (D(100), D(0)),
        (D(300), D("4.50")),
        (D(100), D(6)),
        (D(20), D(8)),
    ]


async def test_a_part_period_pro_rates_the_limits_by_days(cloud: Cloud, board: str) -> None:
    # 12 Oct to 1 Nov: 20 of 31 days; the telescopic schedule ends at 250 x 20/31 = 161.29
    invoices = await bill_through_the_api(
        cloud, board, KSEB_DOMESTIC_2019, ["120", "200"], ("2026-10-12", "2026-11-01")
    )
    width = D(50) * 20 / 31  # each telescopic slab: 32.26 units
    hand = [
        (width * D("3.15")).quantize(D("0.01")),  # 101.61
        (width * D("3.70")).quantize(D("0.01")),  # 119.35
        (width * D("4.80")).quantize(D("0.01")),  # 154.84
        ((120 - 3 * width) * D("6.40")).quantize(D("0.01")),  # 23.23 units: 148.65
    ]
    assert hand == [D("101.61"), D("119.35"), D("154.84"), D("148.65")]
    assert [a for *_, a in lines_of(invoices["120"])] == hand
    assert D(invoices["120"]["total"]) == D("524.45")
    assert lines_of(invoices["120"])[0][0] == (
        "Energy, slab 0 to 32.26 kWh (120 units: up to 161.29, each slab at its rate)"
        " (limits for 20 of 31 days of October)"
    )
    # 200 units: past 300 x 20/31 = 193.55, within 350 x 20/31 = 225.81: all at 6.60
    assert lines_of(invoices["200"]) == [
        (
            "Energy, 200 units: above 193.55 and up to 225.81, all units at ₹6.60"
            " (limits for 20 of 31 days of October)",
            D(200),
            D("6.60"),
            D("1320.00"),
        )
    ]


PART_SLABS = {
    "energy": {
        "mode": "telescopic",
        "slabs": [
            {"up_to": "100", "rate": "3.00"},
            {"up_to": "200", "rate": "5.00"},
            {"rate": "7.00"},
        ],
    },
    "fixed": {"per_connection": "62.00"},
}


async def test_a_first_bill_from_mid_month_pro_rates_its_slabs_and_fixed_charge(
    cloud: Cloud, board: str
) -> None:
    """A meter installed on 16 September (local midnight) of a 30-day month: the bill covers 15
    days, so every slab limit and the fixed charge is half the month's, and the bill says so."""

    async def installed_mid_month(board_id: int, _: dict[str, str]) -> None:
        async with cloud.pool.connection() as conn:
            await conn.execute(
                "UPDATE meters SET installed_at = %s WHERE board_id = %s",
                (datetime(2026, 9, 16, tzinfo=IST), board_id),
            )
            await conn.commit()

    invoices = await bill_through_the_api(
        cloud,
        board,
        PART_SLABS,
        ["150", "80"],
        ("2026-09-01", "2026-10-01"),
        before_run=installed_mid_month,
        reads_from="2026-09-16",
    )
    # 150 units over half a month: slabs of 50 — 50 x 3 + 50 x 5 + 50 x 7 — and 62 / 2 fixed
    energy = [(q, r, a) for _, q, r, a in lines_of(invoices["150"]) if r in (3, 5, 7)]
    assert energy == [
        (D(50), D("3.00"), D("150.00")),
        (D(50), D("5.00"), D("250.00")),
        (D(50), D("7.00"), D("350.00")),
    ]
    assert D(invoices["150"]["total"]) == D("781.00")  # the whole month would bill 612.00
    # 80 units: 50 x 3 + 30 x 5 + 31 fixed
    assert D(invoices["80"]["total"]) == D("150.00") + D("150.00") + D("31.00")
    for invoice in invoices.values():
        assert invoice["period_start"] == "2026-09-01"  # still the board's period
        assert (
            "part period: supply from 16 Sep 2026 to 30 Sep 2026, 15 of the period's 30 days;"
            " slab limits and fixed charges pro-rated"
        ) in invoice["details"]["notes"]

"""The forecast of a net-metered household over the API: its export nets its import as its bill
will. A household with rooftop solar, hourly import (1.8.0) and export (2.8.0) reads in
Asia/Kolkata, a tariff with net-metering terms; every expected figure worked out here by hand
from the tariff (days counted on the calendar, slabs added up), never by calling the code
under test; and the words the pages say about it in a real Chromium."""

from __future__ import annotations

import statistics
import uuid
from datetime import date, datetime, timedelta
from decimal import Decimal as D
from zoneinfo import ZoneInfo

import httpx
import pytest

from cloud.formats import money, quantity
from tests.cloud import test_web_insights as web
from tests.cloud.billing.test_insights import AS_OF, IST, daily, days, hourly_reads
from tests.cloud.billing.test_invoices import (
    Board,
    add_reads,
    setup,  # noqa: F401  (fixture)
    tariff,
)
from tests.cloud.conftest import Cloud
from tests.cloud.test_web_app import _visit

NET_METERED = {
    "effective_from": "2026-01-01",
    "spec": {
        "energy": {
            "mode": "telescopic",
            "slabs": [
                {"up_to": "100", "rate": "3.00"},
                {"up_to": "300", "rate": "4.50"},
                {"rate": "6.00"},
            ],
        },
        "fixed": {"per_connection": "50.00"},
        "net_metering": {"feed_in_rate": "2.50", "settlement_month": 3},
    },
}
SUN_HOURS = range(10, 14)  # local hours the panels export in


def exported(day: date) -> D:
    """kWh exported a day: 6 on a working day (nobody home at noon), 3 on a weekend day."""
    return D(3) if day.weekday() >= 5 else D(6)


def cloudy_exported(day: date) -> D:
    """A week of sun, then a cloudy week: 8 kWh a day, then 2."""
    return D(8) if day.toordinal() // 7 % 2 else D(2)


def telescopic(units: D) -> D:
    """The tariff's energy charge by hand: 100 at 3.00, the next 200 at 4.50, the rest at
    6.00, plus the 50.00 fixed charge."""
    units = max(units, D(0))
    energy = (
        min(units, D(100)) * D("3.00")
        + max(min(units, D(300)) - 100, D(0)) * D("4.50")
        + max(units - 300, D(0)) * D("6.00")
    )
    return energy.quantize(D("0.01")) + D("50.00")


def export_reads(first: date, until: datetime, per_day=exported) -> list[tuple[datetime, float]]:
    """The export register on every local hour from `first` to `until`: a day's export spread
    evenly over `SUN_HOURS`."""
    at = datetime(first.year, first.month, first.day, tzinfo=IST)
    value = D(300)
    reads = [(at, float(value))]
    while at < until:
        if at.hour in SUN_HOURS:
            value += per_day(at.date()) / len(SUN_HOURS)
        at += timedelta(hours=1)
        reads.append((at, float(value)))
    return reads


async def solar_household(cloud: Cloud, board: Board, per_day=exported) -> int:
    """A consumer with 3 kWp of rooftop solar since June, one meter read every hour since
    1 Oct on both registers up to `AS_OF`."""
    tag = uuid.uuid4().hex[:8]
    async with cloud.pool.connection() as conn:
        cursor = await conn.execute(
            "INSERT INTO consumers (board_id, account_no, name, generation_kind, generation_kwp,"
            " generation_since) VALUES (%s, %s, 'Sun house', 'rooftop_solar', 3, '2026-06-01')"
            " RETURNING id",
            (board.id, f"SOLAR-{tag}"),
        )
        consumer_id = (await cursor.fetchone())["id"]
        cursor = await conn.execute(
            "INSERT INTO meters (board_id, external_id, consumer_id) VALUES (%s, %s, %s)"
            " RETURNING id",
            (board.id, f"m-{tag}", consumer_id),
        )
        meter = (await cursor.fetchone())["id"]
        await conn.commit()
    await add_reads(cloud, meter, hourly_reads(date(2026, 10, 1), AS_OF))
    await add_reads(cloud, meter, export_reads(date(2026, 10, 1), AS_OF, per_day), "2.8.0")
    return consumer_id


async def forecast(cloud: Cloud, board: Board, consumer_id: int, as_of: datetime = AS_OF) -> dict:
    response = await cloud.client.get(
        f"/api/v1/consumers/{consumer_id}/forecast",
        params={"as_of": as_of.isoformat()},
        headers=board.admin,
    )
    assert response.status_code == 200, response.text
    return response.json()


async def bank(cloud: Cloud, consumer_id: int, units: str) -> None:
    """What October's bill left in the bank (no invoice needed: the ledger is what counts)."""
    async with cloud.pool.connection() as conn:
        await conn.execute(
            "INSERT INTO net_metering_ledger (consumer_id, period_start, period_end, estimated,"
            " banked_in_kwh, billed_kwh, banked_out_kwh) VALUES (%s, '2026-10-01', '2026-11-01',"
            " false, 0, 0, %s) ON CONFLICT (consumer_id, period_start) DO UPDATE"
            " SET banked_out_kwh = excluded.banked_out_kwh",
            (consumer_id, units),
        )
        await conn.commit()


@pytest.fixture
def here(setup: Board) -> Board:  # noqa: F811
    return setup


async def test_the_forecast_nets_the_export_as_the_bill_does(cloud: Cloud, here: Board) -> None:
    await tariff(cloud, here, [NET_METERED])
    consumer_id = await solar_household(cloud, here)
    body = await forecast(cloud, here, consumer_id)
    november = days(date(2026, 11, 1), date(2026, 12, 1))
    imported_so_far = sum(daily(d) for d in november[:15])  # 10 x 12 + 5 x 24
    exported_so_far = sum(exported(d) for d in november[:15])  # 10 x 6 + 5 x 3
    imported = sum(daily(d) for d in november)  # 21 x 12 + 9 x 24
    export = sum(exported(d) for d in november)  # 21 x 6 + 9 x 3
    assert (imported_so_far, exported_so_far, imported, export) == (240, 75, 468, 153)
    # the units so far are the net of the two registers, not the import alone
    assert D(body["units_so_far"]) == imported_so_far - exported_so_far == 165
    net = body["net_metering"]
    assert D(net["imported_so_far"]) == imported_so_far
    assert D(net["exported_so_far"]) == exported_so_far
    assert D(net["expected_import"]) == imported
    assert D(net["expected_export"]) == export
    assert D(net["export_to_come"]) == export - exported_so_far == 78
    assert (D(net["export_weekday_units"]), D(net["export_rest_day_units"])) == (6, 3)
    assert net["export_history_days"] == 28
    assert D(net["banked_kwh"]) == 0
    # the bill on the net units: 100 x 3.00 + 200 x 4.50 + 15 x 6.00 + 50.00 fixed
    assert D(body["expected"]["units"]) == imported - export == 315
    assert D(body["expected"]["total"]) == telescopic(D(315)) == D("1340.00")
    # the import alone would have been 2258.00: the bug the trial found
    assert telescopic(imported) == D("2258.00") != D(body["expected"]["total"])
    figures = [D(line["quantity"]) for line in body["lines"] if line["code"] == "net_metering"]
    assert figures == [imported, export, D(0), D(315), D(0)]  # in, out, banked in, net, out
    # every day of either register was its kind's mean: no spread, no range
    assert D(body["low"]["total"]) == D(body["high"]["total"]) == D("1340.00")

    # December from the same weeks, netted: 23 x 12 + 8 x 24 imported, 23 x 6 + 8 x 3 exported
    december = days(date(2026, 12, 1), date(2027, 1, 1))
    ahead = body["next"]
    assert D(ahead["expected_export"]) == sum(exported(d) for d in december) == 162
    assert D(ahead["expected"]["units"]) == sum(daily(d) for d in december) - 162 == 306
    assert D(ahead["expected"]["total"]) == telescopic(D(306)) == D("1286.00")


async def test_the_bank_the_last_bill_left_is_netted_and_carried_to_the_next(
    cloud: Cloud, here: Board
) -> None:
    await tariff(cloud, here, [NET_METERED])
    consumer_id = await solar_household(cloud, here)
    # 20 units banked by October's bill: November bills 468 - 153 - 20 = 295
    await bank(cloud, consumer_id, "20")
    body = await forecast(cloud, here, consumer_id)
    assert D(body["net_metering"]["banked_kwh"]) == 20
    assert D(body["expected"]["units"]) == 295
    assert D(body["expected"]["total"]) == telescopic(D(295)) == D("1227.50")
    assert D(body["next"]["expected"]["total"]) == telescopic(D(306))  # nothing left over
    # 400 banked: November's 315 net units are all offset, 85 are banked on to December,
    # which bills 306 - 85 = 221 (March settles, so nothing is paid out now)
    await bank(cloud, consumer_id, "400")
    body = await forecast(cloud, here, consumer_id)
    assert D(body["expected"]["units"]) == 0
    assert D(body["expected"]["total"]) == telescopic(D(0)) == D("50.00")
    figures = [D(line["quantity"]) for line in body["lines"] if line["code"] == "net_metering"]
    assert figures == [D(468), D(153), D(400), D(0), D(85)]
    assert D(body["next"]["expected"]["units"]) == 221
    assert D(body["next"]["expected"]["total"]) == telescopic(D(221)) == D("894.50")


async def test_a_cloudy_fortnight_widens_the_range_by_the_export(cloud: Cloud, here: Board) -> None:
    """The import is alike every day of its kind (no range of its own); the export swings week
    by week, so the range is the export's: the low bill has the most export, the high the
    least, and the expectation is each kind's mean export over the last 28 days."""
    await tariff(cloud, here, [NET_METERED])
    consumer_id = await solar_household(cloud, here, cloudy_exported)
    body = await forecast(cloud, here, consumer_id)
    window = days(date(2026, 10, 19), date(2026, 11, 16))
    november = days(date(2026, 11, 1), date(2026, 12, 1))
    mean = {
        rest: statistics.mean(cloudy_exported(d) for d in window if (d.weekday() >= 5) == rest)
        for rest in (False, True)
    }
    rest_of_november = sum(mean[d.weekday() >= 5] for d in november[15:])
    export = sum(cloudy_exported(d) for d in november[:15]) + rest_of_november
    export = export.quantize(D("0.001"))
    assert D(body["net_metering"]["expected_export"]) == export
    units = D(468) - export
    assert D(body["expected"]["units"]) == units.quantize(D("0.001"))
    assert D(body["expected"]["total"]) == telescopic(units)
    low, high = D(body["low"]["units"]), D(body["high"]["units"])
    assert low < units < high
    assert D(body["low"]["total"]) < D(body["expected"]["total"]) < D(body["high"]["total"])


async def test_the_forecast_and_the_estimate_answer_units_to_three_decimals(
    cloud: Cloud, here: Board
) -> None:
    """Mid-morning, scaling a part day (the estimate) and part hours (the forecast) makes
    long fractions; the lines say them to the watt-hour."""
    await tariff(cloud, here, [NET_METERED])
    consumer_id = await solar_household(cloud, here)
    moment = AS_OF - timedelta(hours=13, minutes=20)  # 15 Nov, 10:40
    body = await forecast(cloud, here, consumer_id, moment)
    response = await cloud.client.get(
        f"/api/v1/consumers/{consumer_id}/estimate",
        params={"as_of": moment.isoformat()},
        headers=here.admin,
    )
    assert response.status_code == 200, response.text
    for lines in (body["lines"], response.json()["lines"]):
        for line in lines:
            assert D(line["quantity"]).as_tuple().exponent >= -3, line
    assert D(body["units_so_far"]).as_tuple().exponent >= -3


@pytest.mark.browser
@pytest.mark.slow
async def test_the_pages_say_the_export_is_netted(
    cloud: Cloud, served: httpx.AsyncClient, board: str, browser
) -> None:
    """The consumer's home and the staff's page of it: the forecast's words name the export so
    far and the export still expected, with the figures the API answers."""
    spec = {**web.SLABS, "net_metering": {"feed_in_rate": "2.50", "settlement_month": 3}}
    consumer, zone, consumer_email, admin_email = await web._household(cloud, board, spec)
    tz = ZoneInfo(zone)
    async with cloud.pool.connection() as conn:
        await conn.execute(
            "UPDATE consumers SET generation_kind = 'rooftop_solar', generation_kwp = 3,"
            " generation_since = '2024-01-01' WHERE id = %s",
            (consumer,),
        )
        cursor = await conn.execute(
            "SELECT id, gateway_id FROM meters WHERE consumer_id = %s", (consumer,)
        )
        meter = await cursor.fetchone()
        cursor = await conn.execute(
            "SELECT min(ts) AS first, max(ts) AS last FROM readings WHERE meter_id = %s",
            (meter["id"],),
        )
        span = await cursor.fetchone()
        at, value, rows = span["first"].astimezone(tz), D(50), []
        while at <= span["last"]:
            rows.append((meter["id"], "2.8.0", at, float(value), "ok", meter["gateway_id"]))
            if at.hour in SUN_HOURS:
                value += exported(at.date()) / len(SUN_HOURS)
            at = (at + timedelta(hours=1)).astimezone(tz)
        async with conn.cursor() as cur:
            await cur.executemany(
                "INSERT INTO readings (meter_id, quantity, ts, value, quality, gateway_id)"
                " VALUES (%s, %s, %s, %s, %s, %s)",
                rows,
            )
        await conn.commit()
    body = await web._api(served, consumer_email, f"/api/v1/consumers/{consumer}/forecast")
    net = body["net_metering"]
    assert D(net["exported_so_far"]) > 0
    assert D(body["units_so_far"]) == D(net["imported_so_far"]) - D(net["exported_so_far"])
    words = [
        f"About {quantity(D(body['expected']['units']), 'kWh')} to be billed by",
        f"{quantity(D(net['imported_so_far']), 'kWh')} taken from the grid",
        f"less {quantity(D(net['exported_so_far']), 'kWh')} exported so far, and about"
        f" {quantity(D(net['export_to_come']), 'kWh')} more expected",
        "Netted as the bill nets them",
    ]
    for who, (email, path) in {
        "consumer": (consumer_email, "/dashboard/home"),
        "staff": (admin_email, f"/dashboard/consumers/{consumer}"),
    }.items():
        visit = await _visit(browser, served, "desktop")
        await visit.sign_in(email)
        await visit.open(path, f"insights-net-metered-{who}")
        page = visit.page
        total = await page.locator("#figure-projected").inner_text()
        assert total == money(D(body["expected"]["total"])), total
        basis = await page.locator("#forecast-basis").inner_text()
        for phrase in words:
            assert phrase in basis, (phrase, basis)
        if body["next"]:
            ahead = await page.locator("#next-basis").inner_text()
            exported_next = quantity(D(body["next"]["expected_export"]), "kWh")
            assert f"net of about {exported_next} expected to be exported" in ahead, ahead
        assert not visit.errors, visit.errors
        await page.context.close()

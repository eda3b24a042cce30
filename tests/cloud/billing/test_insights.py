"""The forecast and the recommendations over the API, on households whose every hour is known:
12 kWh a working day and 24 a weekend day, read on the hour in Asia/Kolkata. Every expected
figure is worked out here by hand (days counted on the calendar, slabs added up, the standing
load found by SQL over the readings), never by calling the code under test."""

from __future__ import annotations

import statistics
import uuid
from datetime import date, datetime, timedelta
from decimal import Decimal as D
from zoneinfo import ZoneInfo

import pytest

from cloud.billing.forecast import forecast_units
from cloud.services.passwords import hash_password_blocking
from tests.cloud.billing.test_invoices import (
    Board,
    add_reads,
    setup,  # noqa: F401  (fixture)
    tariff,
)
from tests.cloud.conftest import Cloud

IST = ZoneInfo("Asia/Kolkata")
PASSWORD_HASH = hash_password_blocking("a household's own password")  # nobody signs in with it
AS_OF = datetime(2026, 11, 16, tzinfo=IST)  # a Monday, midnight: 15 days of November read
SLABS = {
    "effective_from": "2026-01-01",
    "spec": {
        "energy": {
            "mode": "telescopic",
            "slabs": [
                {"up_to": 200, "rate": "4.00"},
                {"up_to": 420, "rate": "6.00"},
                {"rate": "8.00"},
            ],
        }
    },
}
# off peak 00-06 at 3.00, peak 18-22 at 8.00, normal otherwise at 5.00, every day alike
DAY = ["off_peak"] * 6 + ["normal"] * 12 + ["peak"] * 4 + ["normal"] * 2
TIME_OF_DAY = {
    "effective_from": "2026-01-01",
    "spec": {
        "energy": {
            "mode": "time_of_day",
            "rates": {"off_peak": "3.00", "normal": "5.00", "peak": "8.00"},
            "weekday": [DAY] * 12,
            "weekend": [DAY] * 12,
        }
    },
}


@pytest.fixture
def here(setup: Board) -> Board:  # noqa: F811
    """A fresh board with its admin signed in."""
    return setup


def daily(day: date) -> D:
    return D(24) if day.weekday() >= 5 else D(12)


def days(first: date, end: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((end - first).days)]


def telescopic(units: D) -> D:
    """The SLABS tariff by hand: 200 at 4.00, the next 220 at 6.00, the rest at 8.00."""
    return (
        min(units, D(200)) * 4
        + max(min(units, D(420)) - 200, D(0)) * 6
        + max(units - 420, D(0)) * 8
    ).quantize(D("0.01"))


def hourly_reads(first: date, until: datetime) -> list[tuple[datetime, float]]:
    """The register on every local hour from `first` to `until`: each hour of a working day
    adds 0.5 kWh, of a weekend day 1.0."""
    at = datetime(first.year, first.month, first.day, tzinfo=IST)
    value = D(1000)
    reads = [(at, float(value))]
    while at < until:
        value += daily(at.date()) / 24
        at += timedelta(hours=1)
        reads.append((at, float(value)))
    return reads


async def consumer(
    cloud: Cloud, board: Board, until: datetime = AS_OF, *, insights_allowed: bool = True
) -> int:
    """A household with hourly reads up to `until`; with `insights_allowed`, its online account
    has allowed its usage to be used for the ways to pay less (consent usage_insights)."""
    tag = uuid.uuid4().hex[:8]
    async with cloud.pool.connection() as conn:
        cursor = await conn.execute(
            "INSERT INTO consumers (board_id, account_no, name) VALUES (%s, %s, 'C') RETURNING id",
            (board.id, f"AC-{tag}"),
        )
        consumer_id = (await cursor.fetchone())["id"]
        if insights_allowed:
            cursor = await conn.execute(
                "INSERT INTO users (email, password_hash, role, consumer_id)"
                " VALUES (%s, %s, 'CONSUMER', %s) RETURNING id",
                (f"ac-{tag}@example.in", PASSWORD_HASH, consumer_id),
            )
            user_id = (await cursor.fetchone())["id"]
            await conn.execute(
                "INSERT INTO consents (user_id, consumer_id, kind, granted)"
                " VALUES (%s, %s, 'usage_insights', true)",
                (user_id, consumer_id),
            )
        cursor = await conn.execute(
            "INSERT INTO meters (board_id, external_id, consumer_id) VALUES (%s, %s, %s)"
            " RETURNING id",
            (board.id, f"m-{tag}", consumer_id),
        )
        meter = (await cursor.fetchone())["id"]
        await conn.commit()
    await add_reads(cloud, meter, hourly_reads(date(2026, 10, 1), until))
    return consumer_id


async def get(cloud: Cloud, board: Board, path: str, as_of: datetime = AS_OF) -> dict:
    response = await cloud.client.get(
        path, params={"as_of": as_of.isoformat()}, headers=board.admin
    )
    assert response.status_code == 200, response.text
    return response.json()


async def generate(cloud: Cloud, board: Board, consumer_id: int, as_of: datetime = AS_OF) -> dict:
    """The consumer's recommendations worked out as of `as_of` and stored, as the board's admin
    asks; each item's figures flattened beside it."""
    response = await cloud.client.post(
        f"/api/v1/consumers/{consumer_id}/recommendations/generate",
        json={"as_of": as_of.isoformat()},
        headers=board.admin,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    body["items"] = [{**item, **item["figures"]} for item in body["items"]]
    return body


async def test_the_forecast_counts_weekdays_and_weekends_and_prices_by_slabs(
    cloud: Cloud, here: Board
) -> None:
    await tariff(cloud, here, [SLABS])
    consumer_id = await consumer(cloud, here)
    body = await get(cloud, here, f"/api/v1/consumers/{consumer_id}/forecast")
    november = days(date(2026, 11, 1), date(2026, 12, 1))
    so_far = sum(daily(d) for d in november[:15])
    expected = sum(daily(d) for d in november)  # 21 x 12 + 9 x 24 = 468
    assert expected == 468
    assert (body["period_start"], body["period_end"]) == ("2026-11-01", "2026-12-01")
    assert body["time_zone"] == "Asia/Kolkata"
    assert D(body["units_so_far"]) == so_far
    assert (D(body["weekday_units"]), D(body["rest_day_units"])) == (12, 24)
    assert D(body["remaining_days"]) == 15
    assert body["history_days"] == 28
    assert D(body["expected"]["units"]) == expected
    # priced by the slabs: 200 x 4 + 220 x 6 + 48 x 8, not the bill so far doubled
    assert D(body["expected"]["total"]) == telescopic(D(expected)) == D("2504.00")
    assert D(body["expected"]["total"]) != telescopic(so_far) * 2
    # every day of the history was its kind's mean: no spread, no range
    assert D(body["low"]["total"]) == D(body["high"]["total"]) == D("2504.00")
    # the linear estimate goes by the rate so far (15 days, three weekends in them)
    estimate = await get(cloud, here, f"/api/v1/consumers/{consumer_id}/estimate")
    assert D(estimate["projected_units"]) == so_far / 15 * 30


async def test_the_forecast_follows_the_boards_billing_cycle(cloud: Cloud, here: Board) -> None:
    await tariff(cloud, here, [SLABS])
    consumer_id = await consumer(cloud, here)
    async with cloud.pool.connection() as conn:
        await conn.execute(
            "INSERT INTO billing_cycles (board_id, cycle_day, cycle, auto_issue, enabled,"
            " effective_from) VALUES (%s, 10, 'monthly', false, true, '2026-10-01')",
            (here.id,),
        )
        await conn.commit()
    body = await get(cloud, here, f"/api/v1/consumers/{consumer_id}/forecast")
    assert (body["period_start"], body["period_end"]) == ("2026-11-10", "2026-12-10")
    assert body["board_cycle"] is True
    period = days(date(2026, 11, 10), date(2026, 12, 10))
    assert D(body["units_so_far"]) == sum(daily(d) for d in period[:6])
    expected = sum(daily(d) for d in period)
    assert D(body["expected"]["units"]) == expected
    assert D(body["expected"]["total"]) == telescopic(expected)
    estimate = await get(cloud, here, f"/api/v1/consumers/{consumer_id}/estimate")
    assert estimate["cycle_start"] == "2026-11-10"


async def test_recommendations_save_what_hand_arithmetic_says(cloud: Cloud, here: Board) -> None:
    await tariff(cloud, here, [SLABS])
    late = datetime(2026, 11, 26, tzinfo=IST)
    consumer_id = await consumer(cloud, here, until=late)  # reads after AS_OF stay unseen
    body = await generate(cloud, here, consumer_id)
    expected = sum(daily(d) for d in days(date(2026, 11, 1), date(2026, 12, 1)))
    # the standing load, by SQL over the readings: each of the last 14 nights' least hourly
    # rise in the local hours 0-5, and their median
    async with cloud.pool.connection() as conn:
        cursor = await conn.execute(
            "WITH d AS (SELECT r.ts, r.value - lag(r.value) OVER (ORDER BY r.ts) AS kwh"
            " FROM readings r JOIN meters m ON m.id = r.meter_id WHERE m.consumer_id = %s"
            " AND r.ts <= %s)"
            " SELECT ((ts - interval '1 hour') AT TIME ZONE 'Asia/Kolkata')::date AS night,"
            " min(kwh) AS least FROM d WHERE kwh IS NOT NULL AND extract(hour FROM"
            " (ts - interval '1 hour') AT TIME ZONE 'Asia/Kolkata') < 5 GROUP BY 1"
            " ORDER BY 1 DESC LIMIT 14",
            (consumer_id, AS_OF),
        )
        nights = [D(str(round(row["least"], 6))) for row in await cursor.fetchall()]
    standby = statistics.median(nights)
    assert standby == D("0.5")  # ten working nights at 0.5 kWh an hour, four weekend ones at 1
    assert D(body["standby_kw"]) == standby
    found = {item["kind"]: item for item in body["items"]}
    assert set(found) == {"stay_below_slab", "cut_standby"}  # no time of day: nothing to shift
    slab = found["stay_below_slab"]
    so_far = sum(daily(d) for d in days(date(2026, 11, 1), date(2026, 11, 16)))  # 240
    assert so_far < 420  # not passed yet
    assert expected - 420 <= (expected - so_far) / 4  # within reach of the 228 still to come
    assert D(slab["boundary"]) == 420
    assert D(slab["units"]) == expected - 420 == 48
    assert D(slab["units_per_day"]) == D("3.20")  # over the 15 days left
    assert D(slab["saving"]) == 48 * D("8.00")  # the units above 420, at the top slab's rate
    standby_cut = found["cut_standby"]
    cut = standby * D("0.25") * 30 * 24  # a quarter of it, every hour of November
    assert D(standby_cut["units"]) == cut == 90
    assert D(standby_cut["saving"]) == telescopic(D(expected)) - telescopic(expected - cut)
    assert D(standby_cut["saving"]) == D("636.00")
    assert [item["kind"] for item in body["items"]] == ["cut_standby", "stay_below_slab"]
    # ten days on, 384 used and 84 to come: 48 fewer is more than a quarter of what is left,
    # out of reach, and not offered
    later = await generate(cloud, here, consumer_id, late)
    assert D(later["forecast"]["units"]) == expected
    assert [item["kind"] for item in later["items"]] == ["cut_standby"]


async def test_a_time_of_day_tariff_recommends_shifting_from_peak(
    cloud: Cloud, here: Board
) -> None:
    await tariff(cloud, here, [TIME_OF_DAY])
    consumer_id = await consumer(cloud, here)
    forecast = await get(cloud, here, f"/api/v1/consumers/{consumer_id}/forecast")
    november = days(date(2026, 11, 1), date(2026, 12, 1))
    # each hour is a day's use / 24, at its period's rate
    by_hand = sum(daily(d) / 24 * (6 * 3 + 14 * 5 + 4 * 8) for d in november)
    assert D(forecast["expected"]["total"]) == by_hand.quantize(D("0.01"))
    body = await generate(cloud, here, consumer_id)
    found = {item["kind"]: item for item in body["items"]}
    shift = found["shift_to_off_peak"]
    peak_units = sum(daily(d) / 24 * 4 for d in november)  # 4 peak hours a day
    moved = peak_units * D("0.2")
    assert (shift["from_period"], shift["to_period"]) == ("peak", "off_peak")
    assert D(shift["units"]) == moved
    assert D(shift["saving"]) == (moved * (8 - 3)).quantize(D("0.01"))
    # a quarter of the 0.5 kW standing load off every hour, each at its period's rate
    assert D(found["cut_standby"]["saving"]) == D("0.125") * (6 * 3 + 14 * 5 + 4 * 8) * 30


async def test_no_reads_and_bad_moments_are_refused_with_reasons(cloud: Cloud, here: Board) -> None:
    await tariff(cloud, here, [SLABS])
    consumer_id = await consumer(cloud, here)
    before = datetime(2026, 9, 15, tzinfo=IST)  # no read in September
    for path in ("forecast", "recommendations/generate"):
        method = "GET" if path == "forecast" else "POST"

        async def ask(moment: str, method: str = method, path: str = path):
            return await cloud.client.request(
                method,
                f"/api/v1/consumers/{consumer_id}/{path}",
                params={"as_of": moment} if method == "GET" else None,
                json={"as_of": moment} if method == "POST" else None,
                headers=here.admin,
            )

        response = await ask(before.isoformat())
        assert response.status_code == 422, response.text
        assert "no reads yet in this billing period" in response.text
        future = await ask("2999-01-01T00:00:00+00:00")
        assert future.status_code == 422
        assert "as_of" in future.text


def test_the_range_widens_with_the_spread_of_the_days() -> None:
    """Days alternating 10 and 14 kWh: the expectation is their mean, the range around it."""
    start = datetime(2026, 3, 1, tzinfo=IST)
    by_hour = {}
    for hour in range(24 * 40):
        at = start + timedelta(hours=hour)
        by_hour[at] = D(10 if (at.date() - start.date()).days % 2 else 14) / 24
    as_of = start + timedelta(days=40)
    units = forecast_units(
        by_hour=by_hour,
        covered_from=start,
        as_of=as_of,
        so_far=D(0),
        cycle_start=as_of.date(),
        cycle_end=as_of.date() + timedelta(days=30),
        tz=IST,
    )
    assert abs(units.expected - 360) < 8  # about 12 a day (weekdays and weekends apart)
    assert units.low < units.expected < units.high
    assert units.high - units.low < 120

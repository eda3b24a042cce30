"""Stored recommendations over the API: generated, answered by the consumer (new -> seen ->
done / dismissed), regenerated without undoing an answer; the sanctioned-load and power-factor
recommendations and the next period's forecast, every figure worked out here by hand on the
households of `test_insights` (12 kWh a working day, 24 a weekend day, every hour read)."""

from __future__ import annotations

import math
import uuid
from datetime import date, datetime, timedelta
from decimal import Decimal as D

import pytest

from cloud.services import auth
from tests.cloud.billing.test_insights import (
    AS_OF,
    IST,
    SLABS,
    consumer,
    daily,
    days,
    generate,
    get,
    hourly_reads,
    telescopic,
)
from tests.cloud.billing.test_invoices import (
    PASSWORD,
    Board,
    add_reads,
    login,
    setup,  # noqa: F401  (fixture)
    tariff,
)
from tests.cloud.conftest import Cloud

NOVEMBER = days(date(2026, 11, 1), date(2026, 12, 1))


@pytest.fixture
def here(setup: Board) -> Board:  # noqa: F811
    return setup


async def consumer_user(cloud: Cloud, consumer_id: int) -> dict[str, str]:
    email = f"home-{uuid.uuid4().hex[:8]}@example.in"
    async with cloud.pool.connection() as conn:
        await auth.create_user(
            conn,
            email=email,
            password=PASSWORD,
            role="CONSUMER",
            consumer_id=consumer_id,
            actor="t",
        )
    return await login(cloud, email)


async def audit_rows(cloud: Cloud, ids: list[int]) -> list[tuple[str, str]]:
    async with cloud.pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT action, entity_id FROM audit_log WHERE entity = 'recommendation'"
            " AND entity_id = ANY(%s) ORDER BY id",
            ([str(i) for i in ids],),
        )
        return [(row["action"], row["entity_id"]) for row in await cursor.fetchall()]


async def test_the_consumer_answers_and_regenerating_keeps_the_answers(
    cloud: Cloud, here: Board
) -> None:
    await tariff(cloud, here, [SLABS])
    late = datetime(2026, 11, 26, tzinfo=IST)
    consumer_id = await consumer(cloud, here, until=late)
    home = await consumer_user(cloud, consumer_id)
    first = await generate(cloud, here, consumer_id)
    kinds = {item["kind"]: item for item in first["items"]}
    assert set(kinds) == {"stay_below_slab", "cut_standby"}
    assert {item["status"] for item in first["items"]} == {"new"}
    assert sorted(first["created"]) == sorted(item["id"] for item in first["items"])
    slab, standby = kinds["stay_below_slab"], kinds["cut_standby"]
    assert "heading for" in slab["assumption"]
    assert "420.00 kWh" in slab["assumption"]
    ids = [slab["id"], standby["id"]]
    assert sorted(await audit_rows(cloud, ids)) == sorted(("create", str(i)) for i in ids)

    # the consumer reads their own, and answers them
    listed = await cloud.client.get(
        f"/api/v1/consumers/{consumer_id}/recommendations", headers=home
    )
    assert listed.status_code == 200, listed.text
    assert [i["kind"] for i in listed.json()["items"]] == ["cut_standby", "stay_below_slab"]
    one = await cloud.client.get(f"/api/v1/recommendations/{slab['id']}", headers=home)
    assert one.status_code == 200
    assert one.json()["status"] == "new"
    url = "/api/v1/recommendations/{}"
    seen = await cloud.client.patch(url.format(slab["id"]), json={"status": "seen"}, headers=home)
    assert seen.status_code == 200, seen.text
    assert seen.json()["status"] == "seen"
    assert seen.json()["status_changed_at"]
    done = await cloud.client.patch(
        url.format(standby["id"]), json={"status": "done"}, headers=home
    )
    assert done.json()["status"] == "done"
    back = await cloud.client.patch(
        url.format(standby["id"]), json={"status": "seen"}, headers=home
    )
    assert back.status_code == 409
    assert "done already" in back.text
    # an answer is the household's: the board's admin reads, and may not answer for them
    staff = await cloud.client.patch(
        url.format(slab["id"]), json={"status": "done"}, headers=here.admin
    )
    assert staff.status_code == 403
    for bad in ({"status": "new"}, {"status": "done", "note": "x"}, {}):
        refused = await cloud.client.patch(url.format(slab["id"]), json=bad, headers=home)
        assert refused.status_code == 422, bad
    # two made, two answered; the refused answers left no row
    assert sorted(await audit_rows(cloud, ids)) == sorted(
        [("create", str(i)) for i in ids] + [("status", str(i)) for i in ids]
    )

    # the same moment again: nothing moved, nothing written
    again = await generate(cloud, here, consumer_id)
    assert (again["created"], again["updated"], again["withdrawn"]) == ([], [], [])
    assert len(await audit_rows(cloud, ids)) == 4

    # ten days on the slab is out of reach: the open one is withdrawn; the standby one was
    # answered, and keeps its answer and the figures it was answered on
    later = await generate(cloud, here, consumer_id, late)
    assert later["withdrawn"] == [slab["id"]]
    assert [(i["id"], i["status"]) for i in later["items"]] == [(standby["id"], "done")]
    assert D(later["items"][0]["saving"]) == D(standby["saving"])
    gone = await cloud.client.get(url.format(slab["id"]), headers=home)
    assert gone.status_code == 404
    done_only = await cloud.client.get(
        f"/api/v1/consumers/{consumer_id}/recommendations",
        params={"status": "done"},
        headers=home,
    )
    assert [i["id"] for i in done_only.json()["items"]] == [standby["id"]]

    # another household's: not found, read or answered
    other = await consumer(cloud, here)
    stranger = await consumer_user(cloud, other)
    for method, body in (("GET", None), ("PATCH", {"status": "dismissed"})):
        response = await cloud.client.request(
            method, url.format(standby["id"]), json=body, headers=stranger
        )
        assert response.status_code == 404
    foreign = await cloud.client.post(
        f"/api/v1/consumers/{consumer_id}/recommendations/generate", json={}, headers=stranger
    )
    assert foreign.status_code == 404


async def test_no_ways_to_pay_less_without_the_households_consent(
    cloud: Cloud, here: Board
) -> None:
    """The engine reads the household's hours: a household that never allowed it, or withdrew,
    gets none worked out or stored, whoever asks; allowed again, it gets them again."""
    await tariff(cloud, here, [SLABS])
    path = "/api/v1/consumers/{}/recommendations/generate"
    never = await consumer(cloud, here, insights_allowed=False)
    response = await cloud.client.post(
        path.format(never), json={"as_of": AS_OF.isoformat()}, headers=here.admin
    )
    assert response.status_code == 409, response.text
    assert "has not allowed its usage to be used" in response.text
    assert await count_stored(cloud, never) == 0

    consumer_id = await consumer(cloud, here)
    home = await consumer_user(cloud, consumer_id)
    assert (await generate(cloud, here, consumer_id))["items"]
    consents = "/api/v1/users/me/consents"
    withdrawn = await cloud.client.post(
        consents, json={"kind": "usage_insights", "granted": False}, headers=home
    )
    assert withdrawn.status_code == 200, withdrawn.text
    for headers in (here.admin, home):  # the board's admin and the household alike
        response = await cloud.client.post(
            path.format(consumer_id), json={"as_of": AS_OF.isoformat()}, headers=headers
        )
        assert response.status_code == 409, response.text
    allowed = await cloud.client.post(
        consents, json={"kind": "usage_insights", "granted": True}, headers=home
    )
    assert allowed.status_code == 200, allowed.text
    assert (await generate(cloud, here, consumer_id))["items"]


async def count_stored(cloud: Cloud, consumer_id: int) -> int:
    async with cloud.pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT count(*) AS n FROM recommendations WHERE consumer_id = %s", (consumer_id,)
        )
        return (await cursor.fetchone())["n"]


async def demand_reads(cloud: Cloud, meter: int, since: date, peak_kw: float) -> None:
    """A 1.5.0 read at noon every day from `since` to AS_OF: 1.2 kW, and `peak_kw` once."""
    async with cloud.pool.connection() as conn:
        for month in range(0, 14):
            first = date(2025, 10, 1) + timedelta(days=31 * month)
            await conn.execute("SELECT ensure_readings_partition(%s)", (first.replace(day=1),))
        await conn.commit()
    reads, day = [], since
    while day < AS_OF.date():
        at = datetime(day.year, day.month, day.day, 12, tzinfo=IST)
        reads.append((at, peak_kw if day == date(2026, 6, 3) else 1.2))
        day += timedelta(days=1)
    await add_reads(cloud, meter, reads, quantity="1.5.0")


async def meter_of(cloud: Cloud, consumer_id: int) -> int:
    async with cloud.pool.connection() as conn:
        cursor = await conn.execute("SELECT id FROM meters WHERE consumer_id = %s", (consumer_id,))
        return (await cursor.fetchone())["id"]


async def test_a_sanctioned_load_above_the_years_demand_costs_fixed_charges(
    cloud: Cloud, here: Board
) -> None:
    flat = {"mode": "flat", "rate": "5.00"}
    await tariff(
        cloud,
        here,
        [{"effective_from": "2025-01-01", "spec": {"energy": flat, "fixed": {"per_kw": "100"}}}],
    )
    year = await consumer(cloud, here)
    short = await consumer(cloud, here)
    async with cloud.pool.connection() as conn:
        await conn.execute(
            "UPDATE consumers SET sanctioned_load_kw = 10 WHERE id = ANY(%s)", ([year, short],)
        )
        await conn.commit()
    await demand_reads(cloud, await meter_of(cloud, year), date(2025, 11, 20), 3.4)
    await demand_reads(cloud, await meter_of(cloud, short), date(2026, 5, 1), 3.4)
    body = await generate(cloud, here, year)
    found = {item["kind"]: item for item in body["items"]}
    load = found["reduce_sanctioned_load"]
    proposed = math.ceil(3.4 * 1.2)  # 4.08 kW, rounded up to a whole kW
    assert proposed == 5
    assert (D(load["max_demand_kw"]), D(load["proposed_kw"])) == (D("3.4"), proposed)
    assert D(load["sanctioned_kw"]) == 10
    # November is one month: (10 - 5) kW at 100 a kW-month, the energy unchanged
    assert D(load["saving"]) == (10 - proposed) * D(100) == D(500)
    assert D(load["saving_per_month"]) == D(500)
    assert "3.400 kW" in load["assumption"]
    assert "5 kW" in load["assumption"]
    # six months of record hold no summer's peak: nothing offered on so little
    little = await generate(cloud, here, short)
    assert "reduce_sanctioned_load" not in {item["kind"] for item in little["items"]}


async def test_a_poor_power_factor_costs_kvah(cloud: Cloud, here: Board) -> None:
    await tariff(
        cloud,
        here,
        [
            {
                "effective_from": "2026-01-01",
                "spec": {"energy_unit": "kVAh", "energy": {"mode": "flat", "rate": "5.00"}},
            }
        ],
    )
    consumer_id = await consumer(cloud, here)  # its 1.8.0 reads
    meter = await meter_of(cloud, consumer_id)
    pf = D("0.8")
    kwh_reads = hourly_reads(date(2026, 10, 1), AS_OF)
    await add_reads(
        cloud,
        meter,
        [(at, float(D(str(value)) / pf)) for at, value in kwh_reads],
        quantity="9.8.0",
    )
    body = await generate(cloud, here, consumer_id)
    item = {i["kind"]: i for i in body["items"]}["improve_power_factor"]
    assert D(item["power_factor"]) == pf
    billed = sum(daily(d) for d in NOVEMBER) / pf  # 468 kWh as kVAh at 0.8: 585
    assert billed == 585
    assert D(item["billed_kvah"]) == billed
    improved = billed * pf / D("0.95")  # 468 kWh at 0.95
    assert D(item["improved_kvah"]) == improved.quantize(D("0.001"))
    by_hand = (billed * 5).quantize(D("0.01")) - (improved * 5).quantize(D("0.01"))
    assert by_hand == D("461.84")
    assert D(item["saving"]) == by_hand
    assert "0.95" in item["assumption"]


async def test_next_periods_forecast_with_and_without_a_season(cloud: Cloud, here: Board) -> None:
    await tariff(cloud, here, [SLABS])
    consumer_id = await consumer(cloud, here)
    body = await get(cloud, here, f"/api/v1/consumers/{consumer_id}/forecast")
    ahead = body["next"]
    december = days(date(2026, 12, 1), date(2027, 1, 1))
    units = sum(daily(d) for d in december)  # 23 working days x 12 + 8 weekend days x 24
    assert units == 468
    assert (ahead["period_start"], ahead["period_end"]) == ("2026-12-01", "2027-01-01")
    assert ahead["basis"] == "recent_weeks_only"
    assert ahead["seasonal_factor"] is None
    assert D(ahead["expected"]["units"]) == units
    assert D(ahead["expected"]["total"]) == telescopic(D(units))
    # a year back (52 weeks, so weekdays line up) the four weeks before and two more were 10
    # a day, and the weeks of the next period and two more 15: half as much again
    recent = days(AS_OF.date() - timedelta(days=28), AS_OF.date())  # 19 Oct - 15 Nov 2026
    year, pad = timedelta(days=364), timedelta(days=14)
    before = days(recent[0] - year - pad, recent[-1] - year + timedelta(days=1))
    during = days(december[0] - year, december[-1] - year + timedelta(days=1) + pad)
    assert (before[0], before[-1]) == (date(2025, 10, 6), date(2025, 11, 16))
    assert (during[0], during[-1]) == (date(2025, 12, 2), date(2026, 1, 15))
    async with cloud.pool.connection() as conn:
        for stretch, kwh in ((before, 10), (during, 15)):
            for day in stretch:
                await conn.execute(
                    "INSERT INTO consumer_energy_daily (consumer_id, board_id, day, energy_kwh,"
                    " peak_kw) VALUES (%s, %s, %s, %s, 1)",
                    (consumer_id, here.id, day, kwh),
                )
        await conn.commit()
    seasonal = (await get(cloud, here, f"/api/v1/consumers/{consumer_id}/forecast"))["next"]
    # half the change is believed: 1 + (1.5 - 1) / 2
    assert D(seasonal["seasonal_factor"]) == D("1.25")
    assert seasonal["basis"] == "recent_weeks_and_season"
    assert D(seasonal["expected"]["units"]) == units * D("1.25") == 585
    assert D(seasonal["expected"]["total"]) == telescopic(D(585)) == D("3440.00")

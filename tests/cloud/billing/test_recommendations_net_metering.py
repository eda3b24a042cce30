"""The ways to pay less of a net-metered household: every saving is the difference of two NET
bills — the expected net bill the forecast shows, and the net bill with the import changed and
the same export and bank — and the slab suggestion looks at the net units the slabs bill. The
households of `test_insights_net_metering` (468 kWh imported in November, 153 exported; 240 and
75 by the 15th); every figure worked out here by hand from the tariff, never by calling the code
under test. And the consumer's page in a real Chromium: "Used so far" and the tariff's "you are
here" show the net units, and say so."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from decimal import Decimal as D
from zoneinfo import ZoneInfo

import httpx
import pytest

from cloud.formats import number, quantity
from tests.cloud import test_web_insights as web
from tests.cloud.billing import test_insights as plain
from tests.cloud.billing.test_insights import PASSWORD_HASH, daily, days, generate
from tests.cloud.billing.test_insights_net_metering import (
    NET_METERED,
    SUN_HOURS,
    bank,
    exported,
    forecast,
    solar_household,
    telescopic,
)
from tests.cloud.billing.test_invoices import (
    Board,
    setup,  # noqa: F401  (fixture)
    tariff,
)
from tests.cloud.conftest import Cloud
from tests.cloud.test_web_app import _visit

NOVEMBER = days(date(2026, 11, 1), date(2026, 12, 1))
IMPORTED, EXPORTED = D(468), D(153)  # the month's, as test_insights_net_metering counts them
IMPORTED_SO_FAR, EXPORTED_SO_FAR = D(240), D(75)  # by 16 Nov, 00:00
STANDBY_CUT = D("0.125") * 30 * 24  # a quarter of the 0.5 kW standing load, every hour: 90 kWh


@pytest.fixture
def here(setup: Board) -> Board:  # noqa: F811
    return setup


async def allow_insights(cloud: Cloud, consumer_id: int) -> None:
    """The household's online account allows its usage to be used for the ways to pay less."""
    tag = uuid.uuid4().hex[:8]
    async with cloud.pool.connection() as conn:
        cursor = await conn.execute(
            "INSERT INTO users (email, password_hash, role, consumer_id)"
            " VALUES (%s, %s, 'CONSUMER', %s) RETURNING id",
            (f"sun-{tag}@example.in", PASSWORD_HASH, consumer_id),
        )
        user_id = (await cursor.fetchone())["id"]
        await conn.execute(
            "INSERT INTO consents (user_id, consumer_id, kind, granted)"
            " VALUES (%s, %s, 'usage_insights', true)",
            (user_id, consumer_id),
        )
        await conn.commit()


async def solar_advice(cloud: Cloud, here: Board) -> tuple[int, dict]:
    consumer_id = await solar_household(cloud, here)
    await allow_insights(cloud, consumer_id)
    return consumer_id, await generate(cloud, here, consumer_id)


async def test_each_saving_is_the_difference_of_two_net_bills(cloud: Cloud, here: Board) -> None:
    await tariff(cloud, here, [NET_METERED])
    assert (sum(daily(d) for d in NOVEMBER), sum(exported(d) for d in NOVEMBER)) == (
        IMPORTED,
        EXPORTED,
    )
    consumer_id, body = await solar_advice(cloud, here)
    net = IMPORTED - EXPORTED  # 315: what the slabs will bill
    # the base is the forecast's net bill, not the import's 2258.00
    assert D(body["forecast"]["units"]) == net == 315
    assert D(body["forecast"]["total"]) == telescopic(net) == D("1340.00")
    shown = await forecast(cloud, here, consumer_id)
    assert D(body["forecast"]["total"]) == D(shown["expected"]["total"])
    found = {item["kind"]: item for item in body["items"]}
    assert set(found) == {"stay_below_slab", "cut_standby"}

    # a quarter of the standing load off: 90 kWh less imported, the same 153 exported
    standby = found["cut_standby"]
    assert D(standby["units"]) == STANDBY_CUT == 90
    after = telescopic(IMPORTED - STANDBY_CUT - EXPORTED)  # 225 net: 100 x 3 + 125 x 4.5 + 50
    assert after == D("912.50")
    assert D(standby["saving"]) == telescopic(net) - after == D("427.50")
    # priced on the import alone it would have said 540.00
    assert telescopic(IMPORTED) - telescopic(IMPORTED - STANDBY_CUT) == D("540.00")

    # the net (165 so far, 315 expected) is about to pass 300; the import (240, 468) would
    # pass it by 168, more than a quarter of the 228 still to come, and nothing was offered
    slab = found["stay_below_slab"]
    assert IMPORTED_SO_FAR - EXPORTED_SO_FAR < 300 < net
    assert net - 300 <= (IMPORTED - IMPORTED_SO_FAR) / 4
    assert D(slab["boundary"]) == 300
    assert D(slab["units"]) == net - 300 == 15
    assert D(slab["units_per_day"]) == D(1)  # over the 15 days left
    assert D(slab["expected"]) == net
    assert (D(slab["expected_import"]), D(slab["expected_export"])) == (IMPORTED, EXPORTED)
    # 15 kWh less imported against the same export: 300 net, the last 15 at 6.00 saved
    assert D(slab["saving"]) == telescopic(net) - telescopic(D(300)) == 15 * D("6.00") == 90
    assert "315.000 kWh net it is heading for" in slab["assumption"], slab["assumption"]


async def test_the_bank_is_netted_in_both_bills(cloud: Cloud, here: Board) -> None:
    """20 units banked by October's bill: November bills 468 - 153 - 20 = 295 net, below 300,
    so no slab is about to be passed; the standing load's saving nets the bank too."""
    await tariff(cloud, here, [NET_METERED])
    consumer_id = await solar_household(cloud, here)
    await allow_insights(cloud, consumer_id)
    await bank(cloud, consumer_id, "20")
    body = await generate(cloud, here, consumer_id)
    net = IMPORTED - EXPORTED - 20
    assert D(body["forecast"]["total"]) == telescopic(net) == D("1227.50")
    found = {item["kind"]: item for item in body["items"]}
    assert set(found) == {"cut_standby"}
    after = telescopic(net - STANDBY_CUT)  # 205 net
    assert D(found["cut_standby"]["saving"]) == telescopic(net) - after == D("405.00")


async def test_the_slab_suggestion_keys_on_the_net_units(cloud: Cloud, here: Board) -> None:
    """Under test_insights' slabs (200, 420) the import — 240 so far, 468 expected — is 48
    above 420 and within reach: that is what a household without panels is told. The net
    — 165 so far, 315 expected — never reaches 420, and is 115 above 200, more than a quarter
    of the 228 still to be imported: nothing to suggest about slabs."""
    spec = {**plain.SLABS["spec"], "net_metering": NET_METERED["spec"]["net_metering"]}
    await tariff(cloud, here, [{**plain.SLABS, "spec": spec}])
    _, body = await solar_advice(cloud, here)
    net = IMPORTED - EXPORTED
    assert IMPORTED_SO_FAR < 420 < IMPORTED
    assert IMPORTED - 420 <= (IMPORTED - IMPORTED_SO_FAR) / 4
    assert net < 420
    assert net - 200 > (IMPORTED - IMPORTED_SO_FAR) / 4
    found = {item["kind"]: item for item in body["items"]}
    assert set(found) == {"cut_standby"}
    assert D(body["forecast"]["total"]) == plain.telescopic(net) == D("1490.00")
    saving = plain.telescopic(net) - plain.telescopic(net - STANDBY_CUT)  # 315 and 225 net
    assert D(found["cut_standby"]["saving"]) == saving == D("540.00")


async def add_export(cloud: Cloud, consumer: int, zone: str) -> None:
    """The export register (2.8.0) beside every import read of the consumer's meter: each
    day's `exported` spread over `SUN_HOURS`."""
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


@pytest.mark.browser
@pytest.mark.slow
async def test_used_so_far_and_you_are_here_show_the_net_units(
    cloud: Cloud, served: httpx.AsyncClient, board: str, browser
) -> None:
    """The consumer's home and the staff's page of it, at desktop and phone sizes: the
    "Used so far" figure is the import less the export, with both named in words, and the
    tariff's "you are here" stands in the slab of the net units, saying they are net."""
    spec = {**web.SLABS, "net_metering": NET_METERED["spec"]["net_metering"]}
    consumer, zone, consumer_email, admin_email = await web._household(cloud, board, spec)
    await add_export(cloud, consumer, zone)
    body = await web._api(served, consumer_email, f"/api/v1/consumers/{consumer}/forecast")
    flows = body["net_metering"]
    imported, sent = D(flows["imported_so_far"]), D(flows["exported_so_far"])
    net = imported - sent
    assert sent > 0
    assert D(body["units_so_far"]) == net
    words = (
        f"{quantity(imported, 'kWh')} taken from the grid, {quantity(sent, 'kWh')} sent to it:"
        f" {quantity(net, 'kWh')} net so far"
    )
    # the slabs are 0-200, 200-400 and above (web.SLABS): the net's, not the import's
    lows = [D(0), D(200), D(400)]
    row = max(i for i, low in enumerate(lows) if low <= max(net, D(0)))
    following = f"{number(lows[row + 1] - net, 1)} kWh more net use" if row < 2 else None
    pages = {
        "consumer": (consumer_email, "/dashboard/home", f"you are here ({number(net, 1)} net"),
        "staff": (
            admin_email,
            f"/dashboard/consumers/{consumer}",
            f"this month so far ({number(net, 1)} net",
        ),
    }
    for who, (email, path, marker) in pages.items():
        for viewport in ("desktop", "phone"):
            visit = await _visit(browser, served, viewport)
            await visit.sign_in(email)
            await visit.open(path, f"insights-net-so-far-{who}-{viewport}")
            page = visit.page
            figure = await page.locator("#figure-so-far").inner_text()
            assert figure == quantity(net, "kWh"), figure
            said = await page.locator("#so-far-net").inner_text()
            assert said == words, said
            rows = page.locator("#tariff table.slabs tbody tr")
            assert await rows.count() == 3
            assert await page.locator("#tariff tr.current").count() == 1
            current = await rows.nth(row).inner_text()
            assert marker in current, (row, current)
            assert "current" in (await rows.nth(row).get_attribute("class") or "")
            then = await page.locator("#next-slab").inner_text()
            if following:
                assert following in then, then
            assert not visit.errors, visit.errors
            await page.context.close()

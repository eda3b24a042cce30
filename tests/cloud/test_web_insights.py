"""The forecast and the ways to pay less in a real Chromium, at desktop and phone sizes: the
consumer's home and the staff's page of that consumer say what the API answers — the Rs amount,
its range, the units, the local times with the zone — in words, with a screenshot of each kept
in tests/artifacts/web."""

from __future__ import annotations

import json
import statistics
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import httpx
import pytest

from cloud.formats import money, quantity
from cloud.services import auth
from tests.cloud.conftest import Cloud
from tests.cloud.test_web_app import ARTIFACTS, _visit
from tests.cloud.world import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.slow]
SLABS = {
    "energy": {
        "mode": "telescopic",
        "slabs": [
            {"up_to": 200, "rate": "4.00"},
            {"up_to": 400, "rate": "6.00"},
            {"rate": "8.00"},
        ],
    }
}


def hourly(day: date) -> Decimal:
    """kWh an hour: 0.5 on working days, 1.0 on weekends, a quarter more every fourth date."""
    return (Decimal("1.0") if day.weekday() >= 5 else Decimal("0.5")) + (
        Decimal("0.25") if day.day % 4 == 0 else 0
    )


DAY = ["off_peak"] * 6 + ["normal"] * 12 + ["peak"] * 4 + ["normal"] * 2
TIME_OF_DAY = {
    "energy": {
        "mode": "time_of_day",
        "rates": {"off_peak": "3.00", "normal": "5.00", "peak": "8.00"},
        "weekday": [DAY] * 12,
        "weekend": [DAY] * 12,
    }
}


async def _household(cloud: Cloud, board: str, spec: dict = SLABS) -> tuple[int, str, str, str]:
    """A consumer whose every hour of the last five weeks is known (`hourly`), with an online
    account, and a board admin."""
    tag = uuid.uuid4().hex[:8]
    async with cloud.pool.connection() as conn:
        cursor = await conn.execute("SELECT id, time_zone FROM boards WHERE code = %s", (board,))
        row = await cursor.fetchone()
        board_id, zone = row["id"], row["time_zone"]
        cursor = await conn.execute(
            "INSERT INTO tariffs (board_id, category, name) VALUES (%s, 'domestic',"
            " 'Domestic LT-I') RETURNING id",
            (board_id,),
        )
        tariff_id = (await cursor.fetchone())["id"]
        await conn.execute(
            "INSERT INTO tariff_versions (tariff_id, effective_from, spec)"
            " VALUES (%s, '2024-01-01', %s)",
            (tariff_id, json.dumps(spec)),
        )
        cursor = await conn.execute(
            "INSERT INTO consumers (board_id, account_no, name) VALUES (%s, %s, 'Asha Menon')"
            " RETURNING id",
            (board_id, f"AC-{tag}"),
        )
        consumer = (await cursor.fetchone())["id"]
        cursor = await conn.execute(
            "INSERT INTO gateways (board_id, gateway_code, public_key) VALUES (%s, %s, 'k')"
            " RETURNING id",
            (board_id, f"gw-{tag}"),
        )
        gateway = (await cursor.fetchone())["id"]
        cursor = await conn.execute(
            "INSERT INTO meters (board_id, external_id, consumer_id, gateway_id)"
            " VALUES (%s, %s, %s, %s) RETURNING id",
            (board_id, f"m-{tag}", consumer, gateway),
        )
        meter = (await cursor.fetchone())["id"]
        tz = ZoneInfo(zone)
        now = datetime.now(UTC).astimezone(tz)
        at = datetime.combine((now - timedelta(days=35)).date(), datetime.min.time(), tz)
        await conn.execute(
            "SELECT ensure_readings_partition(d::date) FROM generate_series("
            " date_trunc('month', %s::timestamptz), %s::timestamptz, interval '1 month') d",
            (at, now),
        )
        value = Decimal(1000)
        rows = []
        while at <= now:
            rows.append((meter, "1.8.0", at, float(value), "ok", gateway))
            value += hourly(at.date())
            at = (at + timedelta(hours=1)).astimezone(tz)
        async with conn.cursor() as cur:
            await cur.executemany(
                "INSERT INTO readings (meter_id, quantity, ts, value, quality, gateway_id)"
                " VALUES (%s, %s, %s, %s, %s, %s)",
                rows,
            )
        consumer_email = f"asha-{tag}@example.in"
        await auth.create_user(
            conn,
            email=consumer_email,
            password=PASSWORD,
            role="CONSUMER",
            actor="test",
            consumer_id=consumer,
        )
        await conn.execute(  # the household allows its usage to be used for ways to pay less
            "INSERT INTO consents (user_id, consumer_id, kind, granted)"
            " SELECT id, consumer_id, 'usage_insights', true FROM users WHERE email = %s",
            (consumer_email,),
        )
        admin_email = f"admin-{tag}@example.in"
        await auth.create_user(
            conn,
            email=admin_email,
            password=PASSWORD,
            role="BOARD_ADMIN",
            actor="test",
            board_code=board,
        )
        await conn.commit()
    return consumer, zone, consumer_email, admin_email


async def _api(
    served: httpx.AsyncClient, email: str, path: str, method: str = "GET", body: dict | None = None
) -> dict:
    token = await served.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
    response = await served.request(method, path, headers=headers, json=body)
    assert response.status_code == 200, response.text
    return response.json()


async def _generate(served: httpx.AsyncClient, email: str, consumer: int) -> dict:
    path = f"/api/v1/consumers/{consumer}/recommendations/generate"
    return await _api(served, email, path, "POST", {})


async def test_the_forecast_and_ways_to_pay_less_read_in_the_browser(
    cloud: Cloud, served: httpx.AsyncClient, board: str, browser
) -> None:
    consumer, zone, consumer_email, admin_email = await _household(cloud, board)
    forecast = await _api(served, consumer_email, f"/api/v1/consumers/{consumer}/forecast")
    advice = await _generate(served, consumer_email, consumer)
    assert advice["items"], advice  # the standing load at least: 0.5 kW every night
    # the means of the last 28 whole days by kind, by hand
    today = datetime.fromisoformat(forecast["as_of"]).astimezone(ZoneInfo(zone)).date()
    window = [today - timedelta(days=n) for n in range(1, 29)]
    working = statistics.mean([hourly(d) * 24 for d in window if d.weekday() < 5])
    weekend = statistics.mean([hourly(d) * 24 for d in window if d.weekday() >= 5])
    assert Decimal(forecast["low"]["total"]) < Decimal(forecast["high"]["total"])
    pages = {
        "consumer": (consumer_email, "/dashboard/home", "Ways to pay less"),
        "staff": (
            admin_email,
            f"/dashboard/consumers/{consumer}",
            "Ways this consumer could pay less",
        ),
    }
    for who, (email, path, heading) in pages.items():
        for viewport in ("desktop", "phone"):
            visit = await _visit(browser, served, viewport)
            await visit.sign_in(email)
            await visit.open(path, f"insights-{who}-{viewport}")
            page = visit.page
            total = await page.locator("#figure-projected").inner_text()
            assert total == money(Decimal(forecast["expected"]["total"])), total
            spread = await page.locator("#forecast-range").inner_text()
            assert money(Decimal(forecast["low"]["total"])) in spread, spread
            assert money(Decimal(forecast["high"]["total"])) in spread, spread
            basis = await page.locator("#forecast-basis").inner_text()
            assert f"times in {zone}" in basis, basis
            assert f"{quantity(working, 'kWh')} on a working day" in basis, basis
            assert f"{quantity(weekend, 'kWh')} on a weekend day" in basis, basis
            expected_units = quantity(Decimal(forecast["expected"]["units"]), "kWh")
            assert f"About {expected_units} by" in basis, basis
            assert heading in await page.locator("h2#save").inner_text()
            items = page.locator("#advice li")
            assert await items.count() == len(advice["items"])
            for index, item in enumerate(advice["items"]):
                text = await items.nth(index).inner_text()
                assert money(Decimal(item["saving"])) in text, text
            standby = page.locator("#advice li.r-cut_standby")
            least = quantity(Decimal(advice["standby_kw"]), "kW", 2)
            assert f"The least drawn at night is {least}" in await standby.inner_text()
            await page.context.close()


async def test_the_consumer_answers_each_way_to_pay_less(
    cloud: Cloud, served: httpx.AsyncClient, board: str, browser
) -> None:
    """New ones turn seen once shown; Done and Not for me answer through the API and stay
    answered; the staff read the answers and have no buttons (the answer is the household's)."""
    consumer, _, consumer_email, admin_email = await _household(cloud, board, TIME_OF_DAY)
    advice = await _generate(served, consumer_email, consumer)
    kinds = [item["kind"] for item in advice["items"]]
    assert {"shift_to_off_peak", "cut_standby"} <= set(kinds), kinds
    assert {item["status"] for item in advice["items"]} == {"new"}
    listing = f"/api/v1/consumers/{consumer}/recommendations"

    async def statuses() -> dict[str, str]:
        body = await _api(served, consumer_email, listing)
        return {item["kind"]: item["status"] for item in body["items"]}

    visit = await _visit(browser, served, "desktop")
    await visit.sign_in(consumer_email)
    await visit.open("/dashboard/home", "insights-answers-desktop-shown")
    page = visit.page
    await page.wait_for_function("!document.querySelector(\"#advice li[data-status='new']\")")
    assert set((await statuses()).values()) == {"seen"}
    shift = page.locator("#advice li.r-shift_to_off_peak")
    standby = page.locator("#advice li.r-cut_standby")
    assert "Seen" in await shift.locator(".status").inner_text()
    shift_text = await shift.inner_text()
    assert "00:00–06:00" in shift_text, shift_text
    assert "18:00–22:00" in shift_text, shift_text
    await shift.locator("button[data-answer=done]").click()
    await page.wait_for_selector("#advice li.r-shift_to_off_peak[data-status=done]")
    await standby.locator("button[data-answer=dismissed]").click()
    await page.wait_for_selector("#advice li.r-cut_standby[data-status=dismissed]")
    assert await shift.locator("button[data-answer=done]").is_hidden()
    assert await standby.locator("button[data-answer=dismissed]").is_hidden()
    assert "Saved" in await page.locator("#advice-message").inner_text()
    await page.screenshot(path=ARTIFACTS / "insights-answers-desktop-answered.png", full_page=True)
    found = await statuses()
    assert (found["shift_to_off_peak"], found["cut_standby"]) == ("done", "dismissed")
    assert not visit.errors, visit.errors
    await page.context.close()

    # on a phone, the answers are still there after a fresh visit, and a mind can change
    visit = await _visit(browser, served, "phone")
    await visit.sign_in(consumer_email)
    await visit.open("/dashboard/home", "insights-answers-phone")
    page = visit.page
    standby = page.locator("#advice li.r-cut_standby")
    assert "Not for me" in await standby.locator(".status").inner_text()
    await standby.locator("button[data-answer=done]").click()
    await page.wait_for_selector("#advice li.r-cut_standby[data-status=done]")
    await page.screenshot(path=ARTIFACTS / "insights-answers-phone-changed.png", full_page=True)
    assert (await statuses())["cut_standby"] == "done"
    assert not visit.errors, visit.errors
    await page.context.close()

    # the staff see the answers, without buttons
    visit = await _visit(browser, served, "desktop")
    await visit.sign_in(admin_email)
    await visit.open(f"/dashboard/consumers/{consumer}", "insights-answers-staff")
    page = visit.page
    assert await page.locator("#advice button[data-answer]").count() == 0
    shift = page.locator("#advice li.r-shift_to_off_peak .status")
    assert "Done" in await shift.inner_text()
    await page.context.close()


async def test_withdrawing_consent_takes_the_ways_to_pay_less_away(
    cloud: Cloud, served: httpx.AsyncClient, board: str, browser
) -> None:
    """The household unticks "Use my usage to suggest ways to save energy" in its profile: its
    home and the staff's page of it say why there are none, and none are worked out."""
    consumer, _, consumer_email, admin_email = await _household(cloud, board)
    assert (await _generate(served, consumer_email, consumer))["items"]
    for viewport in ("desktop", "phone"):
        visit = await _visit(browser, served, viewport)
        await visit.sign_in(consumer_email)
        await visit.open("/dashboard/profile", f"insights-consent-{viewport}")
        page = visit.page
        box = page.locator("#consents input[name=usage_insights]")
        if viewport == "desktop":
            assert await box.is_checked()
            await box.uncheck()
            await page.locator("#consents button[type=submit]").click()
            await page.wait_for_load_state()
            assert not await page.locator("#consents input[name=usage_insights]").is_checked()
        await visit.open("/dashboard/home", f"insights-off-{viewport}")
        assert await page.locator("#advice li").count() == 0
        off = await page.locator("#advice-off").inner_text()
        assert "you have not allowed us to use your usage" in off, off
        await page.locator("#advice-off a").click()
        await page.wait_for_url("**/dashboard/profile#consents")
        assert not visit.errors, visit.errors
        await page.context.close()
    visit = await _visit(browser, served, "desktop")
    await visit.sign_in(admin_email)
    await visit.open(f"/dashboard/consumers/{consumer}", "insights-off-staff")
    off = await visit.page.locator("#advice-off").inner_text()
    assert "the household has not allowed its usage to be used" in off, off
    await visit.page.context.close()
    async with cloud.pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT max(updated_at) AS last FROM recommendations WHERE consumer_id = %s",
            (consumer,),
        )
        before = (await cursor.fetchone())["last"]
    token = await served.post(
        "/api/v1/auth/login", json={"email": admin_email, "password": PASSWORD}
    )
    refused = await served.post(
        f"/api/v1/consumers/{consumer}/recommendations/generate",
        json={},
        headers={"Authorization": f"Bearer {token.json()['access_token']}"},
    )
    assert refused.status_code == 409, refused.text
    async with cloud.pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT max(updated_at) AS last FROM recommendations WHERE consumer_id = %s",
            (consumer,),
        )
        assert (await cursor.fetchone())["last"] == before

"""The dashboard in a real headless Chromium (Debian's `chromium`, driven by Playwright): a board
admin logs in, sees only its board's meters, opens a meter chart, acknowledges an alert and
sees it change live in a second page, downloads a CSV report, and cannot open another board's
meter by URL."""

from __future__ import annotations

import os
import shutil
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from cloud.services import auth, fleet
from cloud.services.alerts import open_alert
from tests.cloud.conftest import Cloud

PASSWORD = "correct horse battery"
# screenshots of the main pages, for people to look at (kept out of git by .gitignore)
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts" / "dashboard"


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if os.environ.get("GRIDGATE_REQUIRE_BROWSER"):
            pytest.fail("chromium is required (apt-get install chromium)")
        # a developer's machine may lack it; CI sets GRIDGATE_REQUIRE_BROWSER, so there it fails
        pytest.skip("no chromium on this machine (apt-get install chromium)")
    return path


async def _board_with_meter(cloud: Cloud, tag: str) -> tuple[str, int]:
    code = f"D{tag}"
    async with cloud.pool.connection() as conn:
        cursor = await conn.execute("SELECT 1 FROM states WHERE code = 'TS'")
        if await cursor.fetchone() is None:
            await fleet.create_state(conn, code="TS", name="Test state", actor="t")
        board = await fleet.create_board(conn, state_code="TS", code=code, name=code, actor="t")
        gateway = (
            await (
                await conn.execute(
                    "INSERT INTO gateways (board_id, gateway_code, public_key) VALUES (%s, %s,"
                    " 'k') RETURNING id",
                    (board["id"], f"gw-{code.lower()}"),
                )
            ).fetchone()
        )["id"]
        meter = (
            await (
                await conn.execute(
                    "INSERT INTO meters (board_id, external_id, gateway_id, model)"
                    " VALUES (%s, %s, %s, 'sdm630') RETURNING id",
                    (board["id"], f"meter-{code.lower()}", gateway),
                )
            ).fetchone()
        )["id"]
        now = datetime.now(UTC)
        await conn.execute("SELECT ensure_readings_partition(%s)", (now.date().replace(day=1),))
        for minutes in range(0, 180, 5):
            ts = now - timedelta(minutes=minutes)
            await conn.execute(
                "INSERT INTO readings VALUES (%s, '1.7.0', %s, %s, 'ok', %s),"
                " (%s, '1.8.0', %s, %s, 'ok', %s)",
                (
                    meter,
                    ts,
                    1.0 + minutes % 7 / 10,
                    gateway,
                    meter,
                    ts,
                    500 - minutes / 60,
                    gateway,
                ),
            )
        await open_alert(
            conn,
            board_id=board["id"],
            subject=f"meter:{meter}",
            kind="voltage_sag",
            severity="medium",
            source="edge",
            at=now,
            message="L2 at 198 V",
            meter_id=meter,
            gateway_id=gateway,
        )
        await conn.commit()
    return code, meter


async def test_a_board_admin_in_a_real_browser(cloud: Cloud, served: httpx.AsyncClient) -> None:
    from playwright.async_api import async_playwright

    executable = chromium()
    tag = uuid.uuid4().hex[:6].upper()
    mine, my_meter = await _board_with_meter(cloud, f"A{tag}")
    _, their_meter = await _board_with_meter(cloud, f"B{tag}")
    email = f"admin-{tag.lower()}@example.in"
    async with cloud.pool.connection() as conn:
        await auth.create_user(
            conn, email=email, password=PASSWORD, role="BOARD_ADMIN", board_code=mine, actor="t"
        )
    base = str(served.base_url).rstrip("/")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=executable, args=["--no-sandbox"]
        )
        try:
            context = await browser.new_context(accept_downloads=True)
            page = await context.new_page()
            await page.goto(f"{base}/dashboard")
            assert "/dashboard/login" in page.url  # no session: the login form
            await page.fill("input[name=email]", email)
            await page.fill("input[name=password]", PASSWORD)
            await page.click("button[type=submit]")
            await page.wait_for_url(f"{base}/dashboard")
            assert "Meters online" in await page.content()
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=ARTIFACTS / "overview.png", full_page=True)

            # only this board's meters
            await page.goto(f"{base}/dashboard/meters")
            table = await page.inner_text("table")
            await page.screenshot(path=ARTIFACTS / "meters.png", full_page=True)
            assert f"meter-da{tag.lower()}" in table
            assert f"meter-db{tag.lower()}" not in table

            # a meter chart: the SVG is drawn and loads
            await page.click(f"text=meter-da{tag.lower()}")
            await page.wait_for_url(f"{base}/dashboard/meters/{my_meter}*")
            chart = page.locator("#meter-chart")
            await chart.wait_for()
            await page.wait_for_function(
                "document.getElementById('meter-chart').complete"
                " && document.getElementById('meter-chart').naturalWidth > 0"
            )
            assert "active_power_import" in await page.inner_text("#last-values")
            await page.screenshot(path=ARTIFACTS / "meter.png", full_page=True)

            # two pages on the alert list; acknowledging in one shows live in the other
            other = await context.new_page()
            await other.goto(f"{base}/dashboard/alerts")
            await other.wait_for_function("document.body.dataset.live === 'yes'")
            await page.goto(f"{base}/dashboard/alerts")
            row = page.locator("tr", has_text="voltage_sag")
            await row.locator("button[data-action=acknowledge]").click()
            await row.locator("td.state", has_text="acknowledged").wait_for()
            await (
                other.locator("tr", has_text="voltage_sag")
                .locator("td.state", has_text="acknowledged")
                .wait_for(timeout=10_000)
            )
            await other.screenshot(path=ARTIFACTS / "alerts.png", full_page=True)

            # a CSV report, generated and downloaded
            await page.goto(f"{base}/dashboard/reports")
            await page.select_option("select[name=kind]", "consumption")
            await page.select_option("select[name=format]", "csv")
            await page.click("#report-form button[type=submit]")
            link = page.locator("#report-download")
            await link.wait_for(timeout=20_000)
            async with page.expect_download() as download_info:
                await link.click()
            download = await download_info.value
            content = (await download.path()).read_text()
            await page.screenshot(path=ARTIFACTS / "reports.png", full_page=True)
            assert content.splitlines()[0] == "board,account_no,meter,period,energy_kwh"

            # another board's meter by URL: not found
            response = await page.goto(f"{base}/dashboard/meters/{their_meter}")
            assert response.status == 404
            assert "Not found" in await page.content()
            chart_response = await page.goto(f"{base}/dashboard/meters/{their_meter}/chart.svg")
            assert chart_response.status == 404
            # on a phone
            phone = await browser.new_page(viewport={"width": 390, "height": 844})
            await phone.context.add_cookies(await context.cookies())
            await phone.goto(f"{base}/dashboard")
            await phone.screenshot(path=ARTIFACTS / "overview-phone.png", full_page=True)
            width = await phone.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, "the overview fits a phone's width"
        finally:
            await browser.close()

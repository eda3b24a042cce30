"""The web app in a real Chromium (Debian's, driven by Playwright), as the people who use it:
every page of a board admin, a state admin, a support agent and a consumer at desktop and phone
sizes — no horizontal scrolling, no console errors, nothing fetched from another origin, a
screenshot of each kept in tests/artifacts/web — billing operated entirely in the browser and
checked in the database, charts that draw exactly what the API answered, and empty ranges that
say so."""

from __future__ import annotations

import contextlib
import itertools
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlparse
from zoneinfo import ZoneInfo

import httpx
import pytest

from cloud.services import aggregates, billing_cycles
from tests.cloud.conftest import Cloud
from tests.cloud.world import PASSWORD, World, add_actor, build_world

pytestmark = [pytest.mark.browser, pytest.mark.slow]
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts" / "web"
VIEWPORTS = {"desktop": (1280, 900), "phone": (390, 844)}


@pytest.fixture
async def world(cloud: Cloud) -> World:
    async with cloud.pool.connection() as conn:
        world = await build_world(conn)
        await conn.execute(
            "INSERT INTO aggregates_dirty (board_id, day) SELECT b.id, d::date FROM boards b,"
            " generate_series(now() - interval '42 days', now(), interval '1 day') d"
            " WHERE b.id = ANY(%s) ON CONFLICT DO NOTHING",
            (list(world.boards.values()),),
        )
        await conn.commit()
        # every dirty day, earlier tests' too (a pass does 400 at most)
        while await aggregates.refresh(conn):
            pass
    return world


class Visit:
    """A signed-in person's tab that records console errors and requests to other origins."""

    def __init__(self, page, base: str) -> None:
        self.page, self.base = page, base
        self.errors: list[str] = []
        self.foreign: list[str] = []
        self.responses: dict[str, list] = {}
        origin = urlparse(base).netloc
        page.on(
            "console",
            lambda m: self.errors.append(f"{m.type}: {m.text}") if m.type == "error" else None,
        )
        page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        page.on(
            "request",
            lambda r: (
                None
                if urlparse(r.url).netloc in (origin, "") or r.url.startswith("data:")
                else self.foreign.append(r.url)
            ),
        )

    async def sign_in(self, email: str) -> None:
        await self.page.goto(f"{self.base}/dashboard/login")
        await self.page.fill("input[name=email]", email)
        await self.page.fill("input[name=password]", PASSWORD)
        await self.page.click("button[type=submit]")
        await self.page.wait_for_load_state("networkidle")
        assert "/login" not in self.page.url, await self.page.content()

    async def open(self, path: str, shot: str) -> None:
        response = await self.page.goto(f"{self.base}{path}")
        assert response.status == 200, (path, response.status)
        await self.page.wait_for_load_state("networkidle")
        width = self.page.viewport_size["width"]
        scroll = await self.page.evaluate("document.documentElement.scrollWidth")
        assert scroll <= width, f"{path} is {scroll} px wide on a {width} px screen"
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        await self.page.screenshot(path=ARTIFACTS / f"{shot}.png", full_page=True)
        assert not self.errors, (path, self.errors)
        assert not self.foreign, (path, self.foreign)


async def _visit(browser, served: httpx.AsyncClient, viewport: str) -> Visit:
    width, height = VIEWPORTS[viewport]
    context = await browser.new_context(viewport={"width": width, "height": height})
    return Visit(await context.new_page(), str(served.base_url).rstrip("/"))


def _pages(world: World, role: str) -> dict[str, str]:
    own = world.site("own")
    staff = {
        "overview": "/dashboard",
        "analytics": "/dashboard/analytics",
        "meters": "/dashboard/meters",
        "meter": f"/dashboard/meters/{own.meter.id}",
        "gateways": "/dashboard/gateways",
        "gateway": f"/dashboard/gateways/{own.gateway.id}",
        "gateway_config": f"/dashboard/gateways/{own.gateway.id}/config",
        "consumers": "/dashboard/consumers",
        "consumer": f"/dashboard/consumers/{own.consumer.id}",
        "billing": "/dashboard/billing",
        "invoice": f"/dashboard/invoices/{own.invoice_pay.id}",
        "alerts": "/dashboard/alerts",
        "reports": "/dashboard/reports",
        "users": "/dashboard/users",
        "audit": "/dashboard/audit",
        "api_keys": "/dashboard/api-keys",
        "support": "/dashboard/support",
        "support_query": f"/dashboard/support/{own.support_query.id}",
        "broadcasts": "/dashboard/broadcasts",
        "boards": "/dashboard/boards",
        "board": f"/dashboard/boards/{world.boards['A']}",
    }
    allowed = {
        "BOARD_ADMIN": set(staff) - {"audit", "boards", "board"},
        "STATE_ADMIN": set(staff),
        "SUPPORT_AGENT": set(staff) - {"users", "audit", "reports", "boards", "board"},
    }
    if role == "CONSUMER":
        return {
            "home": "/dashboard/home",
            "bills": "/dashboard/bills",
            "invoice": f"/dashboard/invoices/{own.invoice_pay.id}",
            "meter": f"/dashboard/meters/{own.meter.id}",
            "alerts": "/dashboard/alerts",
            "api_keys": "/dashboard/api-keys",
            "support": "/dashboard/support",
            "support_query": f"/dashboard/support/{own.support_query.id}",
        }
    return {name: path for name, path in staff.items() if name in allowed[role]}


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
@pytest.mark.parametrize("role", ["BOARD_ADMIN", "STATE_ADMIN", "SUPPORT_AGENT", "CONSUMER"])
async def test_every_page_as_each_person(
    cloud: Cloud, served: httpx.AsyncClient, world: World, browser, role: str, viewport: str
) -> None:
    async with cloud.pool.connection() as conn:
        email = await add_actor(conn, world, role)
    visit = await _visit(browser, served, viewport)
    await visit.sign_in(email)
    for name, path in _pages(world, role).items():
        await visit.open(path, f"{role.lower()}-{viewport}-{name}")
        if name == "meter" and role == "CONSUMER":  # no link to a page they may not open
            assert await visit.page.locator("a[href^='/dashboard/gateways/']").count() == 0
        if name == "users":  # who may not invite is told who may
            note = visit.page.locator("#users-read-only")
            assert await note.count() == (1 if role == "BOARD_ADMIN" else 0), role
    nav = await visit.page.text_content("header")  # the menu is folded on a phone
    if role == "CONSUMER":
        assert "Billing" not in nav
        assert "Meters" not in nav
    else:
        assert "Overview" in nav
    assert "API keys" in nav  # every person with an account may hold keys


async def _db(cloud: Cloud, query: str, *params) -> list[dict]:
    async with cloud.pool.connection() as conn:
        cursor = await conn.execute(query, params)
        return await cursor.fetchall()


async def test_billing_is_operated_in_the_browser(
    cloud: Cloud, served: httpx.AsyncClient, world: World, browser
) -> None:
    """A run, review, bulk issue, a payment, a dispute opened by the consumer and resolved by
    the admin — all by clicking, each checked in the database."""
    board = world.boards["A"]
    async with cloud.pool.connection() as conn:
        admin_email = await add_actor(conn, world, "BOARD_ADMIN")
        consumer_email = await add_actor(conn, world, "CONSUMER")
    admin = await _visit(browser, served, "desktop")
    await admin.sign_in(admin_email)
    await admin.open("/dashboard/billing", "billing-before-run")
    last_month = (datetime.now(UTC).replace(day=1) - timedelta(days=1)).replace(day=1).date()
    await admin.page.select_option("#run-form select[name=month]", last_month.isoformat())
    await admin.page.click("#run-form button[type=submit]")
    message = admin.page.locator("#run-message")
    await message.wait_for(state="visible", timeout=30_000)
    assert "Done:" in await message.inner_text()
    [run] = await _db(
        cloud,
        "SELECT * FROM billing_runs WHERE board_id = %s AND period_start = %s",
        board,
        last_month,
    )
    assert run["status"] == "done"
    assert run["created"] == 2
    assert run["unmeasured"] == 1
    await admin.page.wait_for_load_state("networkidle")
    await admin.open(
        f"/dashboard/billing?board_id={board}&period={last_month:%Y-%m}&status=draft",
        "billing-drafts",
    )
    await admin.page.click("#select-drafts")
    await admin.page.click("#issue-selected")
    await admin.page.locator("#issue-message").wait_for(state="visible")
    issued = await _db(
        cloud,
        "SELECT id, status, amount_due FROM invoices WHERE board_id = %s AND period_start = %s",
        board,
        last_month,
    )
    assert {i["status"] for i in issued} == {"issued"}
    own_bill = next(
        i
        for i in await _db(
            cloud,
            "SELECT id, amount_due FROM invoices WHERE consumer_id = %s AND period_start = %s",
            world.site("own").consumer.id,
            last_month,
        )
    )
    # a payment recorded by the admin
    await admin.open(f"/dashboard/invoices/{own_bill['id']}", "invoice-issued")
    await admin.page.fill("#payment-form input[name=amount]", "10.00")
    await admin.page.fill("#payment-form input[name=reference]", "UPI-42")
    async with admin.page.expect_navigation():  # the page reloads once the API said yes
        await admin.page.click("#payment-form button")
    [payment] = await _db(
        cloud, "SELECT amount, reference FROM payments WHERE invoice_id = %s", own_bill["id"]
    )
    assert (str(payment["amount"]), payment["reference"]) == ("10.00", "UPI-42")
    # the consumer disputes it from their phone
    consumer = await _visit(browser, served, "phone")
    await consumer.sign_in(consumer_email)
    await consumer.open(f"/dashboard/invoices/{own_bill['id']}", "invoice-consumer-phone")
    await consumer.page.fill("#dispute-form textarea", "I was away for two weeks of this month")
    async with consumer.page.expect_navigation():  # the page reloads once the API said yes
        await consumer.page.click("#dispute-form button")
    [bill] = await _db(cloud, "SELECT status FROM invoices WHERE id = %s", own_bill["id"])
    assert bill["status"] == "disputed"
    # the admin rejects the dispute: the bill stands
    await admin.open(f"/dashboard/invoices/{own_bill['id']}", "invoice-disputed")
    await admin.page.select_option("#resolve-form select[name=upheld]", "false")
    await admin.page.fill("#resolve-form textarea", "Readings checked: the meter recorded use")
    async with admin.page.expect_navigation():  # the page reloads once the API said yes
        await admin.page.click("#resolve-form button")
    [dispute] = await _db(
        cloud, "SELECT status, resolution FROM disputes WHERE invoice_id = %s", own_bill["id"]
    )
    assert dispute["status"] == "rejected"
    [bill] = await _db(cloud, "SELECT status FROM invoices WHERE id = %s", own_bill["id"])
    assert bill["status"] in ("issued", "overdue")
    actors = await _db(
        cloud,
        "SELECT DISTINCT action FROM audit_log WHERE entity = 'invoice' AND entity_id = %s",
        str(own_bill["id"]),
    )
    assert {"issue", "pay", "dispute", "resolve"} <= {a["action"] for a in actors}
    assert not admin.errors
    assert not consumer.errors


async def test_charts_draw_what_the_api_answered(
    cloud: Cloud, served: httpx.AsyncClient, world: World, browser
) -> None:
    async with cloud.pool.connection() as conn:
        email = await add_actor(conn, world, "BOARD_ADMIN")
    visit = await _visit(browser, served, "desktop")
    answers: dict[str, dict] = {}

    async def keep(response) -> None:
        if "/api/v1/" in response.url and response.status == 200:
            with contextlib.suppress(ValueError):
                answers[response.url] = json.loads(await response.body())

    visit.page.on("response", keep)
    await visit.sign_in(email)
    meter = world.site("own").meter.id
    await visit.open(f"/dashboard/meters/{meter}", "meter-chart")
    await visit.page.wait_for_function(
        "window.gridgateCharts && window.gridgateCharts['chart-energy']"
    )
    drawn = await visit.page.evaluate("window.gridgateCharts['chart-energy']")
    urls = [u for u in answers if f"/meters/{meter}/readings" in u]
    assert len(urls) == 1, urls
    [url] = urls
    points = answers[url]["points"]
    assert drawn["x"] == [datetime.fromisoformat(p["bucket"]).timestamp() for p in points]
    assert drawn["series"][0]["values"] == [p["energy"] for p in points]
    # the board's load, from the aggregates' API
    await visit.open("/dashboard", "overview-chart")
    await visit.page.wait_for_function(
        "window.gridgateCharts && window.gridgateCharts['load-chart']"
    )
    drawn = await visit.page.evaluate("window.gridgateCharts['load-chart']")
    url = [u for u in answers if "/analytics/load" in u][-1]  # this page's (sign-in showed one)
    assert drawn["series"][0]["values"] == [p["kw"] for p in answers[url]["points"]]
    # a week with no readings says so instead of drawing an empty plot
    quiet = world.site("own").meter_spare.id
    await visit.open(f"/dashboard/meters/{quiet}", "meter-no-readings")
    assert "No readings from this meter" in await visit.page.inner_text("main")


# Each drawn chart's x-axis ticks as uPlot drew them (its splits and their labels) with where each
# label's widest line falls on the canvas, in CSS pixels: labels are centred on their tick.
X_TICKS = """(ids) => ids.filter((id) => window.gridgatePlots[id]).map((id) => {
  const u = window.gridgatePlots[id];
  const axis = u.axes[0];
  const ctx = document.createElement("canvas").getContext("2d");
  ctx.font = Array.isArray(axis.font) ? axis.font[0] : axis.font;
  const ticks = (axis._splits || []).map((split, i) => {
    const text = String(axis._values[i] ?? "");
    const lines = text.split("\\n");
    const px = Math.max(...lines.map((l) => ctx.measureText(l).width)) / uPlot.pxRatio;
    const at = u.valToPos(split, "x");
    return { text, left: at - px / 2, right: at + px / 2 };
  }).filter((tick) => tick.text);
  return { id, ticks };
})"""

# every chart on the page redrawn since `window.chartsBefore` was taken (or found no data)
REDRAWN = """(ids) => ids.every((id) => !window.gridgatePlots[id]
  || !window.chartsBefore.includes(window.gridgatePlots[id]))
  && ids.some((id) => window.gridgatePlots[id])"""


async def _x_labels_apart(page, ids: list[str], where: str) -> list[dict]:
    """The charts' x-axis labels, each asserted clear of the next (none run together)."""
    charts = await page.evaluate(X_TICKS, ids)
    assert charts, f"{where}: no chart drawn"
    for chart in charts:
        ticks = chart["ticks"]
        assert len(ticks) >= 2, (where, chart)
        for before, after in itertools.pairwise(ticks):
            assert before["right"] + 4 <= after["left"], (where, chart["id"], before, after)
        year = str(datetime.now(UTC).year)
        assert all(year not in t["text"] for t in ticks), (where, chart)  # this year goes unsaid
    return charts


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
async def test_chart_dates_never_run_together(
    cloud: Cloud, served: httpx.AsyncClient, world: World, browser, viewport: str
) -> None:
    """The trial read "28 Nov 202629 Nov" under a meter's voltage chart and the board's load on
    a phone: at every range and both sizes each tick label stands clear of the next, the date
    is written where the day changes (and on the first tick), and this year is never written."""
    async with cloud.pool.connection() as conn:
        email = await add_actor(conn, world, "BOARD_ADMIN")
    visit = await _visit(browser, served, viewport)
    await visit.sign_in(email)
    page = visit.page
    meter = world.site("own").meter.id
    await visit.open(f"/dashboard/meters/{meter}", f"chart-dates-meter-{viewport}")
    ids = await page.evaluate("[...document.querySelectorAll('.chart-box')].map((b) => b.id)")
    await page.wait_for_function("(ids) => ids.some((id) => window.gridgatePlots[id])", arg=ids)
    for choice in ("6h", "1d", "7d", "30d"):
        await page.evaluate("window.chartsBefore = Object.values(window.gridgatePlots)")
        await page.click(f"button[data-meter-range='{choice}']")
        await page.wait_for_function(REDRAWN, arg=ids)
        charts = await _x_labels_apart(page, ids, f"meter {choice} {viewport}")
        if choice in ("6h", "1d"):  # times of day: the first says which day it is
            assert all("\n" in c["ticks"][0]["text"] for c in charts), charts
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(
            path=ARTIFACTS / f"chart-dates-meter-{choice}-{viewport}.png", full_page=True
        )
    await visit.open("/dashboard", f"chart-dates-overview-{viewport}")
    await page.wait_for_function("window.gridgatePlots['load-chart']")
    for days in ("1", "7", "30"):
        await page.evaluate("window.chartsBefore = Object.values(window.gridgatePlots)")
        await page.click(f"button[data-chart='load-chart'][data-range='{days}']")
        await page.wait_for_function(REDRAWN, arg=["load-chart"])
        await _x_labels_apart(page, ["load-chart", "alert-chart"], f"load {days} {viewport}")
        await page.locator("#load-chart").screenshot(
            path=ARTIFACTS / f"chart-dates-load-{days}-{viewport}.png"
        )
    # at any width between: the chart follows its box, its ticks thinning out as it narrows
    await page.click("button[data-chart='load-chart'][data-range='1']")
    await page.wait_for_load_state("networkidle")
    for width in (320, 430, 560, 700, 900, 1100):
        drawn = await page.evaluate("window.gridgatePlots['load-chart'].width")
        await page.set_viewport_size({"width": width, "height": VIEWPORTS[viewport][1]})
        await page.wait_for_function(
            "(w) => window.gridgatePlots['load-chart'].width !== w", arg=drawn
        )
        await page.evaluate("new Promise((done) => requestAnimationFrame(() => done()))")
        await _x_labels_apart(page, ["load-chart"], f"load 1 at {width} px")
    assert not visit.errors, visit.errors


async def test_analytics_takes_the_last_day_as_people_say_it_and_refuses_a_backward_period(
    cloud: Cloud, served: httpx.AsyncClient, world: World, browser
) -> None:
    async with cloud.pool.connection() as conn:
        email = await add_actor(conn, world, "BOARD_ADMIN")
    visit = await _visit(browser, served, "desktop")
    await visit.sign_in(email)
    await visit.open("/dashboard/analytics?from=2026-10-01&to=2026-10-31", "analytics-october")
    page = visit.page
    assert "1 Oct 2026 to 31 Oct 2026" in await page.inner_text("main")
    assert await page.input_value("input[name=to]") == "2026-10-31"  # as typed: included
    for link in await page.locator(".table-foot a[download]").all():  # the table's CSV
        assert "to=2026-10-31" in (await link.get_attribute("href") or "")
    await visit.open("/dashboard/analytics?from=2026-10-31&to=2026-10-01", "analytics-backwards")
    error = await page.inner_text("#analytics-error")
    assert "ends on 1 Oct 2026, before it starts on 31 Oct 2026" in error, error
    assert await page.locator("#daily-load-chart, #profile-chart").count() == 0
    assert not visit.errors, visit.errors  # no chart asked the API for an impossible period


async def test_alerts_change_live_and_reports_download(
    cloud: Cloud, served: httpx.AsyncClient, world: World, browser
) -> None:
    """Acknowledging an alert in one tab shows in another at once; a CSV report is made and
    downloaded; another board's meter is not found."""
    async with cloud.pool.connection() as conn:
        email = await add_actor(conn, world, "BOARD_ADMIN")
    first = await _visit(browser, served, "desktop")
    await first.sign_in(email)
    second = Visit(await first.page.context.new_page(), first.base)
    await second.open("/dashboard/alerts", "alerts-second-tab")
    await second.page.wait_for_function("document.body.dataset.live === 'yes'")
    await first.open("/dashboard/alerts", "alerts")
    alert = world.site("own").alert_ack.id
    row = first.page.locator(f"#alert-{alert}")
    await row.locator("button[data-action=acknowledge]").click()
    await row.locator("td.state", has_text="Acknowledged").wait_for()
    await (
        second.page.locator(f"#alert-{alert}")
        .locator("td.state", has_text="Acknowledged")
        .wait_for(timeout=15_000)
    )
    assert "Meter" in await first.page.inner_text(f"#alert-{alert}")  # said in words
    # resolving asks, in the row, what was done; the row then says it
    resolved = first.page.locator(f"#alert-{world.site('own').alert_resolve.id}")
    await resolved.locator("button[data-action=resolve]").click()
    await resolved.locator("form.resolve-note input").fill("Loose neutral tightened on site")
    await resolved.locator("form.resolve-note button[type=submit]").click()
    await resolved.locator("td.state", has_text="Resolved").wait_for()
    assert "Loose neutral tightened on site" in await resolved.inner_text()
    async with cloud.pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT state, resolve_note FROM alerts WHERE id = %s",
            (world.site("own").alert_resolve.id,),
        )
        assert await cursor.fetchone() == {
            "state": "resolved",
            "resolve_note": "Loose neutral tightened on site",
        }
    await first.open("/dashboard/reports", "reports")
    await first.page.select_option("#report-form select[name=kind]", "consumption")
    await first.page.select_option("#report-form select[name=format]", "csv")
    await first.page.click("#report-form button[type=submit]")
    link = first.page.locator("#report-download")
    await link.wait_for(timeout=30_000)
    async with first.page.expect_download() as download_info:
        await link.click()
    content = (await (await download_info.value).path()).read_text()
    assert content.splitlines()[0] == "board,account_no,meter,period,energy_kwh"
    # the list below shows the new report without a reload
    await first.page.locator("#reports-table tbody tr", has_text="Consumption (CSV)").wait_for()
    elsewhere = world.site("other_board").meter.id
    response = await first.page.goto(f"{first.base}/dashboard/meters/{elsewhere}")
    assert response.status == 404
    assert "Not found" in await first.page.content()


async def test_api_keys_are_made_shown_once_and_revoked_in_the_browser(
    cloud: Cloud, served: httpx.AsyncClient, world: World, browser
) -> None:
    async with cloud.pool.connection() as conn:
        email = await add_actor(conn, world, "BOARD_ADMIN")
    visit = await _visit(browser, served, "desktop")
    await visit.sign_in(email)
    await visit.open("/dashboard/api-keys", "api-keys-empty")
    page = visit.page
    await page.fill("#key-form input[name=name]", "meter export")
    await page.check("#key-form input[value='meter:read']")
    await page.check("#key-form input[value='reading:read']")
    await page.click("#key-form button[type=submit]")
    await page.locator("#key-new").wait_for(state="visible", timeout=30_000)
    secret = (await page.text_content("#key-secret")).strip()
    assert secret.startswith("ggk_")
    await page.locator("#keys-table td", has_text="meter export").wait_for(timeout=30_000)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=ARTIFACTS / "api-keys-new-secret.png", full_page=True)
    [key] = await _db(cloud, "SELECT * FROM api_keys WHERE name = 'meter export'")
    assert sorted(key["permissions"]) == ["meter:read", "reading:read"]

    used = await served.get("/api/v1/meters", headers={"Authorization": f"Bearer {secret}"})
    assert used.status_code == 200, used.text
    for viewport in ("desktop", "phone"):
        again = visit if viewport == "desktop" else await _visit(browser, served, viewport)
        if viewport == "phone":
            await again.sign_in(email)
        await again.open("/dashboard/api-keys", f"api-keys-{viewport}")
        content = await again.page.content()
        assert secret.split("_", 2)[2] not in content  # shown once, never again
        row = await again.page.text_content("#keys-table tbody tr")
        assert "Read readings and energy" in row
        assert "never" not in row  # last used: a time

    page.on("dialog", lambda dialog: dialog.accept())
    await page.click(f"#keys-table button[data-revoke='{key['id']}']")
    await page.locator("#keys-table td.empty").wait_for(timeout=30_000)
    [revoked] = await _db(cloud, "SELECT revoked_at FROM api_keys WHERE id = %s", key["id"])
    assert revoked["revoked_at"] is not None
    refused = await served.get("/api/v1/meters", headers={"Authorization": f"Bearer {secret}"})
    assert refused.status_code == 401
    assert not visit.errors, visit.errors


async def test_back_after_signing_out_shows_the_sign_in_page_not_the_data(
    cloud: Cloud, served: httpx.AsyncClient, world: World, browser
) -> None:
    """A shared computer: someone signs out and walks away; the next person presses Back. The
    browser kept no copy of the page (no-store), so it asks again and is sent to sign in."""
    async with cloud.pool.connection() as conn:
        email = await add_actor(conn, world, "BOARD_ADMIN")
    visit = await _visit(browser, served, "desktop")
    await visit.sign_in(email)
    await visit.open(f"/dashboard/consumers/{world.site('own').consumer.id}", "consumer-signed-in")
    page = visit.page
    assert "Consumer own" in await page.content()
    await page.click("a[href='/dashboard/logout']")
    await page.wait_for_url("**/dashboard/login**")
    await page.go_back()
    await page.wait_for_load_state("networkidle")
    assert "/dashboard/login" in page.url, page.url
    assert "Consumer own" not in await page.content()
    assert await page.locator("input[name=password]").count() == 1


# a checkbox's box and the first line of the words in its label, on the page
BOX_AND_WORDS = """(selector) => {
  const input = document.querySelector(selector);
  const text = [...input.closest("label").childNodes]
    .find((n) => n.nodeType === Node.TEXT_NODE && n.textContent.trim());
  const range = document.createRange();
  range.selectNodeContents(text);
  const box = input.getBoundingClientRect();
  const words = range.getClientRects()[0];
  return [box, words].map((r) => ({ left: r.left, right: r.right, top: r.top, bottom: r.bottom }));
}"""


async def test_the_billing_cycle_is_set_and_its_runs_shown_in_the_browser(
    cloud: Cloud, served: httpx.AsyncClient, world: World, browser
) -> None:
    """The admin sets the board's cycle from the billing page; a scheduled run's outcome (billed,
    unmeasured and why, issued) shows there."""
    board = world.boards["A"]
    async with cloud.pool.connection() as conn:
        admin_email = await add_actor(conn, world, "BOARD_ADMIN")
    admin = await _visit(browser, served, "desktop")
    await admin.sign_in(admin_email)
    await admin.open(f"/dashboard/billing?board_id={board}", "billing-cycle-unset")
    # no cycle yet: the form's ticks say what saving it does, and the sentence says so too
    none = await admin.page.inner_text("#cycle-none")
    assert "no billing cycle" in none, none
    assert "runs by itself" in none, none
    assert await admin.page.is_checked("#cycle-form input[name=enabled]")
    assert not await admin.page.is_checked("#cycle-form input[name=auto_issue]")
    phone = await _visit(browser, served, "phone")
    await phone.sign_in(admin_email)
    await phone.open(f"/dashboard/billing?board_id={board}", "billing-cycle-unset-phone")
    for page in (admin.page, phone.page):  # each box beside its words, level with them
        for name in ("auto_issue", "enabled"):
            box, words = await page.evaluate(BOX_AND_WORDS, f"#cycle-form input[name={name}]")
            assert box["right"] <= words["left"], (name, box, words)
            middle = (box["top"] + box["bottom"]) / 2
            assert words["top"] <= middle <= words["bottom"], (name, box, words)
    await admin.page.fill("#cycle-form input[name=cycle_day]", "1")
    await admin.page.select_option("#cycle-form select[name=cycle]", "monthly")
    await admin.page.check("#cycle-form input[name=auto_issue]")
    await admin.page.click("#cycle-form button[type=submit]")
    await admin.page.locator("#cycle-message").wait_for(state="visible")
    [cycle] = await _db(cloud, "SELECT * FROM billing_cycles WHERE board_id = %s", board)
    assert (cycle["cycle_day"], cycle["cycle"], cycle["auto_issue"]) == (1, "monthly", True)
    # as if set before last month began (the clock set by data): the scheduler bills it
    last_month = (datetime.now(UTC).replace(day=1) - timedelta(days=1)).replace(day=1).date()
    async with cloud.pool.connection() as conn:
        await conn.execute(
            "UPDATE billing_cycles SET effective_from = %s WHERE board_id = %s", (last_month, board)
        )
        await conn.commit()
    assert await billing_cycles.run_due(cloud.pool, lease_s=30, base_url="http://x") >= 1
    await admin.page.wait_for_load_state("networkidle")
    await admin.open(f"/dashboard/billing?board_id={board}", "billing-cycle-run")
    row = await admin.page.locator("#cycle-runs-table tbody tr").first.inner_text()
    assert "Done" in row
    last_day = datetime.now(UTC).replace(day=1).date() - timedelta(days=1)
    assert f"1 {last_month:%b %Y} to {last_day.day} {last_day:%b %Y}" in row
    why = await admin.page.locator("#cycle-runs-table details").first.text_content()
    assert "no meter was installed" in why
    issued = await _db(
        cloud,
        "SELECT status FROM invoices WHERE board_id = %s AND period_start = %s",
        board,
        last_month,
    )
    assert issued
    assert {i["status"] for i in issued} == {"issued"}


SLABS_AND_OVERRIDE = {
    "energy": {
        "mode": "telescopic",
        "slabs": [
            {"up_to": "100", "rate": "3.00"},
            {"up_to": "300", "rate": "4.50"},
            {"rate": "6"},
        ],
    },
}


async def test_a_consumer_reads_their_tariff_explained_in_the_browser(
    cloud: Cloud, served: httpx.AsyncClient, world: World, browser
) -> None:
    """The portal explains the consumer's tariff: each slab with its rate, where this month's use
    stands and what the next slab costs, the tariff's versions, and the override in force; the
    API's GET /tariffs answers the consumer their own category's tariff."""
    own = world.site("own")
    board = world.boards["A"]
    async with cloud.pool.connection() as conn:
        await conn.execute(
            "UPDATE consumers SET category = 'commercial' WHERE id = %s", (own.consumer.id,)
        )
        cursor = await conn.execute(
            "INSERT INTO tariffs (board_id, category, name) VALUES (%s, 'commercial',"
            " 'Commercial LT-VII') RETURNING id",
            (board,),
        )
        tariff_id = (await cursor.fetchone())["id"]
        for start, end, spec in (
            ("2024-04-01", "2025-04-01", {"energy": {"mode": "flat", "rate": "4"}}),
            ("2025-04-01", None, SLABS_AND_OVERRIDE),
        ):
            await conn.execute(
                "INSERT INTO tariff_versions (tariff_id, effective_from, effective_to, spec)"
                " VALUES (%s, %s, %s, %s)",
                (tariff_id, start, end, json.dumps(spec)),
            )
        await conn.execute(
            "INSERT INTO tariff_overrides (board_id, category, kind, value, starts_at, ends_at,"
            " reason, created_by) VALUES (%s, 'commercial', 'multiplier', 1.1, %s, %s,"
            " 'heat wave relief', 'test')",
            (board, datetime.now(UTC) - timedelta(days=2), datetime.now(UTC) + timedelta(days=5)),
        )
        coming = datetime.now(UTC) + timedelta(days=12)  # set for later: told ahead
        await conn.execute(
            "INSERT INTO tariff_overrides (board_id, category, kind, value, starts_at, ends_at,"
            " reason, created_by) VALUES (%s, 'commercial', 'energy_rate', 4.5, %s, %s,"
            " 'festival relief', 'test')",
            (board, coming, coming + timedelta(days=3)),
        )
        email = await add_actor(conn, world, "CONSUMER")
        await conn.commit()
    for viewport in ("phone", "desktop"):
        visit = await _visit(browser, served, viewport)
        await visit.sign_in(email)
        await visit.open("/dashboard/home", f"consumer-tariff-{viewport}")
        # where the tariff says they stand is what the page says they used (one measure)
        used = await visit.page.locator("#figure-so-far").inner_text()
        units = Decimal(used.removesuffix("kWh").strip().replace(",", ""))
        slab = await visit.page.locator("#tariff tr.current").inner_text()
        assert f"{units.normalize():f} so far" in slab or f"{units} so far" in slab, (used, slab)
        if units < 100:
            assert "0 to 100 kWh" in slab, slab
        elif units < 300:
            assert "100 to 300 kWh" in slab, slab
            next_slab = await visit.page.locator("#next-slab").inner_text()
            assert f"{300 - units} kWh more" in next_slab, next_slab
            assert "₹6.00" in next_slab, next_slab
        else:
            assert "Above 300 kWh" in slab, slab
            last = await visit.page.locator("#next-slab").inner_text()
            assert last.startswith("You are in the last slab"), last
        override = await visit.page.locator("#tariff-override").inner_text()
        assert "multiplied by 1.10 (heat wave relief)" in override, override
        coming_text = await visit.page.locator("#tariff-override-coming").inner_text()
        assert coming_text.startswith("Coming: from "), coming_text
        assert "every unit will cost ₹4.50 per kWh" in coming_text, coming_text
        assert "(festival relief)" in coming_text, coming_text
        history = await visit.page.locator("#tariff-history").inner_text()
        assert "1 Apr 2024 to 31 Mar 2025" in history, history
        assert "in force now" in history, history
        # the daily-use chart puts each day's bar over its own date's tick: the axis names
        # dates (in UTC), so a day is drawn at its midnight there, not half a day later
        await visit.page.wait_for_function(
            "window.gridgateCharts && window.gridgateCharts['usage-chart']"
        )
        days = await visit.page.evaluate("window.gridgateCharts['usage-chart'].x")
        first = datetime.now(ZoneInfo("Asia/Kolkata")).date().replace(day=1)
        assert days[0] == datetime(first.year, first.month, 1, tzinfo=UTC).timestamp(), days
        assert all(day % 86400 == 0 for day in days), days
    token = await served.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    listed = await served.get(
        "/api/v1/tariffs",
        headers={"Authorization": f"Bearer {token.json()['access_token']}"},
    )
    assert [t["id"] for t in listed.json()["items"]] == [tariff_id]


async def test_a_gateway_command_form_asks_only_what_the_command_needs(
    cloud: Cloud, served: httpx.AsyncClient, world: World, browser
) -> None:
    """Each command shows its own fields (a meter to read, dates to fill, the drift a clock may
    have, how many log lines), at both sizes; what is hidden is not sent."""
    async with cloud.pool.connection() as conn:
        email = await add_actor(conn, world, "BOARD_ADMIN")
    gateway = world.site("own").gateway.id
    fields = ("meter_id", "start", "end", "max_drift_s", "lines", "reason")
    needs = {
        "read_now": {"meter_id", "reason"},
        "backfill": {"meter_id", "start", "end", "reason"},
        "set_clock": {"meter_id", "max_drift_s", "reason"},
        "doctor": {"reason"},
        "upload_log": {"lines", "reason"},
        "restart": {"reason"},
    }
    for viewport in VIEWPORTS:
        visit = await _visit(browser, served, viewport)
        await visit.sign_in(email)
        await visit.open(f"/dashboard/gateways/{gateway}", f"gateway-command-{viewport}")
        form = visit.page.locator("form[action$='/commands']")
        for kind, wanted in needs.items():
            await form.locator("select[name=kind]").select_option(kind)
            shown = {f for f in fields if await form.locator(f"[name={f}]").is_visible()}
            assert shown == wanted, (kind, shown)
        await visit.page.context.close()
    visit = await _visit(browser, served, "desktop")
    await visit.sign_in(email)
    await visit.page.goto(f"{visit.base}/dashboard/gateways/{gateway}")
    form = visit.page.locator("form[action$='/commands']")
    await form.locator("select[name=kind]").select_option("set_clock")
    await form.locator("select[name=meter_id]").select_option(index=1)  # chosen, then not wanted
    await form.locator("select[name=kind]").select_option("upload_log")
    await form.locator("input[name=lines]").fill("50")
    await form.locator("input[name=reason]").fill("meters dropping at night")
    await form.locator("button[type=submit]").click()
    await visit.page.wait_for_url(f"**/dashboard/gateways/{gateway}#commands")
    [sent] = await _db(
        cloud,
        "SELECT kind, meter_id, args, reason FROM gateway_commands WHERE gateway_id = %s"
        " ORDER BY id DESC LIMIT 1",
        gateway,
    )
    assert (sent["kind"], sent["meter_id"], sent["reason"]) == (
        "upload_log",
        None,
        "meters dropping at night",
    )
    assert sent["args"] == {"lines": 50}, sent["args"]

    # a fill's range is typed in the board's time (IST): a backward one is refused in IST, and
    # one the right way round goes to the gateway in UTC
    ist = ZoneInfo("Asia/Kolkata")
    day = (datetime.now(ist) - timedelta(days=1)).date()

    async def fill(start: str, end: str) -> None:
        await visit.page.goto(f"{visit.base}/dashboard/gateways/{gateway}")
        await form.locator("select[name=kind]").select_option("backfill")
        await form.locator("select[name=meter_id]").select_option(index=1)
        await form.locator("input[name=start]").fill(f"{day}T{start}")
        await form.locator("input[name=end]").fill(f"{day}T{end}")
        await form.locator("button[type=submit]").click()
        await visit.page.wait_for_load_state("networkidle")

    await fill("10:00", "08:00")
    refused = await visit.page.inner_text("main .notice.bad")
    assert refused == (
        f"The range starts ({day} 10:00 IST) at or after its end ({day} 08:00 IST)"
    ), refused
    await fill("08:00", "10:00")
    [sent] = await _db(
        cloud,
        "SELECT kind, args FROM gateway_commands WHERE gateway_id = %s ORDER BY id DESC LIMIT 1",
        gateway,
    )
    assert sent["kind"] == "backfill"
    start = datetime.combine(day, datetime.min.time().replace(hour=8), ist).astimezone(UTC)
    assert datetime.fromisoformat(sent["args"]["start"]) == start, sent["args"]
    assert datetime.fromisoformat(sent["args"]["end"]) == start + timedelta(hours=2)

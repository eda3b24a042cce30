"""Report formats and schedules in a real Chromium, as a board admin uses them: from the reports
page to the formats page (empty, saying so), a format made by ticking, ordering and heading
columns, grouped and sorted; a clash of names told in words; the format changed; a weekly
schedule whose next run shows in the board's local time with its zone; a report asked for with
the format, its file checked; on a phone the same page, the schedule opened for editing and
deleted. Screenshots go to tests/artifacts/web (report-formats-*.png)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import uvicorn

from cloud.app import create_app
from cloud.services import auth, fleet
from cloud.settings import CloudSettings
from tests.cloud.test_web_app import ARTIFACTS, VIEWPORTS, Visit
from tests.cloud.world import PASSWORD
from tests.support.services import free_tcp_port

pytestmark = [pytest.mark.browser, pytest.mark.slow]
REFUSED = "error: Failed to load resource: the server responded with a status of 409 (Conflict)"


@pytest.fixture
async def site(database_url: str, tmp_path: Path) -> AsyncIterator[tuple]:
    port = free_tcp_port()
    settings = CloudSettings(
        database_url=database_url,
        data_dir=tmp_path / "cloud",
        pool_min_size=1,
        pool_max_size=6,
        jobs_interval_s=0,
        session_check_s=0,
    )
    app = create_app(settings, database_url)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None))
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn offers no event to await
        await asyncio.sleep(0.05)
    yield f"http://127.0.0.1:{port}", app.state.pool
    server.should_exit = True
    await task


async def a_board(pool) -> tuple[int, str]:
    """A board in India with its admin (Asha Menon) and a field technician; (id, admin)."""
    code = f"KL-{uuid.uuid4().hex[:6].upper()}"
    admin = f"asha-{uuid.uuid4().hex[:6]}@example.in"
    async with pool.connection() as conn:
        cursor = await conn.execute("SELECT 1 FROM states WHERE code = 'TS'")
        if await cursor.fetchone() is None:
            await fleet.create_state(conn, code="TS", name="Test state", actor="test")
        board = await fleet.create_board(
            conn, state_code="TS", code=code, name="Kochi North", actor="test"
        )
        for email, role, name in (
            (admin, "BOARD_ADMIN", "Asha Menon"),
            (f"ravi-{uuid.uuid4().hex[:6]}@example.in", "TECHNICIAN", "Ravi Kumar"),
            # no name given, and a long address: said once, and it wraps on a phone
            (f"billing-and-revenue-assurance-{code.lower()}@example.in", "BOARD_ADMIN", None),
        ):
            await auth.create_user(
                conn, email=email, password=PASSWORD, role=role, board_code=code, actor="t"
            )
            await conn.execute("UPDATE users SET name = %s WHERE email = %s", (name, email))
    return board["id"], admin


async def person(browser, base: str, viewport: str, email: str) -> Visit:
    width, height = VIEWPORTS[viewport]
    context = await browser.new_context(viewport={"width": width, "height": height})
    visit = Visit(await context.new_page(), base)
    await visit.sign_in(email)
    visit.page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    return visit


async def check(visit: Visit, shot: str) -> None:
    """No sideways scrolling, no console errors, nothing from elsewhere; a screenshot kept."""
    width = visit.page.viewport_size["width"]
    scroll = await visit.page.evaluate("document.documentElement.scrollWidth")
    assert scroll <= width, f"{visit.page.url} is {scroll} px wide on a {width} px screen"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await visit.page.screenshot(path=ARTIFACTS / f"report-formats-{shot}.png", full_page=True)
    assert not visit.errors, visit.errors
    assert not visit.foreign, visit.foreign


def next_friday_evening(now: datetime) -> str:
    """18:30 next Friday in Kochi, as the page writes it (India has no summer time)."""
    local = now.astimezone(ZoneInfo("Asia/Kolkata"))
    ahead = (4 - local.weekday()) % 7
    when = (local + timedelta(days=ahead)).replace(hour=18, minute=30, second=0, microsecond=0)
    if when <= local:
        when += timedelta(days=7)
    return f"{when.day} {when:%b %Y}, 18:30 IST"


async def test_a_board_admin_makes_a_format_and_a_schedule(browser, site) -> None:
    base, pool = site
    board, admin_email = await a_board(pool)
    admin = await person(browser, base, "desktop", admin_email)
    page = admin.page
    await page.goto(f"{base}/dashboard/reports")
    await page.click("#setup-link")
    await page.wait_for_load_state("networkidle")
    assert "No formats yet" in await page.inner_text("#formats-table")
    recipients = await page.inner_text("#schedule-form")
    assert recipients.count("billing-and-revenue-assurance-") == 1, recipients
    assert "No schedules yet" in await page.inner_text("#schedules-table")
    await check(admin, "desktop-empty")

    # a format: category first (headed as the board says it), account, energy; by week
    form = "#format-form"
    await page.fill(f"{form} input[name=name]", "Weekly energy by category")
    for key in ("board", "meter", "period"):
        await page.uncheck(f"#column-list li[data-key={key}] input[type=checkbox]")
    await page.check("#column-list li[data-key=category] input[type=checkbox]")
    for _ in range(2):  # ticked, it joined the chosen columns at their end: up twice is first
        await page.click("#column-list li[data-key=category] button.move >> nth=0")
    await page.fill("#column-list li[data-key=category] input[type=text]", "Tariff category")
    await page.select_option(f"{form} select[name=group_by]", "week")
    await page.select_option(f"{form} select[name=sort_by]", "energy_kwh")
    await page.check(f"{form} input[name=sort_desc]")
    await check(admin, "desktop-filling")
    await page.click(f"{form} button[type=submit]")
    await page.wait_for_selector("#formats-table tr[data-format]")
    row = await page.inner_text("#formats-table tbody tr")
    assert "Tariff category · Account · Energy (kWh)" in row
    assert "Week (from Monday)" in row
    assert "sorted by Energy (kWh), largest first" in row
    async with pool.connection() as conn:
        cursor = await conn.execute("SELECT * FROM report_formats WHERE board_id = %s", (board,))
        [made] = await cursor.fetchall()
    assert made["columns"] == [
        {"column": "category", "label": "Tariff category"},
        {"column": "account_no"},
        {"column": "energy_kwh"},
    ]
    assert (made["group_by"], made["sort_by"], made["sort_desc"]) == ("week", "energy_kwh", True)

    # the same name again: told why, in words
    await page.fill(f"{form} input[name=name]", "Weekly energy by category")
    await page.click(f"{form} button[type=submit]")
    message = page.locator("#format-message")
    await message.wait_for(state="visible")
    assert "named 'Weekly energy by category' already" in await message.inner_text()
    assert admin.errors == [REFUSED]
    admin.errors.clear()
    await check(admin, "desktop-clash")

    # changed to a PDF
    await page.click(f".edit-format[data-id='{made['id']}']")
    assert await page.inner_text("#format-form-title") == "Editing “Weekly energy by category”"
    assert await page.input_value("#column-list li[data-key=category] input[type=text]") == (
        "Tariff category"
    )
    await page.select_option(f"{form} select[name=file_type]", "pdf")
    await page.click(f"{form} button[type=submit]")
    await page.locator("#formats-table tbody tr", has_text="PDF").wait_for()

    # a weekly schedule to Ravi and to finance, Fridays at 18:30 Kochi time
    schedule = "#schedule-form"
    await page.fill(f"{schedule} input[name=name]", "Friday energy for finance")
    await page.check(f"{schedule} input[name=cadence][value=weekly]")
    await page.select_option(f"{schedule} select[name=weekday]", "4")
    await page.fill(f"{schedule} input[name=at_time]", "18:30")
    await page.get_by_label("Ravi Kumar").check()
    await page.fill(f"{schedule} textarea[name=emails]", "finance@example.org")
    await page.click(f"{schedule} button[type=submit]")
    await page.wait_for_selector("#schedules-table tr[data-schedule]")
    row = await page.inner_text("#schedules-table tbody tr")
    assert "Weekly energy by category" in row
    assert "Every Friday at 18:30 (Asia/Kolkata)" in row
    assert next_friday_evening(datetime.now(UTC)) in row
    assert "Ravi Kumar, finance@example.org" in row
    assert "Not run yet" in row
    await check(admin, "desktop-filled")

    # a report asked for with the format follows it
    await page.goto(f"{base}/dashboard/reports")
    await page.select_option("#report-form select[name=format_id]", str(made["id"]))
    assert await page.is_hidden("#report-form select[name=kind]")
    await page.fill("#report-form input[name=period_start]", "2026-10-01")
    await page.fill("#report-form input[name=period_end]", "2026-10-31")  # the last day
    await page.click("#report-form button[type=submit]")
    link = page.locator("#report-download")
    await link.wait_for()
    assert await link.inner_text() == "Download the report (PDF)"
    await check(admin, "desktop-report")
    async with pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT kind, format, format_id, period_start, period_end FROM reports"
            " WHERE board_id = %s",
            (board,),
        )
        assert await cursor.fetchall() == [  # October whole: its last day included
            {
                "kind": "consumption",
                "format": "pdf",
                "format_id": made["id"],
                "period_start": date(2026, 10, 1),
                "period_end": date(2026, 11, 1),
            }
        ]

    # on a phone: the same page, the schedule opened for editing, then deleted
    phone = await person(browser, base, "phone", admin_email)
    page = phone.page
    await page.goto(f"{base}/dashboard/report-formats")
    await page.wait_for_load_state("networkidle")
    await check(phone, "phone")
    await page.click(".edit-schedule")
    assert await page.input_value(f"{schedule} input[name=at_time]") == "18:30"
    assert await page.input_value(f"{schedule} textarea[name=emails]") == "finance@example.org"
    assert await page.get_by_label("Ravi Kumar").is_checked()
    await check(phone, "phone-editing")
    await page.click(".delete-schedule")
    await page.locator("#schedules-table", has_text="No schedules yet").wait_for()
    async with pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT count(*) AS n FROM report_schedules WHERE board_id = %s", (board,)
        )
        assert (await cursor.fetchone())["n"] == 0

"""The tariffs page in a real Chromium, as a board admin at desktop and phone sizes: each of the
board's tariffs explained (one rate; Kerala-style schedules chosen by the month's use with
telescopic slabs; time-of-day periods with their local hours), the overrides with their state;
an override whose window overlaps another, or whose value is not a number, is refused with the
reason and what was typed kept, nothing stored; a valid one is stored and audited; a scheduled
one is taken off. An auditor reads the page without the forms; a consumer and a technician are
not allowed. Checked in the database; screenshots go to tests/artifacts/web (tariffs-*)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import httpx
import pytest

from cloud.billing.tariff import TariffSpec
from tests.cloud.conftest import Cloud
from tests.cloud.test_web_app import VIEWPORTS, Visit
from tests.cloud.world import World, add_actor, build_world

pytestmark = [pytest.mark.browser]
KERALA = {
    "schedules": [
        {
            "up_to": "250",
            "energy": {
                "mode": "telescopic",
                "slabs": [
                    {"up_to": "50", "rate": "3.15"},
                    {"up_to": "100", "rate": "3.70"},
                    {"up_to": "250", "rate": "4.80"},
                    {"rate": "7.60"},
                ],
            },
        },
        {
            "energy": {
                "mode": "non_telescopic",
                "slabs": [{"up_to": "300", "rate": "5.80"}, {"rate": "7.90"}],
            }
        },
    ],
    "fixed": {"per_connection": "45"},
    "taxes": [{"name": "Electricity duty", "percent": "10"}],
    "net_metering": {"feed_in_rate": "3.22", "settlement_month": 9},
}
EVENING = ["normal"] * 18 + ["peak"] * 4 + ["normal"] * 2
TIME_OF_DAY = {
    "energy": {
        "mode": "time_of_day",
        "rates": {"peak": "8.25", "normal": "5.10"},
        "weekday": [EVENING] * 12,
        "weekend": [["normal"] * 24] * 12,
    }
}


async def _db(cloud: Cloud, query: str, *params) -> list[dict]:
    async with cloud.pool.connection() as conn:
        cursor = await conn.execute(query, params)
        return await cursor.fetchall()


@pytest.fixture
async def world(cloud: Cloud) -> World:
    """Board A: the world's flat domestic tariff, a Kerala-style commercial one and a
    time-of-day industrial one; one domestic override scheduled 10 to 20 days from today."""
    async with cloud.pool.connection() as conn:
        world = await build_world(conn)
        board = world.boards["A"]
        for category, name, spec in (
            ("commercial", "LT-VII commercial", KERALA),
            ("industrial", "LT-IV industrial", TIME_OF_DAY),
        ):
            cursor = await conn.execute(
                "INSERT INTO tariffs (board_id, category, name) VALUES (%s, %s, %s) RETURNING id",
                (board, category, name),
            )
            await conn.execute(
                "INSERT INTO tariff_versions (tariff_id, effective_from, spec)"
                " VALUES (%s, '2024-04-01', %s)",
                (
                    (await cursor.fetchone())["id"],
                    TariffSpec.model_validate(spec).model_dump_json(),
                ),
            )
        await conn.execute("DELETE FROM tariff_overrides WHERE board_id = %s", (board,))
        today = await _today(conn, board)
        await conn.execute(
            "INSERT INTO tariff_overrides (board_id, category, kind, value, starts_at, ends_at,"
            " reason, created_by) VALUES (%s, 'domestic', 'energy_rate', 4.5, %s, %s,"
            " 'festival relief', 'user:0')",
            (board, *(_midnight(today + timedelta(days=n)) for n in (10, 20))),
        )
        await conn.commit()
    return world


async def _today(conn, board: int) -> date:
    cursor = await conn.execute("SELECT time_zone FROM boards WHERE id = %s", (board,))
    zone = (await cursor.fetchone())["time_zone"]
    assert zone == "Asia/Kolkata"
    return datetime.now(UTC).astimezone(ZoneInfo(zone)).date()


def _midnight(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time(), ZoneInfo("Asia/Kolkata"))


async def _fill(page, category: str, kind: str, value: str, start: date, last: date, why: str):
    form = page.locator("#override-form")
    await form.locator("select[name=category]").select_option(category)
    await form.locator("select[name=kind]").select_option(kind)
    await form.locator("input[name=value]").fill(value)
    await form.locator("input[name=starts_on]").fill(start.isoformat())
    await form.locator("input[name=last_day]").fill(last.isoformat())
    await form.locator("input[name=reason]").fill(why)
    await form.locator("button[type=submit]").click()
    await page.wait_for_load_state("networkidle")


async def _post_by_hand(visit: Visit, context, board: int, today: date) -> int:
    """The override form posted outside the page, with the session's CSRF token: the status."""
    cookies = {c["name"]: c["value"] for c in await context.cookies()}
    answer = await visit.page.request.post(
        f"{visit.base}/dashboard/tariffs/overrides",
        form={
            "csrf": cookies["gg_csrf"],
            "board_id": str(board),
            "category": "domestic",
            "kind": "multiplier",
            "value": "2",
            "starts_on": (today + timedelta(days=50)).isoformat(),
            "last_day": (today + timedelta(days=60)).isoformat(),
            "reason": "not mine to set",
        },
    )
    return answer.status


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
async def test_tariffs_are_explained_and_overrides_set_and_taken_off(
    cloud: Cloud, served: httpx.AsyncClient, world: World, browser, viewport: str
) -> None:
    board = world.boards["A"]
    async with cloud.pool.connection() as conn:
        email = await add_actor(conn, world, "BOARD_ADMIN")
        today = await _today(conn, board)
    [scheduled] = await _db(cloud, "SELECT id FROM tariff_overrides WHERE board_id = %s", board)
    width, height = VIEWPORTS[viewport]
    context = await browser.new_context(viewport={"width": width, "height": height})
    visit = Visit(await context.new_page(), str(served.base_url).rstrip("/"))
    page = visit.page
    await visit.sign_in(email)
    await visit.open("/dashboard/tariffs", f"tariffs-{viewport}")

    domestic = await page.inner_text("#tariff-domestic")
    assert "Every unit costs ₹5.00 per kWh" in domestic
    kerala = await page.inner_text("#tariff-commercial")
    assert "When the month's use is up to 250 kWh" in kerala
    assert "When the month's use is above 250 kWh" in kerala
    assert "0 to 50 kWh" in kerala
    assert "₹3.15" in kerala
    assert "100 to 250 kWh" in kerala
    assert "₹7.90" in kerala
    assert "Electricity duty" in kerala
    assert "₹45.00" in kerala
    assert "banked when September ends is paid at ₹3.22 per kWh" in kerala
    evening = await page.inner_text("#tariff-industrial")
    assert "18:00-22:00" in evening
    assert "₹8.25" in evening
    assert "00:00-18:00, 22:00-24:00" in evening
    row = await page.inner_text(f"[data-override='{scheduled['id']}']")
    assert "Scheduled" in row
    assert "festival relief" in row
    assert "₹4.50" in row
    start = today + timedelta(days=10)
    assert f"{start.day} {start:%b %Y}" in row.replace("\n", " ")

    # an overlapping window: refused, with the other override named, the form kept
    await _fill(
        page,
        "domestic",
        "multiplier",
        "1.2",
        today + timedelta(days=15),
        today + timedelta(days=25),
        "heat wave",
    )
    alert = await page.inner_text("#tariff-error")
    assert f"overlaps override {scheduled['id']}" in alert
    # the other window by its first and last days (it ends before the day stored as its end)
    assert f"{today + timedelta(days=19):%d %b %Y})" in alert
    assert await page.input_value("#override-form input[name=reason]") == "heat wave"
    # a value that is no number: refused, named
    await _fill(
        page,
        "domestic",
        "multiplier",
        "one point two",
        today + timedelta(days=30),
        today + timedelta(days=40),
        "heat wave",
    )
    assert "'one point two' is not a rate or multiplier" in await page.inner_text("#tariff-error")
    # a decimal comma: refused, not read as a rate a hundred times larger
    await _fill(
        page,
        "domestic",
        "energy_rate",
        "4,50",
        today + timedelta(days=30),
        today + timedelta(days=40),
        "heat wave",
    )
    assert "'4,50' is not a rate or multiplier" in await page.inner_text("#tariff-error")
    assert "with a point before the decimals" in await page.inner_text("#tariff-error")
    assert len(await _db(cloud, "SELECT 1 FROM tariff_overrides WHERE board_id = %s", board)) == 1
    visit.errors.clear()  # Chromium logs the 4xx answers themselves as failed resources

    # a valid one: stored as typed, audited
    await _fill(
        page,
        "commercial",
        "multiplier",
        "1.25",
        today + timedelta(days=30),
        today + timedelta(days=40),
        "heat wave",
    )
    assert "is set" in await page.inner_text("#tariff-done")
    [added] = await _db(
        cloud,
        "SELECT id, category, kind, value, starts_at, ends_at, reason FROM tariff_overrides"
        " WHERE board_id = %s AND id <> %s",
        board,
        scheduled["id"],
    )
    assert (added["category"], added["kind"], added["value"]) == (
        "commercial",
        "multiplier",
        Decimal("1.25"),
    )
    assert (added["starts_at"], added["ends_at"]) == (
        _midnight(today + timedelta(days=30)),
        _midnight(today + timedelta(days=41)),
    )
    assert await _db(
        cloud,
        "SELECT 1 FROM audit_log WHERE entity = 'tariff_override' AND entity_id = %s"
        " AND action = 'create' AND actor LIKE 'user:%%'",
        str(added["id"]),
    )
    row = (await page.inner_text(f"[data-override='{added['id']}']")).replace("\n", " ")
    last = today + timedelta(days=40)  # the last day typed is the last day shown
    assert "Energy charges × 1.25" in row
    assert f"to {last.day} {last:%b %Y}" in row

    # the scheduled one taken off: it never applies
    await page.locator(f"[data-override='{scheduled['id']}'] button").click()
    await page.wait_for_load_state("networkidle")
    assert "is taken off" in await page.inner_text("#tariff-done")
    [gone] = await _db(
        cloud, "SELECT removed_at, removed_by FROM tariff_overrides WHERE id = %s", scheduled["id"]
    )
    assert gone["removed_at"] is not None
    assert gone["removed_by"].startswith("user:")
    row = await page.inner_text(f"[data-override='{scheduled['id']}']")
    assert "Taken off" in row
    assert email in row
    await visit.open("/dashboard/tariffs", f"tariffs-{viewport}-after")

    # another board's tariff, posted by hand: not found, nothing stored there
    assert await _post_by_hand(visit, context, world.boards["B"], today) == 404
    assert not await _db(cloud, "SELECT 1 FROM tariff_overrides WHERE reason = 'not mine to set'")
    await context.close()


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
async def test_an_auditor_reads_without_forms_and_others_are_not_allowed(
    cloud: Cloud, served: httpx.AsyncClient, world: World, browser, viewport: str
) -> None:
    base = str(served.base_url).rstrip("/")
    width, height = VIEWPORTS[viewport]
    for role, status in (("AUDITOR", 200), ("CONSUMER", 403), ("TECHNICIAN", 403)):
        async with cloud.pool.connection() as conn:
            email = await add_actor(conn, world, role)
        context = await browser.new_context(viewport={"width": width, "height": height})
        visit = Visit(await context.new_page(), base)
        await visit.sign_in(email)
        if status == 200:
            await visit.open("/dashboard/tariffs", f"tariffs-{role.lower()}-{viewport}")
            assert "festival relief" in await visit.page.inner_text("#overrides-table")
            assert await visit.page.locator("#override-form").count() == 0
            assert await visit.page.locator("#overrides-table button").count() == 0
            # the form posted anyway, with the session's CSRF token: refused, nothing stored
            today = datetime.now(UTC).astimezone(ZoneInfo("Asia/Kolkata")).date()
            assert await _post_by_hand(visit, context, world.boards["A"], today) == 403
        else:
            response = await visit.page.goto(f"{base}/dashboard/tariffs")
            assert response.status == status
            assert await visit.page.locator("#overrides-table").count() == 0
        await context.close()
    assert (
        len(
            await _db(
                cloud, "SELECT 1 FROM tariff_overrides WHERE board_id = %s", world.boards["A"]
            )
        )
        == 1
    )

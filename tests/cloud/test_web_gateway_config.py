"""A gateway's settings page in a real Chromium, as a board admin at desktop and phone sizes:
what runs and why the newest version was rolled back; an edit naming an unknown meter model is
refused with the bus and meter named and nothing saved; a valid edit is saved as a new version;
a meter a scan found is given to a consumer by account number and joins the next version. An
auditor and a support agent read the page without an edit form; a consumer is not allowed.
Each check is made in the database; screenshots go to tests/artifacts/web (gateway-config-*)."""

from __future__ import annotations

import json
import tomllib

import httpx
import pytest

from tests.cloud.conftest import Cloud
from tests.cloud.test_web_app import ARTIFACTS, VIEWPORTS, Visit
from tests.cloud.world import World, add_actor, build_world

pytestmark = [pytest.mark.browser]
REASON = "bus rs485-1: no meter answered within 120 s"
BUS = {"name": "rs485-1", "kind": "modbus-rtu", "port": "/dev/ttyUSB0"}
RUNNING = {"buses": [{**BUS, "meters": [{"id": "main-incomer", "unit": 1, "profile": "em24"}]}]}
TRIED = {
    "buses": [
        {
            **BUS,
            "meters": [
                {"id": "main-incomer", "unit": 1, "profile": "em24"},
                {"id": "pump-house", "unit": 2, "profile": "sdm630"},
            ],
        }
    ]
}


@pytest.fixture
async def world(cloud: Cloud) -> World:
    """The own gateway runs version 1; version 2 was tried and rolled back; a scan found an
    SDM120 (serial 4711) on its bus, waiting for a consumer."""
    async with cloud.pool.connection() as conn:
        world = await build_world(conn)
        own = world.site("own")
        gateway, board = own.gateway.id, world.boards["A"]
        await conn.execute(
            "UPDATE gateways SET config_version = 1, config_settings = %s,"
            " config_reported_at = now() WHERE id = %s",
            (json.dumps(RUNNING), gateway),
        )
        for version, settings, status, detail in (
            (1, RUNNING, "applied", None),
            (2, TRIED, "rolled_back", REASON),
        ):
            await conn.execute(
                "INSERT INTO gateway_configs (gateway_id, board_id, version, settings, status,"
                " detail, comment, reported_at) VALUES (%s, %s, %s, %s, %s, %s, %s, now())",
                (gateway, board, version, json.dumps(settings), status, detail, f"v{version}"),
            )
        await conn.execute(
            "INSERT INTO gateway_discoveries (gateway_id, board_id, bus, bus_name, unit, model,"
            " serial, found_at) VALUES (%s, %s, %s, 'rs485-1', 12, 'sdm120', '4711', now())",
            (gateway, board, json.dumps(BUS)),
        )
        await conn.commit()
    return world


async def _db(cloud: Cloud, query: str, *params) -> list[dict]:
    async with cloud.pool.connection() as conn:
        cursor = await conn.execute(query, params)
        return await cursor.fetchall()


async def _versions(cloud: Cloud, gateway: int) -> list[dict]:
    return await _db(
        cloud,
        "SELECT version, status, settings, comment FROM gateway_configs WHERE gateway_id = %s"
        " ORDER BY version",
        gateway,
    )


async def _visitor(browser, base: str, viewport: str) -> Visit:
    width, height = VIEWPORTS[viewport]
    context = await browser.new_context(viewport={"width": width, "height": height})
    return Visit(await context.new_page(), base)


async def _fits(visit: Visit, shot: str) -> None:
    """No sideways scrolling (the page, and the TOML box within its panel); a screenshot kept."""
    page = visit.page
    scroll, client = await page.evaluate(
        "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert scroll <= client, f"{page.url} is {scroll} px wide on a {client} px screen"
    box = page.locator("textarea[name=toml]")
    if await box.count():
        inner = await box.evaluate(
            "t => [t.getBoundingClientRect().right, t.closest('section').getBoundingClientRect()"
            ".right]"
        )
        assert inner[0] <= inner[1] + 0.5, f"the TOML box sticks out of its panel: {inner}"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=ARTIFACTS / f"gateway-config-{shot}.png", full_page=True)
    assert not visit.errors, visit.errors
    assert not visit.foreign, visit.foreign


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
async def test_settings_are_read_edited_and_a_found_meter_given_in_the_browser(
    cloud: Cloud, served: httpx.AsyncClient, world: World, browser, viewport: str
) -> None:
    own = world.site("own")
    gateway = own.gateway.id
    path = f"/dashboard/gateways/{gateway}/config"
    async with cloud.pool.connection() as conn:
        email = await add_actor(conn, world, "BOARD_ADMIN")
    visit = await _visitor(browser, str(served.base_url).rstrip("/"), viewport)
    page = visit.page
    await visit.sign_in(email)

    # (1) what runs, and the reason version 2 was rolled back
    await visit.open(path, f"admin-{viewport}")
    assert "Runs version 1 from the cloud" in await page.inner_text("#config-running")
    latest = await page.inner_text("#config-latest")
    assert "Version 2" in latest
    assert "Rolled back" in latest
    assert "went back to what it ran before" in latest
    assert REASON in await page.inner_text("#config-reason")
    toml = await page.input_value("textarea[name=toml]")
    assert tomllib.loads(toml)["buses"][0]["meters"][1]["id"] == "pump-house"  # edits start
    await _fits(visit, f"admin-{viewport}")  # from the newest version

    # (2) an unknown model: refused, the bus and the meter named, nothing saved
    await page.fill("textarea[name=toml]", toml.replace('"sdm630"', '"sdm999"'))
    await page.fill("input[name=comment]", "a typo")
    await page.click("form[action$='/config'] button[type=submit]")
    await page.wait_for_load_state("networkidle")
    alert = await page.inner_text("[role=alert]")
    assert "nothing was sent" in alert
    problems = await page.inner_text("#config-problems")
    assert "rs485-1" in problems
    assert "pump-house" in problems
    assert "sdm999" in problems
    assert "sdm630" in problems  # the models it knows
    typed = toml.replace('"sdm630"', '"sdm999"').splitlines()
    at = next(n for n, text in enumerate(typed, start=1) if '"sdm999"' in text)
    assert f"line {at}: " in problems, (at, problems)  # where it is in the text
    assert "sdm999" in await page.input_value("textarea[name=toml]")  # what was typed stays
    # a key misspelt and a table declared twice: said in words, with their lines
    await page.fill("textarea[name=toml]", toml + "\n[checks]\nspike_ratioo = 2\n")
    await page.click("form[action$='/config'] button[type=submit]")
    await page.wait_for_load_state("networkidle")
    problems = await page.inner_text("#config-problems")
    assert "spike_ratioo: not a setting known here" in problems, problems
    await page.fill("textarea[name=toml]", toml + "\n[checks]\n[checks]\n")
    await page.click("form[action$='/config'] button[type=submit]")
    await page.wait_for_load_state("networkidle")
    alert = await page.inner_text("[role=alert]")
    assert "Cannot declare checks twice (at line" in alert, alert
    assert "('checks',)" not in alert
    assert [v["version"] for v in await _versions(cloud, gateway)] == [1, 2]
    visit.errors.clear()  # the 422 answer itself is logged by Chromium as a failed resource
    await _fits(visit, f"admin-{viewport}-invalid")

    # (3) a valid edit: saved as version 3, and the page says it was sent
    await page.fill("textarea[name=toml]", toml.replace('"sdm630"', '"sdm120"'))
    await page.fill("input[name=comment]", "the pump meter is an SDM120")
    await page.click("form[action$='/config'] button[type=submit]")
    await page.wait_for_url(f"**{path}?sent=1")
    assert "The new version is saved" in await page.inner_text("[role=status]")
    versions = await _versions(cloud, gateway)
    assert [v["version"] for v in versions] == [1, 2, 3]
    assert versions[2]["status"] == "pending"
    assert versions[2]["comment"] == "the pump meter is an SDM120"
    assert versions[2]["settings"]["buses"][0]["meters"][1]["profile"] == "sdm120"
    assert "Version 3" in await page.inner_text("#config-latest")
    await _fits(visit, f"admin-{viewport}-sent")

    # (4) the found SDM120 given to the consumer by account number
    [consumer] = await _db(
        cloud, "SELECT id, account_no FROM consumers WHERE id = %s", own.consumer.id
    )
    [found] = await _db(
        cloud,
        "SELECT id FROM gateway_discoveries WHERE gateway_id = %s AND serial = '4711'",
        gateway,
    )
    form = page.locator(f"form[action='/dashboard/gateway-discoveries/{found['id']}/assign']")
    assert "sdm120, unit 12 on rs485-1" in await page.inner_text("#found-meters")
    await form.locator("input[name=account_no]").fill(consumer["account_no"])
    await form.locator("button[type=submit]").click()
    await page.wait_for_url(f"**{path}?sent=1")
    [meter] = await _db(
        cloud,
        "SELECT m.id, m.external_id, m.consumer_id, m.gateway_id FROM gateway_discoveries d"
        " JOIN meters m ON m.id = d.meter_id WHERE d.id = %s",
        found["id"],
    )
    assert meter["external_id"] == "sdm120-4711"
    assert (meter["consumer_id"], meter["gateway_id"]) == (consumer["id"], gateway)
    versions = await _versions(cloud, gateway)
    assert [v["version"] for v in versions] == [1, 2, 3, 4]
    [bus] = versions[3]["settings"]["buses"]
    assert {"id": "sdm120-4711", "unit": 12, "profile": "sdm120"}.items() <= next(
        m for m in bus["meters"] if m["id"] == "sdm120-4711"
    ).items()
    assert [m["id"] for m in bus["meters"]] == ["main-incomer", "pump-house", "sdm120-4711"]
    found_text = await page.inner_text("#found-meters")
    assert "Meter sdm120-4711, given to" in found_text
    assert "Version 4" in await page.inner_text("#config-latest")
    await _fits(visit, f"admin-{viewport}-given")  # (5) no sideways scrolling at any step


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
async def test_readers_see_no_edit_form_and_a_consumer_is_not_allowed(
    cloud: Cloud, served: httpx.AsyncClient, world: World, browser, viewport: str
) -> None:
    gateway = world.site("own").gateway.id
    path = f"/dashboard/gateways/{gateway}/config"
    base = str(served.base_url).rstrip("/")
    for role in ("AUDITOR", "SUPPORT_AGENT"):
        async with cloud.pool.connection() as conn:
            email = await add_actor(conn, world, role)
        visit = await _visitor(browser, base, viewport)
        await visit.sign_in(email)
        await visit.open(path, f"{role.lower()}-{viewport}")
        page = visit.page
        assert REASON in await page.inner_text("#config-reason")
        assert await page.locator("textarea[name=toml]").count() == 0
        assert await page.locator("form[action*='/assign']").count() == 0
        assert "pump-house" in await page.inner_text("pre.code")
        await _fits(visit, f"{role.lower()}-{viewport}")
        await visit.page.context.close()
    async with cloud.pool.connection() as conn:
        email = await add_actor(conn, world, "CONSUMER")
    visit = await _visitor(browser, base, viewport)
    await visit.sign_in(email)
    response = await visit.page.goto(f"{base}{path}")
    assert response.status == 403
    assert REASON not in await visit.page.content()

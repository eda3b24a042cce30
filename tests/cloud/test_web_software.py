"""Software updates in a real Chromium, at desktop and phone sizes: a super admin registers a
version from the package index and uploads a wheel, sets a board's target for half its gateways
and sees which are in that share; a gateway's page shows what it runs, its target and where it
comes from, and an update it rolled back with its reason; a super admin sets and clears one
gateway's own target. A board admin sees the software panel without its form and is refused
the software page. Screenshots go to tests/artifacts/web (software-*.png)."""

from __future__ import annotations

import httpx
import pytest

from cloud.services.software import rollout_cohort
from tests.cloud.conftest import Cloud
from tests.cloud.test_web_app import ARTIFACTS, Visit
from tests.cloud.world import World, add_actor, build_world

pytestmark = [pytest.mark.browser, pytest.mark.slow]
SIZES = {"desktop": (1280, 800), "phone": (390, 844)}
REASON = "the new version never had a batch accepted before its deadline; went back to 0.9.0"


async def _visit(browser, served: httpx.AsyncClient, size: str, email: str) -> Visit:
    width, height = SIZES[size]
    context = await browser.new_context(viewport={"width": width, "height": height})
    visit = Visit(await context.new_page(), str(served.base_url).rstrip("/"))
    await visit.sign_in(email)
    return visit


async def _fleet(cloud: Cloud, world: World) -> dict[str, object]:
    """Board A's two gateways run 0.9.0; the one the new version's half will take rolled 0.9.5
    back before (so its page shows both)."""
    own = world.site("own")
    tag = world.tag.lower()
    new, old = f"1.0.0+{tag}", f"0.9.5+{tag}"
    async with cloud.pool.connection() as conn:
        await conn.execute(
            "UPDATE gateways SET software_version = '0.9.0' WHERE id = ANY(%s)",
            ([own.gateway.id, own.gateway_revoke.id],),
        )
        cursor = await conn.execute(
            "SELECT id, gateway_code FROM gateways WHERE id = ANY(%s)",
            ([own.gateway.id, own.gateway_revoke.id],),
        )
        codes = {row["gateway_code"]: row["id"] for row in await cursor.fetchall()}
        [chosen] = rollout_cohort(list(codes), new, 50)
        [left] = set(codes) - {chosen}
        await conn.execute(
            "INSERT INTO software_releases (version, source) VALUES (%s, 'index')", (old,)
        )
        cursor = await conn.execute(
            "INSERT INTO gateway_commands (gateway_id, board_id, kind, args, status, created_at,"
            " expires_at, delivered_at, finished_at) VALUES (%s, %s, 'update', %s, 'succeeded',"
            " now() - interval '3 days', now() - interval '2 days', now() - interval '3 days',"
            " now() - interval '3 days') RETURNING id",
            (codes[chosen], world.boards["A"], f'{{"version": "{old}"}}'),
        )
        command = (await cursor.fetchone())["id"]
        await conn.execute(
            "INSERT INTO gateway_updates (gateway_id, board_id, version, from_version, command_id,"
            " outcome, detail, created_at, reported_at) VALUES (%s, %s, %s, '0.9.0', %s,"
            " 'rolled_back', %s, now() - interval '3 days', now() - interval '3 days')",
            (codes[chosen], world.boards["A"], old, command, REASON),
        )
        await conn.commit()
    return {"new": new, "old": old, "chosen": chosen, "left": left, "ids": codes}


async def _check(visit: Visit, shot: str) -> None:
    """No sideways scrolling, no console errors, nothing from elsewhere; a screenshot kept."""
    await visit.page.wait_for_load_state("networkidle")
    width = visit.page.viewport_size["width"]
    scroll = await visit.page.evaluate("document.documentElement.scrollWidth")
    client = await visit.page.evaluate("document.documentElement.clientWidth")
    assert scroll <= client <= width, f"{visit.page.url} is {scroll} px wide on a {width} px screen"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await visit.page.screenshot(path=ARTIFACTS / f"software-{shot}.png", full_page=True)
    assert not visit.errors, visit.errors
    assert not visit.foreign, visit.foreign


async def test_a_rollout_is_set_and_followed_in_the_browser(
    cloud: Cloud, served: httpx.AsyncClient, browser, tmp_path
) -> None:
    async with cloud.pool.connection() as conn:
        world = await build_world(conn)
        super_email = await add_actor(conn, world, "SUPER_ADMIN")
        board_email = await add_actor(conn, world, "BOARD_ADMIN")
    fleet = await _fleet(cloud, world)
    board_a, tag = world.boards["A"], world.tag.lower()
    search = f"/dashboard/software?q=A-{world.tag}"

    admin = await _visit(browser, served, "desktop", super_email)
    page = admin.page
    assert "Software" in await page.text_content("header nav")
    await admin.open("/dashboard/software", "software-desktop-start")
    await page.fill("#index-form input[name=version]", fleet["new"])
    await page.fill("#index-form input[name=notes]", "meter timeouts halved")
    await page.click("#index-form button[type=submit]")
    await page.wait_for_load_state("networkidle")
    assert f"Version {fleet['new']} is registered" in await page.inner_text("#software-done")
    wheel = tmp_path / f"gridgate-1.0.1+{tag}-py3-none-any.whl"
    wheel.write_bytes(b"PK\x03\x04" + b"wheel" * 50_000)
    await page.set_input_files("#wheel-form input[name=wheel]", str(wheel))
    await page.click("#wheel-form button[type=submit]")
    await page.wait_for_load_state("networkidle")
    assert f"Version 1.0.1+{tag} is registered" in await page.inner_text("#software-done")
    releases = await page.inner_text("#releases")
    assert f"Wheel {wheel.name}, 0.2 MB, sha256 " in releases
    assert "The package index" in releases
    assert "meter timeouts halved" in releases
    await _check(admin, "desktop-registered")

    # half of board A's gateways get the new version
    await admin.open(search, "software-desktop-board")
    board = page.locator(f"#board-{board_a}")
    await board.locator("select[name=version]").select_option(fleet["new"])
    await board.locator("input[name=percent]").fill("50")
    await board.locator("button[value=set]").click()
    await page.wait_for_load_state("networkidle")
    board = page.locator(f"#board-{board_a}")
    assert (
        f"{fleet['new']} for 50 % of its gateways"
        in await board.locator(".board-target").inner_text()
    )
    cohort = await board.locator(".board-cohort").inner_text()
    assert cohort.startswith("1 of 2")
    assert fleet["chosen"] in cohort
    assert fleet["left"] not in cohort
    assert "0.9.0: 2" in await board.locator(".board-running").inner_text()
    updates = await board.locator(".board-updates").inner_text()
    assert "Sent 1" in updates
    assert "Rolled back 1" in updates
    await _check(admin, "desktop-rollout")

    chosen = f"/dashboard/gateways/{fleet['ids'][fleet['chosen']]}"
    await admin.open(chosen, "software-desktop-gateway")
    assert await page.inner_text("#software-running") == "0.9.0"
    target = await page.inner_text("#software-target")
    assert f"{fleet['new']}, its board's target for 50 %" in target
    assert "is in that share" in target
    rows = page.locator("#software-updates tbody tr")
    assert await rows.count() == 2
    assert "Sent" in await rows.nth(0).inner_text()
    rolled = await rows.nth(1).inner_text()
    assert fleet["old"] in rolled
    assert "Rolled back" in rolled
    assert REASON[1:] in rolled
    await _check(admin, "desktop-gateway")

    # the other gateway: not in the share; its own target set, then cleared
    left_id = fleet["ids"][fleet["left"]]
    await admin.open(f"/dashboard/gateways/{left_id}", "software-desktop-left")
    assert "not in that share yet" in await page.inner_text("#software-target")
    await page.select_option("#software-form select[name=version]", fleet["new"])
    await page.click("#software-form button[type=submit]")
    await page.wait_for_load_state("networkidle")
    assert "set for this gateway" in await page.inner_text("#software-target")
    assert "Sent" in await page.inner_text("#software-updates")
    async with cloud.pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT version FROM gateway_software_targets WHERE gateway_id = %s", (left_id,)
        )
        assert await cursor.fetchone() == {"version": fleet["new"]}
    await page.select_option("#software-form select[name=version]", "")
    await page.click("#software-form button[type=submit]")
    await page.wait_for_load_state("networkidle")
    assert "not in that share yet" in await page.inner_text("#software-target")

    phone = await _visit(browser, served, "phone", super_email)
    await phone.open(search, "software-phone-board")
    await _check(phone, "phone-rollout")
    await phone.open(chosen, "software-phone-gateway")
    assert REASON[1:] in await phone.page.inner_text("#software-updates")
    await _check(phone, "phone-gateway")

    for size in SIZES:
        reader = await _visit(browser, served, size, board_email)
        await reader.open(chosen, f"software-board-admin-{size}-gateway")
        assert fleet["new"] in await reader.page.inner_text("#software-target")
        assert await reader.page.locator("#software-form").count() == 0
        assert REASON[1:] in await reader.page.inner_text("#software-updates")
        assert "Software" not in await reader.page.text_content("header nav")
        refused = await reader.page.goto(f"{reader.base}/dashboard/software")
        assert refused.status == 403
        assert "Not allowed" in await reader.page.inner_text("main")
        assert all("status of 403" in e for e in reader.errors), reader.errors  # the page's own
        reader.errors.clear()
        await _check(reader, f"board-admin-{size}-refused")

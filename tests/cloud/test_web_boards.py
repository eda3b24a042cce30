"""The boards page in a real Chromium. A super admin adds a state and a board in it (a bad code
and a zone that does not exist are refused with the reason, what was typed kept, nothing
stored), changes the board's name, zone and capacity, removes it while it is empty, and removes
the state. A state admin, on a phone too, sees only their own state's boards, adds one there,
cannot add one to another state nor open or remove another state's board, and cannot remove a
board that holds consumers. A board admin is not allowed; every role is tried on every route,
on its own state's board and another's. Every change is checked in the
database and its audit row; screenshots go to tests/artifacts/web (boards-*)."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal

import httpx
import pytest

from tests.cloud.conftest import Cloud, client_from, random_address
from tests.cloud.test_web_app import ARTIFACTS, VIEWPORTS, Visit
from tests.cloud.world import PASSWORD, World, add_actor, build_world

pytestmark = [pytest.mark.browser]


@pytest.fixture
async def world(cloud: Cloud) -> World:
    async with cloud.pool.connection() as conn:
        return await build_world(conn)


async def _db(cloud: Cloud, query: str, *params) -> list[dict]:
    async with cloud.pool.connection() as conn:
        cursor = await conn.execute(query, params)
        return await cursor.fetchall()


async def _person(browser, served: httpx.AsyncClient, viewport: str, email: str) -> Visit:
    width, height = VIEWPORTS[viewport]
    context = await browser.new_context(viewport={"width": width, "height": height})
    visit = Visit(await context.new_page(), str(served.base_url).rstrip("/"))
    await visit.sign_in(email)
    return visit


async def _shot(visit: Visit, name: str, *, full: bool = True) -> None:
    """No sideways scrolling, no console errors, nothing from elsewhere; a screenshot kept."""
    width = visit.page.viewport_size["width"]
    scroll = await visit.page.evaluate("document.documentElement.scrollWidth")
    assert scroll <= width, f"{visit.page.url} is {scroll} px wide on a {width} px screen"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await visit.page.screenshot(path=ARTIFACTS / f"boards-{name}.png", full_page=full)
    assert not visit.errors, visit.errors
    assert not visit.foreign, visit.foreign


async def _submit(visit: Visit, form: str) -> None:
    await visit.page.click(f"{form} button[type=submit]")
    await visit.page.wait_for_load_state("networkidle")


def _refused(visit: Visit, status: int) -> None:
    """A refused form answers its status, which Chromium reports on the console: expected."""
    assert visit.errors == [
        f"error: Failed to load resource: the server responded with a status of {status}"
        + {403: " (Forbidden)", 404: " (Not Found)", 409: " (Conflict)"}.get(
            status, " (Unprocessable Entity)"
        )
    ], visit.errors
    visit.errors.clear()


async def _audited(cloud: Cloud, entity: str, entity_id: int) -> list[str]:
    rows = await _db(
        cloud,
        "SELECT action FROM audit_log WHERE entity = %s AND entity_id = %s ORDER BY id",
        entity,
        str(entity_id),
    )
    return [r["action"] for r in rows]


async def test_a_super_admin_runs_states_and_boards(
    cloud: Cloud, served: httpx.AsyncClient, world: World, browser
) -> None:
    async with cloud.pool.connection() as conn:
        email = await add_actor(conn, world, "SUPER_ADMIN")
    visit = await _person(browser, served, "desktop", email)
    page = visit.page
    await page.click("header nav a[href='/dashboard/boards']")
    await page.wait_for_load_state("networkidle")
    assert await page.inner_text("h1") == "Boards"

    # a state: a code that is not 2 or 3 capital letters is named, and nothing is stored
    code = world.free_state_codes[0]
    await page.click("#add-state summary")
    await page.fill("#state-form input[name=name]", "Ladakh")
    await page.evaluate("document.querySelector('#state-form').noValidate = true")
    await page.fill("#state-form input[name=code]", "ladakh")
    await _submit(visit, "#state-form")
    _refused(visit, 422)
    assert await page.inner_text("#state-error") == (
        "A state's code is 2 or 3 capital letters, such as DL."
    )
    assert await page.input_value("#state-form input[name=name]") == "Ladakh"
    assert not await _db(cloud, "SELECT 1 FROM states WHERE name = 'Ladakh'")
    await page.fill("#state-form input[name=code]", code)
    await _submit(visit, "#state-form")
    assert await page.inner_text("#boards-done") == f"State {code} added."
    [state] = await _db(cloud, "SELECT * FROM states WHERE code = %s", code)
    assert state["name"] == "Ladakh"
    assert await _audited(cloud, "state", state["id"]) == ["create"]

    # a board in it: a code and a zone that are wrong are both named at once, all typed kept;
    # then the zone alone
    board_code = f"LD-{uuid.uuid4().hex[:6].upper()}"
    await page.click("#add-board summary")
    await page.select_option("#board-form select[name=state_id]", str(state["id"]))
    await page.fill("#board-form input[name=code]", board_code.lower())
    await page.fill("#board-form input[name=name]", "Ladakh Power Development")
    await page.fill("#board-form input[name=time_zone]", "Asia/Leh")
    await page.fill("#board-form input[name=capacity_kw]", "125.5")
    await page.evaluate("document.querySelector('#board-form').noValidate = true")
    await _submit(visit, "#board-form")
    _refused(visit, 422)
    assert await page.inner_text("#board-error") == (
        "A board's code is 2 to 32 capital letters, digits, dashes or underscores, such as"
        " DL-NORTH. 'Asia/Leh' is not a time zone (one is written like Asia/Kolkata)."
    )
    await page.fill("#board-form input[name=code]", board_code)
    await _submit(visit, "#board-form")
    _refused(visit, 422)
    assert await page.inner_text("#board-error") == (
        "'Asia/Leh' is not a time zone (one is written like Asia/Kolkata)"
    )
    assert await page.input_value("#board-form input[name=code]") == board_code
    assert await page.input_value("#board-form select[name=state_id]") == str(state["id"])
    assert await page.input_value("#board-form input[name=capacity_kw]") == "125.5"
    assert not await _db(cloud, "SELECT 1 FROM boards WHERE code = %s", board_code)
    await _shot(visit, "super-refused", full=False)
    await page.fill("#board-form input[name=time_zone]", "Asia/Kolkata")
    await _submit(visit, "#board-form")
    assert await page.inner_text("#boards-done") == (
        f"Board {board_code} added. Invite its admins from the Users page."
    )
    [board] = await _db(cloud, "SELECT * FROM boards WHERE code = %s", board_code)
    assert (board["state_id"], board["time_zone"], board["currency"]) == (
        state["id"],
        "Asia/Kolkata",
        "INR",
    )
    assert board["capacity_kw"] == Decimal("125.5")
    row = await page.inner_text(f"#board-{board['id']}")
    assert f"{board_code} — Ladakh Power Development" in row
    assert "Asia/Kolkata · INR · 125.5 kW" in row  # as typed: not 126 kW, nor 125.500
    state_row = page.locator(f"#state-{state['id']}")
    assert "Has boards or admins" in await state_row.inner_text()

    # changed: a new name, zone and no capacity
    await page.click(f"#board-{board['id']} a[href='/dashboard/boards/{board['id']}']")
    await page.wait_for_load_state("networkidle")
    assert await page.input_value("#board-form input[name=capacity_kw]") == "125.5"
    assert "Holds 0 consumers, 0 meters, 0 gateways and 0 staff accounts" in await page.inner_text(
        "main"
    )
    await page.fill("#board-form input[name=name]", "LPDD")
    await page.fill("#board-form input[name=time_zone]", "Asia/Calcutta")
    await page.fill("#board-form input[name=capacity_kw]", "")
    await _shot(visit, "super-change", full=False)
    await _submit(visit, "#board-form")
    assert await page.inner_text("#boards-done") == f"Board {board_code} saved."
    [board] = await _db(cloud, "SELECT * FROM boards WHERE id = %s", board["id"])
    assert (board["name"], board["time_zone"], board["capacity_kw"]) == (
        "LPDD",
        "Asia/Calcutta",
        None,
    )
    assert await _audited(cloud, "board", board["id"]) == ["create", "update"]

    # removed while empty, then its state
    await page.goto(f"{visit.base}/dashboard/boards/{board['id']}")
    await page.click("#remove-board button[type=submit]")
    await page.wait_for_load_state("networkidle")
    assert await page.inner_text("#boards-done") == f"Board {board_code} removed."
    assert not await _db(cloud, "SELECT 1 FROM boards WHERE id = %s", board["id"])
    assert await _audited(cloud, "board", board["id"]) == ["create", "update", "delete"]
    await page.fill(f"#state-{state['id']} input[name=name]", "Ladakh (UT)")
    await page.click(f"#state-{state['id']} form.inline-edit button")
    await page.wait_for_load_state("networkidle")
    assert await page.inner_text("#boards-done") == f"State {code} renamed."
    await page.click(f"#state-{state['id']} button.danger")
    await page.wait_for_load_state("networkidle")
    assert await page.inner_text("#boards-done") == f"State {code} removed."
    assert not await _db(cloud, "SELECT 1 FROM states WHERE id = %s", state["id"])
    assert await _audited(cloud, "state", state["id"]) == ["create", "update", "delete"]
    assert not visit.errors, visit.errors


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
async def test_a_state_admin_runs_the_boards_of_their_state_only(
    cloud: Cloud, served: httpx.AsyncClient, world: World, browser, viewport: str
) -> None:
    async with cloud.pool.connection() as conn:
        email = await add_actor(conn, world, "STATE_ADMIN")
    visit = await _person(browser, served, viewport, email)
    page = visit.page
    await page.goto(f"{visit.base}/dashboard/boards")
    await page.wait_for_load_state("networkidle")
    table = await page.inner_text("#boards-table")
    own_a = f"A-{world.tag}"
    assert own_a in table
    assert f"B-{world.tag}" in table  # the same state's other board
    assert f"C-{world.tag}" not in table  # another state's
    assert not await page.locator("#states-table").count()  # states are the super admin's
    a = world.boards["A"]
    [counts] = await _db(
        cloud,
        "SELECT (SELECT count(*) FROM consumers WHERE board_id = %s) AS c,"
        " (SELECT count(*) FROM meters WHERE board_id = %s) AS m",
        a,
        a,
    )
    row = await page.inner_text(f"#board-{a}")
    assert f"{counts['c']:,}" in row
    assert f"{counts['m']:,}" in row
    await _shot(visit, f"state-admin-{viewport}")

    # a board in their own state: the state is theirs, not a choice
    board_code = f"S1-{uuid.uuid4().hex[:6].upper()}"
    await page.click("#add-board summary")
    assert not await page.locator("#board-form select[name=state_id]").count()
    await page.fill("#board-form input[name=code]", board_code)
    await page.fill("#board-form input[name=name]", "Rural feeder board")
    await _submit(visit, "#board-form")
    [board] = await _db(cloud, "SELECT * FROM boards WHERE code = %s", board_code)
    assert board["state_id"] == world.states["S1"]

    # another state's: not theirs to add to, open, change or remove
    cookies = {c["name"]: c["value"] for c in await page.context.cookies()}
    other_code = f"S2-{uuid.uuid4().hex[:6].upper()}"
    answer = await page.request.post(
        f"{visit.base}/dashboard/boards",
        form={
            "csrf": cookies["gg_csrf"],
            "state_id": str(world.states["S2"]),
            "code": other_code,
            "name": "Not mine",
            "time_zone": "Asia/Kolkata",
            "currency": "INR",
        },
    )
    assert answer.status == 422
    assert "Choose a state from the list." in await answer.text()
    assert not await _db(cloud, "SELECT 1 FROM boards WHERE code = %s", other_code)
    c = world.boards["C"]
    response = await page.goto(f"{visit.base}/dashboard/boards/{c}")
    assert response.status == 404
    _refused(visit, 404)
    for path, form in (
        (f"/dashboard/boards/{c}", {"name": "Taken", "time_zone": "UTC", "currency": "INR"}),
        (f"/dashboard/boards/{c}/delete", {}),
    ):
        answer = await page.request.post(
            f"{visit.base}{path}", form={"csrf": cookies["gg_csrf"], **form}
        )
        assert answer.status == 404, path
    [untouched] = await _db(cloud, "SELECT name FROM boards WHERE id = %s", c)
    assert untouched["name"] == "Board C"

    # a board that holds consumers offers no removal, and a removal posted anyway is refused
    await page.goto(f"{visit.base}/dashboard/boards/{a}")
    await page.wait_for_load_state("networkidle")
    assert await page.inner_text("#remove-refused") == (
        "A board that holds consumers, meters, gateways or staff accounts cannot be removed:"
        " move or remove those first."
    )
    await _shot(visit, f"state-admin-board-{viewport}")
    answer = await page.request.post(
        f"{visit.base}/dashboard/boards/{a}/delete", form={"csrf": cookies["gg_csrf"]}
    )
    assert answer.status == 409
    assert f"Board {a} is still referred to by its " in await answer.text()
    assert await _db(cloud, "SELECT 1 FROM boards WHERE id = %s", a)
    # and without the session's CSRF token nothing changes
    answer = await page.request.post(
        f"{visit.base}/dashboard/boards/{board['id']}/delete", form={"csrf": "forged"}
    )
    assert answer.status == 403
    assert await _db(cloud, "SELECT 1 FROM boards WHERE id = %s", board["id"])


async def test_a_board_admin_is_not_allowed(
    cloud: Cloud, served: httpx.AsyncClient, world: World, browser
) -> None:
    async with cloud.pool.connection() as conn:
        email = await add_actor(conn, world, "BOARD_ADMIN")
    visit = await _person(browser, served, "phone", email)
    assert "Boards" not in await visit.page.text_content("header nav")
    response = await visit.page.goto(f"{visit.base}/dashboard/boards")
    assert response.status == 403
    assert "Manage boards" in await visit.page.inner_text("main")
    _refused(visit, 403)
    cookies = {c["name"]: c["value"] for c in await visit.page.context.cookies()}
    answer = await visit.page.request.post(
        f"{visit.base}/dashboard/boards/{world.boards['A']}",
        form={
            "csrf": cookies["gg_csrf"],
            "name": "Mine now",
            "time_zone": "UTC",
            "currency": "INR",
        },
    )
    assert answer.status == 403
    [board] = await _db(cloud, "SELECT name FROM boards WHERE id = %s", world.boards["A"])
    assert board["name"] == "Board A"


ROLES = (
    "SUPER_ADMIN",
    "STATE_ADMIN",
    "BOARD_ADMIN",
    "SUPPORT_AGENT",
    "AUDITOR",
    "TECHNICIAN",
    "CONSUMER",
)


@asynccontextmanager
async def _signed_in(cloud: Cloud, email: str) -> AsyncIterator[httpx.AsyncClient]:
    """A session of the in-process app, signed in through the login form."""
    app = cloud.client._transport.app  # type: ignore[attr-defined]
    async with client_from(app, random_address()) as client:
        page = await client.get("/dashboard/login")
        token = re.search(r'name="login_token" value="([^"]+)"', page.text).group(1)
        form = {"email": email, "password": PASSWORD, "next": "/dashboard", "login_token": token}
        answer = await client.post(
            "/dashboard/login", data=form, headers={"Origin": "http://cloud"}
        )
        assert answer.status_code == 303, answer.text
        yield client


async def test_every_role_on_its_own_and_another_states_boards(cloud: Cloud, world: World) -> None:
    """The boards page's routes by every role, on a board of its own state and one of another:
    403 without the permission, 404 outside the scope, and nothing refused changes a row or
    leaves an audit entry."""
    a, c = world.boards["A"], world.boards["C"]
    s1, s2 = world.states["S1"], world.states["S2"]
    manage = {"SUPER_ADMIN", "STATE_ADMIN"}

    def expected(role: str, *, other_state: bool, state_route: bool = False, ok: int) -> int:
        if role not in (("SUPER_ADMIN",) if state_route else manage):
            return 403
        if other_state and role == "STATE_ADMIN":
            return 404
        return ok

    before = await _db(
        cloud, "SELECT * FROM boards WHERE id = ANY(%s) ORDER BY id", [a, c]
    ) + await _db(cloud, "SELECT * FROM states WHERE id = ANY(%s) ORDER BY id", [s1, s2])
    for role in ROLES:
        async with cloud.pool.connection() as conn:
            email = await add_actor(conn, world, role)
        first_audit = (await _db(cloud, "SELECT coalesce(max(id), 0) AS n FROM audit_log"))[0]["n"]
        async with _signed_in(cloud, email) as client:
            csrf = client.cookies["gg_csrf"]
            calls = [
                ("GET", "/dashboard/boards", None, expected(role, other_state=False, ok=200)),
                ("GET", f"/dashboard/boards/{a}", None, expected(role, other_state=False, ok=200)),
                ("GET", f"/dashboard/boards/{c}", None, expected(role, other_state=True, ok=200)),
                (  # a name too long: refused by the model, whoever may
                    "POST",
                    f"/dashboard/boards/{c}",
                    {"name": "x" * 201, "time_zone": "UTC", "currency": "INR"},
                    expected(role, other_state=True, ok=422),
                ),
                (  # board C holds consumers: refused, by scope or for what it holds
                    "POST",
                    f"/dashboard/boards/{c}/delete",
                    {},
                    expected(role, other_state=True, ok=409),
                ),
                (
                    "POST",
                    f"/dashboard/states/{s2}",
                    {"name": ""},
                    expected(role, other_state=True, state_route=True, ok=422),
                ),
                (
                    "POST",
                    "/dashboard/states",
                    {"code": "x", "name": "Nowhere"},
                    expected(role, other_state=False, state_route=True, ok=422),
                ),
                (  # its own state's board: a name too long is refused by the model
                    "POST",
                    f"/dashboard/boards/{a}",
                    {"name": "x" * 201, "time_zone": "UTC", "currency": "INR"},
                    expected(role, other_state=False, ok=422),
                ),
                (  # board A holds consumers
                    "POST",
                    f"/dashboard/boards/{a}/delete",
                    {},
                    expected(role, other_state=False, ok=409),
                ),
                (  # a board in its own state, and one in another: a bad code either way,
                    # another state not offered to a state admin at all
                    "POST",
                    "/dashboard/boards",
                    {"state_id": str(s1), "code": "x", "name": "N", "time_zone": "UTC"},
                    expected(role, other_state=False, ok=422),
                ),
                (  # the form's answer to a state not in its list is 422 ("choose a state
                    # from the list"), as for any wrong field: nothing says the state exists
                    "POST",
                    "/dashboard/boards",
                    {"state_id": str(s2), "code": "x", "name": "N", "time_zone": "UTC"},
                    expected(role, other_state=False, ok=422),
                ),
                (  # S2 holds boards
                    "POST",
                    f"/dashboard/states/{s2}/delete",
                    {},
                    expected(role, other_state=True, state_route=True, ok=409),
                ),
                (
                    "POST",
                    f"/dashboard/states/{s1}/delete",
                    {},
                    expected(role, other_state=False, state_route=True, ok=409),
                ),
            ]
            for method, path, form, status in calls:
                if method == "GET":
                    answer = await client.get(path)
                else:
                    answer = await client.post(path, data={"csrf": csrf, **form})
                assert answer.status_code == status, (role, method, path, answer.status_code)
        after = await _db(
            cloud, "SELECT * FROM boards WHERE id = ANY(%s) ORDER BY id", [a, c]
        ) + await _db(cloud, "SELECT * FROM states WHERE id = ANY(%s) ORDER BY id", [s1, s2])
        assert after == before, role
        audited = await _db(
            cloud,
            "SELECT action, entity FROM audit_log WHERE id > %s AND entity IN ('board', 'state')",
            first_audit,
        )
        assert audited == [], (role, audited)

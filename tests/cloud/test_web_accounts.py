"""Accounts in a real Chromium at a phone's size, with a real SMTP server: a consumer signs up with
the code from the e-mail, edits their profile, then forgets the password and resets it through the
e-mailed link — after which the session they had is refused. Screenshots go to
tests/artifacts/web (account-*.png)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from cloud.app import create_app
from cloud.services import auth
from cloud.settings import CloudSettings
from tests.cloud.conftest import quiet_outboxes
from tests.cloud.test_web_app import ARTIFACTS, VIEWPORTS, Visit
from tests.cloud.world import PASSWORD, add_actor, build_world
from tests.support.services import free_tcp_port
from tests.support.smtp import SmtpServer, code_in, smtp_server, text_of
from tests.support.timing import HTTP_TIMEOUT_S

pytestmark = [pytest.mark.browser, pytest.mark.slow]
FIRST, SECOND = "lantern orchard pebble", "copper meadow violin"


@pytest.fixture
def smtp() -> AsyncIterator[SmtpServer]:
    with smtp_server() as server:
        yield server


@pytest.fixture
async def site(database_url: str, tmp_path: Path, smtp: SmtpServer) -> AsyncIterator[tuple]:
    quiet_outboxes(database_url)
    port = free_tcp_port()
    base = f"http://127.0.0.1:{port}"
    settings = CloudSettings(
        database_url=database_url,
        data_dir=tmp_path / "cloud",
        pool_min_size=1,
        pool_max_size=6,
        jobs_interval_s=0,
        session_check_s=0,
        smtp_url=smtp.url,
        mail_poll_s=0.05,
        public_url=base,
    )
    app = create_app(settings, database_url)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None))
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn offers no event to await
        await asyncio.sleep(0.05)
    yield base, app.state.pool
    server.should_exit = True
    await task


async def phone(browser, base: str) -> Visit:
    width, height = VIEWPORTS["phone"]
    context = await browser.new_context(viewport={"width": width, "height": height})
    return Visit(await context.new_page(), base)


async def check(visit: Visit, shot: str) -> None:
    """No sideways scrolling, no console errors, nothing from elsewhere; a screenshot kept."""
    width = visit.page.viewport_size["width"]
    scroll = await visit.page.evaluate("document.documentElement.scrollWidth")
    assert scroll <= width, f"{visit.page.url} is {scroll} px wide on a {width} px screen"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await visit.page.screenshot(path=ARTIFACTS / f"account-{shot}.png", full_page=True)
    assert not visit.errors, visit.errors
    assert not visit.foreign, visit.foreign


async def test_sign_up_then_forget_and_reset_on_a_phone(browser, site, smtp: SmtpServer) -> None:
    base, pool = site
    account, email = f"PH-{uuid.uuid4().hex[:6].upper()}", f"{uuid.uuid4().hex[:8]}@example.in"
    async with pool.connection() as conn:
        await conn.execute("INSERT INTO states (code, name) VALUES ('WB', 'West Bengal')")
        await conn.execute(
            "INSERT INTO boards (state_id, code, name) SELECT id, 'WBSEDCL', 'WBSEDCL'"
            " FROM states WHERE code = 'WB'"
        )
        await conn.execute(
            "INSERT INTO consumers (board_id, account_no, name, email)"
            " SELECT id, %s, 'Anita Das', %s FROM boards WHERE code = 'WBSEDCL'",
            (account, email),
        )
        await conn.commit()

    visit = await phone(browser, base)
    page = visit.page
    await page.goto(f"{base}/dashboard/login")
    await page.click("text=Create your account")
    if await page.query_selector("select[name=board_code]"):  # more boards than one: choose
        await page.select_option("select[name=board_code]", "WBSEDCL")
    await page.fill("input[name=account_no]", account)
    await page.fill("input[name=email]", email)
    await check(visit, "signup-ask")
    await page.click("button[type=submit]")
    await page.wait_for_selector("input[name=code]")
    await check(visit, "signup-code")
    code = code_in(await smtp.mailbox.next_to(email, "sign-up code"))
    await page.fill("input[name=code]", code)
    await page.fill("input[name=password]", "password123")
    await page.click("button[type=submit]")
    assert "most common" in await page.inner_text("[role=alert]")  # named, and nothing lost
    assert await page.input_value("input[name=code]") == code
    await page.fill("input[name=password]", FIRST)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{base}/dashboard/home")  # the consumer's home, signed in
    await page.wait_for_load_state("networkidle")
    assert "Anita Das" in await page.inner_text("main")
    await check(visit, "signed-up-home")

    await page.goto(f"{base}/dashboard/profile")
    # a refused form keeps what was typed
    await page.fill("input[name=name]", "Anita Das Roy")
    await page.fill("input[name=phone]", "call me")
    await page.click("form[action='/dashboard/profile'] button[type=submit]")
    assert await page.query_selector("[role=alert]")
    assert await page.input_value("input[name=name]") == "Anita Das Roy"
    assert await page.input_value("input[name=phone]") == "call me"
    await page.fill("input[name=name]", "Anita Das")
    await page.fill("input[name=phone]", "+91 98300 12345")
    await page.click("form[action='/dashboard/profile'] button[type=submit]")
    assert "Saved" in await page.inner_text("[role=status]")
    assert await page.input_value("input[name=phone]") == "+91 98300 12345"
    await page.check("input[name=energy_tracking]")
    await page.click("form[action='/dashboard/profile/consents'] button[type=submit]")
    assert "Given " in await page.inner_text("form[action='/dashboard/profile/consents']")
    await page.fill("input[name=quiet_from]", "22:00")
    await page.fill("input[name=quiet_until]", "07:00")
    await page.uncheck("input[name=channel_email]")
    await page.fill("input[name=zone]", "Mars/Olympus")
    await page.click("form[action^='/dashboard/profile/preferences'] button[type=submit]")
    assert await page.query_selector("[role=alert]")  # named; the other choices kept
    assert await page.input_value("input[name=quiet_from]") == "22:00"
    assert not await page.is_checked("input[name=channel_email]")
    assert await page.input_value("input[name=zone]") == "Mars/Olympus"
    await page.fill("input[name=zone]", "Asia/Kolkata")
    await page.click("form[action^='/dashboard/profile/preferences'] button[type=submit]")
    assert await page.input_value("input[name=quiet_from]") == "22:00"
    assert not await page.is_checked("input[name=channel_email]")
    await check(visit, "profile")

    # on another device: forgotten password, reset through the e-mailed link
    other = await phone(browser, base)
    await other.page.goto(f"{base}/dashboard/login")
    await other.page.click("text=Forgotten your password?")
    await other.page.fill("input[name=email]", email)
    await other.page.click("button[type=submit]")
    assert "on its way" in await other.page.inner_text("[role=status]")
    await check(other, "forgot-sent")
    message = await smtp.mailbox.next_to(email, "Reset your")
    link = next(w for w in text_of(message).split() if "/dashboard/password/reset?token=" in w)
    assert link.startswith(base)
    await other.page.goto(link)
    await other.page.fill("input[name=password]", SECOND)
    await check(other, "reset")
    await other.page.click("button[type=submit]")
    assert "password is changed" in (await other.page.inner_text("main")).lower()
    await smtp.mailbox.next_to(email, "was changed")

    # the first device's session is over: its next page asks for a sign-in
    await page.goto(f"{base}/dashboard")
    assert "/dashboard/login" in page.url
    assert "session has ended" in await page.inner_text("[role=status]")
    cookies = {c["name"]: c["value"] for c in await page.context.cookies()}
    async with httpx.AsyncClient(base_url=base, timeout=HTTP_TIMEOUT_S) as client:
        response = await client.get(
            "/api/v1/users/me", headers={"Authorization": f"Bearer {cookies['gg_access']}"}
        )
        assert response.status_code == 401
        response = await client.post(
            "/api/v1/auth/login", json={"email": email, "password": SECOND}
        )
        assert response.status_code == 200


# whether the element is on the screen, all of it, where the page stands now
IN_VIEW = """(selector) => {
  const r = document.querySelector(selector).getBoundingClientRect();
  return r.height > 0 && r.top >= 0 && r.bottom <= window.innerHeight;
}"""
PREFERENCES = "form[action^='/dashboard/profile/preferences']"


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
async def test_a_refused_choice_of_how_we_tell_you_is_in_view(
    cloud, served: httpx.AsyncClient, browser, viewport: str
) -> None:
    """The trial refused a time zone on a phone and said why 1,375 px below the top of the page
    it reloaded at. The answer now opens at the choices' box with the reason at its head (named
    at the page's top too, each with a link to the field); nothing typed is lost; saved, it says
    so in the same place. The quiet hours' heading reads on one line, inside its box."""
    async with cloud.pool.connection() as conn:
        email = await add_actor(conn, await build_world(conn), "CONSUMER")
    width, height = VIEWPORTS[viewport]
    context = await browser.new_context(viewport={"width": width, "height": height})
    visit = Visit(await context.new_page(), str(served.base_url).rstrip("/"))
    await visit.sign_in(email)
    page = visit.page
    await visit.open("/dashboard/profile", f"account-profile-{viewport}")
    legend = page.locator("fieldset:has(#quiet-hint) > legend")
    line_px = await legend.evaluate("(e) => parseFloat(getComputedStyle(e).lineHeight)")
    heading, box = await legend.bounding_box(), await legend.locator("..").bounding_box()
    assert heading["height"] < 1.5 * line_px, heading  # one line
    assert heading["x"] + heading["width"] <= box["x"] + box["width"], (heading, box)

    await page.fill("input[name=quiet_from]", "22:00")
    await page.fill("input[name=quiet_until]", "07:00")
    await page.uncheck("input[name=channel_email]")
    await page.fill("input[name=zone]", "Mars/Olympus")
    await page.click(f"{PREFERENCES} button[type=submit]")
    await page.wait_for_load_state("networkidle")
    assert page.url.endswith("/dashboard/profile/preferences#preferences"), page.url
    reason = await page.inner_text("#preferences [role=alert]")
    assert "Mars/Olympus is not a time zone (e.g. Asia/Kolkata)" in reason, reason
    assert await page.evaluate(IN_VIEW, "#preferences-error"), "the reason is out of sight"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=ARTIFACTS / f"account-prefs-refused-{viewport}-viewport.png")
    await page.screenshot(path=ARTIFACTS / f"account-prefs-refused-{viewport}.png", full_page=True)
    top = await page.inner_text("#preferences-refused")
    assert "were not saved: Mars/Olympus is not a time zone" in top, top
    for notice in ("#preferences-refused", "#preferences-error"):
        assert await page.get_attribute(f"{notice} a", "href") == "#pref-zone"
    assert await page.get_attribute("#pref-zone", "aria-invalid") == "true"
    # what was typed is still there
    assert await page.input_value("#pref-zone") == "Mars/Olympus"
    assert await page.input_value("input[name=quiet_from]") == "22:00"
    assert not await page.is_checked("input[name=channel_email]")
    await page.click("#preferences-error a")
    await page.wait_for_function(IN_VIEW, arg="#pref-zone")

    await page.fill("#pref-zone", "Asia/Dubai")
    await page.click(f"{PREFERENCES} button[type=submit]")
    await page.wait_for_load_state("networkidle")
    assert page.url.endswith("/dashboard/profile?preferences_saved=1#preferences"), page.url
    assert "Saved." in await page.inner_text("#preferences [role=status]")
    assert await page.evaluate(IN_VIEW, "#preferences [role=status]"), "saved, out of sight"
    assert await page.input_value("#pref-zone") == "Asia/Dubai"
    assert await page.get_attribute("#pref-zone", "aria-invalid") is None
    assert await page.locator("#preferences-refused").count() == 0
    await page.screenshot(path=ARTIFACTS / f"account-prefs-saved-{viewport}-viewport.png")
    assert not visit.errors, visit.errors


async def test_an_admin_invites_staff_who_choose_their_password(
    browser, site, smtp: SmtpServer
) -> None:
    base, pool = site
    admin, invitee = f"{uuid.uuid4().hex[:8]}@example.in", f"{uuid.uuid4().hex[:8]}@example.in"
    async with pool.connection() as conn:
        await conn.execute("INSERT INTO states (code, name) VALUES ('KA', 'Karnataka')")
        await conn.execute(
            "INSERT INTO boards (state_id, code, name) SELECT id, 'BESCOM', 'BESCOM'"
            " FROM states WHERE code = 'KA'"
        )
        await conn.commit()
        await auth.create_user(
            conn, email=admin, password=FIRST, role="STATE_ADMIN", state_code="KA", actor="t"
        )
    desk = await phone(browser, base)
    await desk.page.goto(f"{base}/dashboard/login")
    await desk.page.fill("input[name=email]", admin)
    await desk.page.fill("input[name=password]", FIRST)
    await desk.page.click("button[type=submit]")
    await desk.page.goto(f"{base}/dashboard/users")
    await desk.page.click("text=Invite a member of staff")
    await desk.page.fill("form[action='/dashboard/users/invite'] input[name=name]", "Kiran Rao")
    await desk.page.fill("form[action='/dashboard/users/invite'] input[name=email]", invitee)
    await desk.page.select_option("select[name=role]", "TECHNICIAN")
    await check(desk, "invite")
    await desk.page.click("form[action='/dashboard/users/invite'] button[type=submit]")
    assert invitee in await desk.page.inner_text("[role=status]")
    assert "Invited, no password yet" in await desk.page.inner_text("#users-table")

    message = await smtp.mailbox.next_to(invitee, "invited")
    assert "field technician for BESCOM" in text_of(message)
    link = next(w for w in text_of(message).split() if "/dashboard/invitation?token=" in w)
    newcomer = await phone(browser, base)
    await newcomer.page.goto(link)
    assert invitee in await newcomer.page.inner_text("main")
    assert await newcomer.page.input_value("input[name=name]") == "Kiran Rao"
    await newcomer.page.fill("input[name=password]", SECOND)
    await check(newcomer, "invitation")
    await newcomer.page.click("button[type=submit]")
    await newcomer.page.wait_for_load_state("networkidle")
    assert "/dashboard/login" not in newcomer.page.url
    await newcomer.page.goto(link)  # used: it says so, in words
    assert "not valid any more" in await newcomer.page.inner_text("main")

    # the admin deactivates the newcomer from the list, and the newcomer's session ends
    await desk.page.goto(f"{base}/dashboard/users?q={invitee}")
    row = desk.page.locator("#users-table tbody tr", has_text=invitee)
    await row.locator("button:has-text('Deactivate')").click()
    assert "is deactivated" in await desk.page.inner_text("[role=status]")
    await check(desk, "users-deactivated")
    await newcomer.page.goto(f"{base}/dashboard")
    assert "/dashboard/login" in newcomer.page.url

    # the admin keeps a consumer's contact, which sign-up checks
    async with pool.connection() as conn:
        consumer = await (
            await conn.execute(
                "INSERT INTO consumers (board_id, account_no, name) SELECT id, 'KA-1', 'Latha'"
                " FROM boards WHERE code = 'BESCOM' RETURNING id"
            )
        ).fetchone()
        await conn.commit()
    await desk.page.goto(f"{base}/dashboard/consumers/{consumer['id']}")
    await desk.page.click("summary:has-text('Contact')")
    await desk.page.fill("details.contact input[name=email]", "not an address")
    await desk.page.evaluate("document.querySelector('details.contact form').noValidate = true")
    await desk.page.click("details.contact button[type=submit]")
    assert "looks like name@example.in" in await desk.page.inner_text("[role=alert]")
    await desk.page.fill("details.contact input[name=email]", "Latha@Example.in")
    await desk.page.click("details.contact button[type=submit]")
    assert "Saved" in await desk.page.inner_text("[role=status]")
    assert "latha@example.in" in await desk.page.inner_text("details.contact summary")
    await check(desk, "consumer-contact")


async def test_a_bill_issued_shows_in_the_inbox_and_opens_the_bill(
    browser, site, smtp: SmtpServer
) -> None:
    base, pool = site
    async with pool.connection() as conn:
        world = await build_world(conn)
        consumer = await add_actor(conn, world, "CONSUMER")
        admin = await add_actor(conn, world, "BOARD_ADMIN")
        await conn.commit()
    draft = world.site("own").objects["invoice_draft"].id
    visit = await phone(browser, base)
    await visit.page.goto(f"{base}/dashboard/login")
    await visit.page.fill("input[name=email]", consumer)
    await visit.page.fill("input[name=password]", PASSWORD)
    await visit.page.click("button[type=submit]")
    await visit.page.wait_for_load_state("networkidle")
    assert await visit.page.is_hidden("#unread-badge")
    async with httpx.AsyncClient(base_url=base, timeout=HTTP_TIMEOUT_S) as client:
        login = await client.post("/api/v1/auth/login", json={"email": admin, "password": PASSWORD})
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        issued = await client.post(f"/api/v1/invoices/{draft}/issue", headers=headers)
        assert issued.status_code == 200, issued.text
    await visit.page.reload()
    await visit.page.wait_for_selector("#unread-badge:not([hidden])")
    assert await visit.page.inner_text("#unread-badge") == "1"
    await visit.page.click("a.inbox-link")
    await visit.page.wait_for_load_state("networkidle")
    assert "is ready" in await visit.page.inner_text("ul.inbox")
    await check(visit, "inbox")
    await visit.page.click("ul.inbox button:has-text('Open')")
    await visit.page.wait_for_url(f"{base}/dashboard/invoices/{draft}")
    await visit.page.wait_for_load_state("networkidle")
    assert await visit.page.is_hidden("#unread-badge")
    await smtp.mailbox.next_to(consumer.lower(), "is ready")

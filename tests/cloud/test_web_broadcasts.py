"""Broadcasts in a real Chromium, with a real SMTP server and a real SMS webhook: a board admin at
a desktop announces to the board's shops, is first told what was wrong (and keeps what they
typed), reviews whom it reaches, goes back to change it and sends (once, however often the
review is sent); the shop's e-mail arrives, and the consumer's page shows the desk how each
channel went — the e-mail sent, the text not sent for want of a phone number. A support agent
on a phone sees the same pages and reviews one of their own. Screenshots go to
tests/artifacts/web (broadcast-*.png)."""

from __future__ import annotations

import asyncio
import html
import re
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import uvicorn
from playwright.async_api import Error as PlaywrightError

from cloud.app import create_app
from cloud.services import auth
from cloud.settings import CloudSettings
from tests.cloud.conftest import quiet_outboxes
from tests.cloud.test_web_app import ARTIFACTS, VIEWPORTS, Visit
from tests.cloud.world import PASSWORD, add_actor, build_world
from tests.support.services import free_tcp_port
from tests.support.sms import SmsReceiver, sms_receiver
from tests.support.smtp import SmtpServer, smtp_server, text_of

pytestmark = [pytest.mark.browser, pytest.mark.slow]
SECRET = "test-sms-secret-" + uuid.uuid4().hex


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with smtp_server() as server:
        yield server


@pytest.fixture
async def receiver() -> AsyncIterator[SmsReceiver]:
    async with sms_receiver(SECRET) as opened:
        yield opened


@pytest.fixture
async def site(
    database_url: str, tmp_path: Path, smtp: SmtpServer, receiver: SmsReceiver
) -> AsyncIterator[tuple]:
    """The app on a real port, e-mailing through `smtp` and texting through `receiver`."""
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
        sms_webhook_url=receiver.url,
        sms_webhook_secret=SECRET,
        sms_poll_s=0.05,
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


async def person(browser, base: str, viewport: str, email: str) -> Visit:
    width, height = VIEWPORTS[viewport]
    context = await browser.new_context(viewport={"width": width, "height": height})
    visit = Visit(await context.new_page(), base)
    await visit.sign_in(email)
    return visit


async def check(visit: Visit, shot: str) -> None:
    """No sideways scrolling, no console errors, nothing from elsewhere; a screenshot kept."""
    width = visit.page.viewport_size["width"]
    scroll = await visit.page.evaluate("document.documentElement.scrollWidth")
    assert scroll <= width, f"{visit.page.url} is {scroll} px wide on a {width} px screen"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await visit.page.screenshot(path=ARTIFACTS / f"broadcast-{shot}.png", full_page=True)
    assert not visit.errors, visit.errors
    assert not visit.foreign, visit.foreign


async def email_sent(pool, address: str, subject: str, timeout_s: float = 30) -> None:
    """Wait until the outbox marks the message sent (the server's acceptance comes first)."""
    deadline = time.monotonic() + timeout_s
    while True:
        async with pool.connection() as conn:
            cursor = await conn.execute(
                "SELECT status FROM email_outbox WHERE to_address = %s AND subject = %s",
                (address, subject),
            )
            row = await cursor.fetchone()
        if row and row["status"] == "sent":
            return
        assert time.monotonic() < deadline, f"the e-mail to {address} is {row}"
        await asyncio.sleep(0.05)


async def test_an_admin_broadcasts_and_the_desk_sees_how_it_went(
    browser, site, smtp: SmtpServer
) -> None:
    base, pool = site
    async with pool.connection() as conn:
        world = await build_world(conn)
        own = world.site("own").consumer.id
        await conn.execute("UPDATE consumers SET category = 'commercial' WHERE id = %s", (own,))
        admin_email = await add_actor(conn, world, "BOARD_ADMIN")
        agent_email = await add_actor(conn, world, "SUPPORT_AGENT")
        await conn.execute(
            "UPDATE users SET name = 'Asha Menon' WHERE email = %s", (admin_email.lower(),)
        )
        shop_email = f"shop-{world.tag}@example.in".lower()
        shop = await auth.create_user(
            conn, email=shop_email, password=PASSWORD, role="CONSUMER", consumer_id=own, actor="t"
        )
        await conn.execute(  # e-mail and texts, but no phone number on the account
            "INSERT INTO notification_preferences (user_id, channels) VALUES (%s, %s)",
            (shop["id"], ["in_app", "email", "sms"]),
        )
        await conn.commit()

    admin = await person(browser, base, "desktop", admin_email)
    page = admin.page
    assert "Broadcasts" in await page.text_content("header nav")
    await page.click("header nav a[href='/dashboard/broadcasts']")
    await page.wait_for_load_state("networkidle")
    await check(admin, "desktop-empty")
    assert "Nothing has been broadcast yet" in await page.inner_text("#broadcasts-table")

    # a category for staff makes no sense: said, and nothing typed is lost
    title = "Market road: supply off on Sunday"
    body = (
        "Supply to the market road is off from 10:00 to 14:00 on Sunday for line work.\n"
        "Shops east of the bridge are not affected."
    )
    await page.select_option("#broadcast-form select[name=audience]", "staff")
    await page.select_option("#broadcast-form select[name=category]", "commercial")
    await page.fill("#broadcast-form input[name=title]", title)
    await page.fill("#broadcast-form textarea[name=body]", body)
    await page.check("#broadcast-form input[name=urgent]")
    await page.click("#broadcast-form button[type=submit]")
    await page.wait_for_load_state("networkidle")
    error = await page.inner_text("#broadcast-error")
    assert error == "A category chooses consumers; a broadcast to staff has none"
    assert await page.input_value("#broadcast-form input[name=title]") == title
    assert await page.input_value("#broadcast-form textarea[name=body]") == body
    assert await page.is_checked("#broadcast-form input[name=urgent]")
    assert await page.input_value("#broadcast-form select[name=category]") == "commercial"
    # the refused form answers 422, which Chromium reports on the console: that one is expected
    assert admin.errors == [
        "error: Failed to load resource: the server responded with a status of 422"
        " (Unprocessable Entity)"
    ]
    admin.errors.clear()
    await check(admin, "desktop-error")

    # the form answers with a review: whom it reaches, the message as it will read; nothing sent
    async with pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT count(*) AS n FROM users WHERE consumer_id = %s AND active", (own,)
        )
        accounts = (await cursor.fetchone())["n"]
    people = "1 person" if accounts == 1 else f"{accounts} people"
    await page.select_option("#broadcast-form select[name=audience]", "consumers")
    await page.click("#broadcast-form button[type=submit]")
    await page.wait_for_load_state("networkidle")
    reach = await page.inner_text("#review-reach")
    assert reach == (
        f"This will tell {people} of board A-{world.tag} — Board A. Nothing has been sent yet."
    )
    facts = await page.inner_text("#review-facts")
    assert f"Consumers' accounts\n{accounts} · only those in Commercial" in facts, facts
    assert "Opted out of announcements, so not told\n0" in facts, facts
    assert "even in their quiet hours" in facts, facts
    assert "Staff accounts" not in facts, facts
    shown = await page.inner_text("#review-message")
    assert title in shown, shown
    assert body.splitlines()[1] in shown, shown
    assert not await page.locator("#broadcast-form").count()
    await check(admin, "desktop-review")
    async with pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT count(*) AS n FROM broadcasts WHERE board_id = %s", (world.boards["A"],)
        )
        assert (await cursor.fetchone())["n"] == 0

    # going back to change it keeps everything typed
    await page.click("#broadcast-confirm button[value=edit]")
    await page.wait_for_load_state("networkidle")
    assert await page.input_value("#broadcast-form input[name=title]") == title
    assert await page.input_value("#broadcast-form textarea[name=body]") == body
    assert await page.is_checked("#broadcast-form input[name=urgent]")
    assert await page.input_value("#broadcast-form select[name=category]") == "commercial"
    assert await page.input_value("#broadcast-form select[name=audience]") == "consumers"
    # the form sent for its review, as the browser sent it (what it sends again when asked)
    async with page.expect_request(
        lambda r: r.method == "POST" and r.url.endswith("/dashboard/broadcasts")
    ) as reviewed:
        await page.click("#broadcast-form button[type=submit]")
    review_request = await reviewed.value
    await page.wait_for_load_state("networkidle")
    send = page.locator("#broadcast-confirm button[value=send]")
    assert await send.inner_text() == f"Send to {people}"
    once = await page.input_value("#broadcast-confirm input[name=once]")
    await send.click()
    await page.wait_for_url(re.compile(r".*/dashboard/broadcasts\?told=\d+&skipped=0$"))
    async with pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT * FROM broadcasts WHERE board_id = %s", (world.boards["A"],)
        )
        [sent] = await cursor.fetchall()
    assert (sent["audience"], sent["category"], sent["title"]) == ("consumers", "commercial", title)
    assert sent["body"] == body  # the form's CRLF line ends kept as one \n each
    assert sent["urgent"] is True
    assert sent["recipients"] == accounts
    assert await page.inner_text("#broadcast-sent") == f"Sent. People told: {accounts}."

    # Back: the browser kept no copy of the review (no-store) and must ask before it sends
    # its form again; said yes to, the same form comes back with the key of the first, and
    # its Send tells nobody twice
    with pytest.raises(PlaywrightError, match="ERR_CACHE_MISS"):
        await page.go_back()
    again = await page.request.post(
        review_request.url,
        data=review_request.post_data_buffer,
        headers={"Content-Type": await review_request.header_value("content-type")},
    )
    assert again.ok, await again.text()
    hidden = re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', await again.text())
    fields = {name: html.unescape(value) for name, value in hidden}
    assert fields["once"] == once
    resent = await page.request.post(review_request.url, form={**fields, "step": "send"})
    assert resent.url.endswith(f"/dashboard/broadcasts?already={sent['id']}"), resent.url
    await page.goto(resent.url)
    notice = await page.inner_text("#broadcast-already")
    assert notice.startswith("This broadcast went already, at "), notice
    assert notice.endswith(f" IST, to {people}, so nobody was told twice."), notice
    async with pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT count(*) AS n FROM broadcasts WHERE board_id = %s", (world.boards["A"],)
        )
        assert (await cursor.fetchone())["n"] == 1
        cursor = await conn.execute(
            "SELECT count(*) AS n FROM notifications WHERE event_key LIKE 'broadcast:%%'"
            " AND user_id = %s",
            (shop["id"],),
        )
        assert (await cursor.fetchone())["n"] == 1
    row = await page.inner_text("#broadcasts-table tbody tr")
    assert title in row
    assert "Asha Menon" in row
    assert "Consumers · Commercial" in row
    await check(admin, "desktop-sent")

    mail = await smtp.mailbox.next_to(shop_email, title)
    assert body.splitlines()[0] in text_of(mail)
    await email_sent(pool, shop_email, title)

    # the consumer's page tells the desk how each channel went
    await page.goto(f"{base}/dashboard/consumers/{own}")
    await page.wait_for_load_state("networkidle")
    shop_row = page.locator("#messages-table tbody tr").filter(
        has_text="Text not sent: no phone number on the account"
    )
    await shop_row.wait_for()
    said = await shop_row.inner_text()
    assert title in said
    assert f"Announcement · to {shop_email}" in said
    assert "In the inbox, not read yet" in said
    assert "E-mail sent " in said
    assert " IST" in said
    await page.locator("#messages-sent").scroll_into_view_if_needed()
    await check(admin, "desktop-consumer")

    # a support agent on a phone sees the same
    agent = await person(browser, base, "phone", agent_email)
    await agent.page.goto(f"{base}/dashboard/broadcasts")
    await agent.page.wait_for_load_state("networkidle")
    assert title in await agent.page.inner_text("#broadcasts-table")
    await check(agent, "phone-list")
    # the agent's review on a phone, left unsent
    await agent.page.select_option("#broadcast-form select[name=audience]", "everyone")
    await agent.page.fill("#broadcast-form input[name=title]", "Office closed on Monday")
    await agent.page.fill("#broadcast-form textarea[name=body]", "The office reopens Tuesday.")
    await agent.page.click("#broadcast-form button[type=submit]")
    await agent.page.wait_for_load_state("networkidle")
    facts = await agent.page.inner_text("#review-facts")
    assert "Staff accounts" in facts, facts
    assert "Consumers' accounts" in facts, facts
    assert "no texts (only urgent announcements are texted)" in facts, facts
    await check(agent, "phone-review")
    await agent.page.goto(f"{base}/dashboard/consumers/{own}")
    await agent.page.wait_for_load_state("networkidle")
    assert "Text not sent: no phone number on the account" in await agent.page.inner_text(
        "#messages-table"
    )
    await check(agent, "phone-consumer")

    # and the shop reads it in the inbox
    customer = await person(browser, base, "phone", shop_email)
    await customer.page.goto(f"{base}/dashboard/inbox")
    assert title in await customer.page.inner_text("ul.inbox")
    response = await customer.page.goto(f"{base}/dashboard/broadcasts")
    assert response.status == 403  # consumers do not broadcast
    assert "Not allowed" in await customer.page.inner_text("main")
    # the permission in words, not its code
    assert "Send announcements to a board" in await customer.page.inner_text("main")
    assert "notification:broadcast" not in await customer.page.inner_text("main")
    customer.errors.clear()  # Chromium reports the 403 on the console
    await check(customer, "phone-consumer-refused")

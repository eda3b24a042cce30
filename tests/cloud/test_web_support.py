"""The support desk in a real Chromium, with a real SMTP server: a consumer's high bill is issued
and tells them; on a phone they allow automatic answers, ask why the bill is high and get an
answer drawn from their own bills at once; they ask for a person; an agent at a desktop finds the
query in the queue, reads the draft beside the consumer's bills and answers; the consumer sees
the answer in the inbox, in the thread and by e-mail. Screenshots go to tests/artifacts/web
(support-*.png)."""

from __future__ import annotations

import json
import re
from datetime import date, timedelta
from decimal import Decimal

import httpx
import pytest

from tests.cloud import test_web_accounts as accounts
from tests.cloud.test_web_app import ARTIFACTS, VIEWPORTS, Visit
from tests.cloud.world import PASSWORD, World, add_actor, build_world
from tests.support.smtp import SmtpServer, text_of
from tests.support.timing import HTTP_TIMEOUT_S

pytestmark = [pytest.mark.browser, pytest.mark.slow]
site, smtp = accounts.site, accounts.smtp  # the served app with a real SMTP server


async def check(visit: Visit, shot: str) -> None:
    """No sideways scrolling, no console errors, nothing from elsewhere; a screenshot kept."""
    width = visit.page.viewport_size["width"]
    scroll = await visit.page.evaluate("document.documentElement.scrollWidth")
    assert scroll <= width, f"{visit.page.url} is {scroll} px wide on a {width} px screen"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await visit.page.screenshot(path=ARTIFACTS / f"support-{shot}.png", full_page=True)
    assert not visit.errors, visit.errors
    assert not visit.foreign, visit.foreign


async def bill(pool, world: World, start: date, end: date, units: str, status: str) -> int:
    """A bill of the own consumer under slabs of 200 kWh at ₹4.50, ₹6.00 and ₹7.50."""
    site_ = world.site("own")
    slabs, rest, lower = [], Decimal(units), Decimal(0)
    for upper, rate in ((Decimal(200), "4.50"), (Decimal(400), "6.00"), (None, "7.50")):
        part = rest if upper is None else min(rest, upper - lower)
        if part > 0:
            span = f"{lower} to {upper}" if upper else f"above {lower}"
            slabs.append((f"Energy, slab {span} kWh", part, Decimal(rate)))
        rest -= part
        lower = upper or lower
        if rest <= 0:
            break
    total = sum((q * r for _, q, r in slabs), Decimal(0)).quantize(Decimal("0.01"))
    async with pool.connection() as conn:
        cursor = await conn.execute(
            "INSERT INTO invoices (board_id, consumer_id, period_start, period_end, status,"
            " currency, units, total, amount_due, estimated, due_date, details)"
            " VALUES (%s, %s, %s, %s, %s, 'INR', %s, %s, %s, false, %s, %s) RETURNING id",
            (
                site_.board.id,
                site_.consumer.id,
                start,
                end,
                status,
                units,
                total,
                total,
                end + timedelta(days=15),
                json.dumps({"segments": [{"tariff_version": site_.objects["version"].id}]}),
            ),
        )
        invoice = (await cursor.fetchone())["id"]
        for position, (description, quantity, rate) in enumerate(slabs):
            await conn.execute(
                "INSERT INTO invoice_lines (invoice_id, position, code, description, quantity,"
                " unit, rate, amount) VALUES (%s, %s, 'energy', %s, %s, 'kWh', %s, %s)",
                (invoice, position, description, quantity, rate, quantity * rate),
            )
        await conn.commit()
    return invoice


async def test_a_high_bill_asked_about_answered_escalated_and_answered_by_a_person(
    browser, site, smtp: SmtpServer
) -> None:
    base, pool = site
    async with pool.connection() as conn:
        world = await build_world(conn)
        await conn.execute(  # the world's own bills are of another period: out of the way
            "UPDATE invoices SET status = 'cancelled' WHERE consumer_id = %s",
            (world.site("own").consumer.id,),
        )
        await conn.execute(  # and so are its queries: the consumer starts with none
            "UPDATE support_queries SET deleted_at = now() WHERE consumer_id = %s",
            (world.site("own").consumer.id,),
        )
        consumer_email = await add_actor(conn, world, "CONSUMER")
        agent_email = await add_actor(conn, world, "SUPPORT_AGENT")
        admin_email = await add_actor(conn, world, "BOARD_ADMIN")
        await conn.execute("UPDATE users SET name = 'Ravi Kumar' WHERE email = %s", (agent_email,))
        await conn.commit()
    await bill(pool, world, date(2026, 8, 1), date(2026, 9, 1), "190", "paid")
    await bill(pool, world, date(2026, 9, 1), date(2026, 10, 1), "210", "paid")
    october = await bill(pool, world, date(2026, 10, 1), date(2026, 11, 1), "465", "draft")

    # the board issues October's bill: the consumer hears of it
    async with httpx.AsyncClient(base_url=base, timeout=HTTP_TIMEOUT_S) as api:
        login = await api.post(
            "/api/v1/auth/login", json={"email": admin_email, "password": PASSWORD}
        )
        token = login.json()["access_token"]
        issued = await api.post(
            f"/api/v1/invoices/{october}/issue", headers={"Authorization": f"Bearer {token}"}
        )
        assert issued.status_code == 200, issued.text
    await smtp.mailbox.next_to(consumer_email.lower(), "is ready")

    consumer = await accounts.phone(browser, base)
    page = consumer.page
    await consumer.sign_in(consumer_email)
    await page.goto(f"{base}/dashboard/inbox")
    assert "is ready" in await page.inner_text("main")
    await page.goto(f"{base}/dashboard/profile")
    await page.check("input[name=automated_support]")
    await page.click("form[action='/dashboard/profile/consents'] button[type=submit]")
    await page.wait_for_load_state("networkidle")

    await page.goto(f"{base}/dashboard/support")
    await check(consumer, "consumer-empty")
    assert "not asked anything yet" in await page.inner_text("main")
    await page.fill("textarea[name=text]", "Why is my bill so high this month? It is double!")
    await page.select_option("select[name=invoice_id]", str(october))
    await page.click("form[action='/dashboard/support'] button[type=submit]")
    await page.wait_for_url(re.compile(r".*/dashboard/support/\d+$"))
    query_id = int(page.url.rsplit("/", 1)[1])
    thread = await page.inner_text("ol.thread")
    assert "Automatic answer from your records" in thread
    assert "₹2,587.50 for 465.00 kWh over 31 days, 15.00 kWh a day" in thread
    assert "1–30 Sep 2026: 210.00 kWh, ₹960.00" in thread
    assert "Energy, slab above 400 kWh at ₹7.50 a kWh" in thread
    await check(consumer, "consumer-automatic")
    await page.click("text=Ask a person instead")
    await page.wait_for_load_state("networkidle")
    assert "Passed to a person" in await page.inner_text("main")

    width, height = VIEWPORTS["desktop"]
    context = await browser.new_context(viewport={"width": width, "height": height})
    agent = Visit(await context.new_page(), base)
    desk = agent.page
    await agent.sign_in(agent_email)
    await agent.open("/dashboard/support?who=nobody", "support-desk-queue")
    await desk.click(f"a[href='/dashboard/support/{query_id}']")
    await desk.wait_for_load_state("networkidle")
    aside = await desk.inner_text("main")
    assert "Latest bills" in aside
    assert "October 2026: 465 kWh, ₹2,587.50" in aside
    assert "the one the query is about" in aside
    assert await desk.input_value("#answer textarea[name=body]") == ""  # answered already
    await desk.select_option("select[name=assignee_id]", str(world.users["SUPPORT_AGENT"].id))
    await desk.click(f"form[action='/dashboard/support/{query_id}/change'] button")
    await desk.wait_for_load_state("networkidle")
    await desk.fill(
        "#answer textarea[name=body]",
        "We checked your meter: it reads correctly. Your use doubled in October; the units"
        " above 400 kWh are charged at ₹7.50.",
    )
    await desk.click("#answer button[type=submit]")
    await desk.wait_for_load_state("networkidle")
    assert "Ravi · Support team" in await desk.inner_text("ol.thread")
    assert await desk.inner_text("main .notice.good") == "Sent."  # said, not left to guess
    await desk.screenshot(path=ARTIFACTS / "support-desk-thread.png", full_page=True)
    assert not agent.errors, agent.errors

    mail = await smtp.mailbox.next_to(consumer_email.lower(), f"A reply to your query #{query_id}")
    assert "Your use doubled in October" in text_of(mail)
    assert f"{base}/dashboard/support/{query_id}" in text_of(mail)
    await page.goto(f"{base}/dashboard/inbox")
    inbox = await page.inner_text("main")
    assert f"A reply to your query #{query_id}" in inbox
    reply = page.locator("li", has_text=f"A reply to your query #{query_id}")
    await reply.get_by_role("button", name="Open").click()
    await page.wait_for_url(f"{base}/dashboard/support/{query_id}")
    assert "Your use doubled in October" in await page.inner_text("ol.thread")
    await check(consumer, "consumer-answered")

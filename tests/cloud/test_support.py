"""The support desk: a consumer's query, classified and answered from their own records when
they consented (and never when they did not), escalated to a person, worked by an agent from the
queue, with service levels that open an alert when breached; every draft's figures are the
database's."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest

from cloud.access import Principal
from cloud.services import listings, support
from cloud.services.cloud_checks import run_checks
from tests.cloud.conftest import Cloud, open_cloud
from tests.cloud.world import PASSWORD, World, add_actor, build_world
from tests.support.smtp import SmtpServer, smtp_server, text_of


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with smtp_server() as server:
        yield server


@pytest.fixture
async def cloud(database_url: str, tmp_path: Path, smtp: SmtpServer) -> AsyncIterator[Cloud]:
    async with open_cloud(
        database_url,
        tmp_path / "cloud",
        smtp_url=smtp.url,
        mail_poll_s=0.05,
        public_url="https://portal.example.in",
    ) as opened:
        yield opened


async def signed_in(cloud: Cloud, email: str) -> dict[str, str]:
    response = await cloud.client.post(
        "/api/v1/auth/login", json={"email": email, "password": PASSWORD}
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def desk(cloud: Cloud, *, consent: bool) -> tuple[World, dict, dict, str]:
    """A world with its own consumer signed in (consenting or not) and a support agent."""
    async with cloud.pool.connection() as conn:
        world = await build_world(conn)
        consumer_email = await add_actor(conn, world, "CONSUMER")
        agent_email = await add_actor(conn, world, "SUPPORT_AGENT")
        await conn.commit()
    consumer = await signed_in(cloud, consumer_email)
    if consent:
        response = await cloud.client.post(
            "/api/v1/users/me/consents",
            json={"kind": "automated_support", "granted": True},
            headers=consumer,
        )
        assert response.status_code == 200, response.text
    return world, consumer, await signed_in(cloud, agent_email), consumer_email.lower()


async def add_bill(
    cloud: Cloud,
    world: World,
    start: date,
    end: date,
    units: str,
    slabs: list[tuple[str, str, str]],
    *,
    estimated: bool = False,
    tariff_version: int | None = None,
) -> int:
    """An issued bill of the own consumer, with an energy line per (description, units, rate)."""
    site = world.site("own")
    total = sum((Decimal(q) * Decimal(r) for _, q, r in slabs), Decimal(0)).quantize(
        Decimal("0.01")
    )
    version = tariff_version or site.objects["version"].id
    async with cloud.pool.connection() as conn:
        cursor = await conn.execute(
            "INSERT INTO invoices (board_id, consumer_id, period_start, period_end, status,"
            " currency, units, total, amount_due, estimated, due_date, details, issued_at)"
            " VALUES (%s, %s, %s, %s, 'issued', 'INR', %s, %s, %s, %s, %s, %s, now())"
            " RETURNING id",
            (
                site.board.id,
                site.consumer.id,
                start,
                end,
                units,
                total,
                total,
                estimated,
                end + timedelta(days=15),
                json.dumps(
                    {
                        "segments": [{"tariff_version": version, "units": units}],
                        "notes": ["estimated from 10.000 units a day"] if estimated else [],
                    }
                ),
            ),
        )
        invoice = (await cursor.fetchone())["id"]
        for position, (description, quantity, rate) in enumerate(slabs):
            await conn.execute(
                "INSERT INTO invoice_lines (invoice_id, position, code, description, quantity,"
                " unit, rate, amount) VALUES (%s, %s, 'energy', %s, %s, 'kWh', %s, %s)",
                (
                    invoice,
                    position,
                    description,
                    quantity,
                    rate,
                    (Decimal(quantity) * Decimal(rate)).quantize(Decimal("0.01")),
                ),
            )
        await conn.commit()
    return invoice


async def test_a_consented_high_bill_query_is_answered_from_the_records(
    cloud: Cloud, smtp: SmtpServer
) -> None:
    world, consumer, agent, email = await desk(cloud, consent=True)
    async with cloud.pool.connection() as conn:
        cursor = await conn.execute(
            "INSERT INTO tariff_versions (tariff_id, effective_from, spec)"
            " SELECT tariff_id, '2030-01-01', spec FROM tariff_versions WHERE id = %s"
            " RETURNING id",
            (world.site("own").objects["version"].id,),
        )
        new_version = (await cursor.fetchone())["id"]
        await conn.commit()
    await add_bill(
        cloud, world, date(2026, 8, 1), date(2026, 9, 1), "186", [("Energy", "186", "4.5")]
    )
    await add_bill(
        cloud,
        world,
        date(2026, 9, 1),
        date(2026, 10, 1),
        "210",
        [
            ("Energy, slab 0 to 200 kWh", "200", "4.5"),
            ("Energy, slab 200 to 400 kWh", "10", "6.0"),
        ],
    )
    october = await add_bill(
        cloud,
        world,
        date(2026, 10, 1),
        date(2026, 11, 1),
        "434",
        [
            ("Energy, slab 0 to 200 kWh", "200", "4.5"),
            ("Energy, slab 200 to 400 kWh", "200", "6.0"),
            ("Energy, slab above 400 kWh", "34", "7.5"),
        ],
        estimated=True,
        tariff_version=new_version,
    )
    response = await cloud.client.post(
        "/api/v1/support/queries",
        json={"text": "Why is my electricity bill so high this month? It doubled!"},
        headers=consumer,
    )
    assert response.status_code == 201, response.text
    query = response.json()
    assert query["category"] == "high_bill"
    assert query["category_source"] == "classifier"
    assert "draft" not in query  # the desk's workings stay inside
    assert query["status"] == "waiting_for_consumer"
    assert query["auto_answered_at"] is not None
    answer = query["messages"][-1]
    assert answer["author_kind"] == "automatic"

    # the agent sees the draft's facts; each figure is the database's
    detail = await cloud.client.get(f"/api/v1/support/queries/{query['id']}", headers=agent)
    facts = detail.json()["draft_facts"]
    async with cloud.pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT DISTINCT ON (period_start) id, period_start, period_end, units, total,"
            " estimated FROM invoices WHERE consumer_id = %s AND status <> 'draft'"
            " AND status <> 'cancelled' ORDER BY period_start DESC, version DESC",
            (world.site("own").consumer.id,),
        )
        bills = await cursor.fetchall()
        cursor = await conn.execute(
            "SELECT description, rate FROM invoice_lines WHERE invoice_id = %s"
            " ORDER BY rate DESC LIMIT 1",
            (october,),
        )
        top = await cursor.fetchone()
    this, earlier = bills[0], bills[1:4]
    assert this["id"] == october == facts["bill"]["invoice_id"]
    days = (this["period_end"] - this["period_start"]).days
    assert facts["bill"]["days"] == days == 31
    assert Decimal(facts["bill"]["units"]) == this["units"]
    assert Decimal(facts["bill"]["total"]) == this["total"]
    per_day = (this["units"] / days).quantize(Decimal("0.01"), ROUND_HALF_UP)
    assert Decimal(facts["bill"]["units_per_day"]) == per_day
    assert [p["invoice_id"] for p in facts["previous"]] == [b["id"] for b in earlier]
    average = (
        sum(b["units"] for b in earlier)
        / sum((b["period_end"] - b["period_start"]).days for b in earlier)
    ).quantize(Decimal("0.01"), ROUND_HALF_UP)
    assert Decimal(facts["previous_units_per_day"]) == average
    change = ((per_day - average) / average * 100).quantize(Decimal(1), ROUND_HALF_UP)
    assert Decimal(facts["change_pct"]) == change
    assert facts["bill"]["top_slab"]["description"] == top["description"]
    assert Decimal(facts["bill"]["top_slab"]["rate"]) == top["rate"]
    assert facts["bill"]["estimated"] is True
    assert facts["tariff_change"] == [{"version": new_version, "effective_from": "2030-01-01"}]

    # the words say exactly those figures
    body = answer["body"]
    assert "₹2,355.00 for 434.00 kWh over 31 days, 14.00 kWh a day" in body
    assert f"{abs(change)} % more electricity a day" in body
    assert "Energy, slab above 400 kWh at ₹7.50 a kWh" in body
    assert "estimated" in body
    assert "changed on 1 Jan 2030" in body

    # the consumer hears of it in the inbox and by e-mail
    inbox = (await cloud.client.get("/api/v1/notifications", headers=consumer)).json()
    assert inbox["items"][0]["kind"] == "support_reply"
    assert inbox["items"][0]["link"] == f"/dashboard/support/{query['id']}"
    mail = await smtp.mailbox.next_to(email, f"query #{query['id']}")
    assert f"https://portal.example.in/dashboard/support/{query['id']}" in text_of(mail)


async def test_without_consent_nothing_is_automatic(cloud: Cloud) -> None:
    world, consumer, agent, _ = await desk(cloud, consent=False)
    await add_bill(
        cloud, world, date(2026, 10, 1), date(2026, 11, 1), "434", [("Energy", "434", "5")]
    )
    response = await cloud.client.post(
        "/api/v1/support/queries",
        json={"text": "Why is my electricity bill so high this month? It doubled!"},
        headers=consumer,
    )
    assert response.status_code == 201, response.text
    query = response.json()
    assert query["category"] is None
    assert query["status"] == "open"
    assert query["auto_answered_at"] is None
    assert [m["author_kind"] for m in query["messages"]] == ["consumer"]
    seen = await cloud.client.get(f"/api/v1/support/queries/{query['id']}", headers=agent)
    assert seen.json()["predicted"] is None
    assert seen.json()["draft"] is None
    assert seen.json()["sla_due_at"] is not None
    # nor may an agent run the automatic steps on it
    for step in ("classify", "draft"):
        refused = await cloud.client.post(
            f"/api/v1/support/queries/{query['id']}/{step}", headers=agent
        )
        assert refused.status_code == 409, refused.text
        assert "consented" in refused.json()["detail"]
    # even a category the records could answer, chosen by the consumer, gets no draft
    response = await cloud.client.post(
        "/api/v1/support/queries",
        json={"text": "No light since morning", "category": "outage"},
        headers=consumer,
    )
    assert response.json()["status"] == "open"
    assert len(response.json()["messages"]) == 1


async def test_escalated_then_answered_by_an_agent_from_the_queue(
    cloud: Cloud, smtp: SmtpServer
) -> None:
    world, consumer, agent, email = await desk(cloud, consent=True)
    await add_bill(
        cloud, world, date(2026, 10, 1), date(2026, 11, 1), "434", [("Energy", "434", "5")]
    )
    query = (
        await cloud.client.post(
            "/api/v1/support/queries",
            json={"text": "mera bill is mahine bahut zyada aaya hai, kyun?"},
            headers=consumer,
        )
    ).json()
    assert query["status"] == "waiting_for_consumer"
    response = await cloud.client.post(
        f"/api/v1/support/queries/{query['id']}/escalate", headers=consumer
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "open"
    assert response.json()["sla_due_at"] is not None

    queue = await cloud.client.get(
        "/api/v1/support/queries",
        params={"status": "open", "unassigned": "true", "category": "high_bill"},
        headers=agent,
    )
    assert query["id"] in [q["id"] for q in queue.json()["items"]]
    agent_id = world.users["SUPPORT_AGENT"].id
    response = await cloud.client.patch(
        f"/api/v1/support/queries/{query['id']}",
        json={"assignee_id": agent_id, "status": "in_progress", "priority": "high"},
        headers=agent,
    )
    assert response.status_code == 200, response.text
    assert response.json()["assignee_id"] == agent_id
    mine = await cloud.client.get(
        "/api/v1/support/queries", params={"assignee_id": agent_id}, headers=agent
    )
    assert [q["id"] for q in mine.json()["items"]] == [query["id"]]
    response = await cloud.client.post(
        f"/api/v1/support/queries/{query['id']}/answers",
        json={"body": "We checked your meter: the reading is right. Your AC ran more in October."},
        headers=agent,
    )
    assert response.status_code == 200, response.text
    answered = response.json()
    assert answered["status"] == "waiting_for_consumer"
    assert answered["sla_due_at"] is None
    assert answered["first_response_at"] is not None

    seen = (
        await cloud.client.get(f"/api/v1/support/queries/{query['id']}", headers=consumer)
    ).json()
    assert [m["author_kind"] for m in seen["messages"]] == ["consumer", "automatic", "agent"]
    assert "assignee_id" not in seen
    assert "draft" not in seen
    inbox = (await cloud.client.get("/api/v1/notifications", headers=consumer)).json()
    assert inbox["items"][0]["kind"] == "support_reply"
    assert "Your AC ran more" in inbox["items"][0]["body"]
    mail = await smtp.mailbox.next_to(email, f"A reply to your query #{query['id']}")
    assert "Your AC ran more" in text_of(mail)

    # the consumer writes back: the query is the agent's again, its clock running
    response = await cloud.client.post(
        f"/api/v1/support/queries/{query['id']}/messages",
        json={"body": "Thank you, but the AC was off most of October."},
        headers=consumer,
    )
    assert response.json()["status"] == "in_progress"
    agent_inbox = (await cloud.client.get("/api/v1/notifications", headers=agent)).json()
    assert agent_inbox["items"][0]["kind"] == "support_update"
    async with cloud.pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT action FROM audit_log WHERE entity = 'support_query' AND entity_id = %s"
            " ORDER BY id",
            (str(query["id"]),),
        )
        actions = [row["action"] for row in await cursor.fetchall()]
    assert actions == [
        "open",
        "draft",
        "answer_automatically",
        "escalate",
        "update",
        "reply",
        "reply",
    ]


async def test_outage_and_meter_fault_drafts_name_the_meters_records(cloud: Cloud) -> None:
    world, consumer, agent, _ = await desk(cloud, consent=True)
    meter = world.site("own").meter.id
    now = datetime.now(UTC)
    async with cloud.pool.connection() as conn:
        # a reading every five minutes for the last day but for a 70-minute stretch
        await conn.execute(
            "INSERT INTO readings (meter_id, quantity, ts, value, quality, gateway_id)"
            " SELECT %s, '1.8.0', t, 5000, 'ok', 0 FROM generate_series(%s::timestamptz"
            " - interval '1 day' + interval '1 minute', %s, interval '5 minutes') t"
            " WHERE t NOT BETWEEN %s AND %s ON CONFLICT DO NOTHING",
            (meter, now, now, now - timedelta(hours=5), now - timedelta(hours=3, minutes=50)),
        )
        await conn.execute(
            "UPDATE meters SET last_reading_at = (SELECT max(ts) FROM readings"
            " WHERE meter_id = %s) WHERE id = %s",
            (meter, meter),
        )
        await conn.commit()
    query = (
        await cloud.client.post(
            "/api/v1/support/queries",
            json={"text": "kal se light nahi hai, bijli kab aayegi?", "meter_id": meter},
            headers=consumer,
        )
    ).json()
    assert query["category"] == "outage"
    assert query["priority"] == "high"
    detail = (
        await cloud.client.get(f"/api/v1/support/queries/{query['id']}", headers=agent)
    ).json()
    facts = detail["draft_facts"]["meters"][0]
    drafted = datetime.fromisoformat(detail["draft_facts"]["drafted_at"])  # how old it is
    assert abs((datetime.now(UTC) - drafted).total_seconds()) < 600
    async with cloud.pool.connection() as conn:
        cursor = await conn.execute("SELECT last_reading_at FROM meters WHERE id = %s", (meter,))
        last = (await cursor.fetchone())["last_reading_at"]
        cursor = await conn.execute(
            "SELECT id FROM alerts WHERE meter_id = %s AND state <> 'resolved' ORDER BY id",
            (meter,),
        )
        open_alerts = [row["id"] for row in await cursor.fetchall()]
    assert datetime.fromisoformat(facts["last_reading_at"]) == last
    assert len(facts["gaps"]) == 1
    assert 70 <= facts["gaps"][0]["minutes"] <= 80
    assert sorted(a["id"] for a in facts["open_alerts"]) == open_alerts
    assert "stopped once:" in detail["draft"]
    assert "Open alert: outage (high)" in detail["draft"]

    fault = (
        await cloud.client.post(
            "/api/v1/support/queries",
            json={"text": "The meter display is blank and it makes a buzzing noise"},
            headers=consumer,
        )
    ).json()
    assert fault["category"] == "meter_fault"
    assert fault["status"] == "open"  # a meter fault always waits for a person
    seen = (await cloud.client.get(f"/api/v1/support/queries/{fault['id']}", headers=agent)).json()
    assert seen["draft_facts"]["meters"][0]["health"] == "online"
    pending = await cloud.client.get("/api/v1/support/pending", headers=agent)
    assert fault["id"] in [q["id"] for q in pending.json()["items"]]
    response = await cloud.client.post(
        f"/api/v1/support/queries/{fault['id']}/draft/send",
        json={"body": seen["draft"] + "\nA technician will visit tomorrow."},
        headers=agent,
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "resolved"
    assert response.json()["messages"][-1]["body"].endswith("A technician will visit tomorrow.")


async def test_a_breached_service_level_opens_an_alert_and_tells_the_agent(cloud: Cloud) -> None:
    world, consumer, agent, _ = await desk(cloud, consent=False)
    query = (
        await cloud.client.post(
            "/api/v1/support/queries", json={"text": "Please call me back"}, headers=consumer
        )
    ).json()
    due = datetime.fromisoformat(query["sla_due_at"])
    assert due - datetime.fromisoformat(query["created_at"]) == support.SLA["normal"]
    agent_id = world.users["SUPPORT_AGENT"].id
    await cloud.client.patch(
        f"/api/v1/support/queries/{query['id']}", json={"assignee_id": agent_id}, headers=agent
    )

    async def breached_at(moment: datetime) -> datetime | None:
        async with cloud.pool.connection() as conn:
            await run_checks(conn, moment)
            cursor = await conn.execute(
                "SELECT sla_breached_at FROM support_queries WHERE id = %s", (query["id"],)
            )
            return (await cursor.fetchone())["sla_breached_at"]

    assert await breached_at(due - timedelta(minutes=1)) is None
    assert await breached_at(due + timedelta(minutes=1)) == due + timedelta(minutes=1)
    assert await breached_at(due + timedelta(minutes=2)) == due + timedelta(minutes=1)  # once
    alerts = await cloud.client.get(
        "/api/v1/alerts", params={"kind": support.SLA_ALERT, "state": "active"}, headers=agent
    )
    mine = [a for a in alerts.json()["items"] if a["subject"] == f"support_query:{query['id']}"]
    assert len(mine) == 1
    inbox = (await cloud.client.get("/api/v1/notifications", headers=agent)).json()
    told = [n for n in inbox["items"] if n["link"] == f"/dashboard/support/{query['id']}"]
    assert [n["kind"] for n in told] == ["sla_breached"]
    breached = await cloud.client.get(
        "/api/v1/support/queries",
        params={"breached": "true", "assignee_id": agent_id},
        headers=agent,
    )
    assert [q["id"] for q in breached.json()["items"]] == [query["id"]]
    # answering stops the clock and closes the alert
    await cloud.client.post(
        f"/api/v1/support/queries/{query['id']}/answers",
        json={"body": "We called you at 10:15."},
        headers=agent,
    )
    alert = await cloud.client.get(f"/api/v1/alerts/{mine[0]['id']}", headers=agent)
    assert alert.json()["state"] == "resolved"


async def test_bad_moves_and_bad_input_are_named(cloud: Cloud) -> None:
    world, consumer, agent, _ = await desk(cloud, consent=False)
    query = (
        await cloud.client.post(
            "/api/v1/support/queries", json={"text": "Change my phone number"}, headers=consumer
        )
    ).json()
    url = f"/api/v1/support/queries/{query['id']}"
    for body, field in (
        ({"text": ""}, "text"),
        ({"text": "x" * 4001}, "text"),
        ({"text": "hi", "category": "weather"}, "category"),
        ({"text": "hi", "colour": "red"}, "colour"),
        ({"text": "bad\x00byte"}, "text"),
    ):
        response = await cloud.client.post("/api/v1/support/queries", json=body, headers=consumer)
        assert response.status_code == 422, body
        assert field in response.text
    response = await cloud.client.patch(url, json={"status": "closed"}, headers=agent)
    assert response.json()["status"] == "closed"
    response = await cloud.client.patch(url, json={"status": "open"}, headers=agent)
    assert response.status_code == 422
    assert "closed cannot move to open" in response.json()["detail"]
    response = await cloud.client.post(f"{url}/messages", json={"body": "hello?"}, headers=consumer)
    assert response.status_code == 409
    assert "open a new one" in response.json()["detail"]
    technician = world.site("own").objects["user"].id  # a technician: not on the desk
    other = (
        await cloud.client.post(
            "/api/v1/support/queries", json={"text": "Another question"}, headers=consumer
        )
    ).json()
    response = await cloud.client.patch(
        f"/api/v1/support/queries/{other['id']}", json={"assignee_id": technician}, headers=agent
    )
    assert response.status_code == 422
    assert "does not work this board's support desk" in response.json()["detail"]
    # an admin takes it off the desk: gone for everyone, kept for the record
    async with cloud.pool.connection() as conn:
        admin_email = await add_actor(conn, world, "BOARD_ADMIN")
        await conn.commit()
    admin = await signed_in(cloud, admin_email)
    response = await cloud.client.delete(f"/api/v1/support/queries/{other['id']}", headers=admin)
    assert response.status_code == 204
    for who in (consumer, agent, admin):
        gone = await cloud.client.get(f"/api/v1/support/queries/{other['id']}", headers=who)
        assert gone.status_code == 404
    async with cloud.pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT deleted_at FROM support_queries WHERE id = %s", (other["id"],)
        )
        assert (await cursor.fetchone())["deleted_at"] is not None


async def test_whoever_answers_holds_the_query_and_the_desk_shows_them(cloud: Cloud) -> None:
    """An operator outside the board's desk answers: the query is theirs, and the desk's list of
    who may hold it (the thread page's form) names them rather than showing it held by nobody."""
    world, consumer, _agent, _ = await desk(cloud, consent=False)
    async with cloud.pool.connection() as conn:
        operator = await signed_in(cloud, await add_actor(conn, world, "SUPER_ADMIN"))
    query = (
        await cloud.client.post(
            "/api/v1/support/queries",
            json={"text": "My meter's display is blank since this morning."},
            headers=consumer,
        )
    ).json()
    async with cloud.pool.connection() as conn:
        before = await support.desk_users(conn, {"board_id": world.boards["A"]})
    operator_id = world.users["SUPER_ADMIN"].id
    assert operator_id not in [u["id"] for u in before]
    response = await cloud.client.post(
        f"/api/v1/support/queries/{query['id']}/answers",
        json={"body": "A technician visits today between 2 and 5 pm."},
        headers=operator,
    )
    assert response.status_code == 200, response.text
    assert response.json()["assignee_id"] == operator_id
    async with cloud.pool.connection() as conn:
        held = await support.desk_users(
            conn, {"board_id": world.boards["A"], "assignee_id": operator_id}
        )
    assert [u["id"] for u in held if u["id"] not in {b["id"] for b in before}] == [operator_id]
    # the queue names who holds it, by e-mail when the account has no name
    async with cloud.pool.connection() as conn:
        queue = await listings.support_queries(
            conn, Principal(operator_id, "SUPER_ADMIN", None, None, None), assignee_id=operator_id
        )
        [row] = [q for q in queue.rows if q["id"] == query["id"]]
        cursor = await conn.execute("SELECT email FROM users WHERE id = %s", (operator_id,))
        assert row["assignee_name"] == (await cursor.fetchone())["email"]


@pytest.mark.parametrize(
    ("text", "subject"),
    [
        (
            "My supply keeps tripping every evening around 7pm when I switch on the geyser."
            " Can someone check the line? It has happened for a week now.",
            "My supply keeps tripping every evening around 7pm when I switch on the geyser.",
        ),
        ("Hi. Why is my bill so high this month?", "Hi. Why is my bill so high this month?"),
        (
            "mera bill is mahine bahut zyada aaya hai aur meter bhi tez chal raha hai lagta hai"
            " koi gadbad hai kripya dekhiye",
            "mera bill is mahine bahut zyada aaya hai aur meter bhi tez chal raha hai lagta…",
        ),
        ("Bill\nIt is wrong.", "Bill"),
        ("x" * 100, "x" * 79 + "…"),
    ],
)
def test_a_subject_is_the_first_sentence_cut_after_a_word(text: str, subject: str) -> None:
    assert support.subject_of(text) == subject
    assert len(support.subject_of(text)) <= support.SUBJECT_CHARS

"""A solar household's energy per local day — generation, import, export, self-consumption —
through the API, equal to an independent SQL computation over the same signed readings (the
register at each local midnight's last read before it, against the highest read of the day),
and the same figures on the consumer's portal and the staff's consumer page in a real Chromium
at desktop and phone sizes (screenshots in tests/artifacts/web/balance-*.png)."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal as D

import httpx
import pytest

from cloud.formats import quantity
from cloud.services import auth
from shared import Batch, Heartbeat, Reading, seal_batch
from tests.cloud.billing.test_invoices import IST
from tests.cloud.conftest import Cloud, enroll_gateway, staff_headers
from tests.cloud.test_web_app import VIEWPORTS, Visit
from tests.cloud.world import PASSWORD

# per three-hour slot of a local day (00-03, 03-06, ...): the panel's output and the home's
# use, in kWh (multiples of 1/8: every sum is exact in floating point)
GENERATED = [0, 0, 0.75, 2.125, 2.5, 1.375, 0, 0]
USED = [0.5, 0.375, 0.875, 0.625, 0.75, 1.25, 2.25, 1.0]
DAYS = 4


async def _solar_home(cloud: Cloud, board: str) -> dict:
    """A household with rooftop solar, its net meter and its generation meter, and their reads
    every three hours (half past, never on a midnight) over the last four local days."""
    admin = await staff_headers(cloud, board)
    gateway = await enroll_gateway(cloud, board)
    today = datetime.now(IST).date()
    first_day = today - timedelta(days=DAYS - 1)
    async with cloud.pool.connection() as conn:
        board_id = (
            await (await conn.execute("SELECT id FROM boards WHERE code = %s", (board,))).fetchone()
        )["id"]
        for day in (first_day - timedelta(days=1), today):
            await conn.execute("SELECT ensure_readings_partition(%s)", (day.replace(day=1),))
        await conn.commit()
    tag = uuid.uuid4().hex[:6]
    net, solar = f"net-{tag}", f"pv-{tag}"
    registers = {"import": 1200.0, "export": 300.0, "generation": 4000.0}
    readings: list[Reading] = []

    def read(meter: str, code: str, ts: datetime, value: float) -> None:
        readings.append(
            Reading(seq=len(readings) + 1, meter_id=meter, quantity=code, ts=ts, value=value)
        )

    now = datetime.now(UTC)
    moment = datetime.combine(first_day, time(1, 30), IST)
    slot = 0
    while moment.astimezone(UTC) <= now:
        ts = moment.astimezone(UTC)
        read(net, "1.8.0", ts, registers["import"])
        read(net, "2.8.0", ts, registers["export"])
        read(solar, "2.8.0", ts, registers["generation"])
        read(solar, "1.8.0", ts, 0.0)
        generated, used = GENERATED[slot % 8], USED[slot % 8]
        registers["import"] += max(used - generated, 0)
        registers["export"] += max(generated - used, 0)
        registers["generation"] += generated
        moment += timedelta(hours=3)
        slot += 1
    sealed = seal_batch(
        Batch(
            gateway_id=gateway.code,
            batch_id=uuid.uuid4(),
            first_seq=1,
            last_seq=len(readings),
            sent_at=now,
            readings=readings,
            heartbeat=Heartbeat(software_version="t", backlog_readings=0, clock_synced=True),
        ),
        gateway.key,
    )
    sent = await cloud.client.post(
        "/api/v1/ingest/batches", content=sealed.body, headers=sealed.headers
    )
    assert sent.status_code == 200, sent.text
    meters = await cloud.client.get(
        "/api/v1/meters", params={"board_id": board_id, "limit": 100}, headers=admin
    )
    ids = {m["external_id"]: m["id"] for m in meters.json()["items"]}
    created = await cloud.client.post(
        "/api/v1/consumers",
        json={
            "board_id": board_id,
            "account_no": f"PV-{tag}",
            "name": "Surya household",
            "generation": {
                "kind": "rooftop_solar",
                "capacity_kwp": "3.2",
                "since": "2025-04-01",
                "meter_id": ids[solar],
            },
        },
        headers=admin,
    )
    assert created.status_code == 201, created.text
    consumer_id = created.json()["id"]
    assigned = await cloud.client.post(
        f"/api/v1/meters/{ids[net]}/assign", json={"consumer_id": consumer_id}, headers=admin
    )
    assert assigned.status_code == 200, assigned.text
    # the generation meter is billed to no one: assigning it to a consumer is refused
    refused = await cloud.client.post(
        f"/api/v1/meters/{ids[solar]}/assign", json={"consumer_id": consumer_id}, headers=admin
    )
    assert refused.status_code == 422, refused.text
    assert "generation" in refused.text, refused.text
    # and a meter someone is billed on cannot be a generation meter
    other = await cloud.client.patch(
        f"/api/v1/consumers/{consumer_id}",
        json={
            "generation": {
                "kind": "rooftop_solar",
                "capacity_kwp": "3.2",
                "since": "2025-04-01",
                "meter_id": ids[net],
            }
        },
        headers=admin,
    )
    assert other.status_code == 422, other.text
    assert "generation.meter_id" in other.text, other.text
    return {
        "admin": admin,
        "board_id": board_id,
        "consumer_id": consumer_id,
        "meters": {"net": ids[net], "solar": ids[solar]},
        "first_day": first_day,
        "today": today,
    }


_BY_HAND = """
SELECT (SELECT max(value) FROM readings WHERE meter_id = %(meter)s AND quantity = %(q)s
          AND ts > %(start)s AND ts <= %(end)s)
     - coalesce((SELECT value FROM readings WHERE meter_id = %(meter)s AND quantity = %(q)s
                   AND ts <= %(start)s ORDER BY ts DESC LIMIT 1),
                (SELECT min(value) FROM readings WHERE meter_id = %(meter)s AND quantity = %(q)s
                   AND ts > %(start)s AND ts <= %(end)s)) AS energy
"""


async def test_each_day_equals_an_independent_sql_computation(cloud: Cloud, board: str) -> None:
    home = await _solar_home(cloud, board)
    start = home["first_day"] - timedelta(days=2)  # two days before any reading
    end = home["today"] + timedelta(days=1)
    answer = await cloud.client.get(
        f"/api/v1/consumers/{home['consumer_id']}/energy-balance",
        params={"from": start.isoformat(), "to": end.isoformat()},
        headers=home["admin"],
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["time_zone"], body["unit"], body["generation_metered"]) == (
        "Asia/Kolkata",
        "kWh",
        True,
    )
    assert body["generation_source"]["kind"] == "rooftop_solar"
    assert [d["day"] for d in body["days"]] == [
        (start + timedelta(days=i)).isoformat() for i in range((end - start).days)
    ]
    series = {
        "import_kwh": (home["meters"]["net"], "1.8.0"),
        "export_kwh": (home["meters"]["net"], "2.8.0"),
        "generation_kwh": (home["meters"]["solar"], "2.8.0"),
    }
    async with cloud.pool.connection() as conn:
        for shown in body["days"]:
            day = date.fromisoformat(shown["day"])
            bounds = {
                "start": datetime.combine(day, time(0), IST),
                "end": datetime.combine(day + timedelta(days=1), time(0), IST),
            }
            hand = {}
            for name, (meter, code) in series.items():
                cursor = await conn.execute(_BY_HAND, {"meter": meter, "q": code, **bounds})
                energy = (await cursor.fetchone())["energy"]
                hand[name] = None if energy is None else D(repr(energy))
                got = shown[name]
                assert (None if got is None else D(got)) == hand[name], (day, name, shown, hand)
            if day < home["first_day"]:
                assert hand == dict.fromkeys(series), day  # no reads: dashes, never zeros
            if hand["generation_kwh"] is not None:
                assert D(shown["self_consumption_kwh"]) == (
                    hand["generation_kwh"] - hand["export_kwh"]
                )
    # a whole day between readings, by hand: 8 slots of the day's shape
    middle = next(
        d for d in body["days"] if d["day"] == (home["first_day"] + timedelta(days=1)).isoformat()
    )
    assert D(middle["generation_kwh"]) == D("6.75")
    assert D(middle["generation_kwh"]) - D(middle["export_kwh"]) == D(
        middle["self_consumption_kwh"]
    )
    for params, words in (
        ({"from": "2026-10-10", "to": "2026-10-01"}, "must be after"),
        ({"from": "2026-01-01", "to": "2026-10-01"}, "at most 92 days"),
        ({"from": "yesterday"}, "from"),
    ):
        bad = await cloud.client.get(
            f"/api/v1/consumers/{home['consumer_id']}/energy-balance",
            params=params,
            headers=home["admin"],
        )
        assert bad.status_code == 422, bad.text
        assert words in bad.text, bad.text


@pytest.mark.browser
@pytest.mark.slow
async def test_the_portal_shows_the_days_at_desktop_and_phone_sizes(
    cloud: Cloud, board: str, served: httpx.AsyncClient, browser
) -> None:
    home = await _solar_home(cloud, board)
    tag = uuid.uuid4().hex[:6]
    people = {"consumer": f"surya-{tag}@example.in", "staff": f"staff-{tag}@example.in"}
    async with cloud.pool.connection() as conn:
        await auth.create_user(
            conn,
            email=people["consumer"],
            password=PASSWORD,
            role="CONSUMER",
            consumer_id=home["consumer_id"],
            actor="test",
        )
        # the net meter became theirs before its first reading (a consumer sees a meter's
        # reads from the moment it became theirs)
        await conn.execute(
            "UPDATE meters SET consumer_since = %s WHERE id = %s",
            (datetime.combine(home["first_day"], time(0), IST), home["meters"]["net"]),
        )
        await conn.commit()
        await auth.create_user(
            conn,
            email=people["staff"],
            password=PASSWORD,
            role="BOARD_ADMIN",
            board_code=board,
            actor="test",
        )
    answer = await cloud.client.get(
        f"/api/v1/consumers/{home['consumer_id']}/energy-balance", headers=home["admin"]
    )
    yesterday = (home["today"] - timedelta(days=1)).isoformat()
    [shown] = [d for d in answer.json()["days"] if d["day"] == yesterday]
    base = str(served.base_url).rstrip("/")
    for viewport, (width, height) in VIEWPORTS.items():
        for who, path in (
            ("consumer", "/dashboard/home"),
            ("staff", f"/dashboard/consumers/{home['consumer_id']}"),
        ):
            context = await browser.new_context(viewport={"width": width, "height": height})
            visit = Visit(await context.new_page(), base)
            await visit.sign_in(people[who])
            await visit.open(path, f"balance-{who}-{viewport}")
            page = visit.page
            source = await page.inner_text("#generation-source")
            assert "Rooftop solar, 3.2 kWp" in source, source
            # the daily chart is of the import, and says so beside the netted bill
            assert "Energy taken from the grid per day" in await page.inner_text("main")
            assert "1 Apr 2025" in source, source
            intro = await page.inner_text("#energy-balance + p")
            assert "Asia/Kolkata" in intro, intro
            rows = page.locator("#balance-table tbody tr")
            # the days since the first reading (today and the three before), not 14 of dashes
            assert await rows.count() == DAYS
            # the second row: yesterday (the latest first), figures as the API gave them
            cells = [c.strip() for c in await rows.nth(1).locator("td").all_inner_texts()]
            assert cells[1:] == [
                quantity(shown[k], "kWh", 2)
                for k in ("generation_kwh", "import_kwh", "export_kwh", "self_consumption_kwh")
            ], cells
            assert cells[0] == datetime.fromisoformat(yesterday).strftime("%d %b %Y").lstrip("0")
            first = [c.strip() for c in await rows.nth(DAYS - 1).locator("td").all_inner_texts()]
            assert first[0] == home["first_day"].strftime("%d %b %Y").lstrip("0")
            if who == "staff":  # the meters list names whose panels the generation meter reads
                async with cloud.pool.connection() as conn:
                    cursor = await conn.execute(
                        "SELECT m.external_id, c.name FROM meters m, consumers c"
                        " WHERE m.id = %s AND c.id = %s",
                        (home["meters"]["solar"], home["consumer_id"]),
                    )
                    solar = await cursor.fetchone()
                await visit.open(
                    f"/dashboard/meters?q={solar['external_id']}", f"balance-meters-{viewport}"
                )
                row = page.locator("#meters-table tbody tr").filter(
                    has_text=re.compile(rf"^\s*{re.escape(solar['external_id'])}\s")
                )
                said = await row.inner_text()
                assert f"Solar panels of {solar['name']}" in said, said
            await context.close()
    # a household whose panels were just connected, with no readings yet: a clear empty state
    empty = await cloud.client.post(
        "/api/v1/consumers",
        json={
            "board_id": home["board_id"],
            "account_no": f"PV-NEW-{tag}",
            "name": "New solar household",
            "generation": {"kind": "rooftop_solar", "capacity_kwp": "2", "since": "2026-11-01"},
        },
        headers=home["admin"],
    )
    assert empty.status_code == 201, empty.text
    width, height = VIEWPORTS["phone"]
    context = await browser.new_context(viewport={"width": width, "height": height})
    visit = Visit(await context.new_page(), base)
    await visit.sign_in(people["staff"])
    await visit.open(f"/dashboard/consumers/{empty.json()['id']}", "balance-staff-empty-phone")
    assert await visit.page.inner_text("#balance-table tbody") == (
        "No readings in the last 14 days yet."
    )
    assert "Generation is not metered" in await visit.page.inner_text("#generation-source")
    await context.close()

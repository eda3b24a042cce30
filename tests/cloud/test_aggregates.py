"""The console's aggregates equal the readings API's figures for the same range — after live data,
after late data filling a gap, per quarter hour, hour and day — and the analytics built on them
say what they should."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import psycopg
import pytest

from cloud.billing.engine import month_of
from cloud.services import aggregates
from shared import Batch, Heartbeat, Reading, seal_batch
from tests.cloud.conftest import Cloud, EnrolledGateway, staff_headers

PASSWORD = "correct horse battery"
# two days ending at the last full quarter hour, in the past so every bucket is complete
END = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=1)
END -= timedelta(minutes=END.minute % 15)
START = END - timedelta(days=2)


def _reads(meter: str, start: datetime, end: datetime, step_min: int, kw: float) -> list:
    out, t, value = [], start, 1000.0
    while t <= end:
        out.append((meter, t, value))
        value += kw * step_min / 60 * (1.5 if t.hour in (18, 19, 20) else 1.0)
        t += timedelta(minutes=step_min)
    return out


async def _send(cloud: Cloud, gateway: EnrolledGateway, reads: list, first_seq: int) -> int:
    readings = [
        Reading(seq=first_seq + i, meter_id=m, quantity="1.8.0", ts=t, value=v)
        for i, (m, t, v) in enumerate(reads)
    ]
    for at in range(0, len(readings), 5000):
        chunk = readings[at : at + 5000]
        batch = Batch(
            gateway_id=gateway.code,
            batch_id=uuid.uuid4(),
            first_seq=chunk[0].seq,
            last_seq=chunk[-1].seq,
            sent_at=datetime.now(UTC),
            readings=chunk,
            heartbeat=Heartbeat(software_version="t", backlog_readings=0, clock_synced=True),
        )
        sealed = seal_batch(batch, gateway.key)
        response = await cloud.client.post(
            "/api/v1/ingest/batches", content=sealed.body, headers=sealed.headers
        )
        assert response.status_code == 200, response.text
    return first_seq + len(readings)


@pytest.fixture
async def admin(cloud: Cloud, board: str) -> dict[str, str]:
    return await staff_headers(cloud, board)


async def _refresh(cloud: Cloud) -> None:
    async with cloud.pool.connection() as conn:
        # every dirty day, earlier tests' too (a pass does 400 at most)
        while await aggregates.refresh(conn):
            pass


async def _board_id(cloud: Cloud, board: str) -> int:
    async with cloud.pool.connection() as conn:
        cursor = await conn.execute("SELECT id FROM boards WHERE code = %s", (board,))
        return (await cursor.fetchone())["id"]


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


async def _compare(cloud: Cloud, headers: dict, board_id: int, interval: str) -> int:
    query = {"from": _iso(START), "to": _iso(END + timedelta(minutes=15)), "interval": interval}
    raw = await cloud.client.get(
        f"/api/v1/boards/{board_id}/readings",
        params={**query, "quantity": "1.8.0"},
        headers=headers,
    )
    fast = await cloud.client.get(
        "/api/v1/analytics/load", params={**query, "board_id": board_id}, headers=headers
    )
    assert raw.status_code == fast.status_code == 200, (raw.text, fast.text)
    expected = {p["bucket"]: p["energy"] for p in raw.json()["points"]}
    got = {p["bucket"]: p["energy_kwh"] for p in fast.json()["points"]}
    assert got.keys() == expected.keys()
    for bucket, energy in expected.items():
        assert got[bucket] == pytest.approx(energy, abs=1e-9), bucket
    return len(got)


async def test_aggregates_equal_the_readings_api_and_take_late_data(
    cloud: Cloud, gateway: EnrolledGateway, board: str, admin: dict
) -> None:
    board_id = await _board_id(cloud, board)
    # one meter every 15 minutes, one every 5 (a different cadence), the second with a gap
    fine = _reads("agg-fine", START, END, 5, 2.0)
    gap_start, gap_end = START + timedelta(hours=20), START + timedelta(hours=30)
    with_gap = [r for r in fine if not gap_start < r[1] < gap_end]
    seq = await _send(cloud, gateway, _reads("agg-quarter", START, END, 15, 1.2) + with_gap, 1)
    await _refresh(cloud)
    assert await _compare(cloud, admin, board_id, "15min") > 150
    await _compare(cloud, admin, board_id, "hour")
    await _compare(cloud, admin, board_id, "day")
    # the gateway comes back with what it held: the gap's reads arrive late
    late = [r for r in fine if gap_start < r[1] < gap_end]
    await _send(cloud, gateway, late, seq)
    async with cloud.pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT count(*) AS n FROM aggregates_dirty WHERE board_id = %s", (board_id,)
        )
        assert (await cursor.fetchone())["n"] >= 1  # the late reads marked their days
    await _refresh(cloud)
    await _compare(cloud, admin, board_id, "15min")
    await _compare(cloud, admin, board_id, "day")


async def test_a_consumers_days_equal_its_meters_readings(
    cloud: Cloud, gateway: EnrolledGateway, board: str, admin: dict
) -> None:
    await _send(cloud, gateway, _reads("home-1", START, END, 15, 0.8), 1)
    async with cloud.pool.connection() as conn:
        cursor = await conn.execute(
            "INSERT INTO consumers (board_id, account_no, name) SELECT id, 'H-1', 'Asha Rao'"
            " FROM boards WHERE code = %s RETURNING id",
            (board,),
        )
        consumer = (await cursor.fetchone())["id"]
        cursor = await conn.execute(
            "UPDATE meters SET consumer_id = %s WHERE external_id = 'home-1' RETURNING id,"
            " last_reading_at",
            (consumer,),
        )
        meter = await cursor.fetchone()
        await conn.execute(
            "INSERT INTO aggregates_dirty (board_id, day) SELECT board_id, d::date"
            " FROM consumers, generate_series(%s::date - 2, %s::date + 1, '1 day') d"
            " WHERE consumers.id = %s ON CONFLICT DO NOTHING",
            (START.date(), END.date(), consumer),
        )
        await conn.commit()
    assert meter["last_reading_at"] == END
    await _refresh(cloud)
    local_start = START.astimezone(ZoneInfo("Asia/Kolkata")).date()  # the board's zone
    month = local_start.strftime("%Y-%m")
    usage = await cloud.client.get(
        f"/api/v1/consumers/{consumer}/usage", params={"month": month}, headers=admin
    )
    assert usage.status_code == 200, usage.text
    days = {d["day"]: d["energy_kwh"] for d in usage.json()["days"] if d["energy_kwh"]}
    raw = await cloud.client.get(
        f"/api/v1/meters/{meter['id']}/readings",
        params={
            "quantity": "1.8.0",
            "interval": "day",
            "from": f"{month}-01T00:00+05:30",
            "to": _iso(END + timedelta(days=1)),
        },
        headers=admin,
    )
    india = ZoneInfo("Asia/Kolkata")
    expected = {
        datetime.fromisoformat(p["bucket"]).astimezone(india).date().isoformat(): p["energy"]
        for p in raw.json()["points"]
    }
    assert days.keys() <= expected.keys()
    for day, energy in days.items():
        assert energy == pytest.approx(expected[day], abs=1e-9), day


async def test_the_overview_counts_meters_and_compares_days(
    cloud: Cloud, gateway: EnrolledGateway, board: str, admin: dict
) -> None:
    board_id = await _board_id(cloud, board)
    now = datetime.now(UTC)
    await _send(cloud, gateway, _reads("ov-live", now - timedelta(days=8), now, 15, 1.0), 1)
    async with cloud.pool.connection() as conn:
        await conn.execute(
            "INSERT INTO meters (board_id, external_id, confirmed_at) VALUES (%s, 'ov-never',"
            " now())",
            (board_id,),
        )
        await conn.commit()
    await _refresh(cloud)
    response = await cloud.client.get(
        "/api/v1/analytics/overview", params={"board_id": board_id}, headers=admin
    )
    assert response.status_code == 200, response.text
    overview = response.json()
    assert overview["meters"]["online"] == 1
    assert overview["meters"]["never_seen"] == 1
    assert overview["meters"]["awaiting_confirmation"] == 1  # ov-live was discovered
    energy = overview["energy"]
    assert energy["yesterday_kwh"] == pytest.approx(24.0, rel=0.1)  # 1 kW, 1.5 kW 18-21h UTC
    assert energy["last_week_kwh"] == pytest.approx(energy["yesterday_kwh"], rel=0.01)
    assert overview["load"]["now_kw"] == pytest.approx(1.0, rel=0.6)
    until = datetime.fromisoformat(overview["load"]["now_until"])
    assert until.minute % 15 == 0
    assert now - timedelta(minutes=30) <= until <= now  # a whole quarter hour, ended
    assert overview["gateways"]["online"] == 1
    assert set(overview["alerts"]["open"]) == {"critical", "high", "medium", "low", "info"}
    assert overview["billing"]["billed"] == 0


async def test_consumption_per_consumer_category_and_board_agree(
    cloud: Cloud, gateway: EnrolledGateway, board: str, admin: dict
) -> None:
    """Three homes in two categories: each consumer's figure is its days' sum from the usage
    API, each category's the sum of its consumers, the board's the sum of all; a meter with no
    consumer counts in none of them; and the earlier spans are compared."""
    board_id = await _board_id(cloud, board)
    homes = {
        "cons-a": ("domestic", 0.5),
        "cons-b": ("domestic", 1.0),
        "cons-c": ("commercial", 3.0),
    }
    reads = [r for meter, (_, kw) in homes.items() for r in _reads(meter, START, END, 15, kw)]
    await _send(cloud, gateway, reads + _reads("cons-none", START, END, 15, 9.0), 1)
    consumers = {}
    async with cloud.pool.connection() as conn:
        for meter, (category, _) in homes.items():
            cursor = await conn.execute(
                "INSERT INTO consumers (board_id, account_no, name, category)"
                " VALUES (%s, %s, %s, %s) RETURNING id",
                (board_id, f"{meter}-{board}", f"Home {meter}", category),
            )
            consumers[meter] = (await cursor.fetchone())["id"]
            await conn.execute(
                "UPDATE meters SET consumer_id = %s WHERE external_id = %s",
                (consumers[meter], meter),
            )
        await conn.execute(
            "INSERT INTO aggregates_dirty (board_id, day) SELECT %s, d::date"
            " FROM generate_series(%s::date - 2, %s::date + 1, '1 day') d ON CONFLICT DO NOTHING",
            (board_id, START.date(), END.date()),
        )
        await conn.commit()
    await _refresh(cloud)
    india = ZoneInfo("Asia/Kolkata")
    first, last = START.astimezone(india).date(), END.astimezone(india).date()
    span = {"from": first.isoformat(), "to": (last + timedelta(days=1)).isoformat()}

    async def figures(group_by: str, period: dict = span) -> dict[str, dict]:
        response = await cloud.client.get(
            "/api/v1/analytics/consumption",
            params={**period, "board_id": board_id, "group_by": group_by},
            headers=admin,
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["total"] == len(body["items"])
        return {item["key"]: item for item in body["items"]}

    by_consumer = await figures("consumer")
    assert set(by_consumer) == {str(c) for c in consumers.values()}  # not the unowned meter
    energies = [item["energy_kwh"] for item in by_consumer.values()]
    assert energies == sorted(energies, reverse=True)  # largest first
    for meter, consumer in consumers.items():
        days = []
        for month in sorted({first.strftime("%Y-%m"), last.strftime("%Y-%m")}):
            usage = await cloud.client.get(
                f"/api/v1/consumers/{consumer}/usage", params={"month": month}, headers=admin
            )
            days += [d["energy_kwh"] or 0 for d in usage.json()["days"]]
        item = by_consumer[str(consumer)]
        assert item["energy_kwh"] == pytest.approx(sum(days), abs=1e-6), meter
        assert item["energy_kwh"] == pytest.approx(homes[meter][1] * 48, rel=0.1)
        assert item["label"] == f"Home {meter} ({meter}-{board})"
        assert item["previous_kwh"] == item["last_year_kwh"] == 0
    # the same from whole months (the monthly rows) as from days
    whole = {"from": first.replace(day=1).isoformat(), "to": month_of(last)[1].isoformat()}
    assert {
        key: item["energy_kwh"] for key, item in (await figures("consumer", whole)).items()
    } == {key: pytest.approx(item["energy_kwh"], abs=1e-6) for key, item in by_consumer.items()}
    by_category = await figures("category")
    assert set(by_category) == {"domestic", "commercial"}
    for category in by_category:
        expected = sum(
            by_consumer[str(consumers[m])]["energy_kwh"]
            for m, (c, _) in homes.items()
            if c == category
        )
        assert by_category[category]["energy_kwh"] == pytest.approx(expected, abs=1e-6)
    by_board = await figures("board")
    assert by_board[str(board_id)]["energy_kwh"] == pytest.approx(
        sum(item["energy_kwh"] for item in by_consumer.values()), abs=1e-6
    )
    # a span after the readings: nothing now, everything in the span before it
    later = {
        "from": span["to"],
        "to": (last + timedelta(days=1) + (last - first) + timedelta(days=1)).isoformat(),
    }
    response = await cloud.client.get(
        "/api/v1/analytics/consumption",
        params={**later, "board_id": board_id, "group_by": "category"},
        headers=admin,
    )
    items = {item["key"]: item for item in response.json()["items"]}
    assert items["commercial"]["energy_kwh"] == 0
    assert items["commercial"]["previous_kwh"] == pytest.approx(
        by_category["commercial"]["energy_kwh"], abs=1e-6
    )


async def test_two_refreshers_on_days_of_one_month_both_finish_and_the_month_sums_both(
    cloud: Cloud, gateway: EnrolledGateway, board: str, database_url: str
) -> None:
    """Two processes' jobs loops (or the demo's import beside one) compute different days of
    one month at once: the second waits for the first, and the month holds both days."""
    start = datetime(2026, 3, 10, tzinfo=UTC)
    await _send(cloud, gateway, _reads("month-1", start, start + timedelta(days=2), 15, 0.8), 1)
    board_id = await _board_id(cloud, board)
    async with cloud.pool.connection() as conn:
        cursor = await conn.execute(
            "INSERT INTO consumers (board_id, account_no, name) VALUES (%s, 'M-1', 'Ravi Iyer')"
            " RETURNING id",
            (board_id,),
        )
        consumer = (await cursor.fetchone())["id"]
        await conn.execute(
            "UPDATE meters SET consumer_id = %s WHERE external_id = 'month-1' AND board_id = %s",
            (consumer, board_id),
        )
        await conn.commit()

    async def recompute(conn, day: date) -> None:
        async with conn.transaction():
            await aggregates.recompute_day(conn, board_id, "Asia/Kolkata", day)

    async with (
        cloud.pool.connection() as first,
        cloud.pool.connection() as second,
        await psycopg.AsyncConnection.connect(database_url, autocommit=True) as watcher,
    ):
        async with first.transaction():
            await aggregates.recompute_day(first, board_id, "Asia/Kolkata", date(2026, 3, 10))
            other = asyncio.create_task(recompute(second, date(2026, 3, 11)))
            waiting = "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s"
            deadline = time.monotonic() + 60
            while (await (await watcher.execute(waiting, (second.info.backend_pid,))).fetchone())[
                0
            ] != "Lock":  # the second waits for the first's transaction
                assert time.monotonic() < deadline, "the second refresher never met the first"
                await asyncio.sleep(0.05)
        await asyncio.wait_for(other, 60)
    async with cloud.pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT (SELECT energy_kwh FROM consumer_energy_monthly WHERE consumer_id = %(c)s"
            " AND month = '2026-03-01') AS month, (SELECT sum(energy_kwh) FROM"
            " consumer_energy_daily WHERE consumer_id = %(c)s AND day IN ('2026-03-10',"
            " '2026-03-11')) AS days, (SELECT count(*) FROM consumer_energy_daily WHERE"
            " consumer_id = %(c)s) AS day_rows",
            {"c": consumer},
        )
        sums = await cursor.fetchone()
    assert sums["day_rows"] == 2
    assert float(sums["month"]) == pytest.approx(float(sums["days"]), abs=1e-9)

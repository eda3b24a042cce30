"""Billing cycles: the period a cycle has just closed (zones, month ends, two months), the claim
on a board's period that exactly one process gets, a claim taken over once its lease runs out,
and a scheduler pass that bills and issues a board's period once."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import psycopg
import pytest
from psycopg import AsyncConnection
from psycopg.rows import dict_row

from cloud.billing.cycles import Period, closed_period, due_period, next_close
from cloud.services import billing_cycles, fleet
from tests.cloud.billing.test_invoices import (
    Board,
    flat_tariff,
    setup,  # noqa: F401  (fixture)
    tariff,
)
from tests.cloud.conftest import Cloud

D = Decimal
SINCE_2020 = {**flat_tariff(), "effective_from": "2020-01-01"}


# --- the period --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cycle_day", "cycle", "today", "start", "end"),
    [
        (5, "monthly", date(2026, 3, 5), date(2026, 2, 5), date(2026, 3, 5)),  # closes today
        (5, "monthly", date(2026, 3, 4), date(2026, 1, 5), date(2026, 2, 5)),  # not yet
        (28, "monthly", date(2026, 1, 3), date(2025, 11, 28), date(2025, 12, 28)),  # year end
        (28, "monthly", date(2026, 2, 28), date(2026, 1, 28), date(2026, 2, 28)),  # short month
        (1, "monthly", date(2026, 12, 31), date(2026, 11, 1), date(2026, 12, 1)),
        (1, "bimonthly", date(2026, 3, 1), date(2026, 1, 1), date(2026, 3, 1)),  # odd month
        (1, "bimonthly", date(2026, 4, 30), date(2026, 1, 1), date(2026, 3, 1)),  # even: wait
        (10, "bimonthly", date(2026, 1, 9), date(2025, 9, 10), date(2025, 11, 10)),
        (10, "bimonthly", date(2026, 1, 10), date(2025, 11, 10), date(2026, 1, 10)),  # over a year
    ],
)
def test_the_period_a_cycle_has_just_closed(
    cycle_day: int, cycle: str, today: date, start: date, end: date
) -> None:
    period = closed_period(cycle_day, cycle, today)  # type: ignore[arg-type]
    assert (period.start, period.end) == (start, end)
    assert period.months == (2 if cycle == "bimonthly" else 1)
    assert next_close(cycle_day, cycle, today) > today  # type: ignore[arg-type]


def test_a_cycle_day_every_month_has() -> None:
    with pytest.raises(ValueError, match="between 1 and 28"):
        closed_period(29, "monthly", date(2026, 3, 30))


def test_the_scheduler_bills_only_periods_closing_after_the_cycle_was_set() -> None:
    today = date(2026, 3, 5)
    assert due_period(5, "monthly", today, effective_from=date(2026, 3, 6), billed_to=None) is None
    assert due_period(5, "monthly", today, effective_from=date(2026, 3, 5), billed_to=None) == (
        Period(date(2026, 2, 5), date(2026, 3, 5), D(1))
    )
    # billed already
    assert (
        due_period(5, "monthly", today, effective_from=date(2026, 1, 1), billed_to=date(2026, 3, 5))
        is None
    )
    # the cycle went from monthly to bimonthly on 1 Feb: the first bimonthly period starts
    # where the last monthly one ended, and is one month long
    shorter = due_period(
        1,
        "bimonthly",
        date(2026, 3, 2),
        effective_from=date(2026, 2, 1),
        billed_to=date(2026, 2, 1),
    )
    assert shorter == Period(date(2026, 2, 1), date(2026, 3, 1), D("0.9492"))  # 2 x 28/59


async def test_each_board_closes_its_period_in_its_own_zone(cloud: Cloud) -> None:
    # 31 March 19:00 UTC: 1 April 00:30 in Kolkata, still 31 March 16:00 in São Paulo
    now = datetime(2026, 3, 31, 19, tzinfo=UTC)
    boards = {}
    async with cloud.pool.connection() as conn:
        for zone in ("Asia/Kolkata", "America/Sao_Paulo"):
            boards[zone] = await new_board(conn, zone)
            await set_cycle_row(conn, boards[zone], cycle_day=1, effective_from=date(2026, 1, 1))
        found = dict(await billing_cycles.due(conn, now))
    assert found[boards["Asia/Kolkata"]] == Period(date(2026, 3, 1), date(2026, 4, 1), D(1))
    assert found[boards["America/Sao_Paulo"]] == Period(date(2026, 2, 1), date(2026, 3, 1), D(1))


# --- claiming ----------------------------------------------------------------------------------


async def test_two_processes_claiming_a_period_get_it_once(cloud: Cloud, database_url: str) -> None:
    async with cloud.pool.connection() as conn:
        board = await new_board(conn)
    periods = [
        Period(date(2020 + n // 12, n % 12 + 1, 1), date(2020 + n // 12, n % 12 + 1, 15), D(1))
        for n in range(24)
    ]
    async with await connect(database_url) as one, await connect(database_url) as two:
        for period in periods:
            won = await asyncio.gather(
                billing_cycles.claim_new(one, board, period, worker="one", lease_s=60),
                billing_cycles.claim_new(two, board, period, worker="two", lease_s=60),
            )
            assert sum(claim is not None for claim in won) == 1
    async with cloud.pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT count(*) AS n FROM billing_cycle_runs WHERE board_id = %s", (board,)
        )
        assert (await cursor.fetchone())["n"] == len(periods)


async def test_a_claim_whose_lease_ran_out_is_taken_over_once(
    cloud: Cloud, database_url: str
) -> None:
    async with cloud.pool.connection() as conn:
        board = await new_board(conn)
    period = Period(date(2026, 1, 1), date(2026, 2, 1), D(1))
    async with await connect(database_url) as one, await connect(database_url) as two:
        claim = await billing_cycles.claim_new(one, board, period, worker="dead", lease_s=60)
        assert claim is not None
        # the dead process had begun its billing run
        await one.execute(
            "INSERT INTO billing_runs (board_id, period_start, period_end, actor, status,"
            " consumers, scheduled) VALUES (%s, '2026-01-01', '2026-02-01', 'user:0', 'running',"
            " 10, true)",
            (board,),
        )
        await one.commit()
        # while the lease holds, nobody takes it
        assert await mine(one, "b", board) is None
        # the lease runs out (the clock set by data)
        await one.execute(
            "UPDATE billing_cycle_runs SET lease_until = now() - interval '1 second'"
            " WHERE board_id = %s",
            (board,),
        )
        await one.commit()
        won = await asyncio.gather(mine(one, "b", board), mine(two, "c", board))
        [taken] = [claim for claim in won if claim is not None]
        assert taken["attempts"] == 2
        assert taken["worker"] in ("b", "c")
        assert not await billing_cycles.renew(one, claim, worker="dead", lease_s=60)
        assert await billing_cycles.renew(one, taken, worker=taken["worker"], lease_s=60)
        cursor = await one.execute(
            "SELECT status, errors FROM billing_runs WHERE board_id = %s", (board,)
        )
        [stale] = await cursor.fetchall()
        assert stale["status"] == "failed"
        assert "stopped before it finished" in stale["errors"][0]


async def mine(conn: AsyncConnection, worker: str, board: int) -> dict | None:
    """The abandoned claim `worker` takes over, if it is `board`'s (other tests' boards share
    the database)."""
    claim = await billing_cycles.claim_abandoned(conn, worker=worker, lease_s=60)
    while claim is not None and claim["board_id"] != board:
        claim = await billing_cycles.claim_abandoned(conn, worker=worker, lease_s=60)
    return claim


# --- a scheduler pass --------------------------------------------------------------------------


async def test_two_scheduler_passes_bill_and_issue_a_period_once(
    cloud: Cloud,
    setup: Board,  # noqa: F811
) -> None:
    await tariff(cloud, setup, [SINCE_2020])
    period = last_closed("Asia/Kolkata")
    async with cloud.pool.connection() as conn:
        consumers = await populate(conn, setup.id, period, 12)
        await conn.execute(  # one without a meter: unmeasured, and the run says why
            "INSERT INTO consumers (board_id, account_no, name) VALUES (%s, %s, 'N')",
            (setup.id, f"NO-METER-{uuid.uuid4().hex[:6]}"),
        )
        await conn.commit()
    put = await cloud.client.put(
        f"/api/v1/boards/{setup.id}/billing-cycle",
        json={"cycle_day": 1, "cycle": "monthly", "auto_issue": True},
        headers=setup.admin,
    )
    assert put.status_code == 200, put.text
    async with cloud.pool.connection() as conn:  # as if set before the period closed
        await set_cycle_row(conn, setup.id, cycle_day=1, effective_from=period.start, auto=True)
    done = await asyncio.gather(
        billing_cycles.run_due(cloud.pool, lease_s=30, base_url="http://x", worker="one"),
        billing_cycles.run_due(cloud.pool, lease_s=30, base_url="http://x", worker="two"),
    )
    assert sum(done) >= 1
    async with cloud.pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT consumer_id, count(*) AS n, bool_and(status = 'issued') AS issued"
            " FROM invoices WHERE board_id = %s AND period_start = %s AND period_end = %s"
            " GROUP BY consumer_id",
            (setup.id, period.start, period.end),
        )
        rows = await cursor.fetchall()
    assert sorted(r["consumer_id"] for r in rows) == sorted(consumers)
    assert all(r["n"] == 1 and r["issued"] for r in rows)
    shown = await cloud.client.get(f"/api/v1/boards/{setup.id}/billing-cycle", headers=setup.admin)
    [scheduled] = [r for r in shown.json()["runs"] if r["period_end"] == period.end.isoformat()]
    assert scheduled["status"] == "done"
    assert scheduled["attempts"] == 1
    assert (scheduled["billed"], scheduled["issued"], scheduled["unmeasured"]) == (12, 12, 1)
    assert "no meter was installed" in scheduled["errors"][0]
    # a later pass finds nothing to do
    assert await billing_cycles.run_due(cloud.pool, lease_s=30, base_url="http://x") == 0


async def test_the_cycle_setting_is_audited_and_bounded(cloud: Cloud, setup: Board) -> None:  # noqa: F811
    empty = await cloud.client.get(f"/api/v1/boards/{setup.id}/billing-cycle", headers=setup.admin)
    assert empty.json()["configured"] is False
    assert empty.json()["runs"] == []
    bad = await cloud.client.put(
        f"/api/v1/boards/{setup.id}/billing-cycle",
        json={"cycle_day": 31, "cycle": "monthly"},
        headers=setup.admin,
    )
    assert bad.status_code == 422
    body = {"cycle_day": 10, "cycle": "bimonthly", "auto_issue": False, "enabled": True}
    put = await cloud.client.put(
        f"/api/v1/boards/{setup.id}/billing-cycle", json=body, headers=setup.admin
    )
    assert put.status_code == 200, put.text
    got = put.json()
    assert {k: got[k] for k in body} == body
    today = datetime.now(ZoneInfo("Asia/Kolkata")).date()
    assert got["effective_from"] == today.isoformat()
    assert got["next_run_on"] == next_close(10, "bimonthly", today).isoformat()
    async with cloud.pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT actor, after FROM audit_log WHERE entity = 'billing_cycle' AND entity_id = %s",
            (str(setup.id),),
        )
        [row] = await cursor.fetchall()
    assert row["after"]["cycle"] == "bimonthly"


# --- helpers -----------------------------------------------------------------------------------


async def connect(url: str) -> psycopg.AsyncConnection:
    return await psycopg.AsyncConnection.connect(url, row_factory=dict_row)


async def new_board(conn: AsyncConnection, zone: str = "Asia/Kolkata") -> int:
    cursor = await conn.execute("SELECT 1 FROM states WHERE code = 'TS'")
    if await cursor.fetchone() is None:
        await fleet.create_state(conn, code="TS", name="Test state", actor="test")
    code = f"CY-{uuid.uuid4().hex[:8].upper()}"
    board = await fleet.create_board(
        conn, state_code="TS", code=code, name=code, time_zone=zone, actor="test"
    )
    return board["id"]


async def set_cycle_row(
    conn: AsyncConnection,
    board: int,
    *,
    cycle_day: int,
    effective_from: date,
    cycle: str = "monthly",
    auto: bool = False,
) -> None:
    """The board's cycle written directly, with the day it took effect chosen by the test."""
    await conn.execute(
        "INSERT INTO billing_cycles (board_id, cycle_day, cycle, auto_issue, effective_from)"
        " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (board_id) DO UPDATE SET"
        " cycle_day = excluded.cycle_day, cycle = excluded.cycle,"
        " auto_issue = excluded.auto_issue, effective_from = excluded.effective_from",
        (board, cycle_day, cycle, auto, effective_from),
    )
    await conn.commit()


def last_closed(zone: str) -> Period:
    """The monthly period of cycle day 1 that has just closed in `zone` (last calendar month)."""
    return closed_period(1, "monthly", datetime.now(ZoneInfo(zone)).date())


async def populate(conn: AsyncConnection, board: int, period: Period, count: int) -> list[int]:
    """`count` consumers of `board`, each with a meter read at the period's two ends (local
    midnight): 100 units apart."""
    tz = ZoneInfo("Asia/Kolkata")
    start = datetime.combine(period.start, datetime.min.time(), tz)
    end = datetime.combine(period.end, datetime.min.time(), tz)
    for ts in (start, end):  # partitions are months of UTC
        month = ts.astimezone(UTC).date().replace(day=1)
        await conn.execute("SELECT ensure_readings_partition(%s)", (month,))
    tag = uuid.uuid4().hex[:6]
    cursor = await conn.execute(
        "INSERT INTO consumers (board_id, account_no, name)"
        " SELECT %s, %s || n, 'C' || n FROM generate_series(1, %s) n RETURNING id",
        (board, f"AC-{tag}-", count),
    )
    consumers = [row["id"] for row in await cursor.fetchall()]
    await conn.execute(
        "INSERT INTO meters (board_id, external_id, consumer_id)"
        " SELECT %s, 'm-' || c, c FROM unnest(%s::bigint[]) c",
        (board, consumers),
    )
    cursor = await conn.execute("SELECT id FROM gateways LIMIT 1")
    gateway = await cursor.fetchone()
    if gateway is None:
        cursor = await conn.execute(
            "INSERT INTO gateways (board_id, gateway_code, public_key) VALUES (%s, %s, 'k')"
            " RETURNING id",
            (board, f"gw-cycle-{tag}"),
        )
        gateway = await cursor.fetchone()
    await conn.execute(
        "INSERT INTO readings (meter_id, quantity, ts, value, quality, gateway_id)"
        " SELECT m.id, '1.8.0', t.ts, t.value, 'ok', %s FROM meters m"
        " CROSS JOIN (VALUES (%s::timestamptz, 1000.0::float8), (%s, 1100.0)) t(ts, value)"
        " WHERE m.consumer_id = ANY(%s)",
        (gateway["id"], start, end, consumers),
    )
    await conn.commit()
    return consumers

"""Retention: old raw readings go (whole partitions where possible) after their daily aggregates
are made, register reads used by a bill stay, old alerts/reports/audit go, and the run is
audited."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from cloud.reports.storage import LocalStorage
from cloud.services import auth, fleet, retention
from tests.cloud.conftest import STAFF_PASSWORD, Cloud

IST = ZoneInfo("Asia/Kolkata")
NOW = datetime(2026, 11, 22, 12, tzinfo=UTC)


async def test_retention_keeps_what_bills_need(cloud: Cloud, board: str, tmp_path) -> None:
    tag = uuid.uuid4().hex[:6]
    storage = LocalStorage(tmp_path / "reports")
    storage.put("r1/old.csv", b"old report")
    async with cloud.pool.connection() as conn:
        b = (
            await (await conn.execute("SELECT id FROM boards WHERE code = %s", (board,))).fetchone()
        )["id"]

        async def one(query: str, params: tuple) -> int:
            return (await (await conn.execute(query + " RETURNING id", params)).fetchone())["id"]

        consumer = await one(
            "INSERT INTO consumers (board_id, account_no, name) VALUES (%s, %s, 'C')",
            (b, f"R-{tag}"),
        )
        meter = await one(
            "INSERT INTO meters (board_id, external_id, consumer_id) VALUES (%s, %s, %s)",
            (b, f"rm-{tag}", consumer),
        )
        gateway = await one(
            "INSERT INTO gateways (board_id, gateway_code, public_key) VALUES (%s, %s, 'k')",
            (b, f"rg-{tag}"),
        )
        for month in ("2020-01-01", "2020-02-01", "2020-03-01", "2026-11-01"):
            await conn.execute("SELECT ensure_readings_partition(%s)", (month,))
        rows = []
        # January 2020: power only, every hour of two days -> nothing a bill needs
        for h in range(48):
            rows.append(
                (meter, "1.7.0", datetime(2020, 1, 10, tzinfo=UTC) + timedelta(hours=h), 1.5)
            )
        # March 2020: the register every day, billed for March (IST)
        for d in range(32):
            ts = datetime(2020, 3, 1, tzinfo=IST) + timedelta(days=d)
            rows.append((meter, "1.8.0", ts, 100.0 + 10 * d))
        rows.append((meter, "1.8.0", datetime(2026, 11, 20, tzinfo=UTC), 9999.0))  # recent
        for m, q, ts, v in rows:
            await conn.execute(
                "INSERT INTO readings VALUES (%s, %s, %s, %s, 'ok', %s)", (m, q, ts, v, gateway)
            )
        await conn.execute(
            "INSERT INTO invoices (board_id, consumer_id, period_start, period_end, currency,"
            " units, total, amount_due, estimated, due_date)"
            " VALUES (%s, %s, '2020-03-01', '2020-04-01', 'INR', 310, 1550, 1550, false,"
            " '2020-04-15')",
            (b, consumer),
        )
        await conn.execute(
            "INSERT INTO alerts (board_id, subject, kind, severity, source, state, opened_at,"
            " last_seen_at, resolved_at) VALUES (%s, 'board:x', 'old', 'low', 'cloud',"
            " 'resolved', '2020-01-01', '2020-01-01', '2020-01-02'),"
            " (%s, 'board:y', 'still_open', 'low', 'cloud', 'active', '2020-01-01',"
            " '2020-01-01', NULL)",
            (b, b),
        )
        await conn.execute(
            "INSERT INTO reports (board_id, kind, format, period_start, period_end, status,"
            " storage_key, created_by, created_at) VALUES (%s, 'alerts', 'csv', '2020-01-01',"
            " '2020-02-01', 'done', 'r1/old.csv', 't', '2020-02-01')",
            (b,),
        )
        await conn.execute(
            "INSERT INTO audit_log (at, actor, action, entity, entity_id)"
            " VALUES ('2018-01-01', 't', 'ancient', 'x', '1')"
        )
        await conn.execute(
            "INSERT INTO retention_policies (board_id, raw_readings_days, alerts_days,"
            " reports_days) VALUES (%s, 31, 30, 30)",
            (b,),
        )
        await conn.commit()

        removed = await retention.run(conn, NOW, storage)

        partitions = {
            r["relname"]
            for r in await (
                await conn.execute(
                    "SELECT relname FROM pg_class WHERE relname LIKE 'readings_2020%%'"
                )
            ).fetchall()
        }
        assert "readings_2020_01" not in partitions  # nothing in it was needed: dropped whole
        assert "readings_2020_03" in partitions  # it holds reads a bill used
        left = await (
            await conn.execute(
                "SELECT ts, value FROM readings WHERE meter_id = %s ORDER BY ts", (meter,)
            )
        ).fetchall()
        # the reads on the bill's boundaries (1 March and 1 April, India time) and the recent one
        assert [(r["ts"], r["value"]) for r in left] == [
            (datetime(2020, 3, 1, tzinfo=IST), 100.0),
            (datetime(2020, 4, 1, tzinfo=IST), 410.0),
            (datetime(2026, 11, 20, tzinfo=UTC), 9999.0),
        ]
        daily = await (
            await conn.execute(
                "SELECT quantity, day, energy, avg FROM readings_daily WHERE meter_id = %s"
                " ORDER BY quantity, day",
                (meter,),
            )
        ).fetchall()
        march = [d for d in daily if d["quantity"] == "1.8.0"]
        assert sum(d["energy"] for d in march) == 310.0  # the month's energy survives
        power = [d for d in daily if d["quantity"] == "1.7.0"]
        assert [d["avg"] for d in power] == [1.5, 1.5, 1.5]  # 10, 11 (and 12 Jan, IST)
        kinds = [
            r["kind"]
            for r in await (
                await conn.execute("SELECT kind FROM alerts WHERE board_id = %s", (b,))
            ).fetchall()
        ]
        assert kinds == ["still_open"]
        assert (
            await (
                await conn.execute("SELECT count(*) AS n FROM reports WHERE board_id = %s", (b,))
            ).fetchone()
        )["n"] == 0
        assert (
            await (
                await conn.execute("SELECT count(*) AS n FROM audit_log WHERE action = 'ancient'")
            ).fetchone()
        )["n"] == 0
        run = await (
            await conn.execute(
                "SELECT after FROM audit_log WHERE action = 'retention' ORDER BY id DESC LIMIT 1"
            )
        ).fetchone()
    assert run["after"] == {k: v for k, v in removed.items()}
    assert removed["partitions_dropped"] >= 1
    assert removed["readings_deleted"] == 30
    assert not (tmp_path / "reports" / "r1" / "old.csv").exists()


async def test_boards_inherit_their_states_retention_field_by_field(
    cloud: Cloud, board: str
) -> None:
    async with cloud.pool.connection() as conn:
        found = await fleet.board_by_code(conn, board)
        email = f"state-{uuid.uuid4().hex[:8]}@example.in"
        await auth.create_user(
            conn,
            email=email,
            password=STAFF_PASSWORD,
            role="STATE_ADMIN",
            state_code="TS",
            actor="test",
        )
    login = await cloud.client.post(
        "/api/v1/auth/login", json={"email": email, "password": STAFF_PASSWORD}
    )
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    board_url = f"/api/v1/boards/{found['id']}/retention"
    state_url = f"/api/v1/states/{found['state_id']}/retention"

    fresh = (await cloud.client.get(board_url, headers=headers)).json()
    assert fresh["raw_readings_days"] == retention.DEFAULTS["raw_readings_days"]
    assert fresh["raw_readings_days_from"] == "default"
    response = await cloud.client.patch(
        state_url, json={"raw_readings_days": 800, "alerts_days": 90}, headers=headers
    )
    assert response.status_code == 200, response.text
    response = await cloud.client.patch(board_url, json={"alerts_days": 30}, headers=headers)
    policy = response.json()
    assert (policy["raw_readings_days"], policy["raw_readings_days_from"]) == (800, "state")
    assert (policy["alerts_days"], policy["alerts_days_from"]) == (30, "board")
    assert policy["audit_days_from"] == "default"
    # null hands a field back to the state
    response = await cloud.client.patch(board_url, json={"alerts_days": None}, headers=headers)
    assert (response.json()["alerts_days"], response.json()["alerts_days_from"]) == (90, "state")
    async with cloud.pool.connection() as conn:
        used = {p["board_id"]: p for p in await retention._policies(conn)}[found["id"]]
    assert (used["raw_readings_days"], used["alerts_days"]) == (800, 90)
    response = await cloud.client.patch(state_url, json={"audit_days": 10}, headers=headers)
    assert response.status_code == 422

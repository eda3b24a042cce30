"""Report schedules: when a weekly one runs in a zone with and without summer time; a due
schedule makes exactly one report per period however many processes race for it (two pools,
concurrent passes, no sleeps), and a claim whose process died is made by another; the report
reaches its recipients — a board user by notification and e-mail, an outside address by an
e-mail whose link downloads it — through a real SMTP server; bad schedules are refused by name."""

from __future__ import annotations

import asyncio
import csv
import io
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
import pytest
from psycopg.rows import dict_row

from cloud.db import open_pool
from cloud.reports import when
from cloud.reports.storage import LocalStorage
from cloud.services import auth, fleet, scheduled_reports
from cloud.settings import CloudSettings
from tests.cloud.conftest import STAFF_PASSWORD, Cloud, open_cloud
from tests.support.smtp import SmtpServer, smtp_server, text_of

PUBLIC = "http://gridgate.test"


# --- when a weekly schedule runs ---------------------------------------------------------------


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_a_weekly_run_keeps_its_local_time_in_a_zone_with_summer_time_and_without() -> None:
    monday_7 = (0, time(7, 0))
    # Tuesday 20 October 2026; British summer time ends on Sunday 25 October
    now = utc(2026, 10, 20, 12)
    assert when.last_weekly_run(now, *monday_7, "Europe/London") == utc(2026, 10, 19, 6)  # BST
    assert when.next_weekly_run(now, *monday_7, "Europe/London") == utc(2026, 10, 26, 7)  # GMT
    assert when.last_weekly_run(now, *monday_7, "Asia/Kolkata") == utc(2026, 10, 19, 1, 30)
    assert when.next_weekly_run(now, *monday_7, "Asia/Kolkata") == utc(2026, 10, 26, 1, 30)
    # India keeps +05:30 all year: the same UTC instant in March, when London has moved again
    march = utc(2027, 3, 30, 12)  # summer time began on Sunday 28 March 2027
    assert when.last_weekly_run(march, *monday_7, "Asia/Kolkata") == utc(2027, 3, 29, 1, 30)
    assert when.last_weekly_run(march, *monday_7, "Europe/London") == utc(2027, 3, 29, 6)
    # a time the clocks skip runs an hour later by the clock that day (01:30 GMT = 02:30 BST)
    sunday_0130 = (6, time(1, 30))
    assert when.next_weekly_run(utc(2027, 3, 27), *sunday_0130, "Europe/London") == utc(
        2027, 3, 28, 1, 30
    )
    # exactly at the run it is the last run, not the next
    at = utc(2026, 10, 26, 7)
    assert when.last_weekly_run(at, *monday_7, "Europe/London") == at
    assert when.next_weekly_run(at, *monday_7, "Europe/London") == utc(2026, 11, 2, 7)
    # each run reports the seven local days before its day
    assert when.weekly_period(utc(2026, 10, 19, 1, 30), "Asia/Kolkata") == (
        date(2026, 10, 12),
        date(2026, 10, 19),
    )
    # 23:30 UTC on Sunday is already Monday in India
    assert when.weekly_period(utc(2026, 10, 18, 23, 30), "Asia/Kolkata") == (
        date(2026, 10, 12),
        date(2026, 10, 19),
    )


# --- a board with people -----------------------------------------------------------------------


async def new_board(cloud: Cloud, zone: str) -> tuple[int, str, dict, int, str]:
    """A board in `zone` with an admin; (board id, code, admin headers, admin id, admin e-mail)."""
    code = f"RS-{uuid.uuid4().hex[:8].upper()}"
    email = f"admin-{uuid.uuid4().hex[:8]}@example.in"
    async with cloud.pool.connection() as conn:
        cursor = await conn.execute("SELECT 1 FROM states WHERE code = 'TS'")
        if await cursor.fetchone() is None:
            await fleet.create_state(conn, code="TS", name="Test state", actor="test")
        board = await fleet.create_board(
            conn, state_code="TS", code=code, name=f"Board {code}", time_zone=zone, actor="t"
        )
        user = await auth.create_user(
            conn,
            email=email,
            password=STAFF_PASSWORD,
            role="BOARD_ADMIN",
            board_code=code,
            actor="t",
        )
    response = await cloud.client.post(
        "/api/v1/auth/login", json={"email": email, "password": STAFF_PASSWORD}
    )
    headers = {"Authorization": f"Bearer {response.json()['access_token']}"}
    return board["id"], code, headers, user["id"], email


async def schedule(cloud: Cloud, board: int, headers: dict, **body: object) -> dict:
    response = await cloud.client.post(
        f"/api/v1/boards/{board}/report-schedules", json=body, headers=headers
    )
    assert response.status_code == 201, response.text
    return response.json()


async def billing_run_done(cloud: Cloud, board: int, start: str, end: str) -> None:
    """The board's billing run of [start, end) has completed (as the billing code records it)."""
    async with cloud.pool.connection() as conn:
        await conn.execute(
            "INSERT INTO billing_runs (board_id, period_start, period_end, actor, status,"
            " finished_at) VALUES (%s, %s, %s, 'user:0', 'done', now())",
            (board, start, end),
        )


async def made(cloud: Cloud, schedule_id: int) -> list[dict]:
    async with cloud.pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT x.period_start, x.period_end, x.status AS run_status, x.delivered,"
            " x.attempts, r.id AS report_id, r.status, r.kind, r.format"
            " FROM report_schedule_runs x LEFT JOIN reports r ON r.id = x.report_id"
            " WHERE x.schedule_id = %s ORDER BY x.period_start",
            (schedule_id,),
        )
        runs = await cursor.fetchall()
        cursor = await conn.execute(
            "SELECT count(*) AS n FROM reports WHERE schedule_id = %s", (schedule_id,)
        )
        assert (await cursor.fetchone())["n"] == len(runs), "a report without its claim"
    return runs


# --- exactly once ------------------------------------------------------------------------------


async def test_two_processes_make_each_due_report_once(
    cloud: Cloud, database_url: str, tmp_path: Path
) -> None:
    board, _, headers, admin, _ = await new_board(cloud, "Europe/London")
    weekly = await schedule(
        cloud,
        board,
        headers,
        name="Weekly alerts",
        kind="alerts",
        file_type="csv",
        cadence="weekly",
        weekday=0,
        at_time="07:00",
        user_ids=[admin],
    )
    monthly = await schedule(
        cloud,
        board,
        headers,
        name="After billing",
        kind="billing_summary",
        file_type="json",
        cadence="monthly",
        user_ids=[admin],
        emails=["Finance@Example.org"],
    )
    assert monthly["emails"] == ["finance@example.org"]
    # nothing is due yet: the weekly one was made after its last Monday, and no run completed
    storage = LocalStorage(tmp_path / "reports")
    await scheduled_reports.run_due(cloud.pool, storage, lease_s=30, base_url=PUBLIC)
    assert await made(cloud, weekly["id"]) == []
    assert await made(cloud, monthly["id"]) == []

    # the weekly one has stood for more than a week; the board's October billing run completed
    async with cloud.pool.connection() as conn:
        await conn.execute(
            "UPDATE report_schedules SET effective_from = now() - interval '8 days' WHERE id = %s",
            (weekly["id"],),
        )
    await billing_run_done(cloud, board, "2026-10-01", "2026-11-01")
    settings = CloudSettings(database_url=database_url, data_dir=tmp_path, pool_max_size=3)
    async with open_pool(database_url, settings) as one, open_pool(database_url, settings) as two:
        await asyncio.gather(
            scheduled_reports.run_due(one, storage, lease_s=30, base_url=PUBLIC, worker="one"),
            scheduled_reports.run_due(two, storage, lease_s=30, base_url=PUBLIC, worker="two"),
        )
        [week] = await made(cloud, weekly["id"])
        [month] = await made(cloud, monthly["id"])
        # and again: nothing more
        await asyncio.gather(
            scheduled_reports.run_due(one, storage, lease_s=30, base_url=PUBLIC, worker="one"),
            scheduled_reports.run_due(two, storage, lease_s=30, base_url=PUBLIC, worker="two"),
        )
    assert await made(cloud, weekly["id"]) == [week]
    assert await made(cloud, monthly["id"]) == [month]

    # the week before this Monday's run, in London
    london = ZoneInfo("Europe/London")
    now = datetime.now(UTC)
    last = when.last_weekly_run(now, 0, time(7), "Europe/London").astimezone(london)
    assert (last.weekday(), last.hour, last.minute) == (0, 7, 0)
    assert (week["period_start"], week["period_end"]) == (
        last.date() - timedelta(days=7),
        last.date(),
    )
    assert (week["status"], week["run_status"], week["kind"]) == ("done", "done", "alerts")
    assert week["delivered"] == 1  # the admin
    assert (month["period_start"], month["period_end"]) == (date(2026, 10, 1), date(2026, 11, 1))
    assert (month["status"], month["format"], month["delivered"]) == ("done", "json", 2)

    # the console's view: the next run in the board's zone, the last outcome
    response = await cloud.client.get(f"/api/v1/report-schedules/{weekly['id']}", headers=headers)
    shown = response.json()
    next_run = datetime.fromisoformat(shown["next_run_at"]).astimezone(london)
    assert (next_run.weekday(), next_run.hour, next_run.minute) == (0, 7, 0)
    assert timedelta(0) < next_run - now <= timedelta(days=7)
    assert [r["status"] for r in shown["runs"]] == ["done"]
    assert shown["time_zone"] == "Europe/London"


async def test_each_period_is_claimed_by_one_of_two_racing_connections(
    cloud: Cloud, database_url: str
) -> None:
    board, _, headers, admin, _ = await new_board(cloud, "Asia/Kolkata")
    made_by = await schedule(
        cloud,
        board,
        headers,
        name="Fleet",
        kind="fleet_health",
        file_type="csv",
        cadence="monthly",
        user_ids=[admin],
    )
    async with cloud.pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT * FROM report_schedules WHERE id = %s", (made_by["id"],)
        )
        row = await cursor.fetchone()
    weeks = [date(2026, 1, 5) + timedelta(days=7 * n) for n in range(20)]
    connect = psycopg.AsyncConnection.connect
    async with (
        await connect(database_url, row_factory=dict_row) as a,
        await connect(database_url, row_factory=dict_row) as b,
    ):
        for start in weeks:
            end = start + timedelta(days=7)
            won = await asyncio.gather(
                scheduled_reports.claim_new(a, row, start, end, worker="a", lease_s=60),
                scheduled_reports.claim_new(b, row, start, end, worker="b", lease_s=60),
            )
            assert sum(claim is not None for claim in won) == 1
    runs = await made(cloud, made_by["id"])
    assert [r["period_start"] for r in runs] == weeks
    assert all(r["status"] == "queued" for r in runs)


async def test_a_report_whose_process_died_is_made_by_another(cloud: Cloud, tmp_path: Path) -> None:
    board, code, headers, admin, _ = await new_board(cloud, "Asia/Kolkata")
    _, other_code, _, _, _ = await new_board(cloud, "Asia/Kolkata")
    async with cloud.pool.connection() as conn:
        mover = await auth.create_user(
            conn,
            email=f"mover-{uuid.uuid4().hex[:6]}@example.in",
            password=STAFF_PASSWORD,
            role="TECHNICIAN",
            board_code=code,
            actor="t",
        )
    made_by = await schedule(
        cloud,
        board,
        headers,
        name="Billing",
        kind="billing_summary",
        file_type="xml",
        cadence="monthly",
        user_ids=[admin, mover["id"]],
    )
    # one recipient moves to another board before the report is made: they hear nothing of it
    async with cloud.pool.connection() as conn:
        await conn.execute(
            "UPDATE users SET board_id = (SELECT id FROM boards WHERE code = %s) WHERE id = %s",
            (other_code, mover["id"]),
        )
    async with cloud.pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT * FROM report_schedules WHERE id = %s", (made_by["id"],)
        )
        row = await cursor.fetchone()
    async with cloud.pool.connection() as conn:
        claim = await scheduled_reports.claim_new(
            conn, row, date(2026, 9, 1), date(2026, 10, 1), worker="dead", lease_s=60
        )
        # it had begun making the report, then its lease ran out (the clock set by data)
        await conn.execute(
            "UPDATE reports SET status = 'running' WHERE id = %s", (claim["report_id"],)
        )
        await conn.execute(
            "UPDATE report_schedule_runs SET lease_until = now() - interval '1 second'"
            " WHERE schedule_id = %s",
            (made_by["id"],),
        )
    storage = LocalStorage(tmp_path / "reports")
    await scheduled_reports.run_due(cloud.pool, storage, lease_s=30, base_url=PUBLIC, worker="b")
    [run] = await made(cloud, made_by["id"])
    assert (run["status"], run["run_status"], run["attempts"], run["delivered"]) == (
        "done",
        "done",
        2,
        1,
    )
    assert run["report_id"] == claim["report_id"]


# --- delivery ----------------------------------------------------------------------------------


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with smtp_server() as server:
        yield server


@pytest.fixture
async def mailing(database_url: str, tmp_path: Path, smtp: SmtpServer) -> AsyncIterator[tuple]:
    async with open_cloud(
        database_url,
        tmp_path / "cloud",
        smtp_url=smtp.url,
        mail_poll_s=0.05,
        public_url=PUBLIC,
    ) as opened:
        # the app keeps reports in its data directory: a scheduler pass here writes there too
        yield opened, smtp, LocalStorage(tmp_path / "cloud" / "reports")


async def test_recipients_get_the_report_by_notification_and_by_link(mailing: tuple) -> None:
    cloud, smtp, storage = mailing
    board, code, headers, admin, admin_email = await new_board(cloud, "Asia/Kolkata")
    response = await cloud.client.post(
        f"/api/v1/boards/{board}/report-formats",
        json={
            "name": "Alerts by severity",
            "kind": "alerts",
            "file_type": "csv",
            "columns": [{"column": "severity", "label": "How bad"}, {"column": "alerts"}],
        },
        headers=headers,
    )
    assert response.status_code == 201, response.text
    outsider = f"auditor-{uuid.uuid4().hex[:6]}@example.org"
    made_by = await schedule(
        cloud,
        board,
        headers,
        name="Monthly alerts",
        format_id=response.json()["id"],
        cadence="monthly",
        user_ids=[admin],
        emails=[outsider],
    )
    await billing_run_done(cloud, board, "2026-10-01", "2026-11-01")
    await scheduled_reports.run_due(cloud.pool, storage, lease_s=30, base_url=PUBLIC)
    [run] = await made(cloud, made_by["id"])
    assert run["delivered"] == 2

    # the board's admin: a notification, and its e-mail pointing at the reports page
    mail = await smtp.mailbox.next_to(admin_email, "Monthly alerts")
    assert "Alerts report (CSV) for 1 Oct 2026 to 31 Oct 2026 is ready" in mail["Subject"]
    assert f"{PUBLIC}/dashboard/reports" in text_of(mail)
    inbox = (await cloud.client.get("/api/v1/notifications", headers=headers)).json()
    assert any("Monthly alerts" in n["title"] for n in inbox["items"])

    # the outsider: a link of their own, no attachment, that downloads the very report
    mail = await smtp.mailbox.next_to(outsider, "Monthly alerts")
    assert list(mail.iter_attachments()) == []
    body = text_of(mail)
    assert code in body
    link = re.search(rf"{re.escape(PUBLIC)}(/api/v1/report-links/[A-Za-z0-9_-]+)", body)
    assert link, body
    fetched = await cloud.client.get(link.group(1))  # no session: the link is the credential
    assert fetched.status_code == 200, fetched.text
    assert fetched.headers["cache-control"] == "no-store"
    signed_in = await cloud.client.get(
        f"/api/v1/reports/{run['report_id']}/download", headers=headers
    )
    assert fetched.content == signed_in.content
    assert next(csv.reader(io.StringIO(fetched.text))) == ["How bad", "Alerts"]

    # a link that is not one, or has ended, downloads nothing
    assert (await cloud.client.get("/api/v1/report-links/" + "x" * 43)).status_code == 404
    async with cloud.pool.connection() as conn:
        await conn.execute(
            "UPDATE report_links SET expires_at = now() - interval '1 second' WHERE report_id = %s",
            (run["report_id"],),
        )
    assert (await cloud.client.get(link.group(1))).status_code == 404
    async with cloud.pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT count(*) AS n FROM email_outbox WHERE to_address = %s AND body_text LIKE %s",
            (outsider, "%report-links%"),
        )
        assert (await cursor.fetchone())["n"] == 0  # the link is blanked once sent


# --- bad schedules -----------------------------------------------------------------------------


WEEKLY = {
    "name": "W",
    "kind": "alerts",
    "file_type": "csv",
    "cadence": "weekly",
    "weekday": 0,
    "at_time": "07:00",
}


BAD_SCHEDULES = [  # (change, field named, words of the message)
    ({"weekday": None}, "weekday", ["weekday", "0 Monday"]),
    ({"cadence": "monthly"}, "weekday", ["monthly", "billing run"]),
    ({"user_ids": [], "emails": []}, "user_ids", ["at least one recipient"]),
    ({"kind": None}, "format_id", ["format", "kind"]),
    ({"emails": [f"p{n}@example.org" for n in range(11)]}, "body.emails", ["at most 10"]),
    # the person reads the address that is wrong, and the field as the form names it
    (
        {"emails": ["ok@example.org", "not an address"]},
        "body.emails.1",
        ["emails: 'not an address' is not an e-mail address"],
    ),
    ({"at_time": "25:00"}, "body.at_time", []),
    ({"at_time": "07:00+05:30"}, "body.at_time", ["without an offset"]),
    ({"weekday": 7}, "body.weekday", []),
    ({"cadence": "daily"}, "body.cadence", []),
    ({"recipients": "all"}, "body.recipients", []),
    ({"inactive": True}, "user_ids.0", ["not an active staff member"]),
    ({"stranger": True}, "user_ids.0", ["no user"]),
]


async def test_bad_schedules_are_refused_naming_what_is_wrong(cloud: Cloud) -> None:
    board, code, headers, admin, _ = await new_board(cloud, "Asia/Kolkata")
    _, _, _, other_admin, _ = await new_board(cloud, "Asia/Kolkata")
    async with cloud.pool.connection() as conn:  # a technician of the board who has left
        gone = await auth.create_user(
            conn,
            email=f"gone-{uuid.uuid4().hex[:6]}@example.in",
            password=STAFF_PASSWORD,
            role="TECHNICIAN",
            board_code=code,
            actor="t",
        )
        await conn.execute("UPDATE users SET active = false WHERE id = %s", (gone["id"],))
    for change, field, words in BAD_SCHEDULES:
        body = {**WEEKLY, "user_ids": [admin], **change}
        if body.pop("stranger", None):  # a user of another board: outside the admin's scope
            body["user_ids"] = [other_admin]
        if body.pop("inactive", None):
            body["user_ids"] = [admin, gone["id"]]
            field = "user_ids.1"
        body = {k: v for k, v in body.items() if v is not None}
        response = await cloud.client.post(
            f"/api/v1/boards/{board}/report-schedules", json=body, headers=headers
        )
        status = 404 if "no user" in words else 422  # what lies outside the scope: not found
        assert response.status_code == status, (change, response.text)
        problem = response.json()
        if status == 422:
            assert field in [e["field"] for e in problem["errors"]], (change, problem)
        for word in words:
            assert word in problem["detail"], (change, problem)
        assert "body." not in problem["detail"], (change, problem)
    async with cloud.pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT count(*) AS n FROM report_schedules WHERE board_id = %s", (board,)
        )
        assert (await cursor.fetchone())["n"] == 0

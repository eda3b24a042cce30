"""`gridgate demo`: the whole system from one command, twice on the same data directory (the
second run carries on), once with the link to the cloud cut; and once with no database set, on
the embedded PostgreSQL a fresh machine would use. And its live line, at the widths terminals
have."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import psycopg
import pytest

from gridgate.demo import ADMIN, CONSUMER, ROOT, SIGNUP, SUPPORT, DemoCounts, describe_counts

DEMO = [sys.executable, "-m", "gridgate", "--log-level", "ERROR", "demo"]
# as a person types it: the log level left to the demo
DEMO_AS_TYPED = [sys.executable, "-m", "gridgate", "demo"]


def demo(
    data_dir: Path,
    env: dict[str, str],
    *args: str,
    command: list[str] = DEMO,
    cwd: Path | None = None,
) -> str:
    result = subprocess.run(
        [*command, "--data-dir", str(data_dir), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        cwd=cwd,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert_terminal_shows_no_routine_log(result.stderr)
    return result.stdout


def assert_terminal_shows_no_routine_log(err: str) -> None:
    """Only warnings and errors reach the demo's terminal; the rest is in its log file."""
    levels = {json.loads(line)["level"] for line in err.splitlines() if line.startswith("{")}
    assert levels <= {"warning", "error", "critical"}, err
    assert "migration applied" not in err


def banner_of(output: str) -> list[str]:
    return output.split("Ctrl-C stops everything.")[0].splitlines()


def kept_code(mail_dir: Path, deadline: float) -> str | None:
    """The sign-up code in the messages the demo's mail drop kept, once one arrives."""
    while time.monotonic() < deadline:
        kept = "\n".join(p.read_text() for p in sorted(mail_dir.glob("*.txt")))
        found = re.search(r"sign-up code: (\d{6})", kept)
        if found:
            return found.group(1)
        time.sleep(0.2)  # a file appears; nothing to wait on but the directory
    return None


def final_count(output: str) -> int:
    counts = re.findall(r"(?:cloud holds|cloud) ([\d,]+)", output)  # in full words or short
    assert counts, output
    return int(counts[-1].replace(",", ""))


@pytest.mark.slow  # the whole system, in processes
def test_the_demo_runs_and_carries_on(database_url: str, tmp_path: Path) -> None:
    env = {**os.environ, "GRIDGATE_DATABASE_URL": database_url, "COLUMNS": "80"}
    # from the folder it runs in, with its data in a folder there: paths as a person types them
    first = demo(
        Path("demo"),
        env,
        "--duration",
        "20",
        "--speed",
        "60",
        command=DEMO_AS_TYPED,
        cwd=tmp_path,
    )
    url = re.search(r"Dashboard: +(http://127\.0\.0\.1:\d+)/dashboard", first)
    assert url, first
    for email, password in (ROOT, ADMIN, SUPPORT, CONSUMER):  # a login for each kind of user
        assert f"{email} / {password}" in first
    assert re.search(r"Bills for \w+ \d{4}: 6 made, 0 unchanged, 6 issued", first), first
    held = final_count(first)
    assert held > 0
    # again, with the link cut for the first 6 s: the backlog drains once it is back
    second = demo(tmp_path / "demo", env, "--duration", "20", "--offline-for", "0.1")
    summaries = [line for line in second.splitlines() if re.search(r"\btaken [\d,]+ ·", line)]
    assert "link OFFLINE" in summaries[0]  # at the start the cable is out ...
    assert "link online" in summaries[-1]  # ... and back by the end
    assert final_count(second) > held  # what was held back reached the cloud
    assert "0 made, 6 unchanged, 0 issued" in second  # last month stays billed, once
    # at 60 times the speed, registers rose 60 times faster: none of that was a tamper jump;
    # and the second run, at the wall clock's pace, carried on from where the first had got to
    with psycopg.connect(database_url) as conn:
        odd = conn.execute(
            "SELECT a.kind, count(*) FROM alerts a JOIN boards b ON b.id = a.board_id"
            " WHERE b.code = 'DEMO' AND a.kind IN ('register_jump', 'register_backwards')"
            " GROUP BY 1"
        ).fetchall()
    assert odd == []
    # the solar household's bill is net metered: it exported (at noon), and its generation
    # meter measured at least what it exported over the billed month
    with psycopg.connect(database_url) as conn:
        [(net, start, end)] = conn.execute(
            "SELECT i.details->'net_metering', i.period_start, i.period_end FROM invoices i"
            " JOIN consumers c ON c.id = i.consumer_id JOIN boards b ON b.id = c.board_id"
            " WHERE b.code = 'DEMO' AND c.account_no = 'DEMO-005'"
        ).fetchall()
        [(generated,)] = conn.execute(
            "SELECT max(r.value) - min(r.value) FROM readings r JOIN meters m ON m.id = r.meter_id"
            " WHERE m.external_id = 'pv-5-sdm120' AND r.quantity = '2.8.0'"
            " AND r.ts >= %s::date AND r.ts <= %s::date",
            (start, end),
        ).fetchall()
    assert Decimal(net["export_kwh"]) > 0, net
    assert Decimal(net["import_kwh"]) > 0, net
    assert Decimal(repr(generated)) > Decimal(net["export_kwh"]), (generated, net)
    # the consumer's two questions, asked once: the high bill answered from the records, the
    # flickering meter waiting for an agent with a draft
    assert "Support:       2 questions" in first
    assert "Support:       2 questions" in second
    banner = banner_of(first)
    assert [line for line in banner if len(line) > 80] == [], "the banner fits 80 columns"
    # where the gateway's configuration and the demo's log are, and a command that runs as shown
    assert "Gateway:       demo/edge/edge.toml; what it is doing:" in banner
    assert "Log:           demo/demo.log (warnings shown here too)" in banner
    [suggested] = [line.strip() for line in banner if line.strip().startswith("gridgate ")]
    assert suggested == "gridgate edge status --config demo/edge/edge.toml"
    status = subprocess.run(
        [sys.executable, "-m", *suggested.split()],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert status.returncode == 0, status.stdout + status.stderr
    assert status.stdout.startswith("gw-demo · "), status.stdout
    kept = (tmp_path / "demo" / "demo.log").read_text().splitlines()
    assert any(json.loads(line)["event"] == "edge daemon running" for line in kept)
    with psycopg.connect(database_url) as conn:
        desk = conn.execute(
            "SELECT q.category, q.status, q.auto_answered_at IS NOT NULL, q.draft IS NOT NULL"
            " FROM support_queries q JOIN boards b ON b.id = q.board_id WHERE b.code = 'DEMO'"
            " ORDER BY q.id"
        ).fetchall()
    assert desk == [
        ("high_bill", "waiting_for_consumer", True, True),
        ("meter_fault", "open", False, True),
    ]
    with httpx.Client(timeout=5) as client, pytest.raises(httpx.HTTPError):
        client.get(f"{url.group(1)}/health")  # the cloud stopped with the demo


@pytest.mark.slow  # the whole system, in processes
def test_a_fresh_demo_through_the_cloud_api(tmp_path: Path) -> None:
    """No database or broker set (a fresh machine): readings of all three protocols reach the
    cloud, a bill can be made, and Ctrl-C stops everything cleanly."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRIDGATE_")}
    env["PYTHONUNBUFFERED"] = "1"
    env["COLUMNS"] = "80"
    process = subprocess.Popen(
        [*DEMO_AS_TYPED, "--data-dir", "fresh"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    try:
        base, printed = None, []
        # a fresh start sets up PostgreSQL, imports two months of history and bills one before
        # it prints the address: over two minutes with both cores busy
        deadline = time.monotonic() + 360
        while base is None and time.monotonic() < deadline:
            line = process.stdout.readline()
            printed.append(line.rstrip("\n"))
            assert line or process.poll() is None, process.stderr.read()
            found = re.search(r"Dashboard: +(http://127\.0\.0\.1:\d+)/dashboard", line)
            base = found.group(1) if found else None
        assert base, "the demo printed no dashboard address"
        with httpx.Client(base_url=base, timeout=30) as client:
            # every page says it is a demonstration
            assert "A demonstration: simulated meters" in client.get("/dashboard/login").text
            token = client.post(
                "/api/v1/auth/login", json={"email": ADMIN[0], "password": ADMIN[1]}
            ).json()["access_token"]
            client.headers["Authorization"] = f"Bearer {token}"
            meters = {
                m["external_id"]: m for m in client.get("/api/v1/meters?limit=200").json()["items"]
            }
            # live readings from each protocol: Modbus RTU, DLMS/COSEM, MQTT
            for external in ("rtu-1-sdm630", "dlms-1", "plug-1"):
                points: list = []
                while not points and time.monotonic() < deadline:
                    now = datetime.now(UTC)
                    query = {
                        "quantity": "1.8.0",
                        "interval": "raw",
                        "from": (now - timedelta(minutes=3)).isoformat(),
                        "to": (now + timedelta(minutes=1)).isoformat(),
                    }
                    points = client.get(
                        f"/api/v1/meters/{meters[external]['id']}/readings", params=query
                    ).json()["points"]
                    if not points:
                        time.sleep(1)
                assert points, f"no live readings from {external}"
            # a bill: the last four weeks, from the imported history and the live reads
            today = datetime.now(UTC).date()
            board = meters["plug-1"]["board_id"]
            run = client.post(
                "/api/v1/billing/runs",
                json={
                    "board_id": board,
                    "period_start": (today - timedelta(days=28)).isoformat(),
                    "period_end": (today - timedelta(days=1)).isoformat(),
                },
            ).json()
            assert (run["created"], run["failed"]) == (6, 0), run
            invoices = client.get("/api/v1/invoices?limit=10").json()["items"]
            assert invoices, invoices
            assert all(Decimal(i["total"]) > 0 for i in invoices), invoices
            # a household claims its online account with the code the demo's mail drop kept
            del client.headers["Authorization"]
            account_no, email = SIGNUP
            ask = {"account_no": account_no, "email": email}
            assert client.post("/api/v1/auth/signup", json=ask).status_code == 202
            code = kept_code(tmp_path / "fresh" / "mail", deadline)
            assert code, "no sign-up code was kept in the demo's mail directory"
            done = client.post(
                "/api/v1/auth/signup/complete",
                json={**ask, "code": code, "password": "monsoon kettle ledger"},
            )
            assert done.status_code == 201, done.text
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
        assert process.returncode == 0, err
        assert "demo stopped" in out
        assert "Traceback" not in err
        # a fresh start's routine log (a line per migration, the meters' history brought in) is
        # in the demo's log file, not between the person and the banner
        assert_terminal_shows_no_routine_log(err)
        assert printed[0] == "GridGate demo — data in fresh", printed
        banner = banner_of("\n".join(printed) + "\n" + out)
        assert [line for line in banner if len(line) > 80] == [], banner
        kept = [json.loads(line) for line in (tmp_path / "fresh" / "demo.log").open()]
        assert sum(record["event"] == "migration applied" for record in kept) > 30
    finally:
        if process.poll() is None:
            process.kill()


def test_the_live_line_says_everything_in_full_where_it_fits() -> None:
    small = DemoCounts(1_694, 1_681, 377_771, 0, link_online=True)
    full = "readings taken 1,694 · synced 1,681 (cloud holds 377,771) · alerts open 0 · link online"
    assert describe_counts(small) == full  # a log line: no width
    assert describe_counts(small, 120) == full
    # a week of the demo at --speed 60 still fits 80 columns on one line, in short words
    week = DemoCounts(2_345_678, 2_345_001, 9_876_543, 12, link_online=True)
    assert describe_counts(week, 80) == (
        "taken 2,345,678 · synced 2,345,001 · cloud 9,876,543 · alerts 12 · link online"
    )


@pytest.mark.parametrize("width", [80, 60, 40, 24])
def test_the_live_line_fits_the_terminal_and_ends_with_the_link(width: int) -> None:
    big = DemoCounts(12_345_678, 12_345_001, 98_765_432, 123, link_online=False)
    line = describe_counts(big, width)
    assert max(len(part) for part in line.splitlines()) <= width
    assert line.endswith("link OFFLINE")  # the last words, whatever the width
    for count in ("taken 12,345,678", "synced 12,345,001", "cloud 98,765,432", "alerts 123"):
        assert any(count in part for part in line.splitlines())  # whole, on one line


def test_the_demos_notice_says_how_much_faster_its_meters_run() -> None:
    from gridgate.demo import _notice

    assert "faster" not in _notice(1)
    assert "run 60 times faster than life" in _notice(60)
    assert "read 60 times what a home uses" in _notice(60)

"""`gridgate cloud billing`: the operator's commands, against real PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys

import psycopg

from cloud.billing.tariff import TariffSpec

GRIDGATE = [sys.executable, "-m", "gridgate", "--log-level", "WARNING", "cloud"]


def gridgate(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GRIDGATE_DATABASE_URL": url, "COLUMNS": "80"}
    return subprocess.run(
        [*GRIDGATE, *args], env=env, capture_output=True, text=True, check=False, timeout=120
    )


def test_a_billing_run_from_the_command_line(database_url: str) -> None:
    assert (
        gridgate(database_url, "admin", "create-state", "--code", "CL", "--name", "Cli").returncode
        == 0
    )
    made = gridgate(
        database_url, "admin", "create-board", "--state", "CL", "--code", "CLI", "--name", "Cli"
    )
    assert made.returncode == 0, made.stderr
    spec = TariffSpec.model_validate({"energy": {"mode": "flat", "rate": "5"}})
    with psycopg.connect(database_url) as conn:
        board = conn.execute("SELECT id FROM boards WHERE code = 'CLI'").fetchone()[0]
        consumer = conn.execute(
            "INSERT INTO consumers (board_id, account_no, name) VALUES (%s, 'A1', 'A')"
            " RETURNING id",
            (board,),
        ).fetchone()[0]
        meter = conn.execute(
            "INSERT INTO meters (board_id, external_id, consumer_id) VALUES (%s, 'm1', %s)"
            " RETURNING id",
            (board, consumer),
        ).fetchone()[0]
        gateway = conn.execute(
            "INSERT INTO gateways (board_id, gateway_code, public_key) VALUES (%s, 'g-cli', 'k')"
            " RETURNING id",
            (board,),
        ).fetchone()[0]
        tariff = conn.execute(
            "INSERT INTO tariffs (board_id, category, name) VALUES (%s, 'domestic', 'D')"
            " RETURNING id",
            (board,),
        ).fetchone()[0]
        conn.execute(
            "INSERT INTO tariff_versions (tariff_id, effective_from, spec)"
            " VALUES (%s, '2026-01-01', %s)",
            (tariff, spec.model_dump_json()),
        )
        for month in ("2026-09-01", "2026-10-01"):
            conn.execute("SELECT ensure_readings_partition(%s)", (month,))
        for ts, value in (("2026-09-30 18:30+00", 10), ("2026-10-31 18:30+00", 110)):
            conn.execute(
                "INSERT INTO readings VALUES (%s, '1.8.0', %s, %s, 'ok', %s)",
                (meter, ts, value, gateway),
            )
    first = gridgate(database_url, "billing", "run", "--board", "CLI", "--period", "2026-10")
    assert first.returncode == 0, first.stderr
    assert "1 created" in first.stdout
    second = gridgate(database_url, "billing", "run", "--board", "CLI", "--period", "2026-10")
    # in two lines that fit an 80-column terminal (the test's COLUMNS), every count kept
    assert second.stdout.splitlines() == [
        "CLI, October 2026: 0 created, 0 revised, 1 unchanged, 0 failed",
        "  0 of them estimated, 0 consumers without a meter",
    ]
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT total FROM invoices").fetchone()[0] == 500  # 100 units x 5
    bad = gridgate(database_url, "billing", "run", "--board", "CLI", "--period", "October")
    assert bad.returncode == 2
    assert "2026-10" in bad.stderr
    unknown = gridgate(database_url, "billing", "run", "--board", "NOPE", "--period", "2026-10")
    assert unknown.returncode == 2
    assert "NOPE" in unknown.stderr


def test_create_user_asks_for_the_password_twice_and_never_needs_it_on_the_line(
    database_url: str,
) -> None:
    env = {**os.environ, "GRIDGATE_DATABASE_URL": database_url}
    email = f"cli-{os.getpid()}@example.in"
    command = [*GRIDGATE, "admin", "create-user", "--email", email, "--role", "SUPER_ADMIN"]
    helped = gridgate(database_url, "admin", "create-user", "--help")
    assert "Asked for twice" in helped.stdout, helped.stdout
    assert "[required]" not in helped.stdout.split("--password")[1].split("\n")[0]
    made = subprocess.run(
        command,
        env=env,
        input="lantern orchard pebble\nlantern orchard pebble\n",
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert made.returncode == 0, made.stderr
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT role FROM users WHERE email = %s", (email,)).fetchone()
    assert row == ("SUPER_ADMIN",)


def test_a_billing_runs_summary_wraps_between_counts_never_through_one() -> None:
    from datetime import date

    from cloud.cli import describe_billing_run

    counts = {
        "created": 12_345,
        "revised": 678,
        "unchanged": 90_123,
        "failed": 4,
        "estimated": 567,
        "unmeasured": 89,
    }
    said = describe_billing_run("A-BOARD-CODE-OF-THIRTY-TWO-CHARS", date(2026, 9, 1), counts, 80)
    lines = said.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert len(lines) > 2  # the board's long code pushed the counts onto a line of their own
    words = " ".join(said.split())
    for fact in (
        "A-BOARD-CODE-OF-THIRTY-TWO-CHARS, September 2026:",
        "12345 created,",
        "678 revised,",
        "90123 unchanged,",
        "4 failed",
        "567 of them estimated, 89 consumers without a meter",
    ):
        assert fact in words

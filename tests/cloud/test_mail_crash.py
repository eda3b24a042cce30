"""kill -9 of the cloud process while it is sending an e-mail: after a restart every message
arrives, and none that the SMTP server had accepted is sent again."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.cloud.test_crash import start
from tests.support.services import free_tcp_port, isolated_database
from tests.support.smtp import smtp_server

ADDRESSES = [f"house{n}@example.in" for n in range(4)]


def seed(url: str) -> None:
    with psycopg.connect(url) as conn:
        conn.execute("INSERT INTO states (code, name) VALUES ('ML', 'Mail state')")
        conn.execute(
            "INSERT INTO boards (state_id, code, name)"
            " SELECT id, 'MAIL', 'Mail board' FROM states WHERE code = 'ML'"
        )
        for n, address in enumerate(ADDRESSES):
            conn.execute(
                "INSERT INTO consumers (board_id, account_no, name, email)"
                " SELECT id, %s, %s, %s FROM boards WHERE code = 'MAIL'",
                (f"M-{n}", f"House {n}", address),
            )


def until(url: str, query: str, timeout_s: float = 60) -> None:
    """Wait until `query` answers true."""
    deadline = time.monotonic() + timeout_s
    with psycopg.connect(url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            if conn.execute(query).fetchone()[0]:
                return
            conn.execute("SELECT pg_sleep(0.05)")
    raise AssertionError(f"never true: {query}")


def sign_up(base: str, n: int) -> None:
    response = httpx.post(
        f"{base}/api/v1/auth/signup",
        json={"account_no": f"M-{n}", "email": ADDRESSES[n]},
        timeout=10,
    )
    assert response.status_code == 202, response.text


@pytest.mark.slow
def test_kill_mid_send_loses_no_mail_and_sends_none_twice(
    postgres_server: str, tmp_path: Path
) -> None:
    with isolated_database(postgres_server) as url, smtp_server() as smtp:
        port = free_tcp_port()
        settings = {
            "smtp_url": smtp.url,
            "mail_poll_s": "0.05",
            "mail_lease_s": "2",
            "data_dir": str(tmp_path / "cloud"),
        }
        log = tmp_path / "cloud.log"
        process = start(url, port, log, **settings)
        seed(url)
        base = f"http://127.0.0.1:{port}"
        sign_up(base, 0)  # delivered and marked sent before anything goes wrong
        until(url, f"SELECT status = 'sent' FROM email_outbox WHERE to_address = '{ADDRESSES[0]}'")

        hold = threading.Event()
        smtp.mailbox.hold = hold  # the server takes the next message and does not answer
        sign_up(base, 1)
        assert smtp.mailbox.holding.wait(60), "the sender never reached the server"
        sign_up(base, 2)
        sign_up(base, 3)
        process.send_signal(signal.SIGKILL)
        process.wait(30)
        smtp.mailbox.hold = None
        hold.set()  # the held message is answered "try again" on a dead connection

        process = start(url, port, log, **settings)
        try:
            until(url, "SELECT bool_and(status = 'sent') FROM email_outbox")
        finally:
            process.terminate()
            process.wait(30)
        received = sorted(m["To"] for m in smtp.mailbox.messages)
        assert received == sorted(ADDRESSES), smtp.mailbox.summary()
        with psycopg.connect(url) as conn:
            claimed_twice = conn.execute(
                "SELECT to_address FROM email_outbox WHERE attempts > 1"
            ).fetchall()
        assert [row[0] for row in claimed_twice] == [ADDRESSES[1]]  # only the one cut off

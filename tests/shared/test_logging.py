"""Logging: one JSON line per event, secrets never written, chatty libraries heard only when they
warn (everything at DEBUG), pymodbus heard only at DEBUG."""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterator

import pytest
import structlog
from pymodbus.logging import Log

from shared import configure_logging
from shared._logging import CHATTY_LIBRARIES, DEBUG_ONLY_LIBRARIES


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    levels = {
        name: logging.getLogger(name).level for name in CHATTY_LIBRARIES + DEBUG_ONLY_LIBRARIES
    }
    yield
    root.handlers[:], root.level = handlers, level
    for name, saved in levels.items():
        logging.getLogger(name).setLevel(saved)
    structlog.reset_defaults()


def lines(err: str) -> list[dict]:
    return [json.loads(line) for line in err.splitlines() if line.startswith("{")]


def test_secrets_are_redacted_and_lines_are_json(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", json_output=True)
    structlog.get_logger("edge.enrollment").info(
        "enrolled", gateway="gw-1", token="AbCdEf123", password="hunter2"
    )
    logging.getLogger("uvicorn.error").info("started")
    err = capsys.readouterr().err
    assert "AbCdEf123" not in err
    assert "hunter2" not in err
    enrolled, started = lines(err)
    assert enrolled["token"] == enrolled["password"] == "[redacted]"
    assert enrolled["gateway"] == "gw-1"
    assert enrolled["logger"] == "edge.enrollment"
    assert started["event"] == "started"
    assert started["logger"] == "uvicorn.error"


def test_chatty_libraries_only_warn_unless_debugging(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", json_output=True)
    logging.getLogger("httpx").info('HTTP Request: POST /api/v1/ingest/batches "200 OK"')
    logging.getLogger("transitions.core").info("Finished processing state connected callbacks")
    logging.getLogger("httpx").warning("retrying after a reset connection")
    logging.getLogger("edge.sync").info("batch acknowledged")
    assert [line["event"] for line in lines(capsys.readouterr().err)] == [
        "retrying after a reset connection",
        "batch acknowledged",
    ]
    configure_logging("DEBUG", json_output=True)
    logging.getLogger("httpx").info("HTTP Request: GET /healthz")
    assert [line["event"] for line in lines(capsys.readouterr().err)] == [
        "HTTP Request: GET /healthz"
    ]


def test_pymodbus_is_heard_only_at_debug_and_then_as_debug(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """pymodbus reports each failed transaction at ERROR with a dump of the last frames; the
    transport has already made it a typed error, which is ours to log."""
    configure_logging("INFO", json_output=True)
    Log.transport_dump(Log.SEND_DATA, b"\x02\x03\x00\x00\x00\x01\x84\x39", b"")
    Log.error("No response received after 0 retries, continue with next request")
    structlog.get_logger("edge.scheduler").warning("meter read failed", error="CrcError")
    structlog.get_logger("edge.daemon").error("saving state failed")
    err = capsys.readouterr().err
    assert "No response received" not in err
    assert ">>>>>" not in err
    assert [(line["event"], line["level"]) for line in lines(err)] == [
        ("meter read failed", "warning"),
        ("saving state failed", "error"),
    ]
    configure_logging("DEBUG", json_output=True)
    Log.transport_dump(Log.SEND_DATA, b"\x02\x03\x00\x00\x00\x01\x84\x39", b"")
    Log.error("No response received after 1 retries, continue with next request")
    shown = [(line["event"], line["level"]) for line in lines(capsys.readouterr().err)]
    assert shown == [
        ("send: 0x2 0x3 0x0 0x0 0x0 0x1 0x84 0x39", "debug"),
        ("No response received after 1 retries, continue with next request", "debug"),
    ]


def test_a_terminal_line_is_in_words_at_local_time_within_the_width(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "40")
    monkeypatch.setenv("TZ", "Asia/Kolkata")
    time.tzset()
    try:
        configure_logging("INFO", json_output=False)
        structlog.get_logger("edge.sync").warning(
            "sync failed; retrying", error="cloud unreachable", attempt=2, retry_in_s=2.7
        )
        structlog.get_logger("edge.daemon").info("edge daemon running", gateway="gw-1")
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    err = capsys.readouterr().err
    assert max(len(line) for line in err.splitlines()) <= 40
    assert re.match(r"\d\d:\d\d:\d\d IST warning: sync failed;", err), err
    assert "{" not in err  # words, not a JSON dump
    said = " ".join(err.split())
    assert "error=cloud unreachable attempt=2 retry_in_s=2.7" in said
    assert re.search(r"\d\d:\d\d:\d\d IST edge daemon running gateway=gw-1", said), said


def test_a_command_can_keep_its_log_in_a_file_and_show_only_warnings(
    capsys: pytest.CaptureFixture[str], tmp_path
) -> None:
    kept = tmp_path / "demo" / "demo.log"
    configure_logging("INFO", json_output=True, terminal_level="WARNING", log_file=kept)
    try:
        structlog.get_logger("cloud.migrate").info("migration applied", migration="0001_core.sql")
        structlog.get_logger("edge.sync").warning("sync failed; retrying", attempt=1)
    finally:
        logging.getLogger().handlers[-1].close()
    assert [line["event"] for line in lines(capsys.readouterr().err)] == ["sync failed; retrying"]
    assert [line["event"] for line in lines(kept.read_text())] == [
        "migration applied",
        "sync failed; retrying",
    ]

"""`gridgate edge status` on an 80-column terminal: every fact whole, wrapped between facts."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime, timedelta

import pytest
from rich.console import Console

from edge.clock import ClockState
from edge.status_view import render_status

NOW = datetime(2026, 11, 27, 15, 6, tzinfo=UTC)
LONG_ID = "substation-7-feeder-12-transformer-3-consumer-0000412345-sdm630x"  # 64, the most


def ago(seconds: float) -> str:
    return (NOW - timedelta(seconds=seconds)).isoformat()


def meter(bus: str, **stats: object) -> dict[str, object]:
    return {"bus": bus, "good_reads": 48_213, "latency_ms": 412.0, **stats}


REPORT = {
    "store": "/var/lib/gridgate/a-rather-long-data-directory-name/of-this-gateway/edge.sqlite",
    "daemon": {"updated_at": ago(3)},
    "buses": {
        "rs485-main-switchboard": {"kind": "modbus-rtu", "utilisation": 0.43},
        "dlms-1": {"kind": "dlms-hdlc", "utilisation": 0.02},
    },
    "meters": {
        LONG_ID: meter(
            "rs485-main-switchboard",
            last_good_read=ago(4000),
            timeouts=12,
            crc_errors=803,
            frame_errors=4,
            exceptions=1,
            transport_errors=2,
            failures_in_row=3,
            last_error=f"{LONG_ID}: input registers 234-245: answer failed its CRC check",
        ),
        "rtu-2-sdm120": meter("rs485-main-switchboard", last_good_read=ago(1)),
        "dlms-1": meter("dlms-1", last_good_read=ago(9000), latency_ms=None),
    },
    "alerts": [
        {"meter_id": LONG_ID, "kind": "communication_loss", "quantity": None},
        {"meter_id": None, "kind": "clock_unsynced", "quantity": None},
    ],
    "backlog": {"readings": 1_234_567, "events": 89, "oldest_unsent": ago(90_000)},
    "sync": {
        "last_sync_at": ago(240),
        "last_error": "the cloud refused the batch: 403 gateway gw-7 is revoked; enroll again",
    },
}
NOT_SYNCED = ClockState(False, False, "not synchronised by NTP", "sudo timedatectl set-ntp true")


def rendered(width: int) -> str:
    console = Console(file=io.StringIO(), width=width, color_system=None)
    console.print(render_status(REPORT, "gw-field-technician-01", NOT_SYNCED, now=NOW))
    return console.file.getvalue()  # type: ignore[attr-defined]


def test_every_fact_is_whole_at_80_columns() -> None:
    text = rendered(80)
    lines = [line.rstrip() for line in text.splitlines()]
    words = " ".join(text.split())
    assert max(len(line) for line in lines) <= 80
    assert "…" not in text  # nothing cut short
    assert "gw-field-technician-01 · daemon updated 3 s ago" in lines
    assert "Clock: not synchronised by NTP" in lines
    row = next(line for line in lines if line.startswith(" rtu-2-sdm120"))
    assert row.split() == ["rtu-2-sdm120", "1", "s", "ago", "48,213", "none", "412", "ms"]
    # the longest meter id and its five kinds of error wrap in their cells; the last read, the
    # count and the latency stay whole on the row's first line
    first = next(line for line in lines if line.startswith(" substation-7"))
    assert re.search(r" 67 min ago +48,213 +12 timeout, .* 412 ms$", first), first
    for count in ("12 timeout,", "803 CRC,", "4 frame,", "1 exception,", "2 port"):
        assert count in words
    # the failing meter's last error, naming the meter once
    assert f"{LONG_ID}: input registers 234-245: answer failed its CRC check" in words
    assert f"{LONG_ID}: {LONG_ID}" not in words
    assert "Communication loss · " + LONG_ID in words
    assert "Backlog: 1,234,567 readings, 89 events (oldest" in words
    assert "Last sync: 4 min ago" in lines
    assert words.endswith(
        "last error: the cloud refused the batch: 403 gateway gw-7 is revoked; enroll again"
    )


@pytest.mark.parametrize("width", [60, 100, 160])
def test_other_widths_wrap_between_facts(width: int) -> None:
    text = rendered(width)
    assert max(len(line) for line in text.splitlines()) <= width
    assert "…" not in text

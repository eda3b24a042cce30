"""Valid contract objects to start tests from; each test changes one thing."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from shared import Batch, Event, EventStatus, Heartbeat, Reading, Severity

T0 = datetime(2026, 11, 1, 0, 0, tzinfo=UTC)


def make_readings(count: int, *, first_seq: int = 1, meter_id: str = "m-1") -> list[Reading]:
    quantities = ("1.8.0", "1.7.0", "32.7.0")
    return [
        Reading(
            seq=first_seq + i,
            meter_id=meter_id,
            quantity=quantities[i % 3],
            ts=T0 + timedelta(minutes=i // 3),
            value=1000.0 + i * 0.25 if i % 3 == 0 else 1.5 + (i % 7) / 10,
        )
        for i in range(count)
    ]


def make_event(seq: int) -> Event:
    return Event(
        seq=seq,
        ts=T0,
        kind="voltage_sag",
        status=EventStatus.RAISED,
        severity=Severity.MEDIUM,
        meter_id="m-1",
        quantity="32.7.0",
        message="L1 voltage 198.2 V is 13.8 % below nominal",
        details={"voltage_v": 198.2, "threshold_pct": 10, "phase": "L1", "confirmed": True},
    )


def make_batch(readings: int = 10, events: int = 1) -> Batch:
    rows = make_readings(readings)
    evts = [make_event(readings + 1 + i) for i in range(events)]
    seqs = [r.seq for r in rows] + [e.seq for e in evts] or [1]  # a heartbeat: cursor 1
    return Batch(
        gateway_id="gw-0001",
        batch_id=uuid.uuid4(),
        first_seq=min(seqs),
        last_seq=max(seqs),
        sent_at=T0 + timedelta(hours=1),
        readings=rows,
        events=evts,
        heartbeat=Heartbeat(
            software_version="0.1.0",
            backlog_readings=1234,
            oldest_unsent_ts=T0,
            clock_synced=True,
            clock_offset_s=-0.012,
            uptime_s=3600.0,
        ),
    )

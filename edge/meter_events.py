"""A DLMS meter's own event logs (IS 15959) as the gateway's events and alerts, each once.

The meter keeps its events (power failures, tamper, voltage and current events) in logs; the
gateway reads them on every slow poll from the last event it has seen. An occurrence raises the
alert `meter_<group>` (`meter_power_failure`, `meter_magnet`, ...), its restoration clears it, a
one-off (cover open, a setting changed) is a notice; high-severity notices are alerts in the
cloud too.

Once: for each meter and log the gateway remembers the time of the last event taken and the
codes at that instant (`meter_events:<meter>` in the store, committed with the events it
produced), and a re-read — the next poll, a restart, a range read again — keeps only what is
newer. Pure functions: the daemon owns the state and the store.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from protocols.dlms.is15959 import Log, Phase
from shared import EVENT_KINDS, EventStatus

from .store import NewEvent

if TYPE_CHECKING:
    from protocols.dlms.profiles import MeterEvent

PREFIX = "meter_events:"
_STATUS = {
    Phase.OCCURRED: EventStatus.RAISED,
    Phase.RESTORED: EventStatus.CLEARED,
    Phase.ONCE: EventStatus.NOTICE,
}

Cursor = dict[str, dict[str, Any]]  # log -> {"ts": ISO time, "codes": [codes at that time]}


def since(cursor: Cursor | None) -> dict[Log, datetime | None]:
    """Where each log's next read starts: the last event's time (inclusive: several events
    may share a second), or None for a log never read (all it keeps)."""
    found: dict[Log, datetime | None] = dict.fromkeys(Log)
    for log in Log:
        mark = (cursor or {}).get(log.value)
        if mark:
            found[log] = datetime.fromisoformat(mark["ts"])
    return found


def kind_of(event: MeterEvent) -> str:
    info = event.info
    kind = f"meter_{info.group}" if info else "meter_event"
    return kind if kind in EVENT_KINDS else "meter_event"


def to_event(meter_id: str, event: MeterEvent) -> NewEvent:
    info = event.info
    kind = kind_of(event)
    status = _STATUS[info.phase] if info else EventStatus.NOTICE
    text = info.text if info else f"event code {event.code}"
    details: dict[str, Any] = {"code": event.code, "log": event.log.value, "text": text}
    details.update({quantity: float(value) for quantity, value in list(event.values.items())[:24]})
    return NewEvent(
        ts=event.ts,
        kind=kind,
        status=status,
        severity=EVENT_KINDS[kind][0],
        message=f"meter logged: {text} (code {event.code})",
        meter_id=meter_id,
        details=details,
    )


def take(meter_id: str, events: list[MeterEvent], cursor: Cursor | None) -> tuple[list, Cursor]:
    """The events not taken before, as the gateway's events (oldest first), and the cursor
    that remembers them."""
    from protocols.dlms.profiles import newer_than  # loaded already: `events` were read by it

    cursor = {log: dict(mark) for log, mark in (cursor or {}).items()}
    fresh: list[MeterEvent] = []
    for log in Log:
        mark = cursor.get(log.value)
        last = datetime.fromisoformat(mark["ts"]) if mark else None
        mine = sorted((e for e in events if e.log is log), key=lambda e: e.ts)
        new = newer_than(mine, last, mark["codes"] if mark else ())
        if not new:
            continue
        fresh.extend(new)
        newest = new[-1].ts
        codes = [e.code for e in new if e.ts == newest]
        if mark and last == newest:
            codes = sorted(set(mark["codes"]) | set(codes))
        cursor[log.value] = {"ts": newest.isoformat(), "codes": codes}
    fresh.sort(key=lambda e: e.ts)
    return [to_event(meter_id, e) for e in fresh], cursor

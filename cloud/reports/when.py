"""When a weekly report schedule runs, and which week it reports: pure arithmetic on instants
and a zone.

A weekly schedule runs on a day of the week (0 Monday ... 6 Sunday) at a wall-clock time in the
board's zone, whatever the offset that day (07:00 in London is 06:00 UTC in summer and 07:00 UTC
in winter). A time the clocks skip (01:30 on the morning British summer time begins) is read
with the offset before the change, so it runs an hour later by the clock that day (02:30 BST);
a time that happens twice runs at its first. Each run reports the seven local days before the
day it runs on.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def _at(day: date, at: time, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, at, tzinfo=zone).astimezone(UTC)


def last_weekly_run(now: datetime, weekday: int, at: time, zone: str) -> datetime:
    """The latest run at or before `now` (UTC)."""
    tz = ZoneInfo(zone)
    local = now.astimezone(tz)
    day = local.date() - timedelta(days=(local.weekday() - weekday) % 7)
    run = _at(day, at, tz)
    if run > now:
        run = _at(day - timedelta(days=7), at, tz)
    return run


def next_weekly_run(now: datetime, weekday: int, at: time, zone: str) -> datetime:
    """The first run after `now` (UTC)."""
    tz = ZoneInfo(zone)
    last = last_weekly_run(now, weekday, at, zone)
    return _at(last.astimezone(tz).date() + timedelta(days=7), at, tz)


def weekly_period(run: datetime, zone: str) -> tuple[date, date]:
    """The local days a run reports: the seven before the day it runs on, [start, end)."""
    day = run.astimezone(ZoneInfo(zone)).date()
    return day - timedelta(days=7), day

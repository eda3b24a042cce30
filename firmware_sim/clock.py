"""Simulation clocks: time that may run faster than the wall clock.

Meter physics asks a clock for "now" in UTC epoch seconds. `SimClock` runs at `speed` times real
time from a start instant (×3600 simulates a month in about 12 minutes); `ManualClock` only moves
when a test moves it. Wire timing is physical and never scaled: a frame takes as long on the line
whatever the simulation speed.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now_s(self) -> float:
        """Simulated time, UTC epoch seconds."""
        ...


class SimClock:
    def __init__(self, start: datetime | None = None, speed: float = 1.0) -> None:
        if speed <= 0:
            raise ValueError(f"speed must be positive, got {speed}")
        start = start or datetime.now(UTC)
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        self.speed = speed
        self._start_s = start.timestamp()
        self._mono0 = time.monotonic()

    def now_s(self) -> float:
        return self._start_s + (time.monotonic() - self._mono0) * self.speed

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.now_s(), UTC)

    def set_speed(self, speed: float) -> None:
        """Run at `speed` from now on, carrying on from the present simulated instant."""
        if speed <= 0:
            raise ValueError(f"speed must be positive, got {speed}")
        self._start_s, self._mono0 = self.now_s(), time.monotonic()
        self.speed = speed


class ManualClock:
    def __init__(self, start: datetime) -> None:
        self._now_s = start.timestamp()

    def now_s(self) -> float:
        return self._now_s

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock does not run backwards")
        self._now_s += seconds

    def now(self) -> datetime:
        return datetime.fromtimestamp(self._now_s, UTC)

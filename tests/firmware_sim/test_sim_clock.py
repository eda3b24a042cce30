"""The simulated clock changes pace without jumping: the demo slows its meters' time to the wall
clock's as it stops, and their registers must carry on from the instant they had reached."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from firmware_sim.clock import SimClock


def test_a_clock_changes_speed_from_where_it_is() -> None:
    start = datetime(2026, 10, 1, tzinfo=UTC)
    clock = SimClock(start=start, speed=60.0)
    before = clock.now_s()
    clock.set_speed(1.0)
    after = clock.now_s()
    assert clock.speed == 1.0
    assert start.timestamp() <= before <= after  # on from where it was, never back to the start
    with pytest.raises(ValueError, match="positive"):
        clock.set_speed(0)

"""The gateway's clock: is the time known, and what was it when the clock was not?

A Raspberry Pi has no battery-backed clock: after a power cut it boots in the past (or at the
last saved time) until NTP answers. The kernel knows whether it is synchronised (`adjtimex`
returns TIME_ERROR while it is not); a time before `not_before` is wrong whatever the kernel
says. Readings taken while the time is unknown are stored `clock_unsynced` with the monotonic
clock, and re-stamped once the time is known (`Store.correct_unsynced`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import time
from datetime import UTC, datetime

TIME_ERROR = 5  # adjtimex(2): the clock is not synchronised


def kernel_synchronised() -> bool | None:
    """True/False from the kernel's NTP state; None where it cannot be asked (not Linux)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        buffer = ctypes.create_string_buffer(512)  # struct timex; modes = 0: only read
        state = libc.adjtimex(buffer)
    except (OSError, AttributeError):
        return None
    if state < 0:
        return None
    return state != TIME_ERROR


class GatewayClock:
    def __init__(self, *, not_before: datetime, require_ntp: bool = True) -> None:
        self.not_before = not_before
        self.require_ntp = require_ntp

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic_us(self) -> int:
        return time.monotonic_ns() // 1000

    def synchronised(self) -> bool:
        if self.now() < self.not_before:
            return False
        if self.require_ntp:
            return kernel_synchronised() is not False
        return True

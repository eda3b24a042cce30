"""The gateway's clock: is the time known, and what was it when the clock was not?

A Raspberry Pi has no battery-backed clock: after a power cut it boots in the past (or at the
last saved time) until NTP answers. The kernel knows whether it is synchronised (`adjtimex`
returns TIME_ERROR while it is not); a time before `not_before` is wrong whatever the kernel
says. Readings taken while the time is unknown are stored `clock_unsynced` with the monotonic
clock, and re-stamped once the time is known (`Store.correct_unsynced`).

`clock_state` is the one definition of whether the time is trusted and how that is said: the
daemon stamps readings by it, and `gridgate edge status` and `doctor` both print its words, so
they cannot disagree on the same machine.
"""

from __future__ import annotations

import ctypes
import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .config import ClockSection

TIME_ERROR = 5  # adjtimex(2): the clock is not synchronised


@functools.cache
def _adjtimex() -> Callable[[ctypes.Array[ctypes.c_char]], int] | None:
    """The C library's adjtimex, looked up once: finding the library runs `ldconfig -p` and
    every CDLL makes its own function class, which asked every 5 s cost the daemon 1.2 ms on its
    event loop each time and its memory some 0.2 MB an hour. None where there is none."""
    try:
        return ctypes.CDLL(None, use_errno=True).adjtimex  # the process's own C library
    except (OSError, AttributeError):
        return None


def kernel_synchronised() -> bool | None:
    """True/False from the kernel's NTP state; None where it cannot be asked (not Linux)."""
    adjtimex = _adjtimex()
    if adjtimex is None:
        return None
    buffer = ctypes.create_string_buffer(512)  # struct timex; modes = 0: only read
    state = adjtimex(buffer)
    if state < 0:
        return None
    return state != TIME_ERROR


NTP_FIX = "sudo timedatectl set-ntp true; check the network reaches NTP"


@dataclass(frozen=True)
class ClockState:
    """Whether readings can be stamped with the gateway's time, and why, in a technician's words."""

    trusted: bool  # False: readings are held back as clock_unsynced
    ntp: bool | None  # the kernel's NTP state; None where it cannot be asked
    detail: str  # 'synchronised by NTP', 'not synchronised by NTP', ...
    fix: str = ""  # what to do while it is not trusted


def clock_state(
    *, now: datetime, not_before: datetime, require_ntp: bool, ntp: bool | None
) -> ClockState:
    """The one definition of a trusted clock: not before `not_before` (a Pi without a battery
    boots in the past), and synchronised by NTP unless the configuration does not require it."""
    if now < not_before:
        return ClockState(
            False,
            ntp,
            f"the time is before {not_before:%Y-%m-%d}",
            "set the time or enable NTP: sudo timedatectl set-ntp true",
        )
    if ntp is False:
        if require_ntp:
            return ClockState(False, ntp, "not synchronised by NTP", NTP_FIX)
        return ClockState(True, ntp, "not synchronised by NTP (this config does not require it)")
    if ntp is None:
        return ClockState(True, ntp, "time plausible (NTP state unknown here)")
    return ClockState(True, ntp, "synchronised by NTP")


class GatewayClock:
    def __init__(self, *, not_before: datetime, require_ntp: bool = True) -> None:
        self.not_before = not_before
        self.require_ntp = require_ntp

    @classmethod
    def from_config(cls, section: ClockSection) -> GatewayClock:
        """The clock as the gateway's [clock] section describes it."""
        not_before = datetime.fromisoformat(section.not_before.replace("Z", "+00:00"))
        return cls(not_before=not_before, require_ntp=section.require_ntp)

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic_us(self) -> int:
        return time.monotonic_ns() // 1000

    def state(self) -> ClockState:
        return clock_state(
            now=self.now(),
            not_before=self.not_before,
            require_ntp=self.require_ntp,
            ntp=kernel_synchronised(),
        )

    def synchronised(self) -> bool:
        """Can readings be stamped with this clock's time (`ClockState.trusted`)?"""
        return self.state().trusted

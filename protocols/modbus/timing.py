"""RS-485 wire time for Modbus RTU (Modbus over Serial Line spec, §2.5.1.1).

A character is start bit + data bits + parity bit (if any) + stop bits. Frames are separated by
at least 3.5 character times of silence; above 19200 baud the spec fixes that silence at 1.75 ms.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Parity = Literal["N", "E", "O"]


@dataclass(frozen=True, slots=True)
class LineSettings:
    baud: int = 9600
    parity: Parity = "N"
    stop_bits: int = 1
    data_bits: int = 8

    def __post_init__(self) -> None:
        if self.baud <= 0:
            raise ValueError(f"baud must be positive, got {self.baud}")
        if self.parity not in ("N", "E", "O"):
            raise ValueError(f"parity must be N, E or O, got {self.parity!r}")
        if self.stop_bits not in (1, 2):
            raise ValueError(f"stop bits must be 1 or 2, got {self.stop_bits}")

    @property
    def bits_per_character(self) -> int:
        return 1 + self.data_bits + (0 if self.parity == "N" else 1) + self.stop_bits

    @property
    def character_s(self) -> float:
        return self.bits_per_character / self.baud

    @property
    def silence_s(self) -> float:
        """The inter-frame silence t3.5."""
        return 0.00175 if self.baud > 19200 else 3.5 * self.character_s

    def frame_s(self, length_bytes: int) -> float:
        """Time a frame of `length_bytes` occupies the line."""
        return length_bytes * self.character_s

    def transaction_s(self, request_bytes: int, response_bytes: int, turnaround_s: float) -> float:
        """Minimum time of one request/response exchange: both frames, the silence after each,
        and the device's turnaround."""
        return (
            self.frame_s(request_bytes)
            + self.silence_s
            + turnaround_s
            + self.frame_s(response_bytes)
            + self.silence_s
        )


def read_request_bytes() -> int:
    """A read-registers request frame: unit, function, address(2), count(2), CRC(2)."""
    return 8


def read_response_bytes(register_count: int) -> int:
    """A read-registers response frame: unit, function, byte count, data, CRC(2)."""
    return 5 + 2 * register_count

"""Modbus RTU frames: CRC-16 and frame lengths, for both ends of the line."""

from __future__ import annotations

from pymodbus.framer import FramerRTU


def crc16(data: bytes) -> bytes:
    """The Modbus CRC-16 of `data`, as it goes on the line (low byte first)."""
    return FramerRTU.compute_CRC(data).to_bytes(2, "big")


def with_crc(data: bytes) -> bytes:
    return data + crc16(data)


def crc_ok(frame: bytes) -> bool:
    return len(frame) >= 4 and crc16(frame[:-2]) == frame[-2:]


def request_length(buffer: bytes) -> int | None:
    """Length of the request frame starting `buffer`, or None when it cannot be known yet
    (too few bytes) or ever (a function code whose length the line cannot tell)."""
    if len(buffer) < 2:
        return None
    function = buffer[1]
    if function in (1, 2, 3, 4, 5, 6, 8):
        return 8
    if function in (15, 16):
        return 9 + buffer[6] if len(buffer) >= 7 else None
    return None

"""Errors of the meter protocols.

    GridgateError (shared)
    └── ProtocolError              something went wrong talking to a meter
        ├── ProfileError           a register-map file is unusable; names the file and field
        ├── TransportError         the port or connection is unusable (missing, unplugged, refused)
        ├── MeterTimeout           the meter did not answer in time
        │   └── LateAnswer         ... it did answer, whole and sound, after the timeout
        ├── FrameError             bytes came back but not a valid frame
        │   └── CrcError           the frame's checksum does not match
        ├── MeterException         the meter answered with a protocol exception
        │   └── IllegalDataAddress   ... Modbus exception 2: a register it does not have
        └── SecurityError          a DLMS security check failed (ciphering, HLS, counters)
            ├── AuthenticationFailed   a GCM tag or an HLS answer does not verify: wrong
            │                          keys, or a frame changed on the way
            └── ReplayedFrame          an invocation counter not above the last one seen

Every error carries the meter (and, where known, the register) it concerns, so a log line or a
technician's screen says where to look.
"""

from __future__ import annotations

from shared import GridgateError


class ProtocolError(GridgateError):
    """Something went wrong talking to a meter."""

    def __init__(self, message: str, *, meter: str | None = None) -> None:
        self.meter = meter
        super().__init__(f"{meter}: {message}" if meter else message)


class ProfileError(ProtocolError):
    """A register-map file is unusable; the message names the file and the field."""


class TransportError(ProtocolError):
    """The serial port or network connection is unusable."""


class MeterTimeout(ProtocolError):
    """The meter did not answer within the timeout."""


class LateAnswer(MeterTimeout):
    """The meter's answer came whole and sound, but after the timeout: give it longer."""


class FrameError(ProtocolError):
    """Bytes came back, but not a valid frame (garbage, truncated, wrong length)."""


class CrcError(FrameError):
    """The frame's checksum does not match its contents."""


class MeterException(ProtocolError):
    """The meter answered with a protocol exception (Modbus exception code, DLMS error)."""

    def __init__(self, message: str, *, code: int, meter: str | None = None) -> None:
        self.code = code
        super().__init__(message, meter=meter)


class IllegalDataAddress(MeterException):
    """Modbus exception 2: the request touched a register the meter does not have."""


class SecurityError(ProtocolError):
    """A DLMS security check failed: a ciphered exchange or the HLS authentication cannot be
    trusted (the message names the meter and what to check)."""


class AuthenticationFailed(SecurityError):
    """A GCM tag or an HLS challenge answer does not verify: the keys are not the meter's, or
    the frame was changed on the way. Nothing from such a frame is used."""


class ReplayedFrame(SecurityError):
    """A ciphered frame's invocation counter is not above the last one seen from its sender:
    a replay (or a sender whose counter went back)."""

"""COSEM objects GridGate reads, by OBIS code, and the scaler-unit arithmetic.

A register (interface class 3) holds an integer `value` (attribute 2) and a `scaler_unit`
(attribute 3): the physical value is `value * 10**scaler` in the DLMS unit. Maximum demand lives
in an extended register (class 4), which adds the time the maximum was captured (attribute 5).
GridGate's quantities have fixed units (kWh, kW, V, ...), so DLMS units are converted here, in one
place.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from shared import QUANTITIES

from ..errors import FrameError

# Interface classes (Blue Book)
DATA, REGISTER, EXTENDED_REGISTER, PROFILE_GENERIC, CLOCK = 1, 3, 4, 7, 8
DISCONNECT_CONTROL = 70  # the supply relay: output_state (2), control_state (3), methods 1 and 2

CLOCK_LN = bytes([0, 0, 1, 0, 0, 255])
LOGICAL_DEVICE_NAME_LN = bytes([0, 0, 42, 0, 0, 255])
SERIAL_NUMBER_LN = bytes([0, 0, 96, 1, 0, 255])
LOAD_PROFILE_LN = bytes([1, 0, 99, 1, 0, 255])
LOAD_PROFILE_PERIOD_S = 900
DISCONNECT_CONTROL_LN = bytes([0, 0, 96, 3, 10, 255])
REMOTE_DISCONNECT, REMOTE_RECONNECT = 1, 2  # disconnect control's methods
CONTROL_STATES = {0: "disconnected", 1: "connected", 2: "ready_for_reconnection"}


def quantity_ln(code: str) -> bytes:
    """The logical name 1-0:C.D.E*255 of a quantity's short OBIS code C.D.E."""
    c, d, e = (int(part) for part in code.split("."))
    return bytes([1, 0, c, d, e, 255])


def register_class(code: str) -> int:
    """The interface class a meter keeps a quantity in: maximum demand (D = 6) is an extended
    register, which also holds when the maximum occurred (capture time); the rest are registers.
    Attributes 2 (value) and 3 (scaler_unit) mean the same in both."""
    return EXTENDED_REGISTER if code.split(".")[1] == "6" else REGISTER


def ln_quantity(ln: bytes) -> str | None:
    """The short code of an electricity logical name, if it is one of GridGate's quantities."""
    if len(ln) != 6 or ln[0] != 1:
        return None
    code = f"{ln[2]}.{ln[3]}.{ln[4]}"
    return code if code in QUANTITIES else None


def format_ln(ln: bytes) -> str:
    return f"{ln[0]}-{ln[1]}:{ln[2]}.{ln[3]}.{ln[4]}*{ln[5]}" if len(ln) == 6 else ln.hex()


# DLMS unit enumeration (Blue Book table "Enumerated values for physical units") ->
# (GridGate unit, power of ten from the DLMS unit to it)
DLMS_UNITS: dict[int, tuple[str, int]] = {
    27: ("kW", -3),  # W
    28: ("kVA", -3),  # VA
    29: ("kvar", -3),  # var
    30: ("kWh", -3),  # Wh
    31: ("kVAh", -3),  # VAh
    32: ("kvarh", -3),  # varh
    33: ("A", 0),
    35: ("V", 0),
    44: ("Hz", 0),
    8: ("°", 0),  # degree (phase angles)
    56: ("%", 0),  # percentage (harmonic distortion)
    255: ("", 0),  # count / unitless
}
UNIT_CODE_FOR: dict[str, int] = {
    "kWh": 30,
    "kW": 27,
    "kVAh": 31,
    "kVA": 28,
    "kvarh": 32,
    "kvar": 29,
    "V": 35,
    "A": 33,
    "Hz": 44,
    "°": 8,
    "%": 56,
    "": 255,
}


def to_quantity_value(raw: int, scaler: int, unit_code: int, quantity: str) -> float:
    """Apply scaler-unit and convert into the quantity's unit; refuse a unit that does not fit."""
    expected = QUANTITIES[quantity].unit
    unit, exponent = DLMS_UNITS.get(unit_code, (None, 0))
    if unit != expected:
        raise FrameError(f"{quantity}: DLMS unit code {unit_code} is not {expected!r}")
    if not -20 <= scaler <= 20:
        raise FrameError(f"{quantity}: scaler {scaler} is out of any meter's range")
    # a decimal shift, exact: 1543735 Wh is 1543.735 kWh, not 1543.7350000000001
    return float(Decimal(raw).scaleb(scaler + exponent))


def encode_datetime(moment: datetime) -> bytes:
    """A COSEM date-time (12 bytes) in UTC, deviation 0, clock status OK."""
    utc = moment.astimezone(UTC)
    hundredths = utc.microsecond // 10000
    return (
        utc.year.to_bytes(2, "big")
        + bytes(
            [utc.month, utc.day, utc.isoweekday(), utc.hour, utc.minute, utc.second, hundredths]
        )
        + b"\x00\x00\x00"
    )


def decode_datetime(raw: bytes) -> datetime:
    """A COSEM date-time as an aware UTC datetime. The deviation is minutes from local time to
    UTC (Blue Book 4.1.6.1): local = UTC - deviation; 0x8000 means not specified (taken as UTC)."""
    if len(raw) != 12:
        raise FrameError(f"a COSEM date-time is 12 bytes, got {len(raw)}")
    year = int.from_bytes(raw[0:2], "big")
    month, day, _weekday, hour, minute, second, hundredths = raw[2:9]
    if 0xFFFF in (year,) or 0xFF in (month, day, hour, minute):
        raise FrameError("COSEM date-time with unspecified fields cannot be a timestamp")
    deviation = int.from_bytes(raw[9:11], "big", signed=True)
    try:
        local = datetime(
            year,
            month,
            day,
            hour,
            minute,
            second if second != 0xFF else 0,
            (hundredths if hundredths != 0xFF else 0) * 10000,
        )
    except ValueError as exc:
        raise FrameError(f"invalid COSEM date-time: {exc}") from exc
    offset = timedelta(0) if deviation == -0x8000 else timedelta(minutes=-deviation)
    return (local - offset).replace(tzinfo=UTC)

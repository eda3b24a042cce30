"""A-XDR encoding of COSEM data (IEC 62056-6-2 / Blue Book 4.1.5), the few types GridGate writes.

dlms-cosem 21.3.2 encodes scalars well but not arrays (its `DataArray.to_bytes` fails), nor
booleans, bit-strings (whose length counts bits) or the entry descriptor of selective access; the
simulated meter and the reader's selective access both write through these functions instead.
Each returns the tag, any length, and the value's bytes.
"""

from __future__ import annotations

from collections.abc import Iterable

NULL = bytes([0])
ARRAY, STRUCTURE, BOOLEAN, BIT_STRING = 1, 2, 3, 4
DOUBLE_LONG, DOUBLE_LONG_UNSIGNED, OCTET_STRING, VISIBLE_STRING = 5, 6, 9, 10
INTEGER, LONG, UNSIGNED, LONG_UNSIGNED, LONG64, ENUM = 15, 16, 17, 18, 20, 22


def length(count: int) -> bytes:
    """A variable-length count: one byte below 128, else 0x80 + n and n big-endian bytes."""
    if count < 0:
        raise ValueError(f"a length cannot be negative ({count})")
    if count < 0x80:
        return bytes([count])
    size = (count.bit_length() + 7) // 8
    return bytes([0x80 | size]) + count.to_bytes(size, "big")


def array(items: Iterable[bytes]) -> bytes:
    encoded = list(items)
    return bytes([ARRAY]) + length(len(encoded)) + b"".join(encoded)


def structure(*items: bytes) -> bytes:
    return bytes([STRUCTURE]) + length(len(items)) + b"".join(items)


def boolean(value: bool) -> bytes:
    return bytes([BOOLEAN, 1 if value else 0])


def bit_string(bits: str) -> bytes:
    """`bits` as '0'/'1' characters, the first the most significant bit of the first byte."""
    padded = bits + "0" * (-len(bits) % 8)
    raw = int(padded, 2).to_bytes(len(padded) // 8, "big") if padded else b""
    return bytes([BIT_STRING]) + length(len(bits)) + raw


def octet_string(data: bytes) -> bytes:
    return bytes([OCTET_STRING]) + length(len(data)) + data


def visible_string(text: str) -> bytes:
    data = text.encode("ascii")
    return bytes([VISIBLE_STRING]) + length(len(data)) + data


def _fixed(tag: int, value: int, size: int, signed: bool) -> bytes:
    return bytes([tag]) + value.to_bytes(size, "big", signed=signed)


def integer(value: int) -> bytes:
    return _fixed(INTEGER, value, 1, True)


def long(value: int) -> bytes:
    return _fixed(LONG, value, 2, True)


def unsigned(value: int) -> bytes:
    return _fixed(UNSIGNED, value, 1, False)


def long_unsigned(value: int) -> bytes:
    return _fixed(LONG_UNSIGNED, value, 2, False)


def double_long(value: int) -> bytes:
    return _fixed(DOUBLE_LONG, value, 4, True)


def double_long_unsigned(value: int) -> bytes:
    return _fixed(DOUBLE_LONG_UNSIGNED, value, 4, False)


def long64(value: int) -> bytes:
    return _fixed(LONG64, value, 8, True)


def enum(value: int) -> bytes:
    return _fixed(ENUM, value, 1, False)


def capture_object(class_id: int, ln: bytes, attribute: int, data_index: int = 0) -> bytes:
    """A capture object definition (profile generic attribute 3, and selective access)."""
    return structure(
        long_unsigned(class_id), octet_string(ln), integer(attribute), long_unsigned(data_index)
    )

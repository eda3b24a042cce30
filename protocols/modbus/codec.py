"""Register values <-> 16-bit words, for every data type a profile may name.

Within a register Modbus is always big-endian; across registers vendors differ: `word_order`
"big" puts the high word first (Eastron, Schneider), "little" the low word first (Carlo Gavazzi).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from typing import Literal

DataType = Literal["u16", "s16", "u32", "s32", "u64", "s64", "float32", "float64"]
WordOrder = Literal["big", "little"]

_STRUCT: dict[str, str] = {
    "u16": "H",
    "s16": "h",
    "u32": "I",
    "s32": "i",
    "u64": "Q",
    "s64": "q",
    "float32": "f",
    "float64": "d",
}
REGISTER_COUNT: dict[str, int] = {
    "u16": 1,
    "s16": 1,
    "u32": 2,
    "s32": 2,
    "u64": 4,
    "s64": 4,
    "float32": 2,
    "float64": 4,
}
_INTEGER_RANGE: dict[str, tuple[int, int]] = {
    "u16": (0, 2**16 - 1),
    "s16": (-(2**15), 2**15 - 1),
    "u32": (0, 2**32 - 1),
    "s32": (-(2**31), 2**31 - 1),
    "u64": (0, 2**64 - 1),
    "s64": (-(2**63), 2**63 - 1),
}


def decode_words(words: Sequence[int], data_type: DataType, word_order: WordOrder) -> float:
    """Decode the raw value of one register group (not yet scaled)."""
    count = REGISTER_COUNT[data_type]
    if len(words) != count:
        raise ValueError(f"{data_type} needs {count} registers, got {len(words)}")
    ordered = list(words) if word_order == "big" else list(reversed(words))
    raw = b"".join(word.to_bytes(2, "big") for word in ordered)
    return struct.unpack(">" + _STRUCT[data_type], raw)[0]


def encode_value(raw: float, data_type: DataType, word_order: WordOrder) -> list[int]:
    """Encode a raw (already de-scaled) value into registers; integers are rounded and clamped."""
    if data_type in _INTEGER_RANGE:
        low, high = _INTEGER_RANGE[data_type]
        value: float = min(max(round(raw), low), high) if math.isfinite(raw) else 0
    else:
        value = raw
    packed = struct.pack(">" + _STRUCT[data_type], value)
    words = [int.from_bytes(packed[i : i + 2], "big") for i in range(0, len(packed), 2)]
    return words if word_order == "big" else list(reversed(words))


def decode_ascii(words: Sequence[int]) -> str:
    """Registers holding ASCII, two characters each, padded with NULs or spaces."""
    raw = b"".join(word.to_bytes(2, "big") for word in words)
    return raw.split(b"\0", 1)[0].decode("ascii", errors="replace").strip()


def encode_ascii(text: str, register_count: int) -> list[int]:
    raw = text.encode("ascii")[: register_count * 2].ljust(register_count * 2, b"\0")
    return [int.from_bytes(raw[i : i + 2], "big") for i in range(0, len(raw), 2)]

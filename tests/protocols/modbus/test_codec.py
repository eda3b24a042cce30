"""The register value codec: every data type and word order, checked against hand-made words."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols.modbus.codec import (
    REGISTER_COUNT,
    decode_ascii,
    decode_words,
    encode_ascii,
    encode_value,
)


def test_known_words() -> None:
    # 230.0 as IEEE-754 float32 is 0x43660000
    assert decode_words([0x4366, 0x0000], "float32", "big") == 230.0
    assert decode_words([0x0000, 0x4366], "float32", "little") == 230.0
    # EM24: 2301 (230.1 V * 10) as INT32 low word first
    assert decode_words([2301, 0], "s32", "little") == 2301
    assert decode_words([0xFFFF, 0xFFFF], "s32", "little") == -1
    assert decode_words([0, 0, 0x0001, 0x0000], "s64", "big") == 65536
    assert decode_words([0x8000], "s16", "big") == -32768


@given(
    st.sampled_from(["u16", "s16", "u32", "s32", "u64", "s64"]),
    st.integers(),
    st.sampled_from(["big", "little"]),
)
def test_integers_round_trip_or_clamp(data_type: str, value: int, order: str) -> None:
    words = encode_value(float(value), data_type, order)  # type: ignore[arg-type]
    assert len(words) == REGISTER_COUNT[data_type]
    assert all(0 <= w <= 0xFFFF for w in words)
    decoded = decode_words(words, data_type, order)  # type: ignore[arg-type]
    if abs(value) < 2**15:
        expected = value if not data_type.startswith("u") else max(value, 0)
        assert decoded == expected


@given(
    st.floats(allow_nan=False, allow_infinity=False, width=32), st.sampled_from(["big", "little"])
)
def test_float32_round_trips(value: float, order: str) -> None:
    assert decode_words(encode_value(value, "float32", order), "float32", order) == value  # type: ignore[arg-type]


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_float64_round_trips(value: float) -> None:
    assert decode_words(encode_value(value, "float64", "big"), "float64", "big") == value


def test_wrong_register_count_is_refused() -> None:
    with pytest.raises(ValueError, match="needs 2 registers"):
        decode_words([1], "float32", "big")


def test_ascii() -> None:
    words = encode_ascii("iEM3155", 20)
    assert len(words) == 20
    assert decode_ascii(words) == "iEM3155"

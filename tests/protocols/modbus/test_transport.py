"""What a transaction that pymodbus reports as "no response" met, told from the bytes that came."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols.errors import CrcError, FrameError, LateAnswer, MeterTimeout, ProtocolError
from protocols.modbus.rtu import with_crc
from protocols.modbus.transport import classify_unanswered

WHERE = "input registers 0-1"
ANSWER = with_crc(bytes([1, 4, 4, 0x43, 0x66, 0x80, 0x00]))
EXCEPTION = with_crc(bytes([1, 0x84, 2]))


def damaged(frame: bytes) -> bytes:
    return frame[:-1] + bytes([frame[-1] ^ 0x5A])


def classify(data: bytes) -> ProtocolError:
    return classify_unanswered(data, unit=1, where=WHERE, timeout_s=0.3, meter="meter-1")


@pytest.mark.parametrize(
    ("data", "error", "words"),
    [
        (b"", MeterTimeout, "no answer to input registers 0-1 within 0.3 s"),
        (damaged(ANSWER), CrcError, "failed its CRC check"),
        (damaged(EXCEPTION), CrcError, "failed its CRC check"),
        (ANSWER, LateAnswer, "came after the 0.3 s timeout"),
        (EXCEPTION, LateAnswer, "came after the 0.3 s timeout"),
        (ANSWER[:4], FrameError, "cut short after 4 bytes"),
        (EXCEPTION[:2], FrameError, "cut short after 2 bytes"),
        (ANSWER + b"\x00", FrameError, "garbage on the line (10 bytes"),
        (with_crc(bytes([2, 4, 2, 0, 1])), FrameError, "garbage"),  # another unit's answer
        (b"\xff\x13\x00", FrameError, "garbage"),
    ],
)
def test_each_kind_of_failure_is_named(data: bytes, error: type, words: str) -> None:
    found = classify(data)
    assert type(found) is error
    assert words in str(found)
    assert str(found).startswith("meter-1: ")


@given(
    registers=st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=125),
    flip=st.integers(1, 0xFFFF),
)
def test_any_whole_answer_with_a_wrong_crc_is_a_crc_error(registers: list[int], flip: int) -> None:
    body = b"".join(r.to_bytes(2, "big") for r in registers)
    frame = with_crc(bytes([1, 4, len(body)]) + body)
    crc = int.from_bytes(frame[-2:], "big") ^ flip
    assert isinstance(classify(frame[:-2] + crc.to_bytes(2, "big")), CrcError)


@given(data=st.binary(max_size=300))
def test_any_bytes_become_a_typed_error_that_names_the_meter(data: bytes) -> None:
    found = classify(data)
    assert isinstance(found, MeterTimeout | FrameError)
    assert found.meter == "meter-1"

"""Random and mutated bytes into the reader's profile and event decoders: a FrameError or a
table, never another exception, never a hang. The mutated inputs start from what the simulated
meter really sends (its block load profile and an event log), so the fuzz reaches deep paths."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware_sim.clock import ManualClock
from firmware_sim.cosem_objects import Selection
from firmware_sim.dlms_meter import SimulatedDlmsMeter
from firmware_sim.fleet import physics_for
from protocols.dlms import is15959 as std
from protocols.dlms.cosem import PROFILE_GENERIC
from protocols.dlms.profiles import (
    EntrySelection,
    decode_events,
    decode_profile_bytes,
    registers_from_blocks,
)
from protocols.errors import FrameError

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _meter_bytes() -> dict[str, bytes]:
    clock = ManualClock(datetime(2026, 11, 30, 12, 0, tzinfo=UTC))
    meter = SimulatedDlmsMeter(physics_for(3, 3, clock), clock, serial_number=3)
    clock.advance(3600)
    meter.physics.set_fault(clock.now_s(), magnet=True)
    meter.physics.set_fault(clock.now_s(), voltage_sag=0.7)

    def get(ln: bytes, attribute: int, selection: Selection | None = None) -> bytes:
        return meter.read_attribute(PROFILE_GENERIC, ln, attribute, selection)

    eight = Selection(2, EntrySelection(1, 8).to_bytes()[1:])  # the oldest 8 blocks

    return {
        "block_columns": get(std.BLOCK_LOAD_PROFILE, 3),
        "block_buffer": get(std.BLOCK_LOAD_PROFILE, 2, eight),
        "daily_columns": get(std.DAILY_LOAD_PROFILE, 3),
        "daily_buffer": get(std.DAILY_LOAD_PROFILE, 2),
        "event_columns": get(std.EVENT_LOGS[std.Log.VOLTAGE], 3),
        "event_buffer": get(std.EVENT_LOGS[std.Log.VOLTAGE], 2),
    }


REAL = _meter_bytes()
UNITS = {ln: (0, 30) for ln in (bytes([1, 0, c, 29, 0, 255]) for c in (1, 2, 3, 9))}
UNITS |= {bytes([1, 0, c, 8, 0, 255]): (0, 30) for c in (1, 2, 3, 9)}
UNITS |= {bytes([1, 0, c, d, 0, 255]): (-1, 35) for c in (32, 52, 72) for d in (7, 27)}
UNITS |= {bytes([1, 0, c, d, 0, 255]): (-2, 33) for c in (31, 51, 71) for d in (7, 27)}
UNITS |= {bytes([1, 0, c, 7, 0, 255]): (-3, 255) for c in (33, 53, 73)}


def _decode(ln: bytes, columns: bytes, buffer: bytes) -> None:
    with contextlib.suppress(FrameError):
        table = decode_profile_bytes(ln, columns, buffer, UNITS)
        if ln in std.LOG_OF:
            decode_events(table)
        else:
            table.samples("fuzz")


@st.composite
def mutated(draw: st.DrawFn, original: bytes) -> bytes:
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 6))):
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        choice = draw(st.sampled_from(["flip", "cut", "insert", "delete"]))
        if choice == "flip":
            data[at] = draw(st.integers(0, 255))
        elif choice == "cut":
            del data[at:]
        elif choice == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        else:
            del data[at : at + draw(st.integers(1, 8))]
    return bytes(data)


def test_the_real_bytes_decode() -> None:
    blocks = decode_profile_bytes(
        std.BLOCK_LOAD_PROFILE, REAL["block_columns"], REAL["block_buffer"], UNITS
    )
    assert len(blocks.rows) == 8
    table = decode_profile_bytes(
        std.EVENT_LOGS[std.Log.VOLTAGE], REAL["event_columns"], REAL["event_buffer"], UNITS
    )
    assert [e.code for e in decode_events(table)] == [9]


@FUZZ
@given(st.binary(max_size=400), st.binary(max_size=600))
def test_random_bytes(columns: bytes, buffer: bytes) -> None:
    _decode(std.BLOCK_LOAD_PROFILE, columns, buffer)
    _decode(std.EVENT_LOGS[std.Log.OTHER], columns, buffer)


@FUZZ
@given(mutated(REAL["block_columns"]), mutated(REAL["block_buffer"]))
def test_mutated_block_load_profile(columns: bytes, buffer: bytes) -> None:
    _decode(std.BLOCK_LOAD_PROFILE, columns, buffer)


@FUZZ
@given(mutated(REAL["event_columns"]), mutated(REAL["event_buffer"]))
def test_mutated_event_log(columns: bytes, buffer: bytes) -> None:
    _decode(std.EVENT_LOGS[std.Log.VOLTAGE], columns, buffer)


@FUZZ
@given(mutated(REAL["block_buffer"]), mutated(REAL["daily_buffer"]))
def test_mutated_registers_from_blocks(blocks: bytes, daily: bytes) -> None:
    with contextlib.suppress(FrameError):
        block_table = decode_profile_bytes(
            std.BLOCK_LOAD_PROFILE, REAL["block_columns"], blocks, UNITS
        )
        daily_table = decode_profile_bytes(
            std.DAILY_LOAD_PROFILE, REAL["daily_columns"], daily, UNITS
        )
        registers_from_blocks(block_table, daily_table, timedelta(minutes=15), "fuzz")

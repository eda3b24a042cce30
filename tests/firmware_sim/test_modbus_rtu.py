"""The RTU bus on a real pty, read by independent clients: pymodbus, and raw pyserial bytes.

Values are decoded here by each vendor's published format with `struct`, not by GridGate's
codec, so a mistake shared by encoder and decoder cannot hide.
"""

from __future__ import annotations

import asyncio
import struct
import time
from pathlib import Path

import pytest
import serial
from pymodbus.client import AsyncModbusSerialClient
from pymodbus.exceptions import ModbusIOException

from firmware_sim.clock import ManualClock
from firmware_sim.faults import FaultTarget, apply_fault
from firmware_sim.fleet import physics_for
from firmware_sim.modbus_meter import SimulatedModbusMeter
from firmware_sim.rtu_bus import RtuBus
from protocols.modbus.profile import parse_profile
from protocols.modbus.rtu import crc_ok, with_crc
from protocols.modbus.timing import LineSettings
from tests.support.timing import ANSWER_TIMEOUT_S, SILENCE_TIMEOUT_S


def f32_be(words: list[int], at: int) -> float:
    return struct.unpack(">f", struct.pack(">HH", words[at], words[at + 1]))[0]


def s32_le_words(words: list[int], at: int) -> int:
    return struct.unpack(">i", struct.pack(">HH", words[at + 1], words[at]))[0]


def s64_be(words: list[int], at: int) -> int:
    return struct.unpack(">q", struct.pack(">HHHH", *words[at : at + 4]))[0]


async def client_for(bus: RtuBus, timeout: float = ANSWER_TIMEOUT_S) -> AsyncModbusSerialClient:
    assert bus.link is not None
    client = AsyncModbusSerialClient(str(bus.link), baudrate=9600, timeout=timeout, retries=0)
    assert await client.connect()
    return client


async def test_each_model_answers_with_its_vendors_map(
    bus: RtuBus, meters: list[SimulatedModbusMeter], clock: ManualClock
) -> None:
    client = await client_for(bus)
    try:
        truth = {m.unit_id: m.physics.state_at(clock.now_s()).values for m in meters}
        # Eastron SDM630: input registers, float32 high word first, W for power
        r = await client.read_input_registers(0x0000, count=18, device_id=1)
        assert f32_be(r.registers, 0) == pytest.approx(truth[1]["32.7.0"], rel=1e-6)
        assert f32_be(r.registers, 6) == pytest.approx(truth[1]["31.7.0"], rel=1e-6)
        assert f32_be(r.registers, 12) == pytest.approx(truth[1]["21.7.0"] * 1000, rel=1e-6)
        r = await client.read_input_registers(0x0048, count=2, device_id=1)
        assert f32_be(r.registers, 0) == pytest.approx(truth[1]["1.8.0"], rel=1e-6)
        # Eastron SDM120: single phase at the same addresses
        r = await client.read_input_registers(0x000C, count=2, device_id=2)
        assert f32_be(r.registers, 0) == pytest.approx(truth[2]["16.7.0"] * 1000, rel=1e-6)
        # Carlo Gavazzi EM24: INT32 low word first, V*10, W*10, kWh*10
        r = await client.read_input_registers(0x0000, count=2, device_id=3)
        assert s32_le_words(r.registers, 0) == round(truth[3]["32.7.0"] * 10)
        r = await client.read_input_registers(0x0028, count=2, device_id=3)
        assert s32_le_words(r.registers, 0) == round(truth[3]["16.7.0"] * 10000)
        r = await client.read_input_registers(0x0031, count=9, device_id=3)  # PF sys .. W dmd
        assert r.registers[0] == round(truth[3]["13.7.0"] * 1000)
        assert r.registers[2] == round(truth[3]["14.7.0"] * 10)
        assert s32_le_words(r.registers, 3) == round(truth[3]["1.8.0"] * 10)
        assert s32_le_words(r.registers, 7) == round(truth[3]["1.5.0"] * 10000)
        # Schneider iEM3000: holding registers, float32 and INT64 Wh
        r = await client.read_holding_registers(3027, count=2, device_id=4)
        assert f32_be(r.registers, 0) == pytest.approx(truth[4]["32.7.0"], rel=1e-6)
        r = await client.read_holding_registers(3203, count=4, device_id=4)
        assert s64_be(r.registers, 0) == round(truth[4]["1.8.0"] * 1000)
    finally:
        client.close()


async def test_identification_registers_tell_models_apart(bus: RtuBus) -> None:
    client = await client_for(bus)
    try:
        r = await client.read_holding_registers(0xFC02, count=1, device_id=1)
        assert r.registers == [0x0070]
        r = await client.read_holding_registers(0xFC02, count=1, device_id=2)
        assert r.registers == [0x0020]
        r = await client.read_input_registers(0x000B, count=1, device_id=3)
        assert r.registers == [1648]
        r = await client.read_holding_registers(49, count=20, device_id=4)
        text = b"".join(w.to_bytes(2, "big") for w in r.registers).rstrip(b"\0")
        assert text == b"iEM3155"
        # an Eastron identification register does not exist on the EM24
        r = await client.read_holding_registers(0xFC02, count=1, device_id=3)
        assert r.isError()
        assert r.exception_code == 2
    finally:
        client.close()


async def test_energy_register_over_modbus_equals_integral_of_power(
    bus: RtuBus, meters: list[SimulatedModbusMeter], clock: ManualClock
) -> None:
    client = await client_for(bus)
    try:
        first = await client.read_input_registers(0x0048, count=2, device_id=2)
        integral = 0.0
        for _ in range(120):  # 10 minutes in 5 s slots; power is constant within a slot
            power = await client.read_input_registers(0x000C, count=2, device_id=2)
            integral += max(f32_be(power.registers, 0), 0) / 1000 * 5 / 3600
            clock.advance(5)
        last = await client.read_input_registers(0x0048, count=2, device_id=2)
        delta = f32_be(last.registers, 0) - f32_be(first.registers, 0)
        # float32 near 1000 kWh resolves ~0.00006 kWh; the integral itself is exact
        assert delta == pytest.approx(integral, abs=2e-4)
    finally:
        client.close()


async def test_unmapped_registers_and_functions_are_real_exceptions(bus: RtuBus) -> None:
    client = await client_for(bus)
    try:
        r = await client.read_input_registers(0x2000, count=2, device_id=1)
        assert r.isError()
        assert r.exception_code == 2
        r = await client.read_holding_registers(3100, count=2, device_id=4)
        assert r.isError()
        assert r.exception_code == 2
        r = await client.read_input_registers(0, count=81, device_id=1)
        assert r.isError()
        assert r.exception_code == 3
        r = await client.write_register(0, 1, device_id=1)
        assert r.isError()
        assert r.exception_code == 1
    finally:
        client.close()


async def test_only_the_addressed_unit_answers(bus: RtuBus) -> None:
    client = await client_for(bus, timeout=SILENCE_TIMEOUT_S)
    try:
        with pytest.raises(ModbusIOException):
            await client.read_input_registers(0, count=2, device_id=99)
        client.ctx.comm_params.timeout_connect = ANSWER_TIMEOUT_S  # pymodbus's response timeout
        r = await client.read_input_registers(0, count=2, device_id=1)
        assert not r.isError()  # the bus is still in step after the silence
    finally:
        client.close()


WIDE_PROFILE = """
model = "wide"
vendor = "Test"
description = "a meter that allows 125-register reads"
phases = 3
max_registers_per_request = 125
max_gap_registers = 125
identify = { register_type = "holding", address = 0, data_type = "u16", expect = 1 }
serial = { register_type = "holding", address = 1, data_type = "u32" }
[[registers]]
quantity = "32.7.0"
register_type = "input"
address = 0
data_type = "float32"
[[registers]]
quantity = "1.8.0"
register_type = "input"
address = 123
data_type = "float32"
"""


def raw_transaction(port: serial.Serial, request: bytes, expect: int) -> tuple[bytes, float]:
    port.reset_input_buffer()
    started = time.perf_counter()
    port.write(request)
    answer = port.read(expect)
    return answer, time.perf_counter() - started


def raw_exchange(
    port: serial.Serial, request: bytes, first_byte_timeout_s: float = ANSWER_TIMEOUT_S
) -> tuple[bytes, float]:
    """Send `request` and take the answer as an RTU master frames it: from its first byte to the
    silence after it. (The simulator writes each answer at once, whole or spoiled, so the
    silence that ends it is never a stall in the middle of it.) b"" if nothing came before
    `first_byte_timeout_s`. Returns the answer and the seconds to its first byte."""
    port.reset_input_buffer()
    port.timeout = first_byte_timeout_s
    started = time.perf_counter()
    port.write(request)
    answer = bytearray(port.read(1))
    took = time.perf_counter() - started
    if answer:
        port.timeout = 0.05  # more than t3.5 at 9600 baud: the frame has ended
        while more := port.read(256):
            answer += more
    return bytes(answer), took


@pytest.mark.parametrize(("baud", "turnaround_s"), [(9600, 0.0), (19200, 0.005), (38400, 0.0)])
async def test_wire_time_of_a_125_register_read(
    tmp_path: Path, clock: ManualClock, baud: int, turnaround_s: float
) -> None:
    profile = parse_profile(WIDE_PROFILE, "wide")
    meter = SimulatedModbusMeter(
        5, profile, physics_for(1, 3, clock), clock, serial_number=1, turnaround_s=turnaround_s
    )
    line = LineSettings(baud)
    async with RtuBus([meter], line, link=tmp_path / "wide") as bus:
        request = with_crc(bytes([5, 4, 0, 0, 0, 125]))
        expected = line.frame_s(8) + line.silence_s + turnaround_s + line.frame_s(255)
        with serial.Serial(str(bus.link), baudrate=baud, timeout=2) as port:
            timings = []
            for _ in range(3):
                answer, took = await asyncio.to_thread(raw_transaction, port, request, 255)
                assert len(answer) == 255
                assert crc_ok(answer)
                timings.append(took)
    if baud == 9600:
        assert expected == pytest.approx(0.2776, abs=0.001)  # the spec's "about 0.3 s"
    assert min(timings) >= expected  # never faster than the wire
    assert min(timings) <= expected * 1.10


async def test_line_faults_show_up_as_on_a_real_line(
    bus: RtuBus, meters: list[SimulatedModbusMeter], clock: ManualClock
) -> None:
    meter = meters[0]
    target = FaultTarget(meter.physics, meter.faults, clock.now_s)
    request = with_crc(bytes([1, 4, 0, 0, 0, 2]))
    assert bus.link is not None
    with serial.Serial(str(bus.link), baudrate=9600) as port:
        good, _ = await asyncio.to_thread(raw_exchange, port, request)
        assert len(good) == 9
        assert crc_ok(good)

        apply_fault(target, "crc_error", "1")
        bad, _ = await asyncio.to_thread(raw_exchange, port, request)
        assert len(bad) == 9
        assert not crc_ok(bad)
        assert bad[:3] == good[:3]
        meter.faults.crc_error = 0

        apply_fault(target, "truncated", "1")
        short, _ = await asyncio.to_thread(raw_exchange, port, request)
        assert 0 < len(short) < 9
        assert short == good[: len(short)]
        meter.faults.truncated = 0

        apply_fault(target, "garbage", "1")
        noise, _ = await asyncio.to_thread(raw_exchange, port, request)
        assert noise
        assert not (noise[:2] == b"\x01\x04" and crc_ok(noise))
        meter.faults.garbage = 0

        apply_fault(target, "exception", "6")
        busy, _ = await asyncio.to_thread(raw_exchange, port, request)
        assert busy[:3] == bytes([1, 0x84, 6])
        assert crc_ok(busy)
        meter.faults.exception_code = None

        apply_fault(target, "no_answer", "1")
        silent, took = await asyncio.to_thread(raw_exchange, port, request, SILENCE_TIMEOUT_S)
        assert silent == b""
        assert took >= SILENCE_TIMEOUT_S * 0.99
        meter.faults.no_answer = 0

        apply_fault(target, "late_answer", "0.3")
        late, took = await asyncio.to_thread(raw_exchange, port, request)
        assert crc_ok(late)  # the whole answer, taken here: nothing is left to drain
        assert took > 0.3
        meter.faults.late_answer_s = 0

        recovered, _ = await asyncio.to_thread(raw_exchange, port, request)
        assert crc_ok(recovered)


async def test_corrupt_request_gets_no_answer_and_the_line_recovers(bus: RtuBus) -> None:
    assert bus.link is not None
    good_request = with_crc(bytes([1, 4, 0, 0, 0, 2]))
    corrupt = good_request[:-1] + bytes([good_request[-1] ^ 0xFF])
    with serial.Serial(str(bus.link), baudrate=9600) as port:
        answer, _ = await asyncio.to_thread(raw_exchange, port, corrupt, SILENCE_TIMEOUT_S)
        assert answer == b""
        answer, _ = await asyncio.to_thread(raw_exchange, port, good_request)
        assert crc_ok(answer)
    assert bus.frames_dropped >= 1


async def test_physics_faults_reach_the_registers(
    bus: RtuBus, meters: list[SimulatedModbusMeter], clock: ManualClock
) -> None:
    meter = meters[0]
    target = FaultTarget(meter.physics, meter.faults, clock.now_s)
    client = await client_for(bus)
    try:
        apply_fault(target, "phase_loss", "2")
        r = await client.read_input_registers(0x0000, count=6, device_id=1)
        assert f32_be(r.registers, 2) == 0.0  # L2 voltage
        apply_fault(target, "reset")
        r = await client.read_input_registers(0x0048, count=2, device_id=1)
        assert f32_be(r.registers, 0) == pytest.approx(0.0, abs=1e-6)
    finally:
        client.close()

"""The Modbus reader against the simulated bus (pty) and TCP server: values, errors, learning."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from firmware_sim.clock import ManualClock
from firmware_sim.fleet import MeterSpec, build_modbus_meters
from firmware_sim.modbus_meter import SimulatedModbusMeter
from firmware_sim.rtu_bus import RtuBus
from firmware_sim.tcp_server import ModbusTcpServer
from protocols.errors import (
    CrcError,
    FrameError,
    MeterException,
    MeterTimeout,
    TransportError,
)
from protocols.modbus.reader import ModbusMeterConfig, ModbusMeterReader
from protocols.modbus.timing import LineSettings
from protocols.modbus.transport import ModbusLine, ModbusSerialLine, ModbusTcpLine
from shared import QUANTITIES
from tests.support.timing import ANSWER_TIMEOUT_S, SILENCE_TIMEOUT_S

T0 = datetime(2026, 11, 3, 14, 0, tzinfo=UTC)
MODELS = ["sdm630", "sdm120", "em24", "iem3000"]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def meters(clock: ManualClock) -> list[SimulatedModbusMeter]:
    specs = [MeterSpec(unit, model) for unit, model in enumerate(MODELS, start=1)]
    return build_modbus_meters(specs, clock, seed=3, turnaround_s=0.005)


@pytest.fixture(params=["rtu", "tcp"])
async def any_line(
    request: pytest.FixtureRequest, meters: list[SimulatedModbusMeter], tmp_path: Path
) -> AsyncIterator[ModbusLine]:
    if request.param == "rtu":
        async with RtuBus(meters, LineSettings(9600), link=tmp_path / "bus"):
            line: ModbusLine = ModbusSerialLine(str(tmp_path / "bus"), LineSettings(9600))
            await line.connect()
            yield line
            line.close()
        return
    server = ModbusTcpServer(meters, "127.0.0.1", 0)
    await server.start()
    line = ModbusTcpLine("127.0.0.1", server.port)
    await line.connect()
    yield line
    line.close()
    await server.stop()


@pytest.fixture
async def rtu_line(meters: list[SimulatedModbusMeter], tmp_path: Path) -> AsyncIterator[ModbusLine]:
    async with RtuBus(meters, LineSettings(9600), link=tmp_path / "bus"):
        line = ModbusSerialLine(str(tmp_path / "bus"), LineSettings(9600))
        await line.connect()
        yield line
        line.close()


def reader_for(
    meter: SimulatedModbusMeter, line: ModbusLine, timeout_s: float = ANSWER_TIMEOUT_S
) -> ModbusMeterReader:
    config = ModbusMeterConfig(f"meter-{meter.unit_id}", meter.unit_id, meter.profile, timeout_s)
    return ModbusMeterReader(config, line)


def tolerance(meter: SimulatedModbusMeter, quantity: str, truth: float) -> float:
    """The format's precision: half a step for integers, float32's 24-bit mantissa."""
    spec = meter.profile.register_for(quantity)
    if spec.data_type.startswith("float"):
        return abs(truth) * 2**-23 + 1e-9
    return spec.scale / 2 + 1e-12


async def test_every_model_reads_the_physics_within_its_precision(
    any_line: ModbusLine,
    meters: list[SimulatedModbusMeter],
    clock: ManualClock,
) -> None:
    line = any_line
    for meter in meters:
        samples = await reader_for(meter, line).read()
        truth = meter.physics.state_at(clock.now_s()).values
        assert {s.quantity for s in samples} == {r.quantity for r in meter.profile.registers}
        for sample in samples:
            expected = truth[sample.quantity]
            assert abs(sample.value - expected) <= tolerance(meter, sample.quantity, expected), (
                meter.profile.model,
                sample.quantity,
            )
            assert sample.meter_id == f"meter-{meter.unit_id}"
            assert sample.unit == QUANTITIES[sample.quantity].unit


async def test_poll_classes_read_only_their_registers(
    rtu_line: ModbusLine, meters: list[SimulatedModbusMeter]
) -> None:
    reader = reader_for(meters[0], rtu_line)
    fast = {s.quantity for s in await reader.read("fast")}
    slow = {s.quantity for s in await reader.read("slow")}
    energy = {
        r.quantity for r in meters[0].profile.registers if QUANTITIES[r.quantity].is_cumulative
    }
    assert {"1.8.0", "2.8.0", "3.8.0", "4.8.0", "9.8.0", "21.8.0"} <= energy
    demand_and_distortion = {"1.5.0", "1.6.0", "9.5.0", "9.6.0"} | {
        f"{c}.7.124" for c in (31, 51, 71, 32, 52, 72)
    }
    assert slow == energy | demand_and_distortion  # energy by default, the rest by the profile
    assert fast.isdisjoint(slow)
    assert fast | slow == {r.quantity for r in meters[0].profile.registers}


async def test_identify_and_serial(
    rtu_line: ModbusLine, meters: list[SimulatedModbusMeter]
) -> None:
    for meter in meters:
        reader = reader_for(meter, rtu_line)
        assert meter.profile.identify.matches(await reader.identify())
        assert (await reader.serial_number()).lstrip("0") == str(meter.serial_number)


@pytest.mark.parametrize(
    ("fault", "error", "message", "timeout_s"),
    [  # a damaged answer must have come in before the read gives up; silence is silence
        ("crc_error", CrcError, "CRC", ANSWER_TIMEOUT_S),
        ("truncated", FrameError, "cut short", ANSWER_TIMEOUT_S),
        ("garbage", FrameError, "garbage", ANSWER_TIMEOUT_S),
        ("no_answer", MeterTimeout, "no answer", SILENCE_TIMEOUT_S),
    ],
)
async def test_line_faults_are_typed_and_the_bus_stays_in_step(
    rtu_line: ModbusLine,
    meters: list[SimulatedModbusMeter],
    fault: str,
    error: type[Exception],
    message: str,
    timeout_s: float,
) -> None:
    sick, healthy = meters[0], meters[1]
    setattr(sick.faults, fault, 1.0)
    with pytest.raises(error, match=message) as caught:
        await reader_for(sick, rtu_line, timeout_s).read("fast")
    assert "meter-1" in str(caught.value)
    assert "input registers" in str(caught.value)
    # the next transaction, to another meter, is unaffected
    assert await reader_for(healthy, rtu_line).read("fast")
    setattr(sick.faults, fault, 0.0)
    assert await reader_for(sick, rtu_line).read("fast")


async def test_a_damaged_answer_frees_the_line_at_once(
    rtu_line: ModbusLine, meters: list[SimulatedModbusMeter]
) -> None:
    """A CRC error came whole: nothing more is on its way, so the next request need not wait
    out another timeout (a truncated answer or silence would make it)."""
    timeout_s = ANSWER_TIMEOUT_S
    meters[0].faults.crc_error = 1.0
    with pytest.raises(CrcError):
        await reader_for(meters[0], rtu_line, timeout_s).identify()
    started = time.monotonic()
    await reader_for(meters[1], rtu_line, timeout_s).identify()
    assert time.monotonic() - started < timeout_s / 2


async def test_exception_response_is_typed(
    rtu_line: ModbusLine, meters: list[SimulatedModbusMeter]
) -> None:
    meters[2].faults.exception_code = 6
    with pytest.raises(MeterException, match="device busy") as caught:
        await reader_for(meters[2], rtu_line).read()
    assert caught.value.code == 6


async def test_late_answer_does_not_desynchronise(
    rtu_line: ModbusLine, meters: list[SimulatedModbusMeter]
) -> None:
    meters[0].faults.late_answer_s = 0.3  # answers after the timeout, within one more
    with pytest.raises(MeterTimeout):
        await reader_for(meters[0], rtu_line, timeout_s=0.2).read("fast")
    meters[0].faults.late_answer_s = 0
    other = await reader_for(meters[3], rtu_line).read("fast")
    assert {s.meter_id for s in other} == {"meter-4"}


async def test_an_undeclared_hole_is_learned_once(
    rtu_line: ModbusLine, meters: list[SimulatedModbusMeter], clock: ManualClock
) -> None:
    meter = meters[0]  # SDM630: its fast requests span the gap 0x12-0x33
    reader = reader_for(meter, rtu_line)
    merged = reader.plan.requests("fast")
    spanning = next(r for r in merged if r.address <= 0x0C and r.end > 0x10)
    meter.faults.holes.append(("input", 0x0A, 0x0A))  # current L3 itself is unreadable
    samples = await reader.read("fast")
    assert "71.7.0" in reader.plan.quarantined
    assert "71.7.0" not in {s.quantity for s in samples}
    assert len(samples) == len([s for r in merged for s in r.specs]) - 1
    before = meter.transactions
    await reader.read("fast")
    assert meter.transactions - before == len(reader.plan.requests("fast"))  # no retries now
    assert spanning not in reader.plan.requests("fast")


async def test_missing_port_is_a_transport_error(tmp_path: Path) -> None:
    line = ModbusSerialLine(str(tmp_path / "no-such-port"), LineSettings(9600))
    with pytest.raises(TransportError, match="no-such-port"):
        await line.connect()

"""The simulated DLMS meter, read by dlms-cosem's own (blocking) client over a real pty and TCP.

The client runs in a worker thread, as its I/O blocks; the meter runs on the event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import serial
from dlms_cosem import cosem
from dlms_cosem import enumerations as enums
from dlms_cosem.clients.dlms_client import DataResultError, DlmsClient
from dlms_cosem.cosem.capture_object import CaptureObject
from dlms_cosem.cosem.selective_access import RangeDescriptor
from dlms_cosem.hdlc import address, frames
from dlms_cosem.utils import parse_as_dlms_data

from firmware_sim.clock import ManualClock
from firmware_sim.dlms_line import DlmsTcpServer, HdlcMeterLine
from firmware_sim.dlms_meter import SimulatedDlmsMeter
from firmware_sim.faults import FaultTarget, apply_fault
from firmware_sim.fleet import physics_for
from protocols.modbus.timing import LineSettings

PASSWORD = b"12345678"
LDN = cosem.CosemAttribute(enums.CosemInterface.DATA, cosem.Obis(0, 0, 42, 0, 0, 255), 2)
CLOCK = cosem.CosemAttribute(enums.CosemInterface.CLOCK, cosem.Obis(0, 0, 1, 0, 0, 255), 2)
PROFILE = cosem.CosemAttribute(
    enums.CosemInterface.PROFILE_GENERIC, cosem.Obis(1, 0, 99, 1, 0, 255), 2
)
PROFILE_COLUMNS = cosem.CosemAttribute(
    enums.CosemInterface.PROFILE_GENERIC, cosem.Obis(1, 0, 99, 1, 0, 255), 3
)


def register(c: int, d: int, e: int, attribute: int = 2) -> cosem.CosemAttribute:
    return cosem.CosemAttribute(
        enums.CosemInterface.REGISTER, cosem.Obis(1, 0, c, d, e, 255), attribute
    )


def cosem_datetime(raw: bytes) -> datetime:
    """Independent of GridGate's decoder: Blue Book layout, deviation 0 here (UTC)."""
    year = int.from_bytes(raw[0:2], "big")
    return datetime(year, raw[2], raw[3], raw[5], raw[6], raw[7], tzinfo=UTC)


@pytest.fixture
def meter(clock: ManualClock) -> SimulatedDlmsMeter:
    return SimulatedDlmsMeter(
        physics_for(21, 3, clock), clock, serial_number=4242, password=PASSWORD, turnaround_s=0.01
    )


@pytest.fixture
async def hdlc(meter: SimulatedDlmsMeter, tmp_path: Path) -> AsyncIterator[HdlcMeterLine]:
    async with HdlcMeterLine(meter, LineSettings(9600), tmp_path / "dlms") as line:
        yield line


def hdlc_client(
    line: HdlcMeterLine, password: bytes | None = PASSWORD, timeout: int = 3
) -> DlmsClient:
    mechanism = enums.AuthenticationMechanism.LLS if password else None
    return DlmsClient.with_serial_hdlc_transport(
        str(line.link),
        client_logical_address=1 if password else 16,
        server_logical_address=1,
        server_physical_address=17,
        authentication_method=mechanism,
        password=password,
        timeout=timeout,
    )


async def in_thread(work: Callable[[], Any]) -> Any:
    return await asyncio.to_thread(work)


async def test_lls_association_reads_name_clock_and_registers(
    hdlc: HdlcMeterLine, meter: SimulatedDlmsMeter, clock: ManualClock
) -> None:
    def work() -> dict[str, Any]:
        with hdlc_client(hdlc).session() as session:
            return {
                "ldn": parse_as_dlms_data(session.get(LDN)),
                "clock": parse_as_dlms_data(session.get(CLOCK)),
                "energy": parse_as_dlms_data(session.get(register(1, 8, 0))),
                "energy_su": parse_as_dlms_data(session.get(register(1, 8, 0, 3))),
                "voltage": parse_as_dlms_data(session.get(register(32, 7, 0))),
                "voltage_su": parse_as_dlms_data(session.get(register(32, 7, 0, 3))),
            }

    got = await in_thread(work)
    truth = meter.physics.state_at(clock.now_s()).values
    assert got["ldn"] == b"GGS0000000004242"
    assert cosem_datetime(got["clock"]) == clock.now().replace(microsecond=0)
    scaler, unit = got["energy_su"]
    assert unit == 30  # Wh
    assert got["energy"] * 10**scaler / 1000 == pytest.approx(truth["1.8.0"], abs=0.0005)
    scaler, unit = got["voltage_su"]
    assert unit == 35  # V
    assert got["voltage"] * 10**scaler == pytest.approx(truth["32.7.0"], abs=0.05)
    assert meter.associations == 1


async def test_wrong_or_missing_password_is_rejected(hdlc: HdlcMeterLine) -> None:
    def associate(password: bytes | None) -> None:
        client = hdlc_client(hdlc, password)
        client.connect()
        try:
            client.associate()
        finally:
            client.disconnect()

    with pytest.raises(Exception, match="AUTHENTICATION_FAILED"):
        await in_thread(lambda: associate(b"wrong!!!"))
    with pytest.raises(Exception, match="AUTHENTICATION_REQUIRED"):
        await in_thread(lambda: associate(None))


async def test_no_security_association_when_no_password(clock: ManualClock, tmp_path: Path) -> None:
    open_meter = SimulatedDlmsMeter(physics_for(3, 1, clock), clock, serial_number=1)
    async with HdlcMeterLine(open_meter, LineSettings(9600), tmp_path / "open") as line:

        def work() -> Any:
            with hdlc_client(line, password=None).session() as session:
                return parse_as_dlms_data(session.get(register(31, 7, 0)))

        assert await in_thread(work) >= 0


async def test_block_load_profile_by_range_with_block_transfer(
    hdlc: HdlcMeterLine, meter: SimulatedDlmsMeter, clock: ManualClock
) -> None:
    """dlms-cosem's own client reads the IS 15959 block load profile by range: every 15
    minutes, both ends included, the block's import energy (Wh) the register's difference."""
    clock.advance(2 * 86400)
    meter.physics.advance_to(clock.now_s())
    start = clock.now() - timedelta(hours=12)
    start = start.replace(minute=0, second=0)
    end = start + timedelta(hours=6)
    descriptor = RangeDescriptor(CaptureObject(CLOCK, 0), start, end)

    def work() -> tuple[bytes, Any]:
        with hdlc_client(hdlc).session() as session:
            columns = parse_as_dlms_data(session.get(PROFILE_COLUMNS))
            return session.get(PROFILE, access_descriptor=descriptor), columns

    raw, columns = await in_thread(work)
    assert len(raw) > meter.max_pdu_bytes  # it could only have come in blocks
    rows = parse_as_dlms_data(raw)
    assert len(rows) == 25  # both ends included, every 15 minutes
    energy = [bytes(c[1]) for c in columns].index(bytes([1, 0, 1, 29, 0, 255]))
    registers = {c.t_s: c.values["1.8.0"] for c in meter.physics.captures}
    for row in rows:
        stamp = cosem_datetime(row[0])
        assert start <= stamp <= end
        assert stamp.minute % 15 == 0
        now, before = registers[stamp.timestamp()], registers[stamp.timestamp() - 900]
        assert row[energy] == round(now * 1000) - round(before * 1000)


async def test_unknown_object_is_a_data_access_error(hdlc: HdlcMeterLine) -> None:
    def work() -> None:
        with hdlc_client(hdlc).session() as session:
            session.get(register(99, 9, 9))

    with pytest.raises(DataResultError, match="OBJECT_UNDEFINED"):
        await in_thread(work)


def snrm_exchange(line: HdlcMeterLine) -> bytes:
    """Send dlms-cosem's SNRM frame on the raw port and return whatever comes back in 1 s."""
    snrm = frames.SetNormalResponseModeFrame(
        address.HdlcAddress(1, 17, "server"), address.HdlcAddress(1, None, "client")
    )
    with serial.Serial(str(line.link), baudrate=9600, timeout=1) as port:
        port.write(snrm.to_bytes())
        return port.read(64)


async def test_a_healthy_meter_answers_snrm_with_a_ua_the_library_accepts(
    hdlc: HdlcMeterLine,
) -> None:
    answer = await in_thread(lambda: snrm_exchange(hdlc))
    frames.UnNumberedAcknowledgmentFrame.from_bytes(answer)


@pytest.mark.parametrize(
    ("fault", "check"),
    [
        ("no_answer", lambda answer: answer == b""),
        ("crc_error", lambda answer: _library_rejects(answer, "FCS is not correct")),
        ("garbage", lambda answer: answer and _library_rejects(answer, "")),
        ("truncated", lambda answer: answer and _library_rejects(answer, "")),
    ],
)
async def test_line_faults_look_like_a_dead_or_noisy_line(
    hdlc: HdlcMeterLine,
    meter: SimulatedDlmsMeter,
    clock: ManualClock,
    fault: str,
    check: Callable[[bytes], bool],
) -> None:
    apply_fault(FaultTarget(meter.physics, meter.faults, clock.now_s), fault, "1")
    answer = await in_thread(lambda: snrm_exchange(hdlc))
    assert check(answer), answer.hex()


def _library_rejects(answer: bytes, message: str) -> bool:
    try:
        frames.UnNumberedAcknowledgmentFrame.from_bytes(answer)
    except Exception as exc:  # dlms-cosem raises several types for bad frames
        return message in str(exc)
    return False


async def test_clock_drift_fault(
    hdlc: HdlcMeterLine, meter: SimulatedDlmsMeter, clock: ManualClock
) -> None:
    apply_fault(FaultTarget(meter.physics, meter.faults, clock.now_s), "clock_drift", "120")
    clock.advance(86400)

    def work() -> Any:
        with hdlc_client(hdlc).session() as session:
            return parse_as_dlms_data(session.get(CLOCK))

    meter_time = cosem_datetime(await in_thread(work))
    assert (meter_time - clock.now()).total_seconds() == pytest.approx(120, abs=1)


async def test_tcp_wrapper(meter: SimulatedDlmsMeter, clock: ManualClock) -> None:
    server = DlmsTcpServer(meter, "127.0.0.1", 0)
    await server.start()
    try:

        def work() -> Any:
            client = DlmsClient.with_tcp_transport(
                "127.0.0.1",
                server.port,
                client_logical_address=1,
                server_logical_address=1,
                authentication_method=enums.AuthenticationMechanism.LLS,
                password=PASSWORD,
                timeout=3,
            )
            with client.session() as session:
                return parse_as_dlms_data(session.get(register(1, 8, 0)))

        value = await in_thread(work)
        truth = meter.physics.state_at(clock.now_s()).values["1.8.0"]
        assert value / 1000 == pytest.approx(truth, abs=0.0005)
    finally:
        await server.stop()


async def test_clock_set_by_the_library_client_over_hdlc(
    hdlc: HdlcMeterLine, meter: SimulatedDlmsMeter, clock: ManualClock
) -> None:
    """dlms-cosem's own client (not GridGate's) sets the clock with the password; the meter
    then keeps the new time, and a clock put wrong on purpose is seen as wrong."""
    apply_fault(FaultTarget(meter.physics, meter.faults, clock.now_s), "clock_offset", "-400")
    target = clock.now() + timedelta(seconds=30)

    def work() -> tuple[Any, Any, Any]:
        with hdlc_client(hdlc).session() as session:
            before = parse_as_dlms_data(session.get(CLOCK))
            encoded = bytes([9, 12]) + target.year.to_bytes(2, "big")
            encoded += bytes([target.month, target.day, target.isoweekday(), target.hour])
            encoded += bytes([target.minute, target.second, 0, 0, 0, 0])
            answer = session.set(CLOCK, encoded)
            after = parse_as_dlms_data(session.get(CLOCK))
            return before, answer, after

    before, answer, after = await in_thread(work)
    assert (cosem_datetime(before) - clock.now()).total_seconds() == pytest.approx(-400, abs=1)
    assert answer.result == enums.DataAccessResult.SUCCESS
    assert cosem_datetime(after) == target.replace(microsecond=0)

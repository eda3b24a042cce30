"""The asyncio DLMS reader against the simulated meter, over HDLC on a pty and the TCP wrapper."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from firmware_sim.clock import ManualClock
from firmware_sim.dlms_line import DlmsTcpServer, HdlcMeterLine
from firmware_sim.dlms_meter import SimulatedDlmsMeter
from firmware_sim.fleet import physics_for
from protocols.dlms.client import CosemSession
from protocols.dlms.cosem import EXTENDED_REGISTER, REGISTER, decode_datetime, quantity_ln
from protocols.dlms.link import DlmsLink
from protocols.dlms.reader import (
    DlmsMeterConfig,
    DlmsMeterReader,
    hdlc_link_factory,
    wrapper_link_factory,
)
from protocols.errors import CrcError, FrameError, MeterException, MeterTimeout, TransportError
from protocols.modbus.timing import LineSettings

T0 = datetime(2026, 11, 4, 9, 30, tzinfo=UTC)
PASSWORD = b"12345678"
LINE = LineSettings(9600)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def meter(clock: ManualClock) -> SimulatedDlmsMeter:
    return SimulatedDlmsMeter(
        physics_for(77, 3, clock), clock, serial_number=9, password=PASSWORD, turnaround_s=0.005
    )


@pytest.fixture(params=["hdlc", "tcp"])
async def links(
    request: pytest.FixtureRequest, meter: SimulatedDlmsMeter, tmp_path: Path
) -> AsyncIterator[Callable[[DlmsMeterConfig], Callable[[], DlmsLink]]]:
    if request.param == "hdlc":
        async with HdlcMeterLine(meter, LINE, tmp_path / "dlms"):
            yield lambda config: hdlc_link_factory(str(tmp_path / "dlms"), LINE, config)
        return
    server = DlmsTcpServer(meter, "127.0.0.1", 0)
    await server.start()
    yield lambda config: wrapper_link_factory("127.0.0.1", server.port, config)
    await server.stop()


def make_reader(
    links: Callable[[DlmsMeterConfig], Callable[[], DlmsLink]],
    password: bytes | None = PASSWORD,
    **changes: object,
) -> DlmsMeterReader:
    config = DlmsMeterConfig("dlms-1", password=password, timeout_s=1.0, **changes)  # type: ignore[arg-type]
    return DlmsMeterReader(config, links(config))


def step(quantity: str) -> float:
    """The resolution of the simulated meter's registers, in the quantity's unit."""
    return {"32.7.0": 0.1, "31.7.0": 0.01, "13.7.0": 0.001, "14.7.0": 0.01}.get(quantity, 0.001)


async def test_registers_equal_the_physics_with_scaler_unit_applied(
    links: Callable[[DlmsMeterConfig], Callable[[], DlmsLink]],
    meter: SimulatedDlmsMeter,
    clock: ManualClock,
) -> None:
    reader = make_reader(links)
    samples = await reader.read()
    truth = meter.physics.state_at(clock.now_s()).values
    assert {s.quantity for s in samples} == set(reader.config.quantities)
    for sample in samples:
        assert abs(sample.value - truth[sample.quantity]) <= step(sample.quantity) / 2 + 1e-9
    assert {s.quantity for s in await reader.read("slow")} == {
        *("1.8.0", "2.8.0", "9.8.0"),
        *("1.6.0", "9.6.0"),  # maximum demand changes once a period: read with the energies
    }


async def test_maximum_demand_is_an_extended_register_with_its_time(
    links: Callable[[DlmsMeterConfig], Callable[[], DlmsLink]],
    meter: SimulatedDlmsMeter,
    clock: ManualClock,
) -> None:
    clock.advance(3 * 3600)  # a dozen 15-minute periods have closed
    reader = make_reader(links)
    slow = {s.quantity: s.value for s in await reader.read("slow")}
    truth = meter.physics.state_at(clock.now_s()).values
    for quantity in ("1.6.0", "9.6.0"):
        assert slow[quantity] > 0
        assert abs(slow[quantity] - truth[quantity]) <= 0.0005 + 1e-9  # whole W / VA
    async with CosemSession(links(reader.config)(), meter="dlms-1", password=PASSWORD) as session:
        raw = await session.get(EXTENDED_REGISTER, quantity_ln("1.6.0"), 5)
        assert decode_datetime(raw).timestamp() == meter.physics.peak_at("1.6.0")
        with pytest.raises(MeterException, match="CLASS_INCONSISTENT"):
            await session.get(REGISTER, quantity_ln("1.6.0"), 2)


async def test_maximum_demand_kept_in_a_plain_register_is_found_there(
    clock: ManualClock, tmp_path: Path
) -> None:
    plain = SimulatedDlmsMeter(
        physics_for(78, 3, clock), clock, serial_number=10, extended_demand=False
    )
    clock.advance(2 * 3600)
    async with HdlcMeterLine(plain, LINE, tmp_path / "dlms-plain"):
        config = DlmsMeterConfig("dlms-plain", timeout_s=1.0)
        reader = DlmsMeterReader(
            config, hdlc_link_factory(str(tmp_path / "dlms-plain"), LINE, config)
        )
        for _ in range(2):  # found in class 3 on the first read, asked there directly after
            slow = {s.quantity: s.value for s in await reader.read("slow")}
            truth = plain.physics.state_at(clock.now_s()).values
            assert slow["1.6.0"] > 0
            assert abs(slow["1.6.0"] - truth["1.6.0"]) <= 0.0005 + 1e-9
            assert not reader.missing
            clock.advance(900)


async def test_values_are_exact_decimal_shifts(
    links: Callable[[DlmsMeterConfig], Callable[[], DlmsLink]],
) -> None:
    energy = next(s for s in await make_reader(links).read("slow") if s.quantity == "1.8.0")
    assert repr(energy.value) == repr(round(energy.value, 3))


async def test_meter_clock_and_drift(
    links: Callable[[DlmsMeterConfig], Callable[[], DlmsLink]],
    meter: SimulatedDlmsMeter,
    clock: ManualClock,
) -> None:
    meter.physics.set_fault(clock.now_s(), clock_drift_s_per_day=300)
    clock.advance(86400)
    drift = (await make_reader(links).read_clock() - clock.now()).total_seconds()
    assert drift == pytest.approx(300, abs=1)


async def test_load_profile_backfill_by_range(
    links: Callable[[DlmsMeterConfig], Callable[[], DlmsLink]],
    meter: SimulatedDlmsMeter,
    clock: ManualClock,
) -> None:
    clock.advance(3 * 86400)
    meter.physics.advance_to(clock.now_s())
    start = datetime(2026, 11, 5, 22, 0, tzinfo=UTC)
    end = start + timedelta(hours=10)
    samples = await make_reader(links).read_load_profile(start, end)
    energy = [s for s in samples if s.quantity == "1.8.0"]
    assert len(energy) == 41  # 10 hours of 15-minute captures, both ends included
    truth = {c.t_s: c.values for c in meter.physics.captures}
    for sample in energy:
        assert start <= sample.ts <= end
        assert sample.value == pytest.approx(truth[sample.ts.timestamp()]["1.8.0"], abs=0.0005)
    # the block load profile holds block energy of each: rebuilt on the daily register
    assert {s.quantity for s in samples} == {"1.8.0", "2.8.0", "3.8.0", "9.8.0"}


async def test_wrong_password_names_the_problem(
    links: Callable[[DlmsMeterConfig], Callable[[], DlmsLink]],
) -> None:
    with pytest.raises(MeterException, match=r"AUTHENTICATION_FAILED.*password"):
        await make_reader(links, password=b"badpassw").read()


async def test_a_register_the_meter_lacks_is_skipped_and_remembered(
    clock: ManualClock,
    tmp_path: Path,
) -> None:
    single_phase = SimulatedDlmsMeter(physics_for(5, 1, clock), clock, serial_number=1)
    async with HdlcMeterLine(single_phase, LINE, tmp_path / "dlms1"):
        config = DlmsMeterConfig("dlms-1p", quantities=("1.8.0", "52.7.0"), timeout_s=1.0)
        reader = DlmsMeterReader(config, hdlc_link_factory(str(tmp_path / "dlms1"), LINE, config))
        assert {s.quantity for s in await reader.read()} == {"1.8.0"}
        assert reader.missing == {"52.7.0"}
        assert {s.quantity for s in await reader.read()} == {"1.8.0"}


@pytest.mark.parametrize(
    ("fault", "errors"),
    [
        ("no_answer", (MeterTimeout,)),
        ("crc_error", (CrcError, MeterTimeout)),
        ("garbage", (FrameError, MeterTimeout)),
        ("truncated", (FrameError, MeterTimeout)),
    ],
)
async def test_line_faults_are_typed_and_the_next_read_works(
    meter: SimulatedDlmsMeter,
    tmp_path: Path,
    fault: str,
    errors: tuple[type[Exception], ...],
) -> None:
    async with HdlcMeterLine(meter, LINE, tmp_path / "dlms"):
        config = DlmsMeterConfig("dlms-1", password=PASSWORD, timeout_s=0.5)
        reader = DlmsMeterReader(config, hdlc_link_factory(str(tmp_path / "dlms"), LINE, config))
        setattr(meter.faults, fault, 1.0)
        with pytest.raises(errors) as caught:
            await reader.read()
        assert "dlms-1" in str(caught.value)
        setattr(meter.faults, fault, 0.0)
        assert await reader.read()


async def test_missing_port_and_refused_connection(tmp_path: Path) -> None:
    config = DlmsMeterConfig("dlms-1", timeout_s=0.5)
    with pytest.raises(TransportError, match="no-port"):
        await DlmsMeterReader(
            config, hdlc_link_factory(str(tmp_path / "no-port"), LINE, config)
        ).read()
    with pytest.raises(TransportError, match="cannot connect"):
        await DlmsMeterReader(config, wrapper_link_factory("127.0.0.1", 1, config)).read()


async def test_the_supply_relay_opens_and_closes_and_the_energy_stops_meanwhile(
    links: Callable[[DlmsMeterConfig], Callable[[], DlmsLink]],
    meter: SimulatedDlmsMeter,
    clock: ManualClock,
) -> None:
    reader = make_reader(links)
    clock.advance(600)
    before = {s.quantity: s.value for s in await reader.read()}
    assert before["16.7.0"] > 0
    assert await reader.switch_supply(connect=False) == {
        "connected": False,
        "control_state": "disconnected",
    }
    assert meter.physics.faults.relay_open
    clock.advance(3600)  # an hour off supply: no power drawn, no energy counted
    off = {s.quantity: s.value for s in await reader.read()}
    assert off["16.7.0"] == 0
    assert off["31.7.0"] == 0  # no current
    assert off["32.7.0"] > 200  # the supply side is still live
    assert off["1.8.0"] == before["1.8.0"]
    assert await reader.switch_supply(connect=True) == {
        "connected": True,
        "control_state": "connected",
    }
    clock.advance(600)
    on = {s.quantity: s.value for s in await reader.read()}
    assert on["16.7.0"] > 0
    assert on["1.8.0"] > off["1.8.0"]


async def test_a_method_the_meter_lacks_is_refused_by_name(
    links: Callable[[DlmsMeterConfig], Callable[[], DlmsLink]],
) -> None:
    reader = make_reader(links)
    async with reader._session() as session:
        with pytest.raises(MeterException, match=r"ACTION 0-0:96\.3\.10\.255 method 7"):
            await session.action(70, bytes([0, 0, 96, 3, 10, 255]), 7)
        with pytest.raises(MeterException, match="OBJECT_UNDEFINED"):
            await session.action(70, bytes([0, 0, 96, 3, 11, 255]), 1)


async def test_the_meter_clock_is_set_and_keeps_its_new_time(
    links: Callable[[DlmsMeterConfig], Callable[[], DlmsLink]],
    meter: SimulatedDlmsMeter,
    clock: ManualClock,
) -> None:
    meter.physics.set_meter_clock(clock.now_s(), clock.now_s() + 300)  # five minutes fast
    reader = make_reader(links)
    assert (await reader.read_clock() - clock.now()).total_seconds() == pytest.approx(300, abs=1)
    await reader.write_clock(clock.now)
    assert meter.physics.meter_clock_s(clock.now_s()) == pytest.approx(clock.now_s(), abs=0.01)
    clock.advance(60)
    assert (await reader.read_clock() - clock.now()).total_seconds() == pytest.approx(0, abs=0.01)


async def test_setting_the_clock_needs_the_management_association(
    clock: ManualClock, tmp_path: Path
) -> None:
    """A meter without a password still reads to anyone, but its clock is written by the
    management client alone: the public client is refused, and the reader says what to do."""
    open_meter = SimulatedDlmsMeter(physics_for(5, 1, clock), clock, serial_number=2)
    open_meter.physics.set_meter_clock(clock.now_s(), clock.now_s() - 120)
    server = DlmsTcpServer(open_meter, "127.0.0.1", 0)
    await server.start()
    try:
        config = DlmsMeterConfig("dlms-open", timeout_s=1.0)
        reader = DlmsMeterReader(config, wrapper_link_factory("127.0.0.1", server.port, config))
        with pytest.raises(MeterException, match=r"READ_WRITE_DENIED.*password.*management"):
            await reader.write_clock(clock.now)
        drift = open_meter.physics.meter_clock_s(clock.now_s()) - clock.now_s()
        assert drift == pytest.approx(-120, abs=0.01)  # unchanged
        async with reader._session() as session:  # and no other attribute is writable
            with pytest.raises(MeterException, match="READ_WRITE_DENIED"):
                await session.set(REGISTER, quantity_ln("1.8.0"), 2, b"\x06\x00\x00\x00\x00")
    finally:
        await server.stop()


async def test_only_the_clock_time_is_writable_even_with_the_password(
    links: Callable[[DlmsMeterConfig], Callable[[], DlmsLink]],
    meter: SimulatedDlmsMeter,
    clock: ManualClock,
) -> None:
    reader = make_reader(links)
    before = meter.physics.state_at(clock.now_s()).values["1.8.0"]
    async with reader._session() as session:
        with pytest.raises(MeterException, match=r"SET 1-0:1\.8\.0\.255 attribute 2"):
            await session.set(REGISTER, quantity_ln("1.8.0"), 2, b"\x06\x00\x00\x00\x00")
        with pytest.raises(MeterException, match="TYPE_UNMATCHED"):  # not a date-time
            await session.set(8, bytes([0, 0, 1, 0, 0, 255]), 2, b"\x09\x02\x00\x00")
    assert meter.physics.state_at(clock.now_s()).values["1.8.0"] == before

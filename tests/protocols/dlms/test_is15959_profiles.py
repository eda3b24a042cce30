"""The reader reads every IS 15959 profile of the simulated meter, and what it reads equals the
simulator's physics: the instantaneous profile, the block load profile (by range and by entry;
each block's energy the register's difference), the daily load profile, the billing profile
across a billing date, the name plate, and the event logs of faults set at known times.

Each test runs over HDLC on a pty (9600 baud) and over the TCP wrapper, and in three security
modes: a meter without security (the open association), IS 15959's meter reader with LLS
(SAP 32), and the utility settings client with HLS-GMAC and suite-0 ciphering (SAP 48). Under
HLS a wrong key, a replayed answer and a tampered tag in the middle of a profile's GET blocks
are each refused with an error naming the meter, and nothing of the read is returned."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from firmware_sim.clock import ManualClock
from firmware_sim.dlms_line import DlmsTcpServer, HdlcMeterLine
from firmware_sim.dlms_meter import SimulatedDlmsMeter
from firmware_sim.dlms_security import MeterSecurity
from firmware_sim.fleet import physics_for
from protocols.dlms import is15959 as std
from protocols.dlms.link import DlmsLink
from protocols.dlms.profiles import EntrySelection, RangeSelection
from protocols.dlms.reader import (
    DlmsMeterConfig,
    DlmsMeterReader,
    hdlc_link_factory,
    wrapper_link_factory,
)
from protocols.dlms.security import SecurityKeys
from protocols.errors import AuthenticationFailed, MeterException, ReplayedFrame
from protocols.modbus.timing import LineSettings

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)  # the billing date is 18:30 UTC: 1 Dec in India
NOW = datetime(2026, 12, 1, 6, 0, tzinfo=UTC)
PASSWORD = b"12345678"
LINE = LineSettings(9600)
GUEK = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
GAK = bytes.fromhex("D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF")
METER_TITLE = bytes.fromhex("4D4D4D0000BC614E")
KEYS = SecurityKeys(GUEK, GAK, bytes.fromhex("4747570000000001"), METER_TITLE)
MODES = ["none", "lls", "hls"]
Links = Callable[[DlmsMeterConfig], Callable[[], DlmsLink]]


def config_for(mode: str, keys: SecurityKeys = KEYS) -> DlmsMeterConfig:
    """How the gateway reads in `mode`: no security (public SAP 16 on a meter without any),
    IS 15959's meter reader with the password (32), the utility settings client under HLS (48)."""
    if mode == "lls":
        return DlmsMeterConfig("is-1", password=PASSWORD, client_sap=32, timeout_s=3.0)
    if mode == "hls":
        return DlmsMeterConfig("is-1", keys=keys, timeout_s=3.0)
    return DlmsMeterConfig("is-1", timeout_s=3.0)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def meter(clock: ManualClock, mode: str) -> SimulatedDlmsMeter:
    secured = mode != "none"
    meter = SimulatedDlmsMeter(
        physics_for(5, 3, clock),
        clock,
        serial_number=15959,
        password=PASSWORD if secured else None,
        turnaround_s=0.005,
        security=MeterSecurity(GUEK, GAK, METER_TITLE) if secured else None,
    )
    clock.advance((NOW - T0).total_seconds())
    meter.physics.advance_to(clock.now_s())
    return meter


@pytest.fixture(params=["hdlc", "tcp"])
async def links(
    request: pytest.FixtureRequest, meter: SimulatedDlmsMeter, tmp_path: Path
) -> AsyncIterator[Links]:
    """How a reader reaches `meter`: HDLC on a pty at 9600 baud, or the TCP wrapper."""
    if request.param == "hdlc":
        async with HdlcMeterLine(meter, LINE, tmp_path / "dlms") as line:
            yield lambda config: hdlc_link_factory(str(line.link), LINE, config)
    else:
        server = DlmsTcpServer(meter, "127.0.0.1", 0)
        await server.start()
        try:
            yield lambda config: wrapper_link_factory("127.0.0.1", server.port, config)
        finally:
            await server.stop()


@pytest.fixture
def reader(links: Links, mode: str) -> DlmsMeterReader:
    config = config_for(mode)
    return DlmsMeterReader(config, links(config))


def wh(kwh: float) -> int:
    return round(kwh * 1000)


async def test_instantaneous_profile_is_the_meter_now(
    reader: DlmsMeterReader, meter: SimulatedDlmsMeter, clock: ManualClock
) -> None:
    table = await reader.read_profile(std.INSTANTANEOUS_PROFILE)
    assert len(table.rows) == 1
    truth = meter.physics.state_at(clock.now_s()).values
    assert table.times() == [NOW]
    samples = {s.quantity: s.value for s in table.samples("is-1")}
    resolution = {"32.7.0": 0.05, "52.7.0": 0.05, "72.7.0": 0.05, "31.7.0": 0.005}
    resolution |= {"51.7.0": 0.005, "71.7.0": 0.005, "14.7.0": 0.005}
    assert {"31.7.0", "32.7.0", "33.7.0", "13.7.0", "1.8.0", "9.8.0", "1.6.0"} <= set(samples)
    for quantity, value in samples.items():
        assert value == pytest.approx(truth[quantity], abs=resolution.get(quantity, 0.0005))
    assert table.values("0-0:96.7.0*255") == [0]  # no power failure yet
    assert table.values("0-0:0.1.0*255") == [1]  # one billing date passed
    assert table.values("0-0:0.1.2*255") == [datetime(2026, 11, 30, 18, 30, tzinfo=UTC)]
    peak = meter.physics.peak_at("1.6.0")
    assert peak is not None
    assert table.values("1-0:1.6.0*255/5") == [datetime.fromtimestamp(peak, UTC)]


async def test_block_load_profile_by_range_and_by_entry(
    reader: DlmsMeterReader, meter: SimulatedDlmsMeter
) -> None:
    captures = {c.t_s: c for c in meter.physics.captures}
    start = datetime(2026, 11, 30, 20, 0, tzinfo=UTC)
    table = await reader.read_profile(
        std.BLOCK_LOAD_PROFILE, RangeSelection(start, start + timedelta(hours=6))
    )
    assert len(table.rows) == 25  # every 15 minutes, both ends included
    for ts, energy, kvah, volts, amps in zip(
        table.times(),
        table.values("1-0:1.29.0*255"),
        table.values("1-0:9.29.0*255"),
        table.values("1-0:32.27.0*255"),
        table.values("1-0:31.27.0*255"),
        strict=True,
    ):
        now, before = captures[ts.timestamp()], captures[ts.timestamp() - 900]
        assert now.true_kwh is not None
        assert before.true_kwh is not None
        # the block's energy is the register's difference, to the watt-hour
        assert energy == Decimal(wh(now.values["1.8.0"]) - wh(before.values["1.8.0"])) / 1000
        assert kvah == Decimal(wh(now.true_kwh["9.8.0"]) - wh(before.true_kwh["9.8.0"])) / 1000
        assert kvah >= energy  # apparent energy is never below active energy
        assert float(volts) == pytest.approx(now.values["32.27.0"], abs=0.05)
        assert float(amps) == pytest.approx(now.values["31.27.0"], abs=0.005)

    # by entry: the three oldest entries kept, the clock and the first block energy columns
    ordered = sorted(captures)
    first = await reader.read_profile(std.BLOCK_LOAD_PROFILE, EntrySelection(1, 3, 1, 1))
    assert [c.name for c in first.columns] == ["0-0:1.0.0*255"]
    assert [t.timestamp() for t in first.times()] == ordered[1:4]


async def test_daily_load_profile_holds_the_registers_at_midnight(
    reader: DlmsMeterReader, meter: SimulatedDlmsMeter
) -> None:
    table = await reader.read_profile(std.DAILY_LOAD_PROFILE)
    midnights = [datetime(2026, 11, day, 18, 30, tzinfo=UTC) for day in (29, 30)]  # in India
    assert table.times() == midnights
    captures = {c.t_s: c for c in meter.physics.captures}
    samples = table.samples("is-1")
    assert {s.quantity for s in samples} == {"1.8.0", "2.8.0", "3.8.0", "9.8.0"}
    assert len(samples) == 8
    for sample in samples:
        assert wh(sample.value) == wh(captures[sample.ts.timestamp()].values[sample.quantity])


async def test_billing_profile_across_a_billing_date(
    reader: DlmsMeterReader, meter: SimulatedDlmsMeter
) -> None:
    [billing] = meter.physics.billings
    table = await reader.read_profile(std.BILLING_PROFILE)
    assert table.values("0-0:0.1.2*255") == [datetime(2026, 11, 30, 18, 30, tzinfo=UTC)]
    for quantity in ("1.8.0", "9.8.0", "1.6.0", "9.6.0"):
        [value] = table.values(f"1-0:{quantity}*255")
        assert float(value) == pytest.approx(billing.values[quantity], abs=0.0005)
    [pf] = table.values("1-0:13.0.0*255")
    assert float(pf) == pytest.approx(billing.values["13.0.0"], abs=0.0005)
    peak = billing.peaks["1.6.0"]
    assert peak is not None
    assert table.values("1-0:1.6.0*255/5") == [datetime.fromtimestamp(peak, UTC)]
    # the maximum demand started again at the billing date
    assert meter.physics.peak_at("1.6.0") > billing.t_s


async def test_name_plate(reader: DlmsMeterReader) -> None:
    plate = await reader.read_name_plate()
    assert plate == {
        "serial_number": "15959",
        "manufacturer": "GridGate Simulated Meters",
        "firmware_version": "GGSIM-15959-1.0",
        "meter_type": "3P-4W",
        "category": "C1",
        "current_rating": "10-60A",
        "year_of_manufacture": "2025",
    }
    table = await reader.read_profile(std.NAME_PLATE_PROFILE)
    assert [bytes(v).decode() for v in table.rows[0][1:]] == [
        plate[name] for name in list(std.NAME_PLATE.values())[1:]
    ]


async def test_event_logs_hold_the_faults_with_their_codes_and_values(
    reader: DlmsMeterReader,
    meter: SimulatedDlmsMeter,
    clock: ManualClock,
    links: Links,
    mode: str,
) -> None:
    physics = meter.physics
    expected = []

    def fault(log: std.Log, code: int, **change: object) -> None:
        physics.set_fault(clock.now_s(), **change)
        expected.append((log, clock.now(), code))
        clock.advance(300)

    fault(std.Log.VOLTAGE, 9, voltage_sag=0.8)
    fault(std.Log.VOLTAGE, 10, voltage_sag=1.0)
    fault(std.Log.VOLTAGE, 3, phase_loss=1)
    fault(std.Log.VOLTAGE, 4, phase_loss=None)
    fault(std.Log.POWER, 101, power_failure=True)
    fault(std.Log.POWER, 102, power_failure=False)
    fault(std.Log.OTHER, 201, magnet=True)
    fault(std.Log.OTHER, 202, magnet=False)
    fault(std.Log.NON_ROLLOVER, 251, cover_open=True)
    fault(std.Log.CURRENT, 51, reverse_power=True)
    fault(std.Log.CURRENT, 52, reverse_power=False)
    # a transaction: the clock set, by the client with the right to (utility settings, HLS)
    if mode == "none":  # a meter without a password or keys lets nobody set its clock
        with pytest.raises(MeterException, match=r"is-1: .*READ_WRITE_DENIED"):
            await reader.write_clock(clock.now)
    else:
        # under HLS the reader is that client; one counter ledger per client title
        setter = (
            reader
            if mode == "hls"
            else DlmsMeterReader(config_for("hls"), links(config_for("hls")))
        )
        await setter.write_clock(clock.now)
        expected.append((std.Log.TRANSACTION, clock.now(), 151))

    events = await reader.read_events({})
    got = sorted(((e.log, e.ts, e.code) for e in events), key=lambda e: (e[1], e[2]))
    assert got == expected
    sag = next(e for e in events if e.code == 9)
    change = next(c for c in physics.fault_log if c.new == 0.8)
    assert float(sag.values["32.7.0"]) == pytest.approx(change.values["32.7.0"], abs=0.05)
    assert float(sag.values["1.8.0"]) == pytest.approx(change.values["1.8.0"], abs=0.0005)
    power = await reader.read_profile(std.INSTANTANEOUS_PROFILE)
    assert power.values("0-0:96.7.0*255") == [1]  # the power failures counted
    assert power.values("0-0:94.91.0*255") == [2]  # tamper: the magnet and the cover

    # read again from the last event on: only what is at or after it
    last = max(e.ts for e in events)
    again = await reader.read_events(dict.fromkeys(std.Log, last))
    latest = [(std.Log.TRANSACTION, 151)] if mode != "none" else [(std.Log.CURRENT, 52)]
    assert [(e.log, e.code) for e in again] == latest


@pytest.mark.parametrize("mode", ["hls"], indirect=True)
async def test_under_hls_a_wrong_key_a_replay_and_a_tampered_tag_are_refused_by_meter(
    links: Links, meter: SimulatedDlmsMeter
) -> None:
    """Each strikes a profile read: the wrong key at the association, the replayed answer and
    the changed tag in the middle of the block load profile's GET blocks."""
    day = RangeSelection(NOW - timedelta(hours=12), NOW)
    wrong = config_for("hls", SecurityKeys(bytes(16), GAK, KEYS.client_title, METER_TITLE))
    with pytest.raises(AuthenticationFailed, match="is-1: the meter could not decipher"):
        await DlmsMeterReader(wrong, links(wrong)).read_profile(std.BLOCK_LOAD_PROFILE, day)
    assert meter.security is not None
    faults = meter.security.faults
    faults.later_blocks_only = True
    faults.replay_answer = True
    reader = DlmsMeterReader(config_for("hls"), links(config_for("hls")))
    with pytest.raises(ReplayedFrame, match=r"is-1: .*replayed frame is refused"):
        await reader.read_profile(std.BLOCK_LOAD_PROFILE, day)
    faults.replay_answer, faults.tamper_tag = False, True
    with pytest.raises(AuthenticationFailed, match=r"is-1: .*authentication tag"):
        await reader.read_profile(std.BLOCK_LOAD_PROFILE, day)
    faults.tamper_tag = False
    table = await reader.read_profile(std.BLOCK_LOAD_PROFILE, day)
    assert len(table.rows) == 49  # and the same read goes through once the line is honest


async def test_a_load_profile_before_the_first_midnight_kept_is_rebuilt_backwards(
    reader: DlmsMeterReader, meter: SimulatedDlmsMeter
) -> None:
    """The meter's day of history begins at noon UTC on the 29th; the first midnight its daily
    profile keeps is 18:30 UTC. Registers of the afternoon before it are that midnight's
    register less the blocks between, exact to the watt-hour."""
    start = datetime(2026, 11, 29, 13, 0, tzinfo=UTC)
    end = datetime(2026, 11, 29, 17, 0, tzinfo=UTC)
    samples = await reader.read_load_profile(start, end)
    captures = {c.t_s: c for c in meter.physics.captures}
    energy = [s for s in samples if s.quantity == "1.8.0"]
    assert [s.ts for s in energy] == [start + timedelta(minutes=15 * i) for i in range(17)]
    for sample in samples:
        assert wh(sample.value) == wh(captures[sample.ts.timestamp()].values[sample.quantity])

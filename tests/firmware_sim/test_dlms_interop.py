"""An independent DLMS client, Gurux's (gurux-dlms, GPL-2.0: a test-only dependency, never
imported by GridGate itself), drives the simulated meter over HDLC on a real pty and over the
TCP wrapper, in each kind of association: no security (a meter without IS 15959's clients),
IS 15959's public client (16), the meter reader with LLS (32) and the utility settings client
with HLS-GMAC and suite-0 ciphering (48).

In one association Gurux reads the Association LN object's object list (attribute 2), the
serial number and the clock, then every IS 15959 profile — instantaneous, block load, daily
load, billing, name plate, the seven event logs — by range (on the column that stamps the
entries) and by entry. What it decodes is held against the simulator's physics and against
what GridGate's own reader reads of the same ranges; the access rights it decodes from the
object list against the meter's table. The public client's list names only its few objects
and the profiles are refused to it, as the list says.

Every request and answer is written to a session log (`dlms-interop-<case>.log` in the test's
folder, printed too, so `pytest -s` or a failure shows it): what Gurux sent, what the meter
said. The Gurux client is blocking, so it runs in a worker thread; the meter runs on the
event loop.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import serial
from dlms_cosem.enumerations import DataAccessResult

pytest.importorskip("gurux_dlms", reason="gurux-dlms is a test-only dependency (the dev extra)")

from gurux_dlms import GXByteBuffer, GXDateTime, GXDLMSClient, GXDLMSException, GXReplyData
from gurux_dlms.enums import Authentication, InterfaceType, ObjectType, Security
from gurux_dlms.objects import GXDLMSClock, GXDLMSData, GXDLMSProfileGeneric
from gurux_dlms.secure import GXDLMSSecureClient

from firmware_sim.clock import ManualClock
from firmware_sim.cosem_objects import OPEN, Access
from firmware_sim.dlms_line import DlmsTcpServer, HdlcMeterLine
from firmware_sim.dlms_meter import DlmsSession, SimulatedDlmsMeter
from firmware_sim.dlms_security import MeterSecurity
from firmware_sim.fleet import physics_for
from firmware_sim.is15959 import log_events
from protocols.dlms import is15959 as std
from protocols.dlms.client import parse_data
from protocols.dlms.cosem import PROFILE_GENERIC
from protocols.dlms.profiles import RangeSelection
from protocols.dlms.reader import (
    DlmsMeterConfig,
    DlmsMeterReader,
    hdlc_link_factory,
    wrapper_link_factory,
)
from protocols.dlms.security import SecurityKeys
from protocols.modbus.timing import LineSettings

GUEK = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
GAK = bytes.fromhex("D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF")
METER_TITLE = bytes.fromhex("4D4D4D0000BC614E")
GURUX_TITLE = bytes.fromhex("4758520000000001")  # "GXR" + 5 bytes
PASSWORD = b"ABCDEFGH"
SERIAL = 4242
ANSWER_TIMEOUT_S = 10.0


@dataclass
class SessionLog:
    """The requests and answers of one Gurux session, in order, as hex."""

    lines: list[str] = field(default_factory=list)

    def add(self, direction: str, data: bytes) -> None:
        self.lines.append(f"{direction} {data.hex(' ').upper()}")

    def note(self, text: str) -> None:
        self.lines.append(f"-- {text}")


class Wire:
    """Blocking bytes to and from the meter, logged: a serial port (the pty) or a socket."""

    def __init__(
        self, log: SessionLog, send: Callable[[bytes], None], receive: Callable[[], bytes]
    ):
        self.log = log
        self._send, self._receive = send, receive

    def send(self, data: bytes) -> None:
        self.log.add(">>", data)
        self._send(data)

    def receive(self) -> bytes:
        data = self._receive()
        if data:
            self.log.add("<<", data)
        return data


def exchange(client: GXDLMSClient, wire: Wire, request: Any, reply: GXReplyData) -> None:
    """One request (or several) and its answer, with HDLC segments and GET blocks followed."""
    requests = request if isinstance(request, list) else [request]
    for one in requests:
        if one is None:
            continue
        reply.clear()
        _send_and_wait(client, wire, one, reply)
        while reply.isMoreData():
            _send_and_wait(client, wire, client.receiverReady(reply), reply)


def _send_and_wait(client: GXDLMSClient, wire: Wire, data: bytes, reply: GXReplyData) -> None:
    wire.send(bytes(data))
    received = GXByteBuffer()
    notify = GXReplyData()
    deadline = time.monotonic() + ANSWER_TIMEOUT_S
    while not client.getData(received, reply, notify):
        if time.monotonic() > deadline:
            raise TimeoutError(f"no complete answer to {bytes(data).hex()}")
        chunk = wire.receive()
        if chunk:
            received.set(chunk)
    if reply.error:
        try:
            name = DataAccessResult(reply.error).name
        except ValueError:
            name = str(reply.error)
        raise RuntimeError(f"the meter answered with error {reply.error} ({name})")


def gurux_client(case: Case, interface: InterfaceType) -> GXDLMSClient:
    server = GXDLMSClient.getServerAddress(1, 17) if interface == InterfaceType.HDLC else 1
    client = GXDLMSSecureClient(
        True, case.client_sap, server, case.authentication, case.password, interface
    )
    if case.authentication == Authentication.HIGH_GMAC:
        client.ciphering.security = Security.AUTHENTICATION_ENCRYPTION
        client.ciphering.systemTitle = GURUX_TITLE
        client.ciphering.blockCipherKey = GUEK
        client.ciphering.authenticationKey = GAK
        client.ciphering.invocationCounter = case.invocation_counter
    return client


PROFILES = [
    std.INSTANTANEOUS_PROFILE,
    std.BLOCK_LOAD_PROFILE,
    std.DAILY_LOAD_PROFILE,
    std.BILLING_PROFILE,
    std.NAME_PLATE_PROFILE,
    *std.EVENT_LOGS.values(),
]


def dotted(ln: bytes) -> str:
    return ".".join(str(b) for b in ln)


@dataclass
class ProfileRead:
    columns: list[tuple[int, str, int]]  # class, logical name, attribute
    by_range: list[list[Any]] | None  # None: the profile has no column that stamps entries
    by_entry: list[list[Any]]


@dataclass
class GuruxSession:
    """What Gurux read in one association."""

    rights: dict[str, tuple[dict[int, int], dict[int, int]]] = field(default_factory=dict)
    serial: Any = None
    clock: datetime | None = None
    invocation_counter: Any = None
    profiles: dict[bytes, ProfileRead] = field(default_factory=dict)
    refused: dict[bytes, str] = field(default_factory=dict)  # profile -> why


def _read(client: GXDLMSClient, wire: Wire, item: Any, attribute: int) -> Any:
    reply = GXReplyData()
    exchange(client, wire, client.read(item, attribute), reply)
    client.updateValue(item, attribute, reply.value)
    return item


def _rows(client: GXDLMSClient, wire: Wire, pg: GXDLMSProfileGeneric, request: Any) -> list:
    reply = GXReplyData()
    exchange(client, wire, request, reply)
    client.updateValue(pg, 2, reply.value)
    return [list(row) for row in pg.buffer]


def run_gurux(
    case: Case, interface: InterfaceType, wire: Wire, ranges: dict[bytes, tuple[datetime, datetime]]
) -> GuruxSession:
    """Associate; read the object list, the serial number, the clock and every profile by
    range and by entry; release: what a head-end does with an IS 15959 meter."""
    client = gurux_client(case, interface)
    reply = GXReplyData()
    log = wire.log
    got = GuruxSession()
    if interface == InterfaceType.HDLC:
        log.note("SNRM")
        exchange(client, wire, client.snrmRequest(), reply)
        client.parseUAResponse(reply.data)
    log.note(f"AARQ ({case.name})")
    exchange(client, wire, client.aarqRequest(), reply)
    client.parseAareResponse(reply.data)
    if client.getIsAuthenticationRequired():
        log.note("HLS pass 3/4: reply_to_HLS_authentication")
        exchange(client, wire, client.getApplicationAssociationRequest(), reply)
        client.parseApplicationAssociationResponse(reply.data)
    log.note("GET object list 0.0.40.0.0.255 attribute 2")
    exchange(client, wire, client.getObjectsRequest(), reply)
    objects = client.parseObjects(reply.data, True)
    for obj in objects:
        attributes = {int(a.index): int(a.access) for a in obj.attributes}
        methods = {int(m.index): int(m.methodAccess) for m in obj.getMethodAttributes()}
        got.rights[obj.logicalName] = (attributes, methods)
    log.note("GET serial number 0.0.96.1.0.255 attribute 2")
    got.serial = _read(client, wire, GXDLMSData("0.0.96.1.0.255"), 2).value
    log.note("GET clock 0.0.1.0.0.255 attribute 2")
    moment = _read(client, wire, GXDLMSClock("0.0.1.0.0.255"), 2).time.value
    got.clock = moment.replace(tzinfo=UTC)  # the meter's own time (UTC here)
    if objects.findByLN(ObjectType.DATA, "0.0.43.1.0.255") is not None:
        log.note("GET invocation counter 0.0.43.1.0.255 attribute 2")
        got.invocation_counter = _read(client, wire, GXDLMSData("0.0.43.1.0.255"), 2).value
    for ln in PROFILES:
        pg = objects.findByLN(ObjectType.PROFILE_GENERIC, dotted(ln))
        if pg is None:  # not in this association's list: ask anyway, it must be refused
            pg = GXDLMSProfileGeneric(dotted(ln))
            log.note(f"GET {dotted(ln)} attribute 3 (not in the object list)")
            try:
                _read(client, wire, pg, 3)
            except (GXDLMSException, RuntimeError) as exc:
                got.refused[ln] = str(exc)
            continue
        log.note(f"GET {dotted(ln)} attribute 3 (capture objects)")
        _read(client, wire, pg, 3)
        columns = [
            (int(o.objectType), o.logicalName, a.attributeIndex) for o, a in pg.captureObjects
        ]
        by_range = None
        if ln in ranges:
            start, end = ranges[ln]
            log.note(f"GET {dotted(ln)} attribute 2 by range {start} .. {end}")
            by_range = _rows(client, wire, pg, client.readRowsByRange(pg, start, end))
        log.note(f"GET {dotted(ln)} attribute 2 by entry 1..2")
        by_entry = _rows(client, wire, pg, client.readRowsByEntry(pg, 1, 2))
        got.profiles[ln] = ProfileRead(columns, by_range, by_entry)
    log.note("RLRQ")
    exchange(client, wire, client.releaseRequest(), reply)
    if interface == InterfaceType.HDLC:
        log.note("DISC")
        exchange(client, wire, client.disconnectRequest(), reply)
    return got


@dataclass(frozen=True)
class Case:
    name: str
    client_sap: int
    authentication: Authentication
    password: bytes | None = None
    invocation_counter: int = 1
    secured: bool = True  # the meter has IS 15959's client associations
    reads_profiles: bool = True


CASES = [
    Case("no-security", 16, Authentication.NONE, secured=False),
    Case("public", 16, Authentication.NONE, reads_profiles=False),
    Case("lls", 32, Authentication.LOW, PASSWORD),
    Case("hls-gmac", 48, Authentication.HIGH_GMAC, invocation_counter=1000),
]
HLS_CASE = CASES[3]


@pytest.fixture(params=CASES, ids=[c.name for c in CASES])
def case(request: pytest.FixtureRequest) -> Case:
    return request.param


@pytest.fixture
def meter(clock: ManualClock, case: Case) -> SimulatedDlmsMeter:
    """A meter with three days behind it (a billing date among them) and a fault of each kind
    its event logs keep, set a quarter hour apart and put right again."""
    meter = SimulatedDlmsMeter(
        physics_for(21, 3, clock, history_s=3 * 86400),
        clock,
        serial_number=SERIAL,
        password=PASSWORD if case.secured else None,
        turnaround_s=0.002,
        security=MeterSecurity(GUEK, GAK, METER_TITLE) if case.secured else None,
    )
    for fault, on, off in (
        ("voltage_sag", 0.8, 1.0),
        ("reverse_power", True, False),
        ("power_failure", True, False),
        ("magnet", True, False),
        ("cover_open", True, True),
        ("relay_open", True, False),
    ):
        meter.physics.set_fault(clock.now_s(), **{fault: on})
        clock.advance(450)
        meter.physics.set_fault(clock.now_s(), **{fault: off})
        clock.advance(450)
    return meter


def ranges_for(now: datetime) -> dict[bytes, tuple[datetime, datetime]]:
    """What Gurux asks for by range: three hours of blocks, three days of midnights, the last
    forty days of billing dates, the event logs' last two hours; the name plate has no time."""
    hours = (now - timedelta(hours=3), now)
    return {
        std.INSTANTANEOUS_PROFILE: (now - timedelta(minutes=1), now),
        std.BLOCK_LOAD_PROFILE: hours,
        std.DAILY_LOAD_PROFILE: (now - timedelta(days=3), now),
        std.BILLING_PROFILE: (now - timedelta(days=40), now),
        **{ln: (now - timedelta(hours=2), now) for ln in std.EVENT_LOGS.values()},
    }


@dataclass
class Transport:
    interface: InterfaceType
    wire: Callable[[SessionLog], Wire]  # Gurux's bytes to and from the meter
    close: Callable[[], None]  # Gurux lets go of the line
    links: Callable[[DlmsMeterConfig], Callable[[], Any]]  # GridGate's reader on the same line


@pytest.fixture(params=["hdlc", "wrapper"])
async def transport(
    request: pytest.FixtureRequest, meter: SimulatedDlmsMeter, tmp_path: Path
) -> AsyncIterator[Transport]:
    if request.param == "hdlc":
        settings = LineSettings(9600)
        async with HdlcMeterLine(meter, settings, tmp_path / "dlms") as line:
            port = serial.Serial(str(line.link), 9600, timeout=0.2)

            def wire(log: SessionLog) -> Wire:
                return Wire(log, port.write, lambda: port.read(port.in_waiting or 1))

            try:
                yield Transport(
                    InterfaceType.HDLC,
                    wire,
                    port.close,
                    lambda config: hdlc_link_factory(str(line.link), settings, config),
                )
            finally:
                port.close()
    else:
        server = DlmsTcpServer(meter, "127.0.0.1", 0)
        await server.start()
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=ANSWER_TIMEOUT_S)
        sock.settimeout(0.2)

        def receive() -> bytes:
            try:
                return sock.recv(4096)
            except TimeoutError:
                return b""

        try:
            yield Transport(
                InterfaceType.WRAPPER,
                lambda log: Wire(log, sock.sendall, receive),
                sock.close,
                lambda config: wrapper_link_factory("127.0.0.1", server.port, config),
            )
        finally:
            sock.close()
            await server.stop()


def as_time(value: Any) -> datetime:
    """A date-time cell as Gurux decodes it: a GXDateTime, or (a Data column) its octet string,
    read here by the Blue Book layout (deviation 0: UTC)."""
    if isinstance(value, GXDateTime):
        return value.value.replace(tzinfo=UTC)
    raw = bytes(value)
    year = int.from_bytes(raw[0:2], "big")
    return datetime(year, raw[2], raw[3], raw[5], raw[6], raw[7], tzinfo=UTC)


def the_association(meter: SimulatedDlmsMeter, case: Case) -> DlmsSession:
    """The rights the meter gives `case`'s association, as a session of the meter holds them."""
    session = DlmsSession(meter, associated=True, client_sap=case.client_sap)
    if not case.secured:
        session.rights, session.mechanism = OPEN, "none"
        return session
    assert meter.security is not None
    policy = meter.security.policy(case.client_sap)
    assert policy is not None
    session.rights, session.mechanism = policy.rights, policy.mechanism
    return session


def gridgate_config(case: Case) -> DlmsMeterConfig:
    if case.authentication == Authentication.HIGH_GMAC:
        keys = SecurityKeys(GUEK, GAK, bytes.fromhex("4747570000000001"), METER_TITLE)
        return DlmsMeterConfig("gx", keys=keys, timeout_s=5.0)
    return DlmsMeterConfig("gx", password=case.password, client_sap=case.client_sap, timeout_s=5.0)


async def test_gurux_reads_the_object_list_and_every_profile(
    case: Case,
    transport: Transport,
    meter: SimulatedDlmsMeter,
    clock: ManualClock,
    tmp_path: Path,
) -> None:
    now = clock.now()
    ranges = ranges_for(now)
    log = SessionLog()
    try:
        got = await asyncio.to_thread(
            run_gurux, case, transport.interface, transport.wire(log), ranges
        )
    finally:
        transcript = "\n".join(log.lines)
        (tmp_path / f"dlms-interop-{case.name}.log").write_text(transcript + "\n")
        print(f"\n== Gurux {case.name} over {transport.interface.name}\n{transcript}")
    transport.close()
    assert got.serial == str(SERIAL)
    assert got.clock == now.replace(microsecond=0)
    assert meter.associations == 1

    # the access rights Gurux decoded from the object list are the meter's, for this client
    association = the_association(meter, case)
    expected = {
        ".".join(str(b) for b in ln): (
            {n: int(obj.access(n, association)) for n in obj.attributes},
            {m: int(obj.may_invoke(m, association)) for m in obj.methods},
        )
        for ln, obj in meter.objects.items()
        if obj.visible(association)
    }
    assert got.rights == expected
    if not case.reads_profiles:  # the public client: its few objects, read-only, no profile
        assert len(got.rights) == 5
        assert all(
            a in (Access.NONE, Access.READ) for r in got.rights.values() for a in r[0].values()
        )
        assert meter.security is not None
        assert got.invocation_counter == meter.security.counter
        assert set(got.refused) == set(PROFILES)
        assert all("READ_WRITE_DENIED" in why for why in got.refused.values()), got.refused
        return

    assert got.refused == {}
    assert set(got.profiles) == set(PROFILES)
    for ln, read in got.profiles.items():
        profile = meter.objects[ln]
        assert read.columns == [
            (c[0], dotted(bytes(c[1])), c[2]) for c in _columns_of(meter, ln)
        ], dotted(ln)
        assert len(read.by_entry) == min(2, _entries(meter, ln)), dotted(ln)
        assert profile.class_id == 7

    # block load: three hours of quarter hours, both ends included, each the physics' block
    blocks = got.profiles[std.BLOCK_LOAD_PROFILE]
    assert blocks.by_range is not None
    captures = {c.t_s: c for c in meter.physics.captures}
    times = [as_time(row[0]) for row in blocks.by_range]
    assert times == [now - timedelta(minutes=15 * k) for k in range(12, -1, -1)]
    energy = [row[blocks.columns.index((3, "1.0.1.29.0.255", 2))] for row in blocks.by_range]
    for ts, wh in zip(times, energy, strict=True):
        after, before = captures[ts.timestamp()], captures[ts.timestamp() - 900]
        assert after.true_kwh is not None
        assert before.true_kwh is not None
        assert wh == round(after.true_kwh["1.8.0"] * 1000) - round(before.true_kwh["1.8.0"] * 1000)
    # daily load: the midnights (India) of the last three days, registers to the Wh
    daily = got.profiles[std.DAILY_LOAD_PROFILE]
    assert daily.by_range is not None
    midnights = [as_time(row[0]) for row in daily.by_range]
    assert len(midnights) == 3
    assert all(
        (m + timedelta(hours=5, minutes=30)).time() == datetime.min.time() for m in midnights
    )
    kwh_column = daily.columns.index((3, "1.0.1.8.0.255", 2))
    for midnight, row in zip(midnights, daily.by_range, strict=True):
        assert row[kwh_column] == round(captures[midnight.timestamp()].values["1.8.0"] * 1000)
    # billing: the one billing date in the last forty days, found by its billing-date column
    billing = got.profiles[std.BILLING_PROFILE]
    assert billing.by_range is not None
    [physics_billing] = meter.physics.billings
    assert [as_time(row[0]) for row in billing.by_range] == [
        datetime.fromtimestamp(physics_billing.t_s, UTC)
    ]
    # the name plate has no time to range on; by entry it is the meter's
    plate = got.profiles[std.NAME_PLATE_PROFILE]
    assert plate.by_range is None
    assert plate.by_entry[0][0] in (str(SERIAL), str(SERIAL).encode())
    # event logs: each fault's codes, in its log
    for log_kind, ln in std.EVENT_LOGS.items():
        read = got.profiles[ln]
        assert read.by_range is not None
        start, end = ranges[ln]
        codes = [
            e.code
            for e in log_events(meter, log_kind)
            if start.timestamp() <= e.t_s <= end.timestamp()
        ]
        assert [row[1] for row in read.by_range] == codes, log_kind
    assert (
        sum(
            len(p.by_range or []) for ln, p in got.profiles.items() if ln in std.EVENT_LOGS.values()
        )
        >= 10
    )

    # GridGate's reader reads the same ranges to the same values
    config = gridgate_config(case)
    gridgate = DlmsMeterReader(config, transport.links(config))
    start, end = ranges[std.BLOCK_LOAD_PROFILE]
    table = await gridgate.read_profile(std.BLOCK_LOAD_PROFILE, RangeSelection(start, end))
    assert table.times() == times
    assert table.values("1-0:1.29.0*255") == [Decimal(wh) / 1000 for wh in energy]
    start, end = ranges[std.DAILY_LOAD_PROFILE]
    table = await gridgate.read_profile(std.DAILY_LOAD_PROFILE, RangeSelection(start, end))
    assert table.times() == midnights
    assert table.values("1-0:1.8.0*255") == [Decimal(r[kwh_column]) / 1000 for r in daily.by_range]

    if meter.security is not None:
        gurux_counters = [c for title, c in meter.security.seen if title == GURUX_TITLE]
        if case.authentication == Authentication.HIGH_GMAC:
            assert len(gurux_counters) > 30  # ciphered all the way, each counter once
            assert len(set(gurux_counters)) == len(gurux_counters)
            assert min(gurux_counters) == 1000
            assert any(line.startswith(">> ") and " C8 " in line for line in log.lines)
        else:
            assert gurux_counters == []


def _columns_of(meter: SimulatedDlmsMeter, ln: bytes) -> list[Any]:
    """A profile's capture objects as the meter's table holds them."""
    return parse_data(meter.read_attribute(PROFILE_GENERIC, ln, 3))


def _entries(meter: SimulatedDlmsMeter, ln: bytes) -> int:
    return parse_data(meter.read_attribute(PROFILE_GENERIC, ln, 7))


@pytest.mark.parametrize("case", [HLS_CASE], ids=["hls-gmac"], indirect=True)
async def test_gurux_with_the_wrong_key_is_refused(
    transport: Transport, meter: SimulatedDlmsMeter
) -> None:
    log = SessionLog()

    def attempt() -> None:
        client = gurux_client(HLS_CASE, transport.interface)
        client.ciphering.blockCipherKey = bytes(16)
        reply = GXReplyData()
        wire = transport.wire(log)
        if transport.interface == InterfaceType.HDLC:
            exchange(client, wire, client.snrmRequest(), reply)
            client.parseUAResponse(reply.data)
        exchange(client, wire, client.aarqRequest(), reply)
        client.parseAareResponse(reply.data)

    with pytest.raises(GXDLMSException, match="permanently rejected"):
        await asyncio.to_thread(attempt)
    assert meter.associations == 0
    print("\n".join(log.lines))


def test_the_session_log_reads_as_hex_lines() -> None:
    log = SessionLog()
    log.note("AARQ")
    log.add(">>", b"\x60\x1d")
    assert log.lines == ["-- AARQ", ">> 60 1D"]

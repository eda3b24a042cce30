"""An independent DLMS client, Gurux's (gurux-dlms, GPL-2.0: a test-only dependency, never
imported by GridGate itself), drives the simulated meter: associations with no security (public
client 16), LLS (meter reader 32) and HLS-GMAC with suite-0 ciphering (utility settings 48),
each reading the clock and the serial number, over HDLC on a real pty and over the TCP wrapper.

Every request and answer is written to a session log (`dlms-interop-<case>.log` in the test's
folder, printed too, so `pytest -s` or a failure shows it): what Gurux sent, what the meter said.
To add a case (a profile, an event log), add an `Exchange` step to `run_gurux` and a line to
`CASES`; the transport and the log come with it.

The Gurux client is blocking, so it runs in a worker thread; the meter runs on the event loop.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import serial

pytest.importorskip("gurux_dlms", reason="gurux-dlms is a test-only dependency (the dev extra)")

from gurux_dlms import GXByteBuffer, GXDLMSClient, GXDLMSException, GXReplyData
from gurux_dlms.enums import Authentication, InterfaceType, Security
from gurux_dlms.objects import GXDLMSClock, GXDLMSData
from gurux_dlms.secure import GXDLMSSecureClient

from firmware_sim.clock import ManualClock
from firmware_sim.dlms_line import DlmsTcpServer, HdlcMeterLine
from firmware_sim.dlms_meter import SimulatedDlmsMeter
from firmware_sim.dlms_security import MeterSecurity
from firmware_sim.fleet import physics_for
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
        raise RuntimeError(f"the meter answered with error {reply.error}")


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


def run_gurux(case: Case, interface: InterfaceType, wire: Wire) -> dict[str, Any]:
    """Associate, read the clock and the serial number, release: what a head-end does first."""
    client = gurux_client(case, interface)
    reply = GXReplyData()
    log = wire.log
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
    log.note("GET clock 0.0.1.0.0.255 attribute 2")
    clock = GXDLMSClock("0.0.1.0.0.255")
    exchange(client, wire, client.read(clock, 2), reply)
    client.updateValue(clock, 2, reply.value)
    log.note("GET serial number 0.0.96.1.0.255 attribute 2")
    serial_number = GXDLMSData("0.0.96.1.0.255")
    exchange(client, wire, client.read(serial_number, 2), reply)
    client.updateValue(serial_number, 2, reply.value)
    log.note("RLRQ")
    exchange(client, wire, client.releaseRequest(), reply)
    if interface == InterfaceType.HDLC:
        log.note("DISC")
        exchange(client, wire, client.disconnectRequest(), reply)
    moment = clock.time.value  # a datetime, in the meter's own time (UTC here)
    return {"clock": moment.replace(tzinfo=UTC), "serial": serial_number.value}


@dataclass(frozen=True)
class Case:
    name: str
    client_sap: int
    authentication: Authentication
    password: bytes | None = None
    invocation_counter: int = 1


CASES = [
    Case("no-security", 16, Authentication.NONE),
    Case("lls", 32, Authentication.LOW, PASSWORD),
    Case("hls-gmac", 48, Authentication.HIGH_GMAC, invocation_counter=1000),
]


@pytest.fixture
def meter(clock: ManualClock) -> SimulatedDlmsMeter:
    return SimulatedDlmsMeter(
        physics_for(21, 3, clock),
        clock,
        serial_number=SERIAL,
        password=PASSWORD,
        turnaround_s=0.002,
        security=MeterSecurity(GUEK, GAK, METER_TITLE, reader_mechanism="lls"),
    )


@pytest.fixture(params=["hdlc", "wrapper"])
async def transport(
    request: pytest.FixtureRequest, meter: SimulatedDlmsMeter, tmp_path: Path
) -> AsyncIterator[tuple[InterfaceType, Callable[[SessionLog], Wire], Callable[[], None]]]:
    if request.param == "hdlc":
        async with HdlcMeterLine(meter, LineSettings(9600), tmp_path / "dlms") as line:
            port = serial.Serial(str(line.link), 9600, timeout=0.2)

            def wire(log: SessionLog) -> Wire:
                return Wire(log, port.write, lambda: port.read(port.in_waiting or 1))

            try:
                yield InterfaceType.HDLC, wire, port.close
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
            yield InterfaceType.WRAPPER, lambda log: Wire(log, sock.sendall, receive), sock.close
        finally:
            sock.close()
            await server.stop()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_gurux_reads_clock_and_serial_number(
    case: Case,
    transport: tuple[InterfaceType, Callable[[SessionLog], Wire], Callable[[], None]],
    meter: SimulatedDlmsMeter,
    clock: ManualClock,
    tmp_path: Path,
) -> None:
    interface, make_wire, _close = transport
    log = SessionLog()
    try:
        got = await asyncio.to_thread(run_gurux, case, interface, make_wire(log))
    finally:
        transcript = "\n".join(log.lines)
        (tmp_path / f"dlms-interop-{case.name}.log").write_text(transcript + "\n")
        print(f"\n== Gurux {case.name} over {interface.name}\n{transcript}")
    assert got["serial"] == str(SERIAL)
    assert got["clock"] == clock.now().replace(microsecond=0)
    assert meter.associations == 1
    assert meter.security is not None
    gurux_counters = [c for title, c in meter.security.seen if title == GURUX_TITLE]
    if case.authentication == Authentication.HIGH_GMAC:
        # AARQ, pass 3 (f(StoC), then its wrapper, seen by the meter wrapper first), two GETs:
        # ciphered all the way, each counter once
        assert sorted(gurux_counters) == list(range(1000, 1005))
        assert any(line.startswith(">> ") and " C8 " in line for line in log.lines)
    else:
        assert gurux_counters == []


async def test_gurux_with_the_wrong_key_is_refused(
    transport: tuple[InterfaceType, Callable[[SessionLog], Wire], Callable[[], None]],
    meter: SimulatedDlmsMeter,
) -> None:
    interface, make_wire, _close = transport
    log = SessionLog()

    def attempt() -> None:
        client = gurux_client(CASES[2], interface)
        client.ciphering.blockCipherKey = bytes(16)
        reply = GXReplyData()
        wire = make_wire(log)
        if interface == InterfaceType.HDLC:
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
    assert datetime.now(UTC)  # the module imports cleanly without a meter

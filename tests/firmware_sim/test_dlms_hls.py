"""GridGate's DLMS reader against the simulated meter under HLS-GMAC with suite-0 ciphering,
over HDLC on a real pty and over the TCP wrapper: reads, commands, IS 15959's association
rights, and each refusal (wrong keys, a replayed frame, a tampered tag) on both sides."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path

import pytest
from dlms_cosem import enumerations as enums
from dlms_cosem.protocol import xdlms

from firmware_sim.clock import ManualClock
from firmware_sim.cosem_objects import METER_READER
from firmware_sim.dlms_line import DlmsTcpServer, HdlcMeterLine
from firmware_sim.dlms_meter import SimulatedDlmsMeter
from firmware_sim.dlms_security import AssociationPolicy, MeterSecurity, load_meter_security
from firmware_sim.fleet import physics_for
from protocols.dlms.client import CosemSession, parse_apdu
from protocols.dlms.cosem import CLOCK, CLOCK_LN
from protocols.dlms.hls import CipheredAssociation
from protocols.dlms.link import DlmsLink, WrapperLink
from protocols.dlms.reader import (
    DlmsMeterConfig,
    DlmsMeterReader,
    hdlc_link_factory,
    wrapper_link_factory,
)
from protocols.dlms.security import InvocationCounters, MemoryLedger, SecurityKeys
from protocols.errors import AuthenticationFailed, MeterException, ReplayedFrame, SecurityError
from protocols.modbus.timing import LineSettings

GUEK = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
GAK = bytes.fromhex("D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF")
METER_TITLE = bytes.fromhex("4D4D4D0000BC614E")
CLIENT_TITLE = bytes.fromhex("4747570000000001")
KEYS = SecurityKeys(GUEK, GAK, CLIENT_TITLE, METER_TITLE)
PASSWORD = b"ABCDEFGH"


def make_meter(clock: ManualClock, reader: str = "lls") -> SimulatedDlmsMeter:
    security = MeterSecurity(GUEK, GAK, METER_TITLE, reader_mechanism=reader)  # type: ignore[arg-type]
    return SimulatedDlmsMeter(
        physics_for(21, 3, clock),
        clock,
        serial_number=4242,
        password=PASSWORD,
        turnaround_s=0.002,
        security=security,
    )


Factory = Callable[[DlmsMeterConfig], Callable[[], DlmsLink]]


@pytest.fixture
def meter(clock: ManualClock) -> SimulatedDlmsMeter:
    return make_meter(clock)


@pytest.fixture(params=["hdlc", "tcp"])
async def links(
    request: pytest.FixtureRequest, meter: SimulatedDlmsMeter, tmp_path: Path
) -> AsyncIterator[Factory]:
    """How a reader reaches `meter`: HDLC on a pty at 9600 baud, or the TCP wrapper."""
    if request.param == "hdlc":
        async with HdlcMeterLine(meter, LineSettings(9600), tmp_path / "dlms") as line:
            yield lambda config: hdlc_link_factory(str(line.link), LineSettings(9600), config)
    else:
        server = DlmsTcpServer(meter, "127.0.0.1", 0)
        await server.start()
        try:
            yield lambda config: wrapper_link_factory("127.0.0.1", server.port, config)
        finally:
            await server.stop()


def reader(links: Factory, **settings: object) -> DlmsMeterReader:
    config = DlmsMeterConfig("m-7", timeout_s=3.0, **settings)  # type: ignore[arg-type]
    return DlmsMeterReader(config, links(config))


def client_counters(meter: SimulatedDlmsMeter) -> list[int]:
    assert meter.security is not None
    return [counter for title, counter in meter.security.seen if title == CLIENT_TITLE]


async def test_utility_client_reads_and_commands_under_hls(
    links: Factory, meter: SimulatedDlmsMeter, clock: ManualClock
) -> None:
    gateway = reader(links, keys=KEYS)
    assert gateway.config.client_address == 48
    samples = {s.quantity: s.value for s in await gateway.read()}
    truth = meter.physics.state_at(clock.now_s()).values
    assert samples["1.8.0"] == pytest.approx(truth["1.8.0"], abs=0.001)
    assert samples["32.7.0"] == pytest.approx(truth["32.7.0"], abs=0.05)
    assert await gateway.read_clock() == clock.now().replace(microsecond=0)
    profile = await gateway.read_load_profile(clock.now() - timedelta(hours=2), clock.now())
    assert len({s.ts for s in profile}) >= 7  # every quarter hour, in GET blocks, ciphered
    await gateway.write_clock(lambda: clock.now() + timedelta(seconds=30))
    assert meter.physics.meter_clock_s(clock.now_s()) == pytest.approx(clock.now_s() + 30, 0.1)
    assert (await gateway.switch_supply(False))["connected"] is False
    assert meter.physics.faults.relay_open
    seen = client_counters(meter)
    assert len(seen) > 20
    assert len(set(seen)) == len(seen), "a client counter used twice"


async def test_is_15959_associations_keep_to_their_rights(
    links: Factory, meter: SimulatedDlmsMeter, clock: ManualClock
) -> None:
    public = reader(links)  # SAP 16, no security
    assert await public.read_clock() == clock.now().replace(microsecond=0)
    with pytest.raises(
        MeterException, match=r"m-7: GET 1-0:1\.8\.0\.255 attribute 3: READ_WRITE_DENIED"
    ):
        await public.read()
    meter_reader = reader(links, password=PASSWORD, client_sap=32)  # LLS
    assert {s.quantity for s in await meter_reader.read()} >= {"1.8.0", "32.7.0"}
    with pytest.raises(MeterException, match="READ_WRITE_DENIED"):
        await meter_reader.write_clock(clock.now)
    with pytest.raises(MeterException, match="AUTHENTICATION_FAILED"):
        await reader(links, password=b"wrong!!!", client_sap=32).read_clock()
    with pytest.raises(MeterException, match="AUTHENTICATION_REQUIRED"):
        await reader(links, client_sap=48).read_clock()  # utility settings without HLS
    with pytest.raises(MeterException, match="association rejected"):
        await reader(links, password=PASSWORD, client_sap=1).read_clock()  # no such client


async def test_meter_reader_association_configured_for_hls(
    clock: ManualClock, tmp_path: Path
) -> None:
    meter = make_meter(clock, reader="hls-gmac")
    server = DlmsTcpServer(meter, "127.0.0.1", 0)
    await server.start()
    try:
        config = DlmsMeterConfig("m-7", keys=KEYS, client_sap=32, timeout_s=3.0)
        gateway = DlmsMeterReader(config, wrapper_link_factory("127.0.0.1", server.port, config))
        assert {s.quantity for s in await gateway.read()} >= {"1.8.0"}
        with pytest.raises(MeterException, match=r"m-7: .*READ_WRITE_DENIED.*utility settings"):
            await gateway.write_clock(clock.now)
        lls = DlmsMeterConfig("m-7", password=PASSWORD, client_sap=32, timeout_s=3.0)
        with pytest.raises(MeterException, match="AUTHENTICATION_MECHANISM_NAME_NOT_RECOGNIZED"):
            await DlmsMeterReader(lls, wrapper_link_factory("127.0.0.1", server.port, lls)).read()
    finally:
        await server.stop()


async def test_wrong_keys_are_refused_naming_the_meter(links: Factory) -> None:
    wrong = SecurityKeys(bytes(16), GAK, CLIENT_TITLE)
    with pytest.raises(AuthenticationFailed, match="m-7: the meter could not decipher"):
        await reader(links, keys=wrong).read_clock()
    other_title = SecurityKeys(GUEK, GAK, CLIENT_TITLE, meter_title=b"XYZ00001")
    with pytest.raises(SecurityError, match="m-7: the meter's system title is 4d4d4d"):
        await reader(links, keys=other_title).read_clock()


async def test_a_replayed_answer_is_refused(links: Factory, meter: SimulatedDlmsMeter) -> None:
    assert meter.security is not None
    meter.security.faults.replay_answer = True  # sends its previous ciphered answer again
    with pytest.raises(ReplayedFrame, match=r"m-7: .*replayed frame is refused"):
        await reader(links, keys=KEYS).read_clock()


async def test_a_tampered_tag_is_refused(links: Factory, meter: SimulatedDlmsMeter) -> None:
    assert meter.security is not None
    meter.security.faults.tamper_tag = True
    with pytest.raises(AuthenticationFailed, match=r"m-7: .*authentication tag"):
        await reader(links, keys=KEYS).read()


class RecordingLink:
    """A link that keeps every request it carried (a transport seam, not a mock)."""

    def __init__(self, link: DlmsLink) -> None:
        self.link = link
        self.sent: list[bytes] = []

    async def open(self) -> None:
        await self.link.open()

    async def exchange(self, apdu: bytes) -> bytes:
        self.sent.append(apdu)
        return await self.link.exchange(apdu)

    async def close(self) -> None:
        await self.link.close()


async def test_the_meter_refuses_replayed_and_clear_requests(
    meter: SimulatedDlmsMeter,
) -> None:
    server = DlmsTcpServer(meter, "127.0.0.1", 0)
    await server.start()

    def link() -> RecordingLink:
        return RecordingLink(
            WrapperLink(
                "127.0.0.1",
                server.port,
                meter="m-7",
                client_address=48,
                server_logical=1,
                timeout_s=3.0,
            )
        )

    try:
        counters = InvocationCounters(MemoryLedger())
        recorded = link()
        session = CosemSession(
            recorded,
            meter="m-7",
            password=None,
            security=CipheredAssociation(KEYS, counters, meter="m-7"),
        )
        async with session:
            await session.get(CLOCK, CLOCK_LN, 2)
            get = recorded.sent[-1]
            assert get[0] == 0xC8  # glo-get-request: ciphered on the wire
            again = parse_apdu(await recorded.link.exchange(get))
            assert isinstance(again, xdlms.ExceptionResponse)
            assert again.service_error is enums.ServiceException.INVOCATION_COUNTER_ERROR
            clear = parse_apdu(await recorded.link.exchange(get_request_in_clear()))
            assert isinstance(clear, xdlms.ExceptionResponse)
            await session.get(CLOCK, CLOCK_LN, 2)  # the association goes on
        # the whole association replayed on a new connection: its AARQ counter is old
        replay = link()
        await replay.open()
        try:
            aare = parse_apdu(await replay.exchange(recorded.sent[0]))
            assert aare.result is not enums.AssociationResult.ACCEPTED
        finally:
            await replay.close()
    finally:
        await server.stop()


def get_request_in_clear() -> bytes:
    return bytes.fromhex("C001C10008") + CLOCK_LN + b"\x02\x00"


def test_the_simulator_takes_its_keys_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "meter.toml"
    path.write_text(
        f'guek = "{GUEK.hex()}"\ngak = "{GAK.hex()}"\nmeter_system_title = "{METER_TITLE.hex()}"\n'
    )
    security = load_meter_security(path, "hls-gmac")
    assert (security.encryption_key, security.system_title) == (GUEK, METER_TITLE)
    assert security.policy(32) == AssociationPolicy("hls-gmac", METER_READER)
    assert GUEK.hex() not in repr(security).lower()
    path.write_text(f'guek = "{GUEK.hex()}"\n')
    with pytest.raises(ValueError, match="gak must be 16 bytes") as caught:
        load_meter_security(path)
    assert GUEK.hex() not in str(caught.value).lower()

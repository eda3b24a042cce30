"""The simulated meter as a conformant COSEM server, over HDLC on a pty with GridGate's client:
the Association LN object lists every object, each object answers every attribute its access
rights say it may, in its interface class; unknown objects and attributes, missing rights and
selective access where there is none get the standard data-access-result; malformed requests
get an exception-response; and after all of it the same association still reads."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from dlms_cosem import enumerations as enums
from dlms_cosem.protocol import xdlms

from firmware_sim.clock import ManualClock
from firmware_sim.dlms_line import HdlcMeterLine
from firmware_sim.dlms_meter import AccessError, SimulatedDlmsMeter
from firmware_sim.fleet import physics_for
from firmware_sim.physics import LoadShape, MeterPhysics
from protocols.dlms import is15959 as std
from protocols.dlms.client import CosemSession, parse_apdu
from protocols.dlms.cosem import CLOCK, CLOCK_LN, DATA, PROFILE_GENERIC, REGISTER, quantity_ln
from protocols.dlms.profiles import EntrySelection, RangeSelection
from protocols.dlms.reader import DlmsMeterConfig, hdlc_link_factory
from protocols.errors import MeterException
from protocols.modbus.timing import LineSettings

PASSWORD = b"12345678"
LINE = LineSettings(9600)
DAR = enums.DataAccessResult


@pytest.fixture
def meter(clock: ManualClock) -> SimulatedDlmsMeter:
    return SimulatedDlmsMeter(
        physics_for(8, 3, clock), clock, serial_number=808, password=PASSWORD, turnaround_s=0.005
    )


@pytest.fixture
async def session(meter: SimulatedDlmsMeter, tmp_path: Path) -> AsyncIterator[CosemSession]:
    async with HdlcMeterLine(meter, LINE, tmp_path / "dlms"):
        config = DlmsMeterConfig("conf-1", password=PASSWORD, timeout_s=2.0)
        link = hdlc_link_factory(str(tmp_path / "dlms"), LINE, config)()
        async with CosemSession(link, meter="conf-1", password=PASSWORD) as opened:
            yield opened


async def refused(session: CosemSession, *request: object) -> int:
    with pytest.raises(MeterException) as caught:
        await session.get(*request)  # type: ignore[arg-type]
    return caught.value.code


async def still_reads(session: CosemSession) -> None:
    value = await session.get(REGISTER, quantity_ln("1.8.0"), 2)
    assert isinstance(value, int)
    assert value > 0


async def test_every_object_in_the_object_list_reads_in_its_class(
    session: CosemSession, meter: SimulatedDlmsMeter
) -> None:
    listing = await session.get(15, std.ASSOCIATION_LN, 2)
    listed = {bytes(entry[2]): entry for entry in listing}
    for name in (
        std.ASSOCIATION_LN,
        CLOCK_LN,
        std.INSTANTANEOUS_PROFILE,
        std.BLOCK_LOAD_PROFILE,
        std.DAILY_LOAD_PROFILE,
        std.BILLING_PROFILE,
        std.NAME_PLATE_PROFILE,
        *std.NAME_PLATE,
        *std.EVENT_LOGS.values(),
        *std.EVENT_CODE_OBJECTS.values(),
    ):
        assert name in listed, name.hex()
    assert len(listed) == len(listing) == len(meter.objects)
    read = denied = 0
    for name, (class_id, _version, _ln, (attributes, _methods)) in listed.items():
        for attribute, access, _selectors in attributes:
            if access in (1, 3):  # read-only, read-write
                await session.get(class_id, name, attribute)
                read += 1
            else:
                assert await refused(session, class_id, name, attribute) == DAR.READ_WRITE_DENIED
                denied += 1
    assert read > 250  # every attribute of some 80 objects
    assert denied == 1  # the association's secret
    # the buffer of a profile says it takes both selective accesses
    profile = listed[std.BLOCK_LOAD_PROFILE]
    assert profile[0] == PROFILE_GENERIC
    assert next(a for a in profile[3][0] if a[0] == 2)[2] == [1, 2]
    # the clock's time is writable in this (management) association
    assert next(a for a in listed[CLOCK_LN][3][0] if a[0] == 2)[1] == 3


async def test_unknown_objects_and_attributes_get_the_standard_result(
    session: CosemSession,
) -> None:
    assert await refused(session, REGISTER, quantity_ln("99.9.9"), 2) == DAR.OBJECT_UNDEFINED
    assert await refused(session, REGISTER, quantity_ln("1.8.0"), 9) == DAR.OBJECT_UNDEFINED
    assert await refused(session, DATA, quantity_ln("1.8.0"), 2) == DAR.OBJECT_CLASS_INCONSISTENT
    assert await refused(session, 15, std.ASSOCIATION_LN, 7) == DAR.READ_WRITE_DENIED
    # selective access on an attribute without any
    by_range = RangeSelection(datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 2, tzinfo=UTC))
    code = await refused(session, REGISTER, quantity_ln("1.8.0"), 2, by_range)
    assert code == DAR.SCOPE_OF_ACCESS_VIOLATED
    # an entry selection past the columns the profile has
    code = await refused(
        session, PROFILE_GENERIC, std.BLOCK_LOAD_PROFILE, 2, EntrySelection(1, 0, 1, 99)
    )
    assert code == DAR.OTHER_REASON
    await still_reads(session)


def test_a_value_the_meter_cannot_give_yet_is_object_unavailable(clock: ManualClock) -> None:
    """A meter switched on this moment has closed no block: its last block's energy is not
    there yet."""
    fresh = SimulatedDlmsMeter(
        MeterPhysics(seed=1, shape=LoadShape(), start_s=clock.now_s()), clock, serial_number=1
    )
    with pytest.raises(AccessError) as caught:
        fresh.read_attribute(REGISTER, quantity_ln("1.29.0"), 2)
    assert caught.value.result == DAR.OBJECT_UNAVAILABLE


@pytest.mark.parametrize(
    "apdu",
    [
        bytes([0xC0, 0x01]),  # a GET cut short
        bytes([0xC0, 0x01, 0xC1, 0x00, 0x03]),  # ... inside the attribute descriptor
        bytes.fromhex("c001c100030100010800ff0207"),  # selective-access flag 7
        bytes.fromhex("c001c100030100010800ff0200ffff"),  # bytes after the request
        bytes.fromhex("c001c1ffff0100010800ff0200"),  # class 65535: no such class here
        bytes([0x42, 0x00, 0x01]),  # no such service
        bytes([0xC1, 0x01]),  # a SET cut short
        bytes([0xC3, 0x01, 0xC1]),  # an ACTION cut short
        bytes(200),
    ],
)
async def test_malformed_requests_get_an_answer_and_the_association_goes_on(
    session: CosemSession, apdu: bytes
) -> None:
    answer = parse_apdu(await session.link.exchange(apdu), "conf-1")
    if isinstance(answer, xdlms.ExceptionResponse):
        assert answer.service_error is not None
    else:  # well-formed but pointing at nothing: the data-access-result says so
        assert isinstance(answer, xdlms.GetResponseNormalWithError)
        assert answer.error in (DAR.OBJECT_UNDEFINED, DAR.OBJECT_CLASS_INCONSISTENT)
    await still_reads(session)
    assert await session.get(CLOCK, CLOCK_LN, 2)

"""What an association's object list says is what the meter enforces: IS 15959's public client,
meter reader (LLS and HLS-GMAC) and utility settings client each read the object list
(0-0:40.0.0*255, attribute 2) over the TCP wrapper, then try every attribute and method in it
— and a sample of what it does not list. Every attribute the list says is readable reads; every
other is refused with read-write-denied; every SET and ACTION the list forbids is refused with
read-write-denied, and those it allows are carried out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from dlms_cosem import enumerations as enums

from firmware_sim.clock import ManualClock
from firmware_sim.dlms_line import DlmsTcpServer
from firmware_sim.dlms_meter import SimulatedDlmsMeter
from firmware_sim.dlms_security import MeterSecurity
from firmware_sim.fleet import physics_for
from protocols.dlms import axdr
from protocols.dlms import is15959 as std
from protocols.dlms.client import CosemSession
from protocols.dlms.cosem import (
    CLOCK,
    CLOCK_LN,
    DISCONNECT_CONTROL,
    DISCONNECT_CONTROL_LN,
    LOGICAL_DEVICE_NAME_LN,
    REGISTER,
    REMOTE_DISCONNECT,
    REMOTE_RECONNECT,
    encode_datetime,
    quantity_ln,
)
from protocols.dlms.hls import CipheredAssociation
from protocols.dlms.link import WrapperLink
from protocols.dlms.security import InvocationCounters, MemoryLedger, SecurityKeys
from protocols.errors import MeterException

GUEK = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
GAK = bytes.fromhex("D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF")
METER_TITLE = bytes.fromhex("4D4D4D0000BC614E")
KEYS = SecurityKeys(GUEK, GAK, bytes.fromhex("4747570000000001"), METER_TITLE)
PASSWORD = b"ABCDEFGH"
DENIED = int(enums.DataAccessResult.READ_WRITE_DENIED)
ACTION_DENIED = int(enums.ActionResultStatus.READ_WRITE_DENIED)
INVOCATION_COUNTER = bytes([0, 0, 43, 1, 0, 255])
READ, WRITE = 1, 2


@dataclass(frozen=True)
class Client:
    name: str
    sap: int
    reader_mechanism: str = "lls"  # how the meter's reader association (32) authenticates
    password: bytes | None = None
    hls: bool = False


CLIENTS = [
    Client("public", 16),
    Client("meter-reader-lls", 32, password=PASSWORD),
    Client("meter-reader-hls", 32, reader_mechanism="hls-gmac", hls=True),
    Client("utility-settings", 48, hls=True),
]


@dataclass
class Walk:
    """What one association's object list said, and what the meter did when asked."""

    listed: dict[bytes, tuple[int, Any]] = field(default_factory=dict)  # ln -> class, rights
    read: int = 0
    refused_reads: set[tuple[bytes, int]] = field(default_factory=set)
    writable: set[tuple[bytes, int]] = field(default_factory=set)
    refused_writes: int = 0
    invocable: set[tuple[bytes, int]] = field(default_factory=set)
    refused_actions: int = 0


@pytest.fixture(params=CLIENTS, ids=[c.name for c in CLIENTS])
def client(request: pytest.FixtureRequest) -> Client:
    return request.param


@pytest.fixture
def meter(clock: ManualClock, client: Client) -> SimulatedDlmsMeter:
    return SimulatedDlmsMeter(
        physics_for(31, 3, clock),
        clock,
        serial_number=1559,
        password=PASSWORD,
        turnaround_s=0.0,
        security=MeterSecurity(GUEK, GAK, METER_TITLE, reader_mechanism=client.reader_mechanism),  # type: ignore[arg-type]
    )


@pytest.fixture
async def session(meter: SimulatedDlmsMeter, client: Client) -> AsyncIterator[CosemSession]:
    server = DlmsTcpServer(meter, "127.0.0.1", 0)
    await server.start()
    link = WrapperLink(
        "127.0.0.1",
        server.port,
        meter="ar-1",
        client_address=client.sap,
        server_logical=1,
        timeout_s=10.0,
    )
    security = None
    if client.hls:
        security = CipheredAssociation(KEYS, InvocationCounters(MemoryLedger()), meter="ar-1")
    try:
        async with CosemSession(
            link, meter="ar-1", password=client.password, security=security
        ) as opened:
            yield opened
    finally:
        await server.stop()


async def code_of(call: Any) -> int:
    with pytest.raises(MeterException) as caught:
        await call
    return caught.value.code


async def walk(session: CosemSession) -> Walk:
    """Read the object list, then ask for everything in it: GET each attribute, SET each one
    the list says is not writable, ACTION each method it says is not open."""
    found = Walk()
    for class_id, _version, name, (attributes, methods) in await session.get(
        15, std.ASSOCIATION_LN, 2
    ):
        ln = bytes(name)
        found.listed[ln] = (class_id, (attributes, methods))
        for number, access, _selectors in attributes:
            if access & READ:
                await session.get(class_id, ln, number)
                found.read += 1
            else:
                assert await code_of(session.get(class_id, ln, number)) == DENIED, (ln, number)
                found.refused_reads.add((ln, number))
            if access & WRITE:
                found.writable.add((ln, number))
            else:
                code = await code_of(session.set(class_id, ln, number, axdr.NULL))
                assert code == DENIED, (ln.hex(), number)
                found.refused_writes += 1
        for number, allowed in methods:
            if allowed:
                found.invocable.add((ln, number))
            else:
                code = await code_of(session.action(class_id, ln, number, axdr.integer(0)))
                assert code == ACTION_DENIED, (ln.hex(), number)
                found.refused_actions += 1
    return found


async def test_the_object_list_is_what_the_meter_enforces(
    session: CosemSession, meter: SimulatedDlmsMeter, client: Client, clock: ManualClock
) -> None:
    found = await walk(session)
    secret = (std.ASSOCIATION_LN, 7)
    assert found.refused_reads == {secret}  # the association's secret: in no association
    association_methods = dict(found.listed[std.ASSOCIATION_LN][1][1])
    # reply_to_HLS_authentication: open to an HLS association (it used it), to no other
    assert association_methods == {1: client.hls, 2: False}

    if client.name == "public":
        assert set(found.listed) == {
            LOGICAL_DEVICE_NAME_LN,
            std.SERIAL_NUMBER,
            CLOCK_LN,
            std.ASSOCIATION_LN,
            INVOCATION_COUNTER,
        }
        # nothing it does not list: every other object refuses it, whatever it asks
        for ln, obj in meter.objects.items():
            if ln not in found.listed:
                assert await code_of(session.get(obj.class_id, ln, 1)) == DENIED
                assert await code_of(session.get(obj.class_id, ln, 2)) == DENIED
        with pytest.raises(MeterException, match=r"ar-1: GET 1-0:1\.8\.0\.255 .*READ_WRITE_DENIED"):
            await session.get(REGISTER, quantity_ln("1.8.0"), 2)
    else:
        assert set(found.listed) == set(meter.objects)
        assert found.read > 250

    if client.name == "utility-settings":
        assert found.writable == {(CLOCK_LN, 2)}
        assert found.invocable == {
            (std.ASSOCIATION_LN, 1),
            (DISCONNECT_CONTROL_LN, REMOTE_DISCONNECT),
            (DISCONNECT_CONTROL_LN, REMOTE_RECONNECT),
        }
        # what it allows is carried out
        await session.set(CLOCK, CLOCK_LN, 2, axdr.octet_string(encode_datetime(clock.now())))
        await session.action(
            DISCONNECT_CONTROL, DISCONNECT_CONTROL_LN, REMOTE_DISCONNECT, axdr.integer(0)
        )
        assert meter.physics.faults.relay_open
        await session.action(
            DISCONNECT_CONTROL, DISCONNECT_CONTROL_LN, REMOTE_RECONNECT, axdr.integer(0)
        )
        assert not meter.physics.faults.relay_open
        # pass 3 is done: reply_to_HLS_authentication has nothing left to answer
        with pytest.raises(MeterException, match="OTHER_REASON"):
            await session.action(15, std.ASSOCIATION_LN, 1, axdr.octet_string(bytes(17)))
    else:
        assert found.writable == set()
        assert found.invocable == ({(std.ASSOCIATION_LN, 1)} if client.hls else set())
        assert not meter.physics.faults.relay_open
        assert [e.code for e in meter.own_events] == []  # no clock set went through
    # the association still reads after every refusal
    assert await session.get(CLOCK, CLOCK_LN, 2)

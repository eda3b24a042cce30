"""Random bytes into every decoder a meter's answer passes through: a typed error or a value,
never an unhandled exception, never a hang."""

from __future__ import annotations

import contextlib
from datetime import UTC

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocols.dlms.client import parse_apdu, parse_data
from protocols.dlms.cosem import decode_datetime
from protocols.dlms.hdlc import FLAG, Address, Frame, FrameReader, Kind, decode_frame
from protocols.errors import FrameError, ProtocolError
from protocols.modbus.plan import plan_reads
from protocols.modbus.profile import builtin_profiles
from protocols.modbus.reader import decode_request
from protocols.mqtt.profile import get_mqtt_profile
from protocols.mqtt.reader import MqttMeterReader

FUZZ = settings(max_examples=400, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
valid_frame = Frame(
    Kind.I, Address(16), Address(1, 17), b"\xe6\xe7\x00\xc4\x01\xc1\x00\x06\x00\x00\x00\x01"
).encode()


@FUZZ
@given(st.binary(max_size=600))
def test_hdlc_frame_decoder(data: bytes) -> None:
    with contextlib.suppress(FrameError):
        decode_frame(data)


@FUZZ
@given(st.lists(st.binary(max_size=300), max_size=8), st.booleans())
def test_hdlc_stream_reader_finds_frames_among_noise(chunks: list[bytes], embed: bool) -> None:
    reader = FrameReader()
    found = 0
    for chunk in [*chunks, valid_frame if embed else b"", bytes([FLAG])]:
        reader.feed(chunk)
        for _ in range(len(reader.buffer) + 2):  # every step consumes bytes: bounded
            try:
                frame = reader.next_frame()
            except FrameError:
                continue
            if frame is None:
                break
            found += 1
    assert len(reader.buffer) <= 4 * 2048


@FUZZ
@given(st.binary(max_size=400))
def test_apdu_decoder(data: bytes) -> None:
    with contextlib.suppress(FrameError):
        parse_apdu(data, "fuzz")


@FUZZ
@given(st.binary(max_size=400))
def test_axdr_data_decoder(data: bytes) -> None:
    with contextlib.suppress(FrameError):
        parse_data(data, "fuzz")


def test_axdr_huge_array_claim_is_refused_quickly() -> None:
    hostile = bytes([1, 0x84, 0xFF, 0xFF, 0xFF, 0xFF]) + b"\x00" * 8
    with pytest.raises(FrameError, match="longer than the data left"):
        parse_data(hostile)


@FUZZ
@given(st.binary(min_size=12, max_size=12))
def test_cosem_datetime_decoder(data: bytes) -> None:
    try:
        moment = decode_datetime(data)
    except FrameError:
        return
    assert moment.tzinfo is UTC


@FUZZ
@given(
    st.sampled_from(sorted(builtin_profiles())),
    st.lists(st.integers(0, 0xFFFF), min_size=0, max_size=130),
)
def test_modbus_register_decoding(model: str, words: list[int]) -> None:
    profile = builtin_profiles()[model]
    for request in plan_reads(profile, profile.registers):
        padded = (words * (request.count // max(len(words), 1) + 1))[: request.count]
        if len(padded) != request.count:
            continue
        for value in decode_request(request, padded).values():
            assert isinstance(value, float)


@FUZZ
@given(st.binary(max_size=2000), st.sampled_from(["SENSOR", "LWT"]))
def test_mqtt_payloads(payload: bytes, leaf: str) -> None:
    reader = MqttMeterReader("127.0.0.1", 1, get_mqtt_profile("tasmota"), {"d": "m"})
    try:
        reader.handle(f"tele/d/{leaf}", payload)
    except ProtocolError:
        raise AssertionError("handle() must log and skip, not raise") from None


def test_polled_readers_share_one_interface() -> None:
    from protocols.dlms.reader import DlmsMeterConfig, DlmsMeterReader
    from protocols.modbus.reader import ModbusMeterConfig, ModbusMeterReader
    from protocols.modbus.transport import ModbusTcpLine
    from protocols.reader import PolledMeterReader

    modbus = ModbusMeterReader(
        ModbusMeterConfig("m", 1, builtin_profiles()["sdm120"]),
        ModbusTcpLine.__new__(ModbusTcpLine),
    )
    dlms = DlmsMeterReader(DlmsMeterConfig("d"), link_factory=lambda: None)  # type: ignore[arg-type, return-value]
    assert isinstance(modbus, PolledMeterReader)
    assert isinstance(dlms, PolledMeterReader)
    assert not isinstance(object(), PolledMeterReader)

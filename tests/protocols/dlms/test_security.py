"""Suite-0 ciphering and HLS-GMAC pieces: the Green Book's own example, every check a ciphered
frame must pass, the invocation counters' reservations, and fuzzing of the ciphered-APDU
decoding (random and mutated bytes: a typed error, or the authenticated plaintext itself —
never a crash, a hang, or bytes that did not pass the tag)."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocols.dlms.hls import CipheredAssociation
from protocols.dlms.security import (
    CounterState,
    InvocationCounters,
    MemoryLedger,
    SecurityKeys,
    gmac,
    open_apdu,
    parse_ciphered,
    seal_apdu,
)
from protocols.errors import (
    AuthenticationFailed,
    FrameError,
    ProtocolError,
    ReplayedFrame,
    SecurityError,
)

FUZZ = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
GUEK = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
GAK = bytes.fromhex("D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF")
TITLE = bytes.fromhex("4D4D4D0000BC614E")
GET_CLOCK = bytes.fromhex("C0010000080000010000FF0200")
GET_RESPONSE = bytes.fromhex("C401C1000906") + b"0123456789AB"


def sealed(apdu: bytes = GET_RESPONSE, counter: int = 5, general: bool = False) -> bytes:
    return seal_apdu(apdu, key=GUEK, auth_key=GAK, title=TITLE, counter=counter, general=general)


def opened(raw: bytes, last: int = -1, key: bytes = GUEK) -> bytes:
    plain, _ = open_apdu(raw, key=key, auth_key=GAK, title=TITLE, last_counter=last, meter="m-7")
    return plain


def test_the_green_books_example_ciphers_to_its_published_bytes() -> None:
    """DLMS UA 1000-2, the glo-get-request example: suite 0, IC 0x01234567."""
    out = seal_apdu(GET_CLOCK, key=GUEK, auth_key=GAK, title=TITLE, counter=0x01234567)
    assert out.hex().upper() == ("C81E3001234567411312FF935A47566827C467BC7D825C3BE4A77C3FCC056B6B")
    assert opened(out) == GET_CLOCK


@pytest.mark.parametrize("general", [False, True])
def test_a_long_apdu_round_trips_in_both_forms(general: bool) -> None:
    long = b"\xc4\x01\xc1\x00\x09\x82\x01\x2c" + bytes(300)
    raw = sealed(long, general=general)
    assert raw[0] == (0xDB if general else 0xCC)
    assert opened(raw) == long


def test_each_check_refuses_with_a_typed_error_naming_the_meter() -> None:
    good = sealed(counter=9)
    with pytest.raises(ReplayedFrame, match=r"m-7: .*counter 9.*last one seen \(9\)"):
        opened(good, last=9)
    with pytest.raises(AuthenticationFailed, match=r"m-7: .*authentication tag"):
        opened(good, key=bytes(16))
    tampered = good[:-1] + bytes([good[-1] ^ 0x80])
    with pytest.raises(AuthenticationFailed, match="m-7"):
        opened(tampered)
    as_request = bytes([0xC8]) + good[1:]  # the wrapper's tag is not under the tag: checked
    with pytest.raises(SecurityError, match="carries a c4 APDU"):
        opened(as_request)
    other_sc = good[:2] + b"\x20" + good[3:]
    with pytest.raises(SecurityError, match="security control 0x20"):
        opened(other_sc)
    elsewhere = sealed(general=True).replace(TITLE, b"ABCDEFGH", 1)
    with pytest.raises(SecurityError, match="system title 4142"):
        opened(elsewhere)


def test_gmac_is_the_tag_of_the_authenticated_only_security_control() -> None:
    challenge = b"P6wRJ21F"
    tag = gmac(GUEK, GAK, TITLE, 1, challenge)
    assert len(tag) == 12
    assert tag != gmac(GUEK, GAK, TITLE, 2, challenge)
    assert tag != gmac(GUEK, GAK, TITLE, 1, challenge + b"x")


def test_keys_never_show_in_a_repr() -> None:
    keys = SecurityKeys(GUEK, GAK, TITLE)
    assert GUEK.hex() not in repr(keys).lower()
    assert GAK.hex() not in str(keys).lower()
    with pytest.raises(ValueError, match="encryption_key must be 16 bytes"):
        SecurityKeys(GUEK[:8], GAK, TITLE)


# --- counters ------------------------------------------------------------------------------


class WatchedLedger(MemoryLedger):
    def __init__(self) -> None:
        super().__init__()
        self.saves: list[int] = []

    def save(self, state: CounterState) -> None:
        self.saves.append(state.next_client)
        super().save(state)


async def test_a_counter_is_on_disk_before_it_is_used_and_a_restart_starts_above_it() -> None:
    ledger = WatchedLedger()
    counters = InvocationCounters(ledger, reserve=10)
    taken = []
    for _ in range(25):
        await counters.ensure(1)
        taken.append(counters.take())
        assert taken[-1] < ledger.saves[-1], "a counter beyond the reservation on disk"
    assert taken == list(range(1, 26))
    assert ledger.saves == [11, 21, 31]
    again = InvocationCounters(ledger, reserve=10)  # a restart: whatever was not used is lost
    await again.ensure(1)
    assert again.take() == 31
    with pytest.raises(SecurityError, match="call ensure"):
        InvocationCounters(ledger).take()


async def test_counters_run_out_rather_than_wrap() -> None:
    ledger = MemoryLedger(CounterState(next_client=2**32 - 2))
    counters = InvocationCounters(ledger, reserve=256)  # the last block is a short one
    await counters.ensure(1)
    assert counters.take() == 2**32 - 2
    await counters.ensure(1)
    assert counters.take() == 2**32 - 1
    with pytest.raises(SecurityError, match="used up"):
        await counters.ensure(1)


# --- fuzz --------------------------------------------------------------------------------


@FUZZ
@given(st.binary(max_size=400))
def test_random_bytes_give_a_typed_error(data: bytes) -> None:
    try:
        plain = opened(data)
    except ProtocolError:
        return
    pytest.fail(f"random bytes passed as a ciphered APDU: {plain.hex()}")


@FUZZ
@given(
    st.sampled_from([False, True]),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(1, 255)), min_size=1, max_size=4),
    st.sampled_from(["flip", "cut", "insert"]),
)
def test_a_mutated_frame_is_refused_or_is_the_authentic_plaintext(
    general: bool, edits: list[tuple[int, int]], how: str
) -> None:
    original = sealed(general=general)
    data = bytearray(original)
    for position, value in edits:
        at = position % (len(data) + (how == "insert"))
        if how == "flip":
            data[at % len(data)] ^= value
        elif how == "cut" and len(data) > 1:
            del data[at % len(data)]
        else:
            data.insert(at, value)
    try:
        plain = opened(bytes(data))
    except ProtocolError:
        return
    assert plain == GET_RESPONSE, "bytes that did not pass the tag came out"


def _association() -> CipheredAssociation:
    association = CipheredAssociation(
        SecurityKeys(GUEK, GAK, b"GGW00001"), InvocationCounters(MemoryLedger()), meter="m-7"
    )
    association.meter_title = TITLE
    association.ciphering = True
    return association


@FUZZ
@given(st.binary(max_size=300))
def test_the_client_takes_nothing_but_authentic_answers(data: bytes) -> None:
    """Whatever comes back in a ciphered association: ACSE and exception responses pass as
    they are (they carry no data); anything else is the authentic plaintext or an error."""
    association = _association()
    try:
        answer = asyncio.run(association.unprotect(data))
    except ProtocolError:
        return
    assert not data or data[0] in (0x61, 0x63, 0x62, 0x60, 0xD8)
    assert answer == data


def test_parse_is_bounded_on_a_length_that_claims_more_than_there_is() -> None:
    with pytest.raises(FrameError, match="says 65535 bytes follow"):
        parse_ciphered(b"\xcc\x82\xff\xff\x30" + bytes(20))
    with pytest.raises(FrameError, match="bad length field"):
        parse_ciphered(b"\xcc\x84\xff\xff\xff\xff")

"""DLMS/COSEM security suite 0 (AES-GCM-128) and HLS-GMAC authentication (mechanism 5).

The pieces (Green Book, DLMS UA 1000-2, "Cryptographic protection" and "HLS authentication"):

    security control (SC), one byte: bits 0-3 the suite (0), bit 4 authentication, bit 5
        encryption, bit 6 broadcast key, bit 7 compression. APDUs here are authenticated and
        encrypted with the global unicast key: SC = 0x30; the HLS answers are authenticated
        only: SC = 0x10.
    IV = the sender's system title (8 bytes) || its invocation counter (IC, 4 bytes, big end).
        A (key, IV) pair is never used twice: the IC goes up by one at every use.
    authenticated and encrypted: AAD = SC || AK, output ciphertext || 12-byte tag.
    GMAC (HLS): no plaintext, AAD = SC || AK || challenge; the 12-byte tag alone.
    service-specific glo APDU:  tag | length | SC | IC | ciphertext | tag
        (glo-get-request C8 carries a get-request C0, glo-get-response CC a get-response C4, ...)
    general-glo-ciphering:      DB | 08 | system title | length | SC | IC | ciphertext | tag

HLS-GMAC, the four passes: the AARQ carries the client's system title, mechanism 5, a fresh
challenge CtoS and a ciphered InitiateRequest; the AARE the meter's title, its challenge StoC and
a ciphered InitiateResponse. The client then calls the Association LN object's method 1
(reply_to_HLS_authentication) with f(StoC) = SC || IC || GMAC(SC || AK || StoC) under its own
title; the meter answers with f(CtoS) under its title, which the client checks.

AES-GCM comes from the `cryptography` library. Its AEAD class `AESGCM` takes only the full
16-byte tag, and suite 0 sends 12, so the library's GCM mode with `min_tag_length=12` does the
work: no cipher code here, only the framing. Anything that fails a check raises a typed error
(FrameError: not a ciphered APDU; AuthenticationFailed: the tag does not verify; ReplayedFrame:
an old counter; SecurityError: anything else a ciphered association must refuse), and no byte
of a frame whose tag failed is returned.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, field
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from ..errors import AuthenticationFailed, FrameError, ReplayedFrame, SecurityError

SUITE = 0
SC_ENCRYPTED = 0x30  # suite 0, authenticated and encrypted, unicast key
SC_AUTHENTICATED = 0x10  # suite 0, authenticated only (the HLS-GMAC answers)
TAG_BYTES = 12
KEY_BYTES = 16
TITLE_BYTES = 8
MAX_COUNTER = 0xFFFFFFFF
CHALLENGE_BYTES = 16  # Green Book: 8 to 64
GENERAL_GLO_CIPHERING = 0xDB
# plain xDLMS APDU tag -> its service-specific global-ciphering tag
GLO_TAG = {0xC0: 0xC8, 0xC1: 0xC9, 0xC3: 0xCB, 0xC4: 0xCC, 0xC5: 0xCD, 0xC7: 0xCF}
PLAIN_TAG = {glo: plain for plain, glo in GLO_TAG.items()}
REQUEST_TAGS = frozenset((0xC0, 0xC1, 0xC3))
RESPONSE_TAGS = frozenset((0xC4, 0xC5, 0xC7))
ACSE_TAGS = frozenset((0x60, 0x61, 0x62, 0x63))  # AARQ, AARE, RLRQ, RLRE: never wrapped
EXCEPTION_RESPONSE = 0xD8  # sent in the clear even inside a ciphered association
MAX_CIPHERED_BYTES = 65535 + 64


@dataclass(frozen=True)
class SecurityKeys:
    """A meter's suite-0 keys and the system titles, as raw bytes. Never printed: the repr
    shows the titles only."""

    encryption_key: bytes  # the global unicast encryption key (GUEK)
    authentication_key: bytes  # the global authentication key (GAK)
    client_title: bytes  # the gateway's system title towards this meter
    meter_title: bytes | None = None  # when given, an AARE from another title is refused

    def __post_init__(self) -> None:
        for name in ("encryption_key", "authentication_key"):
            if len(getattr(self, name)) != KEY_BYTES:
                raise ValueError(f"{name} must be {KEY_BYTES} bytes (AES-128, suite 0)")
        for name in ("client_title", "meter_title"):
            value = getattr(self, name)
            if value is not None and len(value) != TITLE_BYTES:
                raise ValueError(f"{name} must be {TITLE_BYTES} bytes")

    def __repr__(self) -> str:
        meter = self.meter_title.hex() if self.meter_title else None
        return f"SecurityKeys(client_title={self.client_title.hex()}, meter_title={meter})"

    __str__ = __repr__


# --- AES-GCM, from the cryptography library --------------------------------------------------


def _iv(title: bytes, counter: int) -> bytes:
    if len(title) != TITLE_BYTES:
        raise SecurityError(f"a system title is {TITLE_BYTES} bytes, not {len(title)}")
    if not 0 <= counter <= MAX_COUNTER:
        raise SecurityError(f"invocation counter {counter} is outside 0..2^32-1")
    return title + counter.to_bytes(4, "big")


def seal(key: bytes, auth_key: bytes, title: bytes, counter: int, plain: bytes) -> bytes:
    """Authenticate and encrypt (SC 0x30): ciphertext || 12-byte tag."""
    encryptor = Cipher(algorithms.AES(key), modes.GCM(_iv(title, counter))).encryptor()
    encryptor.authenticate_additional_data(bytes([SC_ENCRYPTED]) + auth_key)
    sealed = encryptor.update(plain) + encryptor.finalize()
    return sealed + encryptor.tag[:TAG_BYTES]


def unseal(
    key: bytes, auth_key: bytes, title: bytes, counter: int, sealed: bytes, *, meter: str | None
) -> bytes:
    """The plaintext of `seal`'s output, or AuthenticationFailed: GCM checks the tag before it
    hands back any byte."""
    if len(sealed) < TAG_BYTES:
        raise FrameError("ciphered APDU shorter than its tag", meter=meter)
    ciphertext, tag = sealed[:-TAG_BYTES], sealed[-TAG_BYTES:]
    mode = modes.GCM(_iv(title, counter), tag, min_tag_length=TAG_BYTES)
    decryptor = Cipher(algorithms.AES(key), mode).decryptor()
    decryptor.authenticate_additional_data(bytes([SC_ENCRYPTED]) + auth_key)
    try:
        return decryptor.update(ciphertext) + decryptor.finalize()
    except InvalidTag:
        raise AuthenticationFailed(
            "a ciphered frame failed its authentication tag: the keys are not this meter's,"
            " or the frame was changed on the way",
            meter=meter,
        ) from None


def gmac(key: bytes, auth_key: bytes, title: bytes, counter: int, challenge: bytes) -> bytes:
    """GMAC(SC || AK || challenge) with SC 0x10: the 12-byte tag."""
    encryptor = Cipher(algorithms.AES(key), modes.GCM(_iv(title, counter))).encryptor()
    encryptor.authenticate_additional_data(bytes([SC_AUTHENTICATED]) + auth_key + challenge)
    encryptor.finalize()
    return encryptor.tag[:TAG_BYTES]


def hls_answer(key: bytes, auth_key: bytes, title: bytes, counter: int, challenge: bytes) -> bytes:
    """f(challenge) = SC || IC || GMAC(SC || AK || challenge), what pass 3 and 4 carry."""
    return (
        bytes([SC_AUTHENTICATED])
        + counter.to_bytes(4, "big")
        + gmac(key, auth_key, title, counter, challenge)
    )


def parse_hls_answer(data: bytes, *, meter: str | None) -> tuple[int, bytes]:
    """(IC, GMAC tag) of an f(challenge); anything else is an authentication failure."""
    if len(data) != 5 + TAG_BYTES or data[0] != SC_AUTHENTICATED:
        raise AuthenticationFailed(
            "the HLS-GMAC answer is not SC 0x10 || IC || 12-byte GMAC", meter=meter
        )
    return int.from_bytes(data[1:5], "big"), data[5:]


# --- ciphered APDU framing ---------------------------------------------------------------


def _length(value: int) -> bytes:
    """An A-XDR length: one byte below 128, else 0x81/0x82 and the length."""
    if value < 0x80:
        return bytes([value])
    if value <= 0xFF:
        return bytes([0x81, value])
    if value <= 0xFFFF:
        return b"\x82" + value.to_bytes(2, "big")
    raise ValueError(f"ciphered APDU of {value} bytes is too long")


def _read_length(raw: bytes, at: int, meter: str | None) -> tuple[int, int]:
    if at >= len(raw):
        raise FrameError("ciphered APDU ends before its length", meter=meter)
    first = raw[at]
    if first < 0x80:
        return first, at + 1
    size = first & 0x7F
    if size not in (1, 2) or at + 1 + size > len(raw):
        raise FrameError(f"ciphered APDU has a bad length field {first:#04x}", meter=meter)
    return int.from_bytes(raw[at + 1 : at + 1 + size], "big"), at + 1 + size


@dataclass(frozen=True)
class Ciphered:
    """A ciphered APDU's fields, parsed but not trusted yet."""

    tag: int
    system_title: bytes | None  # general-glo-ciphering carries the sender's title; glo does not
    security_control: int
    invocation_counter: int
    sealed: bytes  # ciphertext || tag


def is_ciphered(raw: bytes) -> bool:
    return bool(raw) and (raw[0] in PLAIN_TAG or raw[0] == GENERAL_GLO_CIPHERING)


def parse_ciphered(raw: bytes, *, meter: str | None = None) -> Ciphered:
    """Split a glo or general-glo APDU into its fields; bounded, FrameError for bad bytes."""
    if not raw or len(raw) > MAX_CIPHERED_BYTES:
        raise FrameError(f"ciphered APDU of {len(raw)} bytes", meter=meter)
    tag = raw[0]
    at = 1
    title = None
    if tag == GENERAL_GLO_CIPHERING:
        size, at = _read_length(raw, at, meter)
        if size != TITLE_BYTES or at + size > len(raw):
            raise FrameError(f"general-glo-ciphering with a {size}-byte title", meter=meter)
        title, at = bytes(raw[at : at + size]), at + size
    elif tag not in PLAIN_TAG:
        raise FrameError(f"APDU tag {tag:#04x} is not a ciphered APDU", meter=meter)
    size, at = _read_length(raw, at, meter)
    if size != len(raw) - at:
        raise FrameError(f"ciphered APDU says {size} bytes follow, {len(raw) - at} do", meter=meter)
    if size < 5 + TAG_BYTES:
        raise FrameError("ciphered APDU too short for SC, IC and tag", meter=meter)
    return Ciphered(
        tag=tag,
        system_title=title,
        security_control=raw[at],
        invocation_counter=int.from_bytes(raw[at + 1 : at + 5], "big"),
        sealed=bytes(raw[at + 5 :]),
    )


def seal_apdu(
    apdu: bytes,
    *,
    key: bytes,
    auth_key: bytes,
    title: bytes,
    counter: int,
    general: bool = False,
) -> bytes:
    """Wrap a plain xDLMS APDU: service-specific glo, or general-glo-ciphering."""
    if not apdu or apdu[0] not in GLO_TAG:
        raise ValueError(f"APDU tag {apdu[:1].hex()} has no ciphered form here")
    body = bytes([SC_ENCRYPTED]) + counter.to_bytes(4, "big")
    body += seal(key, auth_key, title, counter, apdu)
    if general:
        return bytes([GENERAL_GLO_CIPHERING, TITLE_BYTES]) + title + _length(len(body)) + body
    return bytes([GLO_TAG[apdu[0]]]) + _length(len(body)) + body


def open_apdu(
    raw: bytes,
    *,
    key: bytes,
    auth_key: bytes,
    title: bytes,
    last_counter: int,
    meter: str | None = None,
) -> tuple[bytes, Ciphered]:
    """The plain APDU inside a ciphered one from the peer whose system title is `title`, once
    every check passed: the security control this association uses, the sender's title, a
    counter above `last_counter` (checked before, and trusted only after, the tag), the tag,
    and a plain APDU of the kind its wrapper says."""
    ciphered = parse_ciphered(raw, meter=meter)
    if ciphered.security_control != SC_ENCRYPTED:
        raise SecurityError(
            f"ciphered APDU with security control {ciphered.security_control:#04x}; this"
            f" association uses {SC_ENCRYPTED:#04x} (suite 0, authenticated and encrypted)",
            meter=meter,
        )
    if ciphered.system_title is not None and ciphered.system_title != title:
        raise SecurityError(
            f"ciphered APDU from system title {ciphered.system_title.hex()}, not the"
            f" associated {title.hex()}",
            meter=meter,
        )
    if ciphered.invocation_counter <= last_counter:
        raise ReplayedFrame(
            f"ciphered frame with invocation counter {ciphered.invocation_counter}, not above"
            f" the last one seen ({last_counter}): a replayed frame is refused",
            meter=meter,
        )
    plain = unseal(key, auth_key, title, ciphered.invocation_counter, ciphered.sealed, meter=meter)
    expected = PLAIN_TAG.get(ciphered.tag)
    if not plain or (expected is not None and plain[0] != expected) or plain[0] not in GLO_TAG:
        raise SecurityError(
            f"ciphered APDU {ciphered.tag:#04x} carries a {plain[:1].hex() or 'empty'} APDU",
            meter=meter,
        )
    return plain, ciphered


# --- invocation counters that survive restarts -------------------------------------------


@dataclass
class CounterState:
    """What a gateway keeps per meter, durably: the first client invocation counter not yet
    handed out (everything below it may have been used), and the highest counter seen from
    the meter under its system title."""

    next_client: int = 1
    meter_title: bytes | None = None
    meter_counter: int = -1


class CounterLedger(Protocol):
    """Durable storage of one meter's CounterState. `save` returns once the state is on disk
    (a power cut after it loses nothing)."""

    def load(self) -> CounterState: ...
    def save(self, state: CounterState) -> None: ...


@dataclass
class MemoryLedger:
    """A ledger that forgets at exit: for tests and a technician's one-off read."""

    state: CounterState = field(default_factory=CounterState)

    def load(self) -> CounterState:
        return CounterState(**vars(self.state))

    def save(self, state: CounterState) -> None:
        self.state = CounterState(**vars(state))


class InvocationCounters:
    """The client's invocation counters for one meter. Counters are reserved in blocks, and a
    block is on disk before its first counter is used: after a crash or power cut the next
    run starts above every counter the last one may have sent, never reusing an IV."""

    def __init__(self, ledger: CounterLedger, *, reserve: int = 256) -> None:
        if reserve < 1:
            raise ValueError("reserve at least one counter at a time")
        self.ledger = ledger
        self.reserve = reserve
        self._loaded: CounterState | None = None
        self._next = 0
        self._reserved_to = 0  # exclusive: counters below it are on disk as used
        self._lock = asyncio.Lock()

    async def _state(self) -> CounterState:
        if self._loaded is None:
            self._loaded = await asyncio.to_thread(self.ledger.load)
            self._next = self._reserved_to = self._loaded.next_client
        return self._loaded

    async def ensure(self, count: int) -> None:
        """Make sure `count` counters can be taken without touching the disk."""
        async with self._lock:
            state = await self._state()
            if self._reserved_to - self._next >= count:
                return
            upto = min(self._next + max(count, self.reserve), MAX_COUNTER + 1)
            if upto - self._next < count:
                raise SecurityError(
                    "the client invocation counter is used up (2^32): give this meter new keys"
                )
            state.next_client = upto
            await asyncio.to_thread(self.ledger.save, CounterState(**vars(state)))
            self._reserved_to = upto

    def take(self) -> int:
        """The next counter (reserved by `ensure` before)."""
        if self._next >= self._reserved_to:
            raise SecurityError("no invocation counter reserved (call ensure() first)")
        counter = self._next
        self._next += 1
        return counter

    async def last_meter_counter(self, title: bytes) -> int:
        state = await self._state()
        return state.meter_counter if state.meter_title == title else -1

    async def note_meter_counter(self, title: bytes, counter: int) -> None:
        """Remember the meter's counter (in memory; on disk with the next reservation)."""
        state = await self._state()
        if state.meter_title != title:
            state.meter_title, state.meter_counter = title, -1
        state.meter_counter = max(state.meter_counter, counter)

    async def flush(self) -> None:
        """Write the meter counter seen so far (the end of a session)."""
        async with self._lock:
            if self._loaded is not None:
                snapshot = CounterState(**vars(self._loaded))
                await asyncio.to_thread(self.ledger.save, snapshot)


def make_challenge() -> bytes:
    return secrets.token_bytes(CHALLENGE_BYTES)

"""The client's side of one HLS-GMAC association with suite-0 ciphering (see security.py).

`CosemSession` asks this object for its AARQ, hands it the AARE, runs pass 3/4 through it, and
passes every later APDU through `protect` (requests) and `unprotect` (answers). The meter's
invocation counter must rise with every ciphered answer; the last one seen is kept with the
client's counters, so a frame replayed from an earlier session is refused too.
"""

from __future__ import annotations

import hmac

from dlms_cosem import enumerations as enums
from dlms_cosem.protocol import acse, xdlms
from dlms_cosem.security import SecurityControlField

from ..errors import AuthenticationFailed, FrameError, ReplayedFrame, SecurityError
from .security import (
    ACSE_TAGS,
    EXCEPTION_RESPONSE,
    RESPONSE_TAGS,
    SC_ENCRYPTED,
    TITLE_BYTES,
    InvocationCounters,
    SecurityKeys,
    gmac,
    hls_answer,
    is_ciphered,
    make_challenge,
    open_apdu,
    parse_hls_answer,
    seal,
    seal_apdu,
    unseal,
)

ASSOCIATION_LN = bytes([0, 0, 40, 0, 0, 255])  # the current association (class 15)
ASSOCIATION_CLASS = 15
REPLY_TO_HLS = 1  # method 1: reply_to_HLS_authentication


class CipheredAssociation:
    def __init__(self, keys: SecurityKeys, counters: InvocationCounters, *, meter: str) -> None:
        self.keys = keys
        self.counters = counters
        self.meter = meter
        self.challenge = make_challenge()  # CtoS
        self.meter_challenge: bytes | None = None  # StoC
        self.meter_title: bytes | None = None
        self.last_meter_counter = -1
        self.ciphering = False  # on once the AARE is accepted: every xDLMS APDU is wrapped

    async def _counter(self) -> int:
        await self.counters.ensure(1)
        return self.counters.take()

    async def aarq(self, initiate: xdlms.InitiateRequest) -> bytes:
        counter = await self._counter()
        sealed = seal(
            self.keys.encryption_key,
            self.keys.authentication_key,
            self.keys.client_title,
            counter,
            initiate.to_bytes(),
        )
        return acse.ApplicationAssociationRequest(
            ciphered=True,
            system_title=self.keys.client_title,
            authentication=enums.AuthenticationMechanism.HLS_GMAC,
            authentication_value=self.challenge,
            user_information=acse.UserInformation(
                content=xdlms.GlobalCipherInitiateRequest(
                    security_control=SecurityControlField.from_bytes(bytes([SC_ENCRYPTED])),
                    invocation_counter=counter,
                    ciphered_text=sealed,
                )
            ),
        ).to_bytes()

    async def refused(self, answer: acse.ApplicationAssociationResponse) -> None:
        """Raise the clearest error for a rejected AARE that says why in its user-information."""
        content = answer.user_information.content if answer.user_information else None
        if isinstance(content, xdlms.ConfirmedServiceError) and (
            content.error == enums.ApplicationReferenceError.DECIPHERING_ERROR
        ):
            raise AuthenticationFailed(
                "the meter could not decipher the association request: the keys in this"
                " meter's key file (GUEK/GAK) are not the meter's, or our invocation counter"
                " is not above the last it accepted (a counter file restored from an old copy)",
                meter=self.meter,
            )

    async def accept(self, answer: acse.ApplicationAssociationResponse) -> xdlms.InitiateResponse:
        """Check an accepted AARE: HLS-GMAC, the meter's title, its challenge, and the ciphered
        InitiateResponse (deciphered and returned)."""
        if answer.authentication != enums.AuthenticationMechanism.HLS_GMAC:
            raise SecurityError(
                f"the meter accepted the association with {answer.authentication!r}, not"
                " HLS-GMAC: refused",
                meter=self.meter,
            )
        title = answer.system_title
        if not isinstance(title, bytes | bytearray) or len(title) != TITLE_BYTES:
            raise SecurityError("the AARE carries no 8-byte system title", meter=self.meter)
        title = bytes(title)
        if self.keys.meter_title is not None and title != self.keys.meter_title:
            raise SecurityError(
                f"the meter's system title is {title.hex()}, its key file says"
                f" {self.keys.meter_title.hex()}: another meter answered",
                meter=self.meter,
            )
        if title == self.keys.client_title:
            raise SecurityError("the meter answered with our own system title", meter=self.meter)
        challenge = answer.authentication_value
        if not isinstance(challenge, bytes | bytearray) or not 8 <= len(challenge) <= 64:
            raise SecurityError("the AARE carries no 8-64 byte challenge", meter=self.meter)
        self.meter_title, self.meter_challenge = title, bytes(challenge)
        self.last_meter_counter = await self.counters.last_meter_counter(title)
        content = answer.user_information.content if answer.user_information else None
        if not isinstance(content, xdlms.GlobalCipherInitiateResponse):
            raise SecurityError(
                "the AARE's InitiateResponse is not ciphered (glo-initiate-response expected)",
                meter=self.meter,
            )
        if content.security_control.to_bytes() != bytes([SC_ENCRYPTED]):
            raise SecurityError("the AARE's InitiateResponse is not suite 0 A+E", meter=self.meter)
        self._check_counter(content.invocation_counter)
        plain = unseal(
            self.keys.encryption_key,
            self.keys.authentication_key,
            title,
            content.invocation_counter,
            content.ciphered_text,
            meter=self.meter,
        )
        await self._seen(content.invocation_counter)
        try:
            initiate = xdlms.InitiateResponse.from_bytes(plain)
        except Exception as exc:
            raise FrameError(
                f"deciphered InitiateResponse is malformed ({exc})", meter=self.meter
            ) from exc
        self.ciphering = True
        return initiate

    def _check_counter(self, counter: int) -> None:
        if counter <= self.last_meter_counter:
            raise ReplayedFrame(
                f"the meter's invocation counter {counter} is not above the last one seen"
                f" ({self.last_meter_counter}): a replayed frame is refused",
                meter=self.meter,
            )

    async def _seen(self, counter: int) -> None:
        assert self.meter_title is not None
        self.last_meter_counter = counter
        await self.counters.note_meter_counter(self.meter_title, counter)

    async def reply_to_challenge(self) -> bytes:
        """f(StoC), the parameter of pass 3."""
        assert self.meter_challenge is not None
        return hls_answer(
            self.keys.encryption_key,
            self.keys.authentication_key,
            self.keys.client_title,
            await self._counter(),
            self.meter_challenge,
        )

    async def check_meter_reply(self, data: bytes) -> None:
        """Pass 4: the meter's f(CtoS) must verify under its title, or it does not hold the
        keys (whatever it said before). Its counter is not held to "above the last": the meter
        computed it before ciphering the answer that carries it (which took the next one), and
        the answer is bound to our fresh challenge, so a replay cannot pass."""
        assert self.meter_title is not None
        counter, tag = parse_hls_answer(data, meter=self.meter)
        expected = gmac(
            self.keys.encryption_key,
            self.keys.authentication_key,
            self.meter_title,
            counter,
            self.challenge,
        )
        if not hmac.compare_digest(expected, tag):
            raise AuthenticationFailed(
                "the meter's answer to our HLS-GMAC challenge does not verify: it does not hold"
                " this meter's keys",
                meter=self.meter,
            )

    async def protect(self, apdu: bytes) -> bytes:
        if not self.ciphering or not apdu or apdu[0] in ACSE_TAGS:
            return apdu
        return seal_apdu(
            apdu,
            key=self.keys.encryption_key,
            auth_key=self.keys.authentication_key,
            title=self.keys.client_title,
            counter=await self._counter(),
        )

    async def unprotect(self, raw: bytes) -> bytes:
        """The plain answer; an answer in the clear is refused (but for the ACSE ones and an
        exception response, which carry no data)."""
        if not self.ciphering or not raw or raw[0] in ACSE_TAGS or raw[0] == EXCEPTION_RESPONSE:
            return raw
        if not is_ciphered(raw):
            raise SecurityError(
                f"the meter answered in the clear (APDU {raw[0]:#04x}) inside a ciphered"
                " association: refused",
                meter=self.meter,
            )
        assert self.meter_title is not None
        plain, ciphered = open_apdu(
            raw,
            key=self.keys.encryption_key,
            auth_key=self.keys.authentication_key,
            title=self.meter_title,
            last_counter=self.last_meter_counter,
            meter=self.meter,
        )
        if plain[0] not in RESPONSE_TAGS:
            raise SecurityError(f"the meter sent a request ({plain[0]:#04x})", meter=self.meter)
        await self._seen(ciphered.invocation_counter)
        return plain

    async def close(self) -> None:
        await self.counters.flush()

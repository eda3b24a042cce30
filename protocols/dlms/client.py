"""A COSEM client session over a DLMS link: associate, GET (with blocks), SET, ACTION, release.

Associations: no security, LLS (a password), or HLS-GMAC with suite-0 ciphering, where a
`CipheredAssociation` (hls.py) builds the AARQ, runs passes 3 and 4, and wraps every APDU.

APDUs are built and parsed with dlms-cosem 21.3.2. Whatever its parsers raise on bad bytes
(ValueError, IndexError, KeyError, struct errors, ...) is converted here, at the boundary, into
FrameError naming the meter, so a malformed answer is a typed error, never a crash.
"""

from __future__ import annotations

from typing import Any

from dlms_cosem import cosem, dlms_data
from dlms_cosem import enumerations as enums
from dlms_cosem.protocol import acse, xdlms
from dlms_cosem.protocol.xdlms.conformance import Conformance

from ..errors import (
    AuthenticationFailed,
    FrameError,
    MeterException,
    ProtocolError,
    SecurityError,
)
from .hls import ASSOCIATION_CLASS, ASSOCIATION_LN, REPLY_TO_HLS, CipheredAssociation
from .link import DlmsLink

MAX_BLOCKS = 4096
_REFUSALS = {
    enums.ServiceException.DECIPHERING_ERROR: "deciphering-error (are its keys the ones in"
    " this meter's key file?)",
    enums.ServiceException.INVOCATION_COUNTER_ERROR: "invocation-counter-error (our counter"
    " is not above the last it accepted: was the counter file restored from an old copy?)",
}


def parse_apdu(raw: bytes, meter: str | None = None) -> Any:
    """Any APDU a meter may send, parsed; bad bytes raise FrameError."""
    if not raw:
        raise FrameError("empty APDU", meter=meter)
    try:
        tag = raw[0]
        if tag == acse.ApplicationAssociationResponse.TAG:
            return acse.ApplicationAssociationResponse.from_bytes(raw)
        if tag == acse.ReleaseResponse.TAG:
            return acse.ReleaseResponse.from_bytes(raw)
        if tag == xdlms.ExceptionResponse.TAG:
            return xdlms.ExceptionResponse.from_bytes(raw)
        if tag == 0xC4:  # get-response
            return xdlms.GetResponseFactory.from_bytes(raw)
        if tag == xdlms.SetResponseNormal.TAG:  # set-response
            return xdlms.SetResponseFactory.from_bytes(raw)
        if tag == 0xC7:  # action-response
            return xdlms.ActionResponseFactory.from_bytes(raw)
    except Exception as exc:  # the library raises many kinds for bad bytes
        raise FrameError(f"malformed APDU ({type(exc).__name__}: {exc})", meter=meter) from exc
    raise FrameError(f"unexpected APDU tag {raw[0]:#04x}", meter=meter)


class _BoundedParser(dlms_data.DlmsDataParser):
    """dlms-cosem's A-XDR parser, bounded: reading past the end is an error (the library returns
    empty bytes and carries on), and an array or structure may not claim more elements than
    bytes remain — otherwise a 4-byte length of 0xFFFFFFFF loops four billion times."""

    def get_bytes(self, length: int) -> bytearray:
        if length < 0 or self.pointer + length > len(self.buffer):
            raise ValueError(f"A-XDR data ends early (needs {length} bytes at {self.pointer})")
        return super().get_bytes(length)

    def decode_variable_integer(self) -> int:
        value = super().decode_variable_integer()
        if value > len(self.buffer) - self.pointer:
            raise ValueError(f"A-XDR length {value} is longer than the data left")
        return value

    def decode_data(self, data_class: type) -> Any:
        # two types the library cannot decode: visible strings (given as bytes) and bit-strings,
        # whose length counts bits (Association LN's conformance block)
        if data_class is dlms_data.VisibleStringData:
            return data_class(bytes(self.get_bytes(self.decode_variable_integer())))
        if data_class is dlms_data.BitStringData:
            bits = super().decode_variable_integer()
            if bits > 8 * (len(self.buffer) - self.pointer):
                raise ValueError(f"A-XDR bit-string of {bits} bits is longer than the data left")
            return data_class(bytes(self.get_bytes((bits + 7) // 8)))
        return super().decode_data(data_class)


def parse_data(raw: bytes, meter: str | None = None) -> Any:
    """A-XDR data as Python values (lists for arrays and structures)."""
    try:
        parsed = _BoundedParser().parse(raw, limit=1)
        if len(parsed) != 1:
            raise ValueError("no data")
        return parsed[0].to_python()
    except Exception as exc:
        raise FrameError(
            f"malformed A-XDR data ({type(exc).__name__}: {exc})", meter=meter
        ) from exc


class CosemSession:
    def __init__(
        self,
        link: DlmsLink,
        *,
        meter: str,
        password: bytes | None,
        security: CipheredAssociation | None = None,
    ) -> None:
        self.link = link
        self.meter = meter
        self.password = password
        self.security = security  # HLS-GMAC and ciphering; the password is then unused
        self.server_max_pdu = 0

    async def __aenter__(self) -> CosemSession:
        await self.link.open()
        try:
            await self.associate()
        except BaseException:
            await self.link.close()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            if exc[0] is None:
                await self.release()
        finally:
            try:
                if self.security is not None:
                    await self.security.close()
            finally:
                await self.link.close()

    async def _exchange(self, apdu: bytes) -> Any:
        if self.security is None:
            return parse_apdu(await self.link.exchange(apdu), self.meter)
        answer = await self.link.exchange(await self.security.protect(apdu))
        parsed = parse_apdu(await self.security.unprotect(answer), self.meter)
        if isinstance(parsed, xdlms.ExceptionResponse) and parsed.service_error in _REFUSALS:
            raise SecurityError(
                f"the meter refused our ciphered request: {_REFUSALS[parsed.service_error]}",
                meter=self.meter,
            )
        return parsed

    async def associate(self) -> None:
        initiate = xdlms.InitiateRequest(
            proposed_conformance=Conformance(
                get=True,
                set=True,
                block_transfer_with_get_or_read=True,
                selective_access=True,
                action=True,
            ),
            client_max_receive_pdu_size=1024,
        )
        if self.security is not None:
            answer = await self._exchange(await self.security.aarq(initiate))
        else:
            mechanism = enums.AuthenticationMechanism.LLS if self.password else None
            aarq = acse.ApplicationAssociationRequest(
                user_information=acse.UserInformation(content=initiate),
                authentication=mechanism,
                authentication_value=self.password,
            )
            answer = await self._exchange(aarq.to_bytes())
        if isinstance(answer, xdlms.ExceptionResponse):
            raise MeterException(
                f"association refused: {answer.state_error.name}",
                code=int(answer.service_error),
                meter=self.meter,
            )
        if not isinstance(answer, acse.ApplicationAssociationResponse):
            raise ProtocolError(f"expected AARE, got {type(answer).__name__}", meter=self.meter)
        if answer.result is not enums.AssociationResult.ACCEPTED:
            if self.security is not None:
                await self.security.refused(answer)
            reason = getattr(answer.result_source_diagnostics, "name", "unknown")
            hint = " (check the password)" if "AUTHENTICATION" in reason else ""
            raise MeterException(
                f"association rejected: {reason}{hint}", code=int(answer.result), meter=self.meter
            )
        content = answer.user_information.content if answer.user_information else None
        if self.security is not None:
            content = await self.security.accept(answer)
        self.server_max_pdu = getattr(content, "server_max_receive_pdu_size", 0) or 0
        if self.security is not None:
            await self._authenticate_hls(self.security)

    async def _authenticate_hls(self, security: CipheredAssociation) -> None:
        """Passes 3 and 4: answer the meter's challenge, check its answer to ours."""
        target = cosem.CosemMethod(
            enums.CosemInterface(ASSOCIATION_CLASS),
            cosem.Obis.from_bytes(ASSOCIATION_LN),
            REPLY_TO_HLS,
        )
        reply = dlms_data.OctetStringData(await security.reply_to_challenge()).to_bytes()
        answer = await self._exchange(
            xdlms.ActionRequestNormal(cosem_method=target, data=reply).to_bytes()
        )
        if isinstance(answer, xdlms.ActionResponseNormalWithData) and (
            answer.status is enums.ActionResultStatus.SUCCESS
        ):
            data = parse_data(bytes(answer.data), self.meter)
            if isinstance(data, bytes | bytearray):
                await security.check_meter_reply(bytes(data))
                return
        status = getattr(answer, "status", None) or getattr(answer, "error", None)
        raise AuthenticationFailed(
            "the meter refused our answer to its HLS-GMAC challenge"
            f" ({getattr(status, 'name', type(answer).__name__)}): the keys in this meter's"
            " key file are not the meter's",
            meter=self.meter,
        )

    async def get(
        self, class_id: int, ln: bytes, attribute: int, selection: Any | None = None
    ) -> Any:
        """One attribute's value as Python data; blocks are fetched until the last one."""
        target = cosem.CosemAttribute(
            enums.CosemInterface(class_id), cosem.Obis.from_bytes(ln), attribute
        )
        answer = await self._exchange(
            xdlms.GetRequestNormal(cosem_attribute=target, access_selection=selection).to_bytes()
        )
        data = bytearray()
        for _ in range(MAX_BLOCKS):
            if isinstance(answer, xdlms.GetResponseNormal):
                return parse_data(bytes(answer.data), self.meter)
            if isinstance(
                answer, xdlms.GetResponseNormalWithError | xdlms.GetResponseLastBlockWithError
            ):
                raise MeterException(
                    f"GET {cosem.Obis.from_bytes(ln).to_string()} attribute "
                    f"{attribute}: {answer.error.name}",
                    code=int(answer.error),
                    meter=self.meter,
                )
            if isinstance(answer, xdlms.GetResponseLastBlock):
                data += answer.data
                return parse_data(bytes(data), self.meter)
            if isinstance(answer, xdlms.GetResponseWithBlock):
                data += answer.data
                answer = await self._exchange(
                    xdlms.GetRequestNext(
                        invoke_id_and_priority=answer.invoke_id_and_priority,
                        block_number=answer.block_number,
                    ).to_bytes()
                )
                continue
            raise ProtocolError(
                f"unexpected answer to GET: {type(answer).__name__}", meter=self.meter
            )
        raise FrameError(f"more than {MAX_BLOCKS} blocks in one answer", meter=self.meter)

    async def set(self, class_id: int, ln: bytes, attribute: int, data: bytes) -> None:
        """Write one attribute (`data`: its A-XDR encoding); a refusal raises MeterException
        naming the attribute and the meter's reason (READ_WRITE_DENIED: the association's
        client may not write it)."""
        target = cosem.CosemAttribute(
            enums.CosemInterface(class_id), cosem.Obis.from_bytes(ln), attribute
        )
        answer = await self._exchange(
            xdlms.SetRequestNormal(cosem_attribute=target, data=data).to_bytes()
        )
        name = f"SET {cosem.Obis.from_bytes(ln).to_string()} attribute {attribute}"
        if isinstance(answer, xdlms.ExceptionResponse):
            raise MeterException(
                f"{name}: {answer.service_error.name}",
                code=int(answer.service_error),
                meter=self.meter,
            )
        if not isinstance(answer, xdlms.SetResponseNormal):
            raise ProtocolError(
                f"unexpected answer to {name}: {type(answer).__name__}", meter=self.meter
            )
        if answer.result is not enums.DataAccessResult.SUCCESS:
            raise MeterException(
                f"{name}: {answer.result.name}", code=int(answer.result), meter=self.meter
            )

    async def action(
        self, class_id: int, ln: bytes, method: int, data: bytes | None = None
    ) -> None:
        """Invoke a method (ACTION); a refusal raises MeterException naming the method."""
        target = cosem.CosemMethod(
            enums.CosemInterface(class_id), cosem.Obis.from_bytes(ln), method
        )
        answer = await self._exchange(
            xdlms.ActionRequestNormal(cosem_method=target, data=data).to_bytes()
        )
        name = f"ACTION {cosem.Obis.from_bytes(ln).to_string()} method {method}"
        if isinstance(answer, xdlms.ActionResponseNormalWithError):
            raise MeterException(
                f"{name}: {answer.error.name}", code=int(answer.error), meter=self.meter
            )
        if not isinstance(answer, xdlms.ActionResponseNormal | xdlms.ActionResponseNormalWithData):
            raise ProtocolError(
                f"unexpected answer to {name}: {type(answer).__name__}", meter=self.meter
            )
        if answer.status is not enums.ActionResultStatus.SUCCESS:
            raise MeterException(
                f"{name}: {answer.status.name}", code=int(answer.status), meter=self.meter
            )

    async def release(self) -> None:
        answer = await self._exchange(
            acse.ReleaseRequest(reason=enums.ReleaseRequestReason.NORMAL).to_bytes()
        )
        if not isinstance(answer, acse.ReleaseResponse):
            raise ProtocolError(f"expected RLRE, got {type(answer).__name__}", meter=self.meter)

"""A COSEM client session over a DLMS link: associate, GET (with blocks), SET, ACTION, release.

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

from ..errors import FrameError, MeterException, ProtocolError
from .link import DlmsLink

MAX_BLOCKS = 4096


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
    def __init__(self, link: DlmsLink, *, meter: str, password: bytes | None) -> None:
        self.link = link
        self.meter = meter
        self.password = password
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
            await self.link.close()

    async def _exchange(self, apdu: bytes) -> Any:
        return parse_apdu(await self.link.exchange(apdu), self.meter)

    async def associate(self) -> None:
        mechanism = enums.AuthenticationMechanism.LLS if self.password else None
        aarq = acse.ApplicationAssociationRequest(
            user_information=acse.UserInformation(
                content=xdlms.InitiateRequest(
                    proposed_conformance=Conformance(
                        get=True,
                        set=True,
                        block_transfer_with_get_or_read=True,
                        selective_access=True,
                        action=True,
                    ),
                    client_max_receive_pdu_size=1024,
                )
            ),
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
            reason = getattr(answer.result_source_diagnostics, "name", "unknown")
            hint = " (check the password)" if "AUTHENTICATION" in reason else ""
            raise MeterException(
                f"association rejected: {reason}{hint}", code=int(answer.result), meter=self.meter
            )
        content = answer.user_information.content if answer.user_information else None
        self.server_max_pdu = getattr(content, "server_max_receive_pdu_size", 0) or 0

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

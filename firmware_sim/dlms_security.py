"""The simulated DLMS meter's security: IS 15959 client associations, HLS-GMAC, suite-0 ciphering.

A meter given a `MeterSecurity` tells its clients apart by client SAP, as IS 15959 part 1 does:

    16  public client         no security; reads the objects marked public (the logical device
                              name, the serial number, the clock, the association object, the
                              meter's invocation counter)
    32  meter reader          LLS (the meter's password) or HLS-GMAC, as configured; reads
                              every object, writes and invokes nothing
    48  utility settings      HLS-GMAC; reads, writes (the clock) and invokes (the relay)

Any other SAP is refused at the AARQ. What each may do is not decided here: the association
carries its `Rights`, and the object table (cosem_objects.py) answers every request — and the
object list — by them. The guard only holds an HLS association to pass 3 until that is done.

Inside an HLS association every xDLMS APDU travels ciphered (service-specific glo, or
general-glo-ciphering, answered in the form it came in); a request in the clear is refused.
The meter's own invocation counter rises with every use (a real meter keeps it in
non-volatile memory); a client counter not above the last one accepted from that client's
system title is refused (exception-response invocation-counter-error), as is a frame whose
tag fails (deciphering-error). Every client counter received is recorded in `seen`, accepted
or not, for tests to look at.

`faults` makes the meter misbehave for the client's checks: `replay_answer` sends the previous
ciphered answer again instead of a fresh one, `tamper_tag` flips a bit of each answer's tag;
with `later_blocks_only` they strike in the middle of a long GET (blocks 2 and after) only.
"""

from __future__ import annotations

import hmac
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from dlms_cosem import dlms_data
from dlms_cosem import enumerations as enums
from dlms_cosem.protocol import acse, xdlms
from dlms_cosem.protocol.xdlms.conformance import Conformance
from dlms_cosem.security import SecurityControlField

from protocols.dlms.client import parse_data
from protocols.dlms.hls import ASSOCIATION_CLASS, ASSOCIATION_LN, REPLY_TO_HLS
from protocols.dlms.security import (
    ACSE_TAGS,
    GENERAL_GLO_CIPHERING,
    REQUEST_TAGS,
    SC_ENCRYPTED,
    TITLE_BYTES,
    gmac,
    hls_answer,
    is_ciphered,
    make_challenge,
    open_apdu,
    parse_ciphered,
    parse_hls_answer,
    seal,
    seal_apdu,
    unseal,
)
from protocols.errors import FrameError, ReplayedFrame, SecurityError

from .cosem_objects import METER_READER, PUBLIC, UTILITY_SETTINGS, Rights

if TYPE_CHECKING:
    from .dlms_meter import DlmsSession

Mechanism = Literal["none", "lls", "hls-gmac"]
PUBLIC_SAP, READER_SAP, UTILITY_SAP = 16, 32, 48
CIPHER_OVERHEAD = 1 + 3 + 5 + 12  # tag, length, SC + IC, GCM tag


@dataclass(frozen=True)
class AssociationPolicy:
    """A client association: how it authenticates and what it may then do."""

    mechanism: Mechanism
    rights: Rights


@dataclass
class SecurityFaults:
    replay_answer: bool = False
    tamper_tag: bool = False
    later_blocks_only: bool = False  # only on the second and later blocks of a long GET


def _later_block(answer: bytes) -> bool:
    """A Get-Response-With-Datablock (C4 02) carrying block 2 or after."""
    return answer[:2] == b"\xc4\x02" and int.from_bytes(answer[4:8], "big") >= 2


@dataclass
class MeterSecurity:
    encryption_key: bytes  # GUEK
    authentication_key: bytes  # GAK
    system_title: bytes
    reader_mechanism: Literal["lls", "hls-gmac"] = "lls"
    counter: int = 1  # the meter's next own invocation counter
    last_client: dict[bytes, int] = field(default_factory=dict)  # client title -> last IC
    seen: list[tuple[bytes, int]] = field(default_factory=list)  # every client IC received
    faults: SecurityFaults = field(default_factory=SecurityFaults)
    on_counter: Callable[[bytes, int], None] | None = None  # called as each IC arrives

    def __post_init__(self) -> None:
        if len(self.system_title) != TITLE_BYTES:
            raise ValueError("a system title is 8 bytes")

    def __repr__(self) -> str:
        return f"MeterSecurity(system_title={self.system_title.hex()}, keys hidden)"

    def policy(self, client_sap: int | None) -> AssociationPolicy | None:
        if client_sap == PUBLIC_SAP:
            return AssociationPolicy("none", PUBLIC)
        if client_sap == READER_SAP:
            return AssociationPolicy(self.reader_mechanism, METER_READER)
        if client_sap == UTILITY_SAP:
            return AssociationPolicy("hls-gmac", UTILITY_SETTINGS)
        return None

    def take_counter(self) -> int:
        counter = self.counter
        self.counter += 1
        return counter

    def receive(self, title: bytes, counter: int, *, check: bool = True) -> None:
        """Record a client counter; refuse one not above the last accepted from `title`."""
        self.seen.append((title, counter))
        if self.on_counter is not None:
            self.on_counter(title, counter)
        if check and counter <= self.last_client.get(title, -1):
            raise ReplayedFrame(
                f"client {title.hex()} sent counter {counter}, last accepted"
                f" {self.last_client[title]}"
            )

    def accept(self, title: bytes, counter: int) -> None:
        self.last_client[title] = max(counter, self.last_client.get(title, -1))


def _initiate_response(session: DlmsSession) -> xdlms.InitiateResponse:
    return xdlms.InitiateResponse(
        negotiated_conformance=Conformance(
            get=True,
            set=True,
            block_transfer_with_get_or_read=True,
            selective_access=True,
            action=True,
        ),
        server_max_receive_pdu_size=session.meter.max_pdu_bytes,
    )


def _rejected(diagnostic: enums.AcseServiceUserDiagnostics, deciphering: bool = False) -> bytes:
    info = None
    if deciphering:
        info = acse.UserInformation(
            content=xdlms.ConfirmedServiceError(
                error=enums.ApplicationReferenceError.DECIPHERING_ERROR
            )
        )
    return acse.ApplicationAssociationResponse(
        result=enums.AssociationResult.REJECTED_PERMANENT,
        result_source_diagnostics=diagnostic,
        user_information=info,
    ).to_bytes()


def _exception(error: enums.ServiceException) -> bytes:
    return xdlms.ExceptionResponse(
        state_error=enums.StateException.SERVICE_NOT_ALLOWED, service_error=error
    ).to_bytes()


def _target(apdu: bytes) -> tuple[int, bytes, int] | None:
    """(class, logical name, attribute or method) of a normal GET, SET or ACTION request."""
    if len(apdu) < 12 or apdu[0] not in REQUEST_TAGS or apdu[1] != 1:
        return None
    return int.from_bytes(apdu[3:5], "big"), bytes(apdu[5:11]), apdu[11]


@dataclass
class SessionGuard:
    """One association's security on one link: who the client is, what it may do, and the
    ciphering of its APDUs. `answer` stands in front of `DlmsSession.handle`."""

    session: DlmsSession
    security: MeterSecurity
    policy: AssociationPolicy | None = None
    client_title: bytes | None = None
    client_challenge: bytes = b""  # CtoS
    challenge: bytes = b""  # StoC
    ciphering: bool = False
    hls_pending: bool = False  # AARE sent; only the reply to the challenge may come next
    general: bool = False  # the last request came as general-glo-ciphering
    last_answer: bytes | None = None

    def answer(self, apdu: bytes) -> bytes | None:
        if not apdu:
            return None
        if apdu[0] == acse.ApplicationAssociationRequest.TAG:
            try:
                aarq = acse.ApplicationAssociationRequest.from_bytes(apdu)
            except Exception:  # the library raises many kinds for bad bytes
                return _rejected(enums.AcseServiceUserDiagnostics.NO_REASON_GIVEN)
            return self._associate(aarq)
        if apdu[0] in ACSE_TAGS:  # a release: the association ends
            self.ciphering = self.hls_pending = False
            self.policy = None
            return self.session.handle(apdu)
        if self.ciphering:
            if not is_ciphered(apdu):
                return _exception(enums.ServiceException.OPERATION_NOT_POSSIBLE)
            try:
                plain = self._open(apdu)
            except ReplayedFrame:
                return _exception(enums.ServiceException.INVOCATION_COUNTER_ERROR)
            except (SecurityError, FrameError):
                return _exception(enums.ServiceException.DECIPHERING_ERROR)
            return self._seal(self._serve(plain))
        return self._serve(apdu)

    # --- the association ------------------------------------------------------------------

    def _associate(self, aarq: acse.ApplicationAssociationRequest) -> bytes:
        session = self.session
        session.associated = False
        session.rights = None
        self.ciphering = self.hls_pending = False
        policy = self.security.policy(session.client_sap)
        diagnostics = enums.AcseServiceUserDiagnostics
        if policy is None:
            return _rejected(diagnostics.NO_REASON_GIVEN)
        mechanism = aarq.authentication or enums.AuthenticationMechanism.NONE
        wanted = {
            "none": enums.AuthenticationMechanism.NONE,
            "lls": enums.AuthenticationMechanism.LLS,
            "hls-gmac": enums.AuthenticationMechanism.HLS_GMAC,
        }[policy.mechanism]
        if mechanism != wanted:
            if mechanism == enums.AuthenticationMechanism.NONE:
                return _rejected(diagnostics.AUTHENTICATION_REQUIRED)
            return _rejected(diagnostics.AUTHENTICATION_MECHANISM_NAME_NOT_RECOGNIZED)
        content = aarq.user_information.content if aarq.user_information else None
        if policy.mechanism != "hls-gmac":
            if policy.mechanism == "lls":
                given = bytes(aarq.authentication_value or b"")
                password = session.meter.password or b""
                if not password or not hmac.compare_digest(given, password):
                    return _rejected(diagnostics.AUTHENTICATION_FAILED)
            if not isinstance(content, xdlms.InitiateRequest):
                return _rejected(diagnostics.NO_REASON_GIVEN)
            return self._accepted(policy, content, aarq.authentication)
        return self._associate_hls(policy, aarq, content)

    def _associate_hls(
        self,
        policy: AssociationPolicy,
        aarq: acse.ApplicationAssociationRequest,
        content: object,
    ) -> bytes:
        diagnostics = enums.AcseServiceUserDiagnostics
        title = aarq.system_title
        challenge = aarq.authentication_value
        if not aarq.ciphered or not isinstance(title, bytes | bytearray):
            return _rejected(diagnostics.APPLICATION_CONTEXT_NAME_NOT_SUPPORTED)
        if len(title) != TITLE_BYTES:
            return _rejected(diagnostics.CALLING_AP_TITLE_NOT_RECOGNIZED)
        if not isinstance(challenge, bytes | bytearray) or not 8 <= len(challenge) <= 64:
            return _rejected(diagnostics.AUTHENTICATION_FAILED)
        if not isinstance(content, xdlms.GlobalCipherInitiateRequest):
            return _rejected(diagnostics.NO_REASON_GIVEN)
        title = bytes(title)
        sec = self.security
        try:
            if content.security_control.to_bytes() != bytes([SC_ENCRYPTED]):
                raise SecurityError("security control")
            sec.receive(title, content.invocation_counter)
            plain = unseal(
                sec.encryption_key,
                sec.authentication_key,
                title,
                content.invocation_counter,
                content.ciphered_text,
                meter=None,
            )
            initiate = xdlms.InitiateRequest.from_bytes(plain)
        except Exception:  # bad counter, bad tag, or a deciphered request that does not parse
            return _rejected(diagnostics.NO_REASON_GIVEN, deciphering=True)
        sec.accept(title, content.invocation_counter)
        self.client_title, self.client_challenge = title, bytes(challenge)
        self.challenge = make_challenge()
        self._accepted(policy, initiate, None)
        self.session.associated = False  # not until the client has answered our challenge
        self.hls_pending = True
        self.ciphering = True
        counter = sec.take_counter()
        response = _initiate_response(self.session).to_bytes()
        return acse.ApplicationAssociationResponse(
            result=enums.AssociationResult.ACCEPTED,
            # Green Book: an HLS AARE says "authentication-required" (passes 3 and 4 follow)
            result_source_diagnostics=diagnostics.AUTHENTICATION_REQUIRED,
            ciphered=True,
            authentication=enums.AuthenticationMechanism.HLS_GMAC,
            system_title=sec.system_title,
            authentication_value=self.challenge,
            user_information=acse.UserInformation(
                content=xdlms.GlobalCipherInitiateResponse(
                    security_control=SecurityControlField.from_bytes(bytes([SC_ENCRYPTED])),
                    invocation_counter=counter,
                    ciphered_text=seal(
                        sec.encryption_key,
                        sec.authentication_key,
                        sec.system_title,
                        counter,
                        response,
                    ),
                )
            ),
        ).to_bytes()

    def _accepted(
        self,
        policy: AssociationPolicy,
        initiate: xdlms.InitiateRequest,
        mechanism: enums.AuthenticationMechanism | None,
    ) -> bytes:
        session = self.session
        self.policy = policy
        limit = initiate.client_max_receive_pdu_size or 65535
        session.client_max_pdu = (
            limit - CIPHER_OVERHEAD if policy.mechanism == "hls-gmac" else limit
        )
        session.associated = True
        session.rights = policy.rights
        session.mechanism = policy.mechanism
        session.meter.associations += 1
        return acse.ApplicationAssociationResponse(
            result=enums.AssociationResult.ACCEPTED,
            result_source_diagnostics=enums.AcseServiceUserDiagnostics.NULL,
            authentication=mechanism if mechanism != enums.AuthenticationMechanism.NONE else None,
            user_information=acse.UserInformation(content=_initiate_response(session)),
        ).to_bytes()

    # --- requests inside the association ----------------------------------------------------

    def _serve(self, apdu: bytes) -> bytes | None:
        """A plain request, checked against the association's rights, then answered."""
        target = _target(apdu)
        invoke = xdlms.InvokeIdAndPriority.from_bytes(apdu[2:3]) if len(apdu) > 2 else None
        if self.hls_pending:
            association = self.session.meter.objects.get(ASSOCIATION_LN)
            if (
                apdu[0] == 0xC3
                and target == (ASSOCIATION_CLASS, ASSOCIATION_LN, REPLY_TO_HLS)
                and association is not None
                and association.may_invoke(REPLY_TO_HLS, self.session)  # as its list says
            ):
                return self._reply_to_hls(apdu, invoke)
            return self._denied(apdu, invoke)
        # associated or not, the session answers by the rights the object table gives
        return self.session.handle(apdu)

    def _denied(self, apdu: bytes, invoke: object) -> bytes:
        denied = enums.DataAccessResult.READ_WRITE_DENIED
        if apdu[0] == 0xC1 and invoke is not None:
            return xdlms.SetResponseNormal(result=denied, invoke_id_and_priority=invoke).to_bytes()
        if apdu[0] == 0xC3 and invoke is not None:
            return xdlms.ActionResponseNormal(
                status=enums.ActionResultStatus.READ_WRITE_DENIED, invoke_id_and_priority=invoke
            ).to_bytes()
        if apdu[0] == 0xC0 and invoke is not None:
            return xdlms.GetResponseNormalWithError(
                error=denied, invoke_id_and_priority=invoke
            ).to_bytes()
        return _exception(enums.ServiceException.SERVICE_NOT_SUPPORTED)

    def _reply_to_hls(self, apdu: bytes, invoke: object) -> bytes:
        """Pass 3 in, pass 4 out: check f(StoC) under the client's title, answer f(CtoS)."""
        sec = self.security
        assert self.client_title is not None
        failed = xdlms.ActionResponseNormal(
            status=enums.ActionResultStatus.OTHER_REASON, invoke_id_and_priority=invoke
        ).to_bytes()
        try:
            request = xdlms.ActionRequestNormal.from_bytes(apdu)
            data = parse_data(bytes(request.data or b""))
            if not isinstance(data, bytes | bytearray):
                return failed
            counter, tag = parse_hls_answer(bytes(data), meter=None)
            # recorded, not held to "above the last": the client computes f(StoC) before it
            # ciphers the request carrying it, so its wrapper took the next counter; the
            # answer is bound to this association's fresh challenge, a replay cannot pass
            sec.receive(self.client_title, counter, check=False)
        except Exception:  # bad bytes: the client is not let in
            return failed
        expected = gmac(
            sec.encryption_key, sec.authentication_key, self.client_title, counter, self.challenge
        )
        if not hmac.compare_digest(expected, tag):
            return failed
        self.hls_pending = False
        self.session.associated = True
        answer = hls_answer(
            sec.encryption_key,
            sec.authentication_key,
            sec.system_title,
            sec.take_counter(),
            self.client_challenge,
        )
        return xdlms.ActionResponseNormalWithData(
            status=enums.ActionResultStatus.SUCCESS,
            data=dlms_data.OctetStringData(answer).to_bytes(),
            invoke_id_and_priority=invoke,
        ).to_bytes()

    # --- ciphering --------------------------------------------------------------------------

    def _open(self, apdu: bytes) -> bytes:
        """The plain request inside a ciphered one: its counter recorded (whatever follows),
        then refused if not above the last accepted, then authenticated."""
        sec = self.security
        assert self.client_title is not None
        ciphered = parse_ciphered(apdu)
        self.general = ciphered.tag == GENERAL_GLO_CIPHERING
        sec.receive(self.client_title, ciphered.invocation_counter)
        plain, _ = open_apdu(
            apdu,
            key=sec.encryption_key,
            auth_key=sec.authentication_key,
            title=self.client_title,
            last_counter=ciphered.invocation_counter - 1,  # checked by `receive` above
        )
        sec.accept(self.client_title, ciphered.invocation_counter)
        if plain[0] not in REQUEST_TAGS:
            raise SecurityError(f"a client sent {plain[0]:#04x}, not a request")
        return plain

    def _seal(self, answer: bytes | None) -> bytes | None:
        if answer is None or answer[0] == 0xD8:  # an exception response goes in the clear
            return answer
        sec = self.security
        faulty = not sec.faults.later_blocks_only or _later_block(answer)
        if faulty and sec.faults.replay_answer and self.last_answer is not None:
            return self.last_answer
        sealed = seal_apdu(
            answer,
            key=sec.encryption_key,
            auth_key=sec.authentication_key,
            title=sec.system_title,
            counter=sec.take_counter(),
            general=self.general,
        )
        self.last_answer = sealed
        if faulty and sec.faults.tamper_tag:
            sealed = sealed[:-1] + bytes([sealed[-1] ^ 0x01])
        return sealed


def load_meter_security(path: Path, reader_mechanism: str = "lls") -> MeterSecurity:
    """A meter's keys from a TOML file (guek, gak, meter_system_title in hex); ValueError
    saying what is wrong, never showing a key."""
    if reader_mechanism not in ("lls", "hls-gmac"):
        raise ValueError(f"--reader-auth must be lls or hls-gmac, not {reader_mechanism!r}")
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        raise ValueError(f"{path}: not a readable TOML key file") from None
    values = {}
    for name, size in (("guek", 16), ("gak", 16), ("meter_system_title", TITLE_BYTES)):
        try:
            values[name] = bytes.fromhex(str(data[name]))
        except (KeyError, ValueError):
            values[name] = b""
        if len(values[name]) != size:
            raise ValueError(f"{path}: {name} must be {size} bytes written as {2 * size} hex")
    return MeterSecurity(
        values["guek"],
        values["gak"],
        values["meter_system_title"],
        reader_mechanism=reader_mechanism,  # type: ignore[arg-type]
    )

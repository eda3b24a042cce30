"""A simulated DLMS/COSEM meter: association, GET with block transfer, its IS 15959 objects.

Objects (logical names; firmware_sim/is15959.py builds them, and the Association LN object
0-0:40.0.0*255 lists those the association may use, with its access rights to each):
    0-0:42.0.0*255   logical device name (class 1)       0-0:96.1.0*255  serial number (class 1)
    0-0:1.0.0*255    clock (class 8), the meter's own clock (it drifts when told to); its time
                     (attribute 2) may be SET by an association whose rights write: the
                     utility settings client, or (a meter without IS 15959's clients) the
                     one authenticated with the meter's password
    1-0:C.D.E*255    registers (class 3) for GridGate's quantities, integer value + scaler-unit;
                     maximum demand (1.6.0, 9.6.0) as extended registers (class 4) with the time
                     of the maximum (attribute 5)
    1-0:94.91.0*255, 1-0:99.1.0*255, 1-0:99.2.0*255, 1-0:98.1.0*255, 0-0:94.91.10*255
                     IS 15959 profiles (class 7): instantaneous, block load (15 minutes: block
                     energy and means), daily load, billing, name plate; attribute 2 answers a
                     range (on the clock column) or entries (from/to, with columns) selectively
    0-0:99.98.0*255 ... 0-0:99.98.6*255   event logs (class 7), codes per IS 15959
    0-0:96.3.10*255  disconnect control (class 70): output_state (2), control_state (3),
                     control_mode (4); remote_disconnect (method 1) opens the relay, which cuts
                     the load (no power, no energy), remote_reconnect (method 2) closes it

With a password set the meter accepts only a low-level-security (LLS) association with that
password; without one it also accepts an association with no security. Every GET, SET and
ACTION is allowed or refused by the object table's access rights for the association's
`Rights` (cosem_objects.py), the same rights its object list shows. Answers longer than the
negotiated PDU size go out as GET blocks. An unknown object or attribute is answered with its
data-access-result, a malformed request with an exception-response: the association goes on.
Given a `MeterSecurity` (dlms_security.py) the meter tells IS 15959's client associations
apart (public 16, meter reader 32 with LLS or HLS-GMAC, utility settings 48 with HLS-GMAC)
and ciphers the HLS ones with suite 0; the links hand every APDU to `DlmsSession.answer`,
which puts that guard in front of `handle`.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field, replace

from dlms_cosem import dlms_data, utils
from dlms_cosem import enumerations as enums
from dlms_cosem.protocol import acse, xdlms
from dlms_cosem.protocol.xdlms.conformance import Conformance

from protocols.dlms.cosem import (
    REGISTER,
    UNIT_CODE_FOR,
    decode_datetime,
    quantity_ln,
    register_class,
)
from shared import QUANTITIES

from .clock import Clock
from .cosem_objects import (
    MANAGEMENT,
    OPEN,
    AccessError,
    Association,
    GetRequest,
    Rights,
    Selection,
    parse_get_request,
)
from .dlms_security import MeterSecurity, SessionGuard
from .is15959 import MeterEvent, build_objects
from .modbus_meter import LineFaults
from .physics import MeterPhysics

__all__ = ["AccessError", "DlmsSession", "SimulatedDlmsMeter", "register_table"]


@dataclass(frozen=True)
class RegisterDef:
    quantity: str
    data_class: type
    scaler: int
    class_id: int = REGISTER

    @property
    def unit_code(self) -> int:
        return UNIT_CODE_FOR[QUANTITIES[self.quantity].unit]

    @property
    def kilo(self) -> bool:
        """The quantity's unit is k-something (kWh) and the register holds base units (Wh)."""
        return QUANTITIES[self.quantity].unit.startswith("k")

    def raw(self, value: float) -> int:
        """The integer the meter stores: value in the DLMS base unit (Wh, W...) / 10**scaler."""
        return round((value * 1000 if self.kilo else value) / 10**self.scaler)


_U32, _S32 = dlms_data.DoubleLongUnsignedData, dlms_data.DoubleLongData
_U16, _S16 = dlms_data.UnsignedLongData, dlms_data.LongData
_COMMON = [
    RegisterDef("1.8.0", _U32, 0),
    RegisterDef("2.8.0", _U32, 0),
    RegisterDef("9.8.0", _U32, 0),
    RegisterDef("3.8.0", _U32, 0),
    RegisterDef("1.7.0", _U32, 0),
    RegisterDef("2.7.0", _U32, 0),
    RegisterDef("16.7.0", _S32, 0),
    RegisterDef("9.7.0", _U32, 0),
    RegisterDef("3.7.0", _U32, 0),
    RegisterDef("13.7.0", _S16, -3),
    RegisterDef("14.7.0", _U16, -2),
    RegisterDef("1.6.0", _U32, 0),  # maximum demand, W (extended register: with its time)
    RegisterDef("9.6.0", _U32, 0),  # maximum demand, VA
]
_PHASES = [
    (RegisterDef(v, _U16, -1), RegisterDef(i, _U16, -2), RegisterDef(p, _S32, 0))
    for v, i, p in (
        ("32.7.0", "31.7.0", "21.7.0"),
        ("52.7.0", "51.7.0", "41.7.0"),
        ("72.7.0", "71.7.0", "61.7.0"),
    )
]


def register_table(phases: int, *, extended_demand: bool = True) -> dict[bytes, RegisterDef]:
    """The meter's registers; maximum demand in extended registers (class 4) unless the meter is
    one of those that keep it in a plain register."""
    defs = list(_COMMON)
    for phase in _PHASES[:phases]:
        defs.extend(phase)
    return {
        quantity_ln(d.quantity): replace(
            d, class_id=register_class(d.quantity) if extended_demand else REGISTER
        )
        for d in defs
    }


class SimulatedDlmsMeter:
    def __init__(
        self,
        physics: MeterPhysics,
        clock: Clock,
        *,
        serial_number: int,
        password: bytes | None = None,
        physical_address: int = 17,
        max_pdu_bytes: int = 512,
        turnaround_s: float = 0.02,
        extended_demand: bool = True,
        security: MeterSecurity | None = None,
    ) -> None:
        self.physics = physics
        self.security = security
        self.clock = clock
        self.serial_number = serial_number
        self.password = password
        self.physical_address = physical_address
        self.max_pdu_bytes = max_pdu_bytes
        self.turnaround_s = turnaround_s
        self.faults = LineFaults()
        self.registers = register_table(physics.shape.phases, extended_demand=extended_demand)
        self.associations = 0
        self.own_events: list[MeterEvent] = []  # what the meter did itself (its clock set)
        self.objects = build_objects(self)

    # --- the object model (firmware_sim/is15959.py builds it) --------------------------------

    @property
    def logical_device_name(self) -> bytes:
        return f"GGS{self.serial_number:013d}".encode()

    def read_attribute(
        self,
        class_id: int,
        ln: bytes,
        attribute: int,
        selection: Selection | None = None,
        association: object | None = None,
    ) -> bytes:
        """The A-XDR encoded value of one attribute; raises AccessError when there is none."""
        obj = self.objects.get(ln)
        if obj is None:
            raise AccessError(enums.DataAccessResult.OBJECT_UNDEFINED)
        if obj.class_id != class_id:
            raise AccessError(enums.DataAccessResult.OBJECT_CLASS_INCONSISTENT)
        return obj.read(attribute, selection, association)

    def write_attribute(
        self, class_id: int, ln: bytes, attribute: int, data: bytes, association: Association
    ) -> enums.DataAccessResult:
        """A SET, allowed as the object's access rights say for `association`."""
        obj = self.objects.get(ln)
        if obj is None:
            return enums.DataAccessResult.OBJECT_UNDEFINED
        if obj.class_id != class_id:
            return enums.DataAccessResult.OBJECT_CLASS_INCONSISTENT
        return obj.write(attribute, data, association)

    def invoke(
        self, class_id: int, ln: bytes, method: int, data: bytes, association: Association
    ) -> enums.ActionResultStatus:
        """An ACTION, allowed as the object's method rights say for `association`."""
        obj = self.objects.get(ln)
        if obj is None:
            return enums.ActionResultStatus.OBJECT_UNDEFINED
        if obj.class_id != class_id:
            return enums.ActionResultStatus.OBJECT_CLASS_INCONSISTENT
        return obj.invoke(method, data, association)

    # --- what the meter does when it is told to ---------------------------------------------

    def set_clock(self, data: bytes) -> enums.DataAccessResult:
        """The clock's time (class 8, attribute 2) written: an octet-string date-time."""
        try:
            value = utils.parse_as_dlms_data(data)
            moment = decode_datetime(bytes(value))
        except Exception:  # dlms-cosem raises many kinds for bad bytes; FrameError: not a time
            return enums.DataAccessResult.TYPE_UNMATCHED
        now = self.clock.now_s()
        self.physics.set_meter_clock(now, moment.timestamp())
        # IS 15959 transaction event 151: the real time clock was set
        self.own_events.append(MeterEvent(now, 151, self.physics.state_at(now).values))
        return enums.DataAccessResult.SUCCESS

    def switch_relay(self, connect: bool) -> enums.ActionResultStatus:
        """The disconnect control's methods: remote_disconnect opens the relay (no power, no
        energy), remote_reconnect closes it."""
        self.physics.set_fault(self.clock.now_s(), relay_open=not connect)
        return enums.ActionResultStatus.SUCCESS


@dataclass
class DlmsSession:
    """One association's state on one link (an HDLC connection or a TCP connection)."""

    meter: SimulatedDlmsMeter
    associated: bool = False
    rights: Rights | None = None  # what the association may do (cosem_objects.py)
    mechanism: str = "none"  # how it authenticated: none, lls, hls-gmac
    client_max_pdu: int = 65535
    blocks: deque[bytes] = field(default_factory=deque)
    block_number: int = 0
    client_sap: int | None = None  # the client's HDLC address or wrapper wPort
    guard: SessionGuard | None = None  # the meter's security, when it has any

    @property
    def pdu_limit(self) -> int:
        return min(self.client_max_pdu, self.meter.max_pdu_bytes)

    def answer(self, apdu: bytes) -> bytes | None:
        """What the links call: `handle`, behind the meter's security when it has any."""
        if self.meter.security is None:
            return self.handle(apdu)
        if self.guard is None:
            self.guard = SessionGuard(self, self.meter.security)
        return self.guard.answer(apdu)

    def handle(self, apdu: bytes) -> bytes | None:
        """The response APDU to one request APDU (None: the request deserves no answer)."""
        if not apdu:
            return None
        tag = apdu[0]
        try:
            if tag == acse.ApplicationAssociationRequest.TAG:
                aarq = acse.ApplicationAssociationRequest.from_bytes(apdu)
                return self._associate(aarq)
            if tag == acse.ReleaseRequest.TAG:
                self.associated = False
                self.rights = None
                return acse.ReleaseResponse(reason=enums.ReleaseResponseReason.NORMAL).to_bytes()
            if tag == xdlms.GetRequestNormal.TAG and len(apdu) > 1:
                if apdu[1] == enums.GetRequestType.NEXT:
                    request_next = xdlms.GetRequestNext.from_bytes(apdu)
                    return self._next_block(
                        request_next.invoke_id_and_priority, request_next.block_number
                    )
                if apdu[1] == enums.GetRequestType.NORMAL:
                    return self._get(parse_get_request(apdu))
            if tag == xdlms.ActionRequestNormal.TAG:
                return self._action(xdlms.ActionRequestFactory.from_bytes(apdu))
            if tag == xdlms.SetRequestNormal.TAG:
                return self._set(xdlms.SetRequestFactory.from_bytes(apdu))
        # dlms-cosem raises NotImplementedError for ACTION types it has no class for (with a
        # list, with blocks): the meter answers those as it answers any service it lacks
        except (ValueError, KeyError, IndexError, NotImplementedError):
            pass  # the library could not parse it: a malformed APDU, answered as meters do
        return xdlms.ExceptionResponse(
            state_error=enums.StateException.SERVICE_NOT_ALLOWED,
            service_error=enums.ServiceException.SERVICE_NOT_SUPPORTED,
        ).to_bytes()

    def _associate(self, aarq: acse.ApplicationAssociationRequest) -> bytes:
        password = self.meter.password
        mechanism = aarq.authentication
        given = bytes(aarq.authentication_value) if aarq.authentication_value else None
        accepted = (
            password is None
            and mechanism
            in (None, enums.AuthenticationMechanism.NONE, enums.AuthenticationMechanism.LLS)
        ) or (
            password is not None
            and mechanism == enums.AuthenticationMechanism.LLS
            and given == password
        )
        if not accepted:
            diagnostic = (
                enums.AcseServiceUserDiagnostics.AUTHENTICATION_REQUIRED
                if mechanism in (None, enums.AuthenticationMechanism.NONE)
                else enums.AcseServiceUserDiagnostics.AUTHENTICATION_FAILED
            )
            return acse.ApplicationAssociationResponse(
                result=enums.AssociationResult.REJECTED_PERMANENT,
                result_source_diagnostics=diagnostic,
            ).to_bytes()
        initiate = aarq.user_information.content if aarq.user_information else None
        self.client_max_pdu = getattr(initiate, "client_max_receive_pdu_size", 65535) or 65535
        self.associated = True
        # a meter without IS 15959's clients: its password (LLS) makes the management
        # association; with no password it has the open one (cosem_objects.py)
        self.rights = MANAGEMENT if password is not None else OPEN
        self.mechanism = "lls" if password is not None else "none"
        self.meter.associations += 1
        return acse.ApplicationAssociationResponse(
            result=enums.AssociationResult.ACCEPTED,
            result_source_diagnostics=enums.AcseServiceUserDiagnostics.NULL,
            authentication=mechanism if password is not None else None,
            user_information=acse.UserInformation(
                content=xdlms.InitiateResponse(
                    negotiated_conformance=Conformance(
                        get=True,
                        set=True,
                        block_transfer_with_get_or_read=True,
                        selective_access=True,
                        action=True,
                    ),
                    server_max_receive_pdu_size=self.meter.max_pdu_bytes,
                )
            ),
        ).to_bytes()

    def _get(self, request: GetRequest) -> bytes:
        invoke = request.invoke_id_and_priority
        if not self.associated:
            return xdlms.GetResponseNormalWithError(
                error=enums.DataAccessResult.READ_WRITE_DENIED, invoke_id_and_priority=invoke
            ).to_bytes()
        if self.meter.faults.exception_code is not None:
            return xdlms.GetResponseNormalWithError(
                error=enums.DataAccessResult(self.meter.faults.exception_code),
                invoke_id_and_priority=invoke,
            ).to_bytes()
        try:
            data = self.meter.read_attribute(
                request.class_id, request.ln, request.attribute, request.selection, self
            )
        except AccessError as exc:
            return xdlms.GetResponseNormalWithError(
                error=exc.result, invoke_id_and_priority=invoke
            ).to_bytes()
        if len(data) + 4 <= self.pdu_limit:
            # Get-Response-Normal: tag C4, type 01, invoke id, result choice 0 (data), data.
            # (dlms-cosem 21.3.2's GetResponseNormal.to_bytes appends bytes to a bytearray.)
            return bytes([0xC4, 0x01]) + invoke.to_bytes() + b"\x00" + data
        size = self.pdu_limit - 16  # block header: tags, invoke id, last flag, number, length
        self.blocks = deque(data[i : i + size] for i in range(0, len(data), size))
        self.block_number = 0
        return self._next_block(invoke, 0)

    def _action(self, request: xdlms.ActionRequestNormal) -> bytes:
        invoke = request.invoke_id_and_priority
        if not self.associated:
            status = enums.ActionResultStatus.READ_WRITE_DENIED
        else:
            method = request.cosem_method
            status = self.meter.invoke(
                int(method.interface),
                method.instance.to_bytes(),
                method.method,
                bytes(request.data or b""),
                self,
            )
        return xdlms.ActionResponseNormal(status=status, invoke_id_and_priority=invoke).to_bytes()

    def _set(self, request: xdlms.SetRequestNormal) -> bytes:
        invoke = request.invoke_id_and_priority
        if not self.associated:
            result = enums.DataAccessResult.READ_WRITE_DENIED
        else:
            attribute = request.cosem_attribute
            result = self.meter.write_attribute(
                int(attribute.interface),
                attribute.instance.to_bytes(),
                attribute.attribute,
                request.data,
                self,
            )
        return xdlms.SetResponseNormal(result=result, invoke_id_and_priority=invoke).to_bytes()

    def _next_block(self, invoke: object, acknowledged: int) -> bytes:
        if not self.blocks or acknowledged != self.block_number:
            return xdlms.GetResponseLastBlockWithError(
                error=enums.DataAccessResult.NO_LONG_GET_IN_PROGRESS,
                block_number=acknowledged,
                invoke_id_and_priority=invoke,
            ).to_bytes()
        self.block_number += 1
        chunk = self.blocks.popleft()
        kind = xdlms.GetResponseLastBlock if not self.blocks else xdlms.GetResponseWithBlock
        return kind(
            data=chunk, block_number=self.block_number, invoke_id_and_priority=invoke
        ).to_bytes()

"""The simulated DLMS meter's objects, as IS 15959 lays them out, over its physics.

`build_objects(meter)` returns every object the meter has, by logical name, in the order of its
object list: the logical device name, the clock, the registers, the disconnect control, the
Association LN object (0-0:40.0.0*255) and the IS 15959 objects (protocols/dlms/is15959.py):
name plate details, counters, event codes, the block registers, and the profiles —
instantaneous, block load, daily load, billing, name plate and the event logs.

Values come from the physics: a profile's cells are encoded exactly as the register of their
column encodes its value, so a column read from a profile equals the register read alone. Block
energy (C.29.0) is the difference of the cumulative register (in its integer unit, Wh) between
two captures, so the blocks of a day add up to the day's register difference exactly. Events
come from the physics' fault log (a sag, a lost phase, a power failure, a magnet...) and from
what the meter did itself (its clock set), each with what the meter measured at that moment.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dlms_cosem import enumerations as enums

from protocols.dlms import axdr
from protocols.dlms import is15959 as std
from protocols.dlms.cosem import (
    CLOCK,
    CLOCK_LN,
    DATA,
    DISCONNECT_CONTROL,
    DISCONNECT_CONTROL_LN,
    EXTENDED_REGISTER,
    LOGICAL_DEVICE_NAME_LN,
    REGISTER,
    REMOTE_DISCONNECT,
    REMOTE_RECONNECT,
    quantity_ln,
)
from protocols.dlms.hls import REPLY_TO_HLS

from .cosem_objects import (
    UNSPECIFIED_TIME,
    AccessError,
    Attribute,
    Column,
    CosemObject,
    Entry,
    Method,
    Profile,
    constant,
    cosem_time,
    live,
)
from .physics import FaultChange, MeterState

if TYPE_CHECKING:
    from .dlms_meter import SimulatedDlmsMeter

ASSOCIATION_LN_CLASS = 15
CHANGE_HLS_SECRET = 2  # Association LN method 2 (method 1: reply_to_HLS_authentication)
_UNAVAILABLE = enums.DataAccessResult.OBJECT_UNAVAILABLE
# application context "logical name referencing, no ciphering" and the authentication mechanisms
# (Green Book object identifiers 2.16.756.5.8.1.1 and 2.16.756.5.8.2.x), as octet strings
LN_NO_CIPHERING = bytes.fromhex("60857405080101")
LN_CIPHERING = bytes.fromhex("60857405080103")
MECHANISMS = {
    "none": bytes.fromhex("60857405080200"),
    "lls": bytes.fromhex("60857405080201"),
    "hls-gmac": bytes.fromhex("60857405080205"),
}
INVOCATION_COUNTER = bytes([0, 0, 43, 1, 0, 255])  # the meter's own, for the public client
# conformance block (Blue Book): block transfer with get (11), get (19), set (20), selective
# access (21), action (23) — what the association negotiates
CONFORMANCE = "".join("1" if bit in (11, 19, 20, 21, 23) else "0" for bit in range(24))


@dataclass(frozen=True)
class Coding:
    """How a register holds a value: the A-XDR integer type, scaler and DLMS unit; `kilo` when
    the physics keeps the value in k-units (kWh) and the register in base units (Wh)."""

    encoder: Callable[[int], bytes]
    scaler: int
    unit: int
    kilo: bool = False

    def raw(self, value: float) -> int:
        return round((value * 1000 if self.kilo else value) / 10**self.scaler)

    def cell(self, value: float) -> bytes:
        return self.encoder(self.raw(value))

    def scaler_unit(self) -> bytes:
        return axdr.structure(axdr.integer(self.scaler), axdr.enum(self.unit))


_ENCODERS = {
    "DoubleLongUnsignedData": axdr.double_long_unsigned,
    "DoubleLongData": axdr.double_long,
    "UnsignedLongData": axdr.long_unsigned,
    "LongData": axdr.long,
}
WH, VARH, VAH, VOLT, AMPERE, NO_UNIT = 30, 32, 31, 35, 33, 255
BLOCK_ENERGY = {  # block energy register -> the cumulative register it is the difference of
    "1.29.0": ("1.8.0", WH),
    "2.29.0": ("2.8.0", WH),
    "3.29.0": ("3.8.0", VARH),
    "9.29.0": ("9.8.0", VAH),
}
DAILY_COLUMNS = ("1.8.0", "2.8.0", "3.8.0", "9.8.0")
PHASES = (
    ("32.7.0", "31.7.0", "33.7.0"),
    ("52.7.0", "51.7.0", "53.7.0"),
    ("72.7.0", "71.7.0", "73.7.0"),
)
PF_CODING = Coding(axdr.long, -3, NO_UNIT)
VOLTAGE_MEAN = Coding(axdr.long_unsigned, -1, VOLT)
CURRENT_MEAN = Coding(axdr.long_unsigned, -2, AMPERE)
NAME_PLATE_TEXT = {
    std.MANUFACTURER: "GridGate Simulated Meters",
    std.FIRMWARE_VERSION: "GGSIM-15959-1.0",
    std.CATEGORY: "C1",
    std.CURRENT_RATING: "10-60A",
    std.YEAR_OF_MANUFACTURE: "2025",
}


@dataclass(frozen=True)
class MeterEvent:
    """One entry of an event log: when (true time), the code, what the meter measured."""

    t_s: float
    code: int
    values: dict[str, float]


def _codes(change: FaultChange) -> list[int]:
    """The IS 15959 event codes a fault change makes the meter log."""
    old, new = change.old, change.new
    if change.name == "voltage_sag":
        codes = []
        for low, occurred in ((lambda x: x < 0.9, 9), (lambda x: x > 1.1, 7)):
            if low(new) and not low(old):
                codes.append(occurred)
            elif low(old) and not low(new):
                codes.append(occurred + 1)
        return codes
    if change.name == "phase_loss":
        return ([2 + 2 * old] if old is not None else []) + (
            [1 + 2 * new] if new is not None else []
        )
    pairs = {
        "reverse_power": (51, 52),
        "power_failure": (101, 102),
        "magnet": (201, 202),
        "cover_open": (251, None),
        "relay_open": (301, 302),
    }
    if change.name not in pairs:
        return []
    code = pairs[change.name][0 if new else 1]
    return [code] if code is not None else []


def meter_events(meter: SimulatedDlmsMeter) -> list[MeterEvent]:
    """Every event the meter logged, oldest first (fault log and the meter's own doings)."""
    events = [
        MeterEvent(change.t_s, code, change.values)
        for change in meter.physics.fault_log
        for code in _codes(change)
    ]
    events.extend(meter.own_events)
    events.sort(key=lambda e: e.t_s)
    return events


def log_events(meter: SimulatedDlmsMeter, log: std.Log) -> list[MeterEvent]:
    events = [e for e in meter_events(meter) if std.EVENT_CODES[e.code].log is log]
    depth = std.LOG_DEPTH[log]
    return events[:depth] if log is std.Log.NON_ROLLOVER else events[-depth:]


class ObjectBuilder:
    """Builds the meter's object table; one per meter."""

    def __init__(self, meter: SimulatedDlmsMeter) -> None:
        self.meter = meter
        self.physics = meter.physics
        self.objects: dict[bytes, CosemObject] = {}
        self.codings: dict[str, Coding] = {}  # register code C.D.E -> how it is held

    # -- helpers -------------------------------------------------------------------------------
    def add(self, obj: CosemObject) -> None:
        self.objects[obj.ln] = obj

    def now(self) -> float:
        return self.meter.clock.now_s()

    def stamp(self, t_s: float) -> bytes:
        return cosem_time(self.physics.meter_clock_s(t_s))

    def state(self) -> dict[str, float]:
        return self.physics.state_at(self.now()).values

    def register(
        self,
        code: str,
        coding: Coding,
        value: Callable[[], float | None],
        class_id: int = REGISTER,
        peak: Callable[[], float | None] | None = None,
    ) -> None:
        self.codings[code] = coding

        def current() -> bytes:
            found = value()
            if found is None:
                raise AccessError(_UNAVAILABLE)
            return coding.cell(found)

        attributes = {2: Attribute(live(current)), 3: Attribute(constant(coding.scaler_unit()))}
        if class_id == EXTENDED_REGISTER:
            attributes[4] = Attribute(constant(axdr.unsigned(0)))  # status: nothing to report
            attributes[5] = Attribute(live(lambda: self._peak_time(peak)))
        self.add(CosemObject(class_id, quantity_ln(code), attributes))

    def _peak_time(self, peak: Callable[[], float | None] | None) -> bytes:
        self.physics.advance_to(self.now())
        moment = peak() if peak else None
        return self.stamp(moment) if moment is not None else axdr.NULL  # no period closed yet

    def data(self, ln: bytes, value: Callable[[], bytes], *, public: bool = False) -> None:
        self.add(CosemObject(DATA, ln, {2: Attribute(live(value))}, public=public))

    # -- the objects -----------------------------------------------------------------------------
    def build(self) -> dict[bytes, CosemObject]:
        meter = self.meter
        self.data(
            LOGICAL_DEVICE_NAME_LN,
            lambda: axdr.octet_string(meter.logical_device_name),
            public=True,
        )
        security = meter.security
        if security is not None:
            self.data(
                INVOCATION_COUNTER,
                lambda: axdr.double_long_unsigned(security.counter),
                public=True,
            )
        self._clock()
        self._registers()
        self._is15959_registers()
        self._name_plate()
        self._counters()
        self._disconnect_control()
        self._profiles()
        self._association()
        return self.objects

    def _clock(self) -> None:
        def time_now() -> bytes:
            return cosem_time(self.physics.meter_clock_s(self.now()))

        self.add(
            CosemObject(
                CLOCK,
                CLOCK_LN,
                {
                    2: Attribute(live(time_now), write=self.meter.set_clock),
                    3: Attribute(constant(axdr.long(-330))),  # minutes from local time to UTC
                    4: Attribute(constant(axdr.unsigned(0))),  # status: ok
                    5: Attribute(constant(UNSPECIFIED_TIME)),  # no daylight saving in India
                    6: Attribute(constant(UNSPECIFIED_TIME)),
                    7: Attribute(constant(axdr.integer(0))),
                    8: Attribute(constant(axdr.boolean(False))),
                    9: Attribute(constant(axdr.enum(1))),  # clock base: internal crystal
                },
                methods={m: Method() for m in range(1, 7)},  # adjust, preset...: not here
                public=True,
            )
        )

    def _registers(self) -> None:
        for ln, reg in self.meter.registers.items():
            coding = Coding(
                _ENCODERS[reg.data_class.__name__], reg.scaler, reg.unit_code, kilo=reg.kilo
            )
            quantity = reg.quantity
            self.register(
                quantity,
                coding,
                lambda q=quantity: self.state().get(q),
                reg.class_id,
                peak=lambda q=quantity: self.physics.peak_at(q),
            )
            assert ln == quantity_ln(quantity)

    def _is15959_registers(self) -> None:
        for index in range(self.physics.shape.phases):
            voltage, current, pf = PHASES[index]
            self.register(pf, PF_CODING, lambda q=pf: self.state().get(q))
            for code, coding in ((voltage, VOLTAGE_MEAN), (current, CURRENT_MEAN)):
                mean = code.replace(".7.", ".27.")
                self.register(mean, coding, lambda q=mean: self._last_capture().get(q))
        for code, (total, unit) in BLOCK_ENERGY.items():
            coding = Coding(axdr.double_long_unsigned, 0, unit, kilo=True)
            self.register(code, coding, lambda t=total: self._last_block(t))
        self.register("13.0.0", PF_CODING, self._billing_power_factor)

    def _last_capture(self) -> dict[str, float]:
        self.physics.advance_to(self.now())
        captures = self.physics.captures
        return captures[-1].values if captures else {}

    def _last_block(self, total: str) -> float | None:
        self.physics.advance_to(self.now())
        captures = self.physics.captures
        if len(captures) < 2:
            return None
        return _block_wh(captures[-2], captures[-1], total) / 1000

    def _billing_power_factor(self) -> float:
        self.physics.advance_to(self.now())
        return self.physics.billing_power_factor()

    def _name_plate(self) -> None:
        meter = self.meter
        self.data(
            std.SERIAL_NUMBER, lambda: axdr.visible_string(str(meter.serial_number)), public=True
        )
        for ln, text in NAME_PLATE_TEXT.items():
            self.data(ln, lambda t=text: axdr.octet_string(t.encode()))
        kind = "3P-4W" if self.physics.shape.phases == 3 else "1P-2W"
        self.data(std.METER_TYPE, lambda: axdr.octet_string(kind.encode()))

    def _counters(self) -> None:
        def count(codes: set[int]) -> bytes:
            self.physics.advance_to(self.now())
            found = sum(1 for e in meter_events(self.meter) if e.code in codes)
            return axdr.double_long_unsigned(found)

        self.data(std.POWER_FAILURES, lambda: count({101}))
        self.data(std.TAMPER_COUNT, lambda: count({201, 203, 251}))
        self.data(std.PROGRAMMING_COUNT, lambda: count({151, 152, 153, 154, 155}))

        def billings() -> bytes:
            self.physics.advance_to(self.now())
            return axdr.double_long_unsigned(self.physics.billing_count)

        def billing_date() -> bytes:
            self.physics.advance_to(self.now())
            kept = self.physics.billings
            return self.stamp(kept[-1].t_s) if kept else UNSPECIFIED_TIME

        self.data(std.BILLING_COUNT, billings)
        self.data(std.BILLING_DATE, billing_date)
        for log, ln in std.EVENT_CODE_OBJECTS.items():

            def last_code(log: std.Log = log) -> bytes:
                events = log_events(self.meter, log)
                return axdr.long_unsigned(events[-1].code if events else 0)

            self.data(ln, last_code)

    def _disconnect_control(self) -> None:
        def connected() -> bool:
            return not self.physics.faults.relay_open

        self.add(
            CosemObject(
                DISCONNECT_CONTROL,
                DISCONNECT_CONTROL_LN,
                {
                    2: Attribute(live(lambda: axdr.boolean(connected()))),
                    3: Attribute(live(lambda: axdr.enum(1 if connected() else 0))),
                    # mode 1: remote and manual disconnection, remote reconnection
                    4: Attribute(constant(axdr.enum(1))),
                },
                methods={
                    REMOTE_DISCONNECT: Method(lambda _data: self.meter.switch_relay(False)),
                    REMOTE_RECONNECT: Method(lambda _data: self.meter.switch_relay(True)),
                },
            )
        )

    # -- profiles ---------------------------------------------------------------------------
    def column(self, code_or_ln: str | bytes, attribute: int = 2) -> Column:
        ln = quantity_ln(code_or_ln) if isinstance(code_or_ln, str) else code_or_ln
        return Column(self.objects[ln].class_id, ln, attribute)

    def _profiles(self) -> None:
        phases = range(self.physics.shape.phases)
        clock = Column(CLOCK, CLOCK_LN, 2)
        # instantaneous: a snapshot of its columns' objects, read together
        demand = [
            self.column(code, attribute)
            for code in ("1.6.0", "9.6.0")
            for attribute in (
                (2, 5) if self.objects[quantity_ln(code)].class_id == EXTENDED_REGISTER else (2,)
            )
        ]
        instant_columns = [
            clock,
            *(self.column(PHASES[i][1]) for i in phases),
            *(self.column(PHASES[i][0]) for i in phases),
            *(self.column(PHASES[i][2]) for i in phases),
            *(self.column(code) for code in ("13.7.0", "14.7.0", "9.7.0", "1.7.0", "3.7.0")),
            *(
                self.column(ln)
                for ln in (
                    std.POWER_FAILURES,
                    std.TAMPER_COUNT,
                    std.BILLING_COUNT,
                    std.PROGRAMMING_COUNT,
                    std.BILLING_DATE,
                )
            ),
            *(self.column(code) for code in DAILY_COLUMNS),
            *demand,
        ]
        self._snapshot_profile(std.INSTANTANEOUS_PROFILE, instant_columns)
        block_columns = [
            clock,
            *(self.column(PHASES[i][0].replace(".7.", ".27.")) for i in phases),
            *(self.column(PHASES[i][1].replace(".7.", ".27.")) for i in phases),
            *(self.column(code) for code in BLOCK_ENERGY),
        ]
        self._history_profile(
            std.BLOCK_LOAD_PROFILE, block_columns, self._block_entries, std.BLOCK_PERIOD_S, 96 * 45
        )
        daily_columns = [clock, *(self.column(code) for code in DAILY_COLUMNS)]
        self._history_profile(
            std.DAILY_LOAD_PROFILE, daily_columns, self._daily_entries, std.DAILY_PERIOD_S, 45
        )
        billing_columns = [
            self.column(std.BILLING_DATE),
            self.column("13.0.0"),
            *(self.column(code) for code in DAILY_COLUMNS),
            *demand,
        ]
        # the billing date stamps an entry of the billing profile: its first column
        self._history_profile(std.BILLING_PROFILE, billing_columns, self._billing_entries, 0, 12)
        name_plate = [self.column(ln) for ln in std.NAME_PLATE]
        self._snapshot_profile(std.NAME_PLATE_PROFILE, name_plate, time_column=None)
        self._event_logs(clock)

    def _snapshot_profile(
        self, ln: bytes, columns: list[Column], time_column: int | None = 0
    ) -> None:
        def entries() -> list[Entry]:
            cells = [self.objects[c.ln].read(c.attribute, None, None) for c in columns]
            return [Entry(self.physics.meter_clock_s(self.now()), cells)]

        self.add(Profile(ln, columns, entries, 0, 1, time_column=time_column).cosem_object())

    def _history_profile(
        self,
        ln: bytes,
        columns: list[Column],
        entries: Callable[[list[Column]], list[Entry]],
        period_s: int,
        depth: int,
    ) -> None:
        def current() -> list[Entry]:
            self.physics.advance_to(self.now())
            return entries(columns)

        self.add(Profile(ln, columns, current, period_s, depth).cosem_object())

    def _cell(self, column: Column, value: float | None) -> bytes:
        return axdr.NULL if value is None else self.codings[_code(column)].cell(value)

    def _block_entries(self, columns: list[Column]) -> list[Entry]:
        captures = list(self.physics.captures)
        entries = []
        for before, capture in itertools.pairwise(captures):
            stamp = self.physics.meter_clock_s(capture.t_s)
            cells = [cosem_time(stamp)]
            for column in columns[1:]:
                code = _code(column)
                if code in BLOCK_ENERGY:
                    raw = _block_wh(before, capture, BLOCK_ENERGY[code][0])
                    cells.append(axdr.double_long_unsigned(raw))
                else:
                    cells.append(self._cell(column, capture.values.get(code)))
            entries.append(Entry(stamp, cells))
        return entries

    def _daily_entries(self, columns: list[Column]) -> list[Entry]:
        offset_s = self.physics.shape.utc_offset_h * 3600
        entries = []
        for capture in self.physics.captures:
            if (capture.t_s + offset_s) % 86400:
                continue  # not midnight, local time
            stamp = self.physics.meter_clock_s(capture.t_s)
            cells = [cosem_time(stamp)]
            cells += [self._cell(c, capture.values[_code(c)]) for c in columns[1:]]
            entries.append(Entry(stamp, cells))
        return entries

    def _billing_entries(self, columns: list[Column]) -> list[Entry]:
        entries = []
        for billing in self.physics.billings:
            stamp = self.physics.meter_clock_s(billing.t_s)
            cells = []
            for column in columns:
                code = _code(column)
                if column.ln == std.BILLING_DATE:
                    cells.append(cosem_time(stamp))
                elif column.attribute == 5:
                    peak = billing.peaks.get(code)
                    cells.append(self.stamp(peak) if peak is not None else axdr.NULL)
                else:
                    cells.append(self._cell(column, billing.values[code]))
            entries.append(Entry(stamp, cells))
        return entries

    def _event_logs(self, clock: Column) -> None:
        phases = range(self.physics.shape.phases)
        snapshot = [
            *(PHASES[i][1] for i in phases),
            *(PHASES[i][0] for i in phases),
            *(PHASES[i][2] for i in phases),
            "1.8.0",
        ]
        with_values = (std.Log.VOLTAGE, std.Log.CURRENT, std.Log.OTHER)
        for log, ln in std.EVENT_LOGS.items():
            code_column = self.column(std.EVENT_CODE_OBJECTS[log])
            extra = [self.column(code) for code in snapshot] if log in with_values else []
            columns = [clock, code_column, *extra]

            def entries(columns: list[Column], log: std.Log = log) -> list[Entry]:
                found = []
                for event in log_events(self.meter, log):
                    stamp = self.physics.meter_clock_s(event.t_s)
                    cells = [cosem_time(stamp), axdr.long_unsigned(event.code)]
                    cells += [self._cell(c, event.values.get(_code(c))) for c in columns[2:]]
                    found.append(Entry(stamp, cells))
                return found

            self._history_profile(ln, columns, entries, 0, std.LOG_DEPTH[log])

    # -- the association --------------------------------------------------------------------
    def _association(self) -> None:
        objects = self.objects

        def object_list(_selection: Any, association: Any) -> bytes:
            return axdr.array(
                obj.list_entry(association) for obj in objects.values() if obj.visible(association)
            )

        def partners(_selection: Any, association: Any) -> bytes:
            client = association.client_sap if association is not None else None
            return axdr.structure(axdr.integer(client or 16), axdr.long_unsigned(1))

        def context_name(_selection: Any, association: Any) -> bytes:
            ciphered = association is not None and association.mechanism == "hls-gmac"
            return axdr.octet_string(LN_CIPHERING if ciphered else LN_NO_CIPHERING)

        def context(_selection: Any, association: Any) -> bytes:
            client_pdu = association.client_max_pdu if association is not None else 65535
            return axdr.structure(
                axdr.bit_string(CONFORMANCE),
                axdr.long_unsigned(self.meter.max_pdu_bytes),
                axdr.long_unsigned(min(client_pdu, 65535)),
                axdr.unsigned(6),
                axdr.integer(0),
                axdr.octet_string(b""),
            )

        def mechanism(_selection: Any, association: Any) -> bytes:
            name = association.mechanism if association is not None else "none"
            return axdr.octet_string(MECHANISMS[name])

        self.add(
            CosemObject(
                ASSOCIATION_LN_CLASS,
                std.ASSOCIATION_LN,
                {
                    2: Attribute(object_list),
                    3: Attribute(partners),
                    4: Attribute(context_name),
                    5: Attribute(context),
                    6: Attribute(mechanism),
                    7: Attribute(None),  # the secret: never read, and not changed here
                    8: Attribute(constant(axdr.enum(2))),  # associated
                },
                methods={
                    # pass 3 of HLS: the security guard serves it before the association
                    # is open, to every HLS client; change_HLS_secret is not carried out
                    REPLY_TO_HLS: Method(hls=True),
                    CHANGE_HLS_SECRET: Method(),
                },
                public=True,
            )
        )


def _code(column: Column) -> str:
    return f"{column.ln[2]}.{column.ln[3]}.{column.ln[4]}"


def _block_wh(before: MeterState, capture: MeterState, total: str) -> int:
    """A block's energy in the register's unit (Wh): the difference of the integer register, so
    blocks add up to the register's difference exactly."""
    assert before.true_kwh is not None
    assert capture.true_kwh is not None
    return round(capture.true_kwh[total] * 1000) - round(before.true_kwh[total] * 1000)


def build_objects(meter: SimulatedDlmsMeter) -> dict[bytes, CosemObject]:
    return ObjectBuilder(meter).build()

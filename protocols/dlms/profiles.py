"""Profile generic buffers (interface class 7) read by their capture objects, and what GridGate
makes of them: samples of its quantities, registers rebuilt from block energy, meter events.

A profile says what its columns are (attribute 3, capture objects); each row of its buffer
(attribute 2) holds one value per column. A register column's values are integers to be scaled by
that register's scaler-unit (its attribute 3). Columns map onto GridGate's quantities by OBIS:

    1-0:C.D.E*255 attribute 2, C.D.E in the quantity table   the quantity itself (1.8.0, 32.7.0)
    1-0:C.29.E*255 (block energy), C.8.E in the table        the register C.8.E, rebuilt: the
                                                             daily profile's register at midnight
                                                             plus the blocks since
    anything else (means C.27.E, counters, dates)            kept in the table, not a sample

Selective access: by range on the clock column (`RangeSelection`, both ends included) or by
entries and columns (`EntrySelection`, 1-based, 0 meaning the last). Every decoder here takes
what a meter sent and raises FrameError for anything it cannot be: a typed error, never a crash.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from shared import QUANTITIES, Sample

from ..errors import FrameError
from . import axdr
from .client import parse_data
from .cosem import (
    CLOCK,
    CLOCK_LN,
    DATA,
    DLMS_UNITS,
    EXTENDED_REGISTER,
    REGISTER,
    decode_datetime,
    encode_datetime,
    format_ln,
)
from .is15959 import BILLING_DATE, EVENT_CODE_OBJECTS, EVENT_CODES, LOG_OF, EventCode, Log

FAR_FUTURE = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
MAX_ROWS = 100_000  # more rows than any profile keeps: refused before anything is built


@dataclass(frozen=True)
class CaptureColumn:
    class_id: int
    ln: bytes
    attribute: int
    data_index: int = 0

    @property
    def name(self) -> str:
        """'1-0:1.29.0*255', with '/N' for an attribute other than the value (2)."""
        suffix = "" if self.attribute == 2 else f"/{self.attribute}"
        return format_ln(self.ln) + suffix

    @property
    def is_register_value(self) -> bool:
        return self.class_id in (REGISTER, EXTENDED_REGISTER) and self.attribute == 2

    @property
    def is_clock(self) -> bool:
        return self.class_id == CLOCK and self.ln == CLOCK_LN and self.attribute == 2

    @property
    def code(self) -> str:
        return f"{self.ln[2]}.{self.ln[3]}.{self.ln[4]}"

    @property
    def quantity(self) -> str | None:
        """The GridGate quantity this column's values are, if any."""
        if self.is_register_value and self.ln[0] == 1 and self.ln[5] == 255:
            return self.code if self.code in QUANTITIES else None
        return None

    @property
    def block_of(self) -> str | None:
        """The cumulative quantity whose difference over a block this column holds (C.29.E)."""
        if self.is_register_value and self.ln[0] == 1 and self.ln[3] == 29:
            total = f"{self.ln[2]}.8.{self.ln[4]}"
            return total if total in QUANTITIES else None
        return None

    def to_bytes(self) -> bytes:
        return axdr.capture_object(self.class_id, self.ln, self.attribute, self.data_index)


CLOCK_COLUMN = CaptureColumn(CLOCK, CLOCK_LN, 2)


@dataclass(frozen=True)
class RangeSelection:
    """Entries whose clock column lies in [start, end]; `columns`: only those (None: all)."""

    start: datetime
    end: datetime
    columns: tuple[CaptureColumn, ...] = ()

    def to_bytes(self) -> bytes:
        return bytes([1]) + axdr.structure(
            CLOCK_COLUMN.to_bytes(),
            axdr.octet_string(encode_datetime(self.start)),
            axdr.octet_string(encode_datetime(self.end)),
            axdr.array(c.to_bytes() for c in self.columns),
        )


@dataclass(frozen=True)
class EntrySelection:
    """Entries `first`..`last` (1 = the oldest kept; last 0: up to the newest) and columns
    `first_column`..`last_column` (0: up to the last)."""

    first: int = 1
    last: int = 0
    first_column: int = 1
    last_column: int = 0

    def to_bytes(self) -> bytes:
        return bytes([2]) + axdr.structure(
            axdr.double_long_unsigned(self.first),
            axdr.double_long_unsigned(self.last),
            axdr.long_unsigned(self.first_column),
            axdr.long_unsigned(self.last_column),
        )


def _int(value: Any, what: str, meter: str | None) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise FrameError(f"{what} is {type(value).__name__}, not an integer", meter=meter)
    return value


def plain(value: Any) -> Any:
    """Parsed A-XDR with octet strings as bytes (the parser gives bytearrays)."""
    if isinstance(value, bytearray):
        return bytes(value)
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


def decode_columns(value: Any, meter: str | None = None) -> list[CaptureColumn]:
    """Capture objects (attribute 3): an array of {class, logical name, attribute, index}."""
    value = plain(value)
    if not isinstance(value, list) or not value:
        raise FrameError("capture objects are not a non-empty array", meter=meter)
    columns = []
    for item in value:
        if not isinstance(item, list) or len(item) != 4:
            raise FrameError("a capture object is not a 4-element structure", meter=meter)
        class_id = _int(item[0], "a capture object's class", meter)
        if not isinstance(item[1], bytes) or len(item[1]) != 6:
            raise FrameError("a capture object's logical name is not 6 octets", meter=meter)
        attribute = _int(item[2], "a capture object's attribute", meter)
        index = _int(item[3], "a capture object's data index", meter)
        columns.append(CaptureColumn(class_id, bytes(item[1]), attribute, index))
    return columns


def scale(raw: int, scaler: int, unit: int) -> Decimal:
    """A register's integer in GridGate's unit family (kWh for Wh, V, A, ...), exactly."""
    if not -20 <= scaler <= 20:
        raise FrameError(f"scaler {scaler} is out of any meter's range")
    _unit, exponent = DLMS_UNITS.get(unit, ("", 0))
    return Decimal(raw).scaleb(scaler + exponent)


@dataclass
class ProfileTable:
    """A profile's buffer as read: its columns, its rows (values per column), and the
    scaler-unit of each register column (by logical name)."""

    ln: bytes
    columns: list[CaptureColumn]
    rows: list[list[Any]]
    units: dict[bytes, tuple[int, int]] = field(default_factory=dict)
    meter: str | None = None

    def index(self, name: str) -> int:
        for index, column in enumerate(self.columns):
            if column.name == name:
                return index
        raise KeyError(f"{format_ln(self.ln)} has no column {name}")

    def cell(self, row: list[Any], index: int) -> Any:
        """A cell as GridGate uses it: a register value scaled (Decimal, GridGate's unit
        family), a date-time decoded (aware UTC; None when unspecified), else as read."""
        column, value = self.columns[index], row[index]
        if column.is_register_value and isinstance(value, int) and not isinstance(value, bool):
            if column.ln not in self.units:
                raise FrameError(f"no scaler-unit for {column.name}", meter=self.meter)
            return scale(value, *self.units[column.ln])
        if isinstance(value, bytes) and len(value) == 12 and _is_time_column(column):
            try:
                return decode_datetime(value)
            except FrameError:
                return None  # an unspecified date-time (no billing yet)
        return value

    def values(self, name: str) -> list[Any]:
        index = self.index(name)
        return [self.cell(row, index) for row in self.rows]

    def times(self) -> list[datetime]:
        """Each row's time: its clock column (a profile without one has no times)."""
        index = next((i for i, c in enumerate(self.columns) if c.is_clock), None)
        if index is None:
            raise FrameError(f"{format_ln(self.ln)} has no clock column", meter=self.meter)
        stamps = []
        for row in self.rows:
            raw = row[index]
            if not isinstance(raw, bytes):
                raise FrameError("a profile's clock cell is not an octet string", meter=self.meter)
            stamps.append(decode_datetime(raw))
        return stamps

    def samples(self, meter_id: str) -> list[Sample]:
        """The columns that are GridGate quantities, as samples stamped by the clock column."""
        mapped = [(i, c.quantity) for i, c in enumerate(self.columns) if c.quantity]
        if not mapped:
            return []
        found = []
        for ts, row in zip(self.times(), self.rows, strict=True):
            for index, quantity in mapped:
                value = self.cell(row, index)
                if isinstance(value, Decimal):
                    found.append(
                        Sample(meter_id=meter_id, quantity=quantity, ts=ts, value=float(value))
                    )
        return found


def _is_time_column(column: CaptureColumn) -> bool:
    """A clock, a maximum's capture time (extended register attribute 5), a billing date."""
    return (
        column.is_clock
        or (column.class_id == EXTENDED_REGISTER and column.attribute == 5)
        or (column.class_id == DATA and column.ln == BILLING_DATE)
    )


def decode_profile(
    ln: bytes,
    columns: list[CaptureColumn],
    buffer: Any,
    units: dict[bytes, tuple[int, int]] | None = None,
    meter: str | None = None,
) -> ProfileTable:
    """A buffer (attribute 2, as parsed) checked against its columns: every row a structure of
    one value per column (or of the columns a selection asked for)."""
    buffer = plain(buffer)
    if not isinstance(buffer, list):
        raise FrameError("a profile buffer is not an array", meter=meter)
    if len(buffer) > MAX_ROWS:
        raise FrameError(f"a profile buffer of {len(buffer)} rows", meter=meter)
    for row in buffer:
        if not isinstance(row, list) or len(row) != len(columns):
            raise FrameError(
                f"a row of {format_ln(ln)} does not match its {len(columns)} columns", meter=meter
            )
    return ProfileTable(ln, columns, buffer, dict(units or {}), meter)


def decode_profile_bytes(
    ln: bytes, columns_raw: bytes, buffer_raw: bytes, units: dict[bytes, tuple[int, int]]
) -> ProfileTable:
    """As the reader decodes a profile, from the bytes of attributes 3 and 2."""
    columns = decode_columns(parse_data(columns_raw))
    table = decode_profile(ln, columns, parse_data(buffer_raw), units)
    for row in table.rows:  # every cell decodes, or the profile is refused
        for index in range(len(table.columns)):
            table.cell(row, index)
    return table


# --- registers rebuilt from block energy ----------------------------------------------------


def registers_from_blocks(
    blocks: ProfileTable, daily: ProfileTable, period: timedelta, meter_id: str
) -> list[Sample]:
    """Cumulative registers at each block's end: the daily profile's register at the midnight a
    block starts on, plus the blocks since; before the first midnight known, that midnight's
    register less the blocks between (a meter whose daily profile keeps no earlier midnight, or
    a range read before it). Exact in the meter's own unit (Decimal sums of its integers): the
    register difference over a block is the block's energy. A block without its energy stops
    the walk until the next midnight (forwards) or for good (backwards); each daily value is
    also a sample (the register as the meter kept it)."""
    block_times = blocks.times()
    daily_times = daily.times()
    found: list[Sample] = []
    for index, column in enumerate(blocks.columns):
        total = column.block_of
        if total is None:
            continue
        try:
            daily_index = next(i for i, c in enumerate(daily.columns) if c.quantity == total)
        except StopIteration:
            continue
        anchors: dict[datetime, Decimal] = {}
        for ts, row in zip(daily_times, daily.rows, strict=True):
            value = daily.cell(row, daily_index)
            if isinstance(value, Decimal):
                anchors[ts] = value
                found.append(Sample(meter_id=meter_id, quantity=total, ts=ts, value=float(value)))
        running: Decimal | None = None
        for ts, row in zip(block_times, blocks.rows, strict=True):
            block = blocks.cell(row, index)
            if ts - period in anchors:
                running = anchors[ts - period]  # the block began at a midnight kept
            if not isinstance(block, Decimal):
                running = None  # a block without its energy: wait for the next midnight
                continue
            if running is None:
                continue
            running += block
            if ts not in anchors:
                found.append(Sample(meter_id=meter_id, quantity=total, ts=ts, value=float(running)))
        if anchors:
            found += _registers_before(blocks, index, min(anchors), anchors, total, meter_id)
    return sorted(found, key=lambda s: (s.ts, s.quantity))


def _registers_before(
    blocks: ProfileTable,
    index: int,
    first: datetime,
    anchors: dict[datetime, Decimal],
    total: str,
    meter_id: str,
) -> list[Sample]:
    """The registers at the ends of the blocks up to the `first` midnight known, walked back
    from its register: each block's end is the next one's end less the next block's energy."""
    register = anchors[first]
    found = []
    rows = zip(blocks.times(), blocks.rows, strict=True)
    for ts, row in reversed([(ts, row) for ts, row in rows if ts <= first]):
        if ts != first:
            found.append(Sample(meter_id=meter_id, quantity=total, ts=ts, value=float(register)))
        block = blocks.cell(row, index)
        if not isinstance(block, Decimal):
            break  # a block without its energy: nothing before it can be known
        register -= block
    return found


# --- events -------------------------------------------------------------------------------


@dataclass(frozen=True)
class MeterEvent:
    """One entry of an event log: when (the meter's clock), the code, what it measured."""

    log: Log
    ts: datetime
    code: int
    values: dict[str, Decimal] = field(default_factory=dict)

    @property
    def info(self) -> EventCode | None:
        return EVENT_CODES.get(self.code)


def decode_events(table: ProfileTable) -> list[MeterEvent]:
    """An event log's entries: the clock column, the event code column (0-0:96.11.x*255) and
    the quantities captured with it."""
    log = LOG_OF.get(table.ln)
    if log is None:
        raise FrameError(f"{format_ln(table.ln)} is not an event log", meter=table.meter)
    code_ln = EVENT_CODE_OBJECTS[log]
    code_index = next((i for i, c in enumerate(table.columns) if c.ln == code_ln), None)
    if code_index is None:
        raise FrameError(f"{format_ln(table.ln)} has no event code column", meter=table.meter)
    events = []
    for ts, row in zip(table.times(), table.rows, strict=True):
        code = _int(row[code_index], "an event code", table.meter)
        values = {
            column.quantity: value
            for i, column in enumerate(table.columns)
            if column.quantity and isinstance(value := table.cell(row, i), Decimal)
        }
        events.append(MeterEvent(log, ts, code, values))
    return events


def newer_than(events: Iterable[MeterEvent], ts: datetime | None, codes: Iterable[int]) -> list:
    """Events after the last one seen (at `ts`, with `codes` at that instant): what a re-read
    adds, never what it repeats."""
    seen = set(codes)
    return [e for e in events if ts is None or e.ts > ts or (e.ts == ts and e.code not in seen)]

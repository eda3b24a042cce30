"""The simulated meter's COSEM object model: objects by logical name, each of its interface class,
with its attributes, access rights and methods; a GET request's parsing; profile generic buffers
with selective access.

Every object answers every attribute of its class: read (the value's A-XDR encoding), or with the
standard data-access-result — attribute not in the class: object-undefined; no read right in this
association: read-write-denied; selective access where the attribute has none:
scope-of-access-violated; a value the meter cannot give now: object-unavailable.

Access rights live here and nowhere else: an object says which attributes read and write and
which methods the meter carries out, whether the public client may read it; an association
brings its `Rights` (IS 15959's public client, meter reader, utility settings). `access` and
`may_invoke` decide from both, and the same two functions answer the session's GET, SET and
ACTION and fill the Association LN object's object list — so the list an association reads
says exactly what it will be allowed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import IntEnum
from typing import Any, Protocol

from dlms_cosem import enumerations as enums
from dlms_cosem.protocol.xdlms.invoke_id_and_priority import InvokeIdAndPriority

from protocols.dlms import axdr
from protocols.dlms.client import parse_data
from protocols.dlms.cosem import decode_datetime, encode_datetime
from protocols.errors import FrameError

RANGE, ENTRY = 1, 2  # access selectors of a profile's buffer
_DAR = enums.DataAccessResult


class AccessError(Exception):
    """A GET that the meter answers with a data-access-result instead of data."""

    def __init__(self, result: enums.DataAccessResult) -> None:
        self.result = result
        super().__init__(result.name)


class Access(IntEnum):
    """attribute_access_mode of an object list (Association LN version 0)."""

    NONE = 0
    READ = 1
    WRITE = 2
    READ_WRITE = 3


@dataclass(frozen=True)
class Rights:
    """What one association may do with the meter's objects: the single source of the access
    rights its object list shows and of what its GET, SET and ACTION requests are allowed.

    IS 15959's clients: the public client reads the objects marked public; the meter reader
    reads every object; the utility settings client also writes the attributes that take a
    write and invokes the methods the meter carries out."""

    name: str
    read_all: bool  # False: only objects marked public
    write: bool  # SET, where an attribute takes one
    invoke: bool  # ACTION, where the meter carries the method out


PUBLIC = Rights("public client", read_all=False, write=False, invoke=False)
METER_READER = Rights("meter reader", read_all=True, write=False, invoke=False)
UTILITY_SETTINGS = Rights("utility settings", read_all=True, write=True, invoke=True)
# a meter without IS 15959's clients: with its password (LLS) the association manages it; with
# no password it reads and drives the relay, but a clock set needs the password
MANAGEMENT = Rights("management", read_all=True, write=True, invoke=True)
OPEN = Rights("open", read_all=True, write=False, invoke=True)


class Association(Protocol):
    """What an object may ask of the association that reads it."""

    rights: Rights | None  # None: not associated
    mechanism: str  # "none", "lls" or "hls-gmac"
    client_max_pdu: int
    client_sap: int | None


Reader = Callable[["Selection | None", "Association | None"], bytes]
Writer = Callable[[bytes], enums.DataAccessResult]  # the A-XDR value to write
Invoker = Callable[[bytes], enums.ActionResultStatus]  # the method's A-XDR parameter


@dataclass(frozen=True)
class Attribute:
    read: Reader | None  # None: no read access in any association
    selectors: tuple[int, ...] = ()  # selective access it allows (a buffer: range, entry)
    write: Writer | None = None  # None: no association writes it


@dataclass(frozen=True)
class Method:
    invoke: Invoker | None = None  # None: a method of the class this meter does not carry out
    hls: bool = False  # open to every HLS association (reply_to_HLS_authentication)


def constant(encoded: bytes) -> Reader:
    return lambda _selection, _association: encoded


def live(value: Callable[[], bytes]) -> Reader:
    return lambda _selection, _association: value()


@dataclass
class CosemObject:
    class_id: int
    ln: bytes
    attributes: dict[int, Attribute]  # attribute 1 (logical_name) is added here
    version: int = 0
    methods: dict[int, Method] = field(default_factory=dict)
    public: bool = False  # the public client reads it

    def __post_init__(self) -> None:
        self.attributes = {1: Attribute(constant(axdr.octet_string(self.ln)))} | self.attributes

    # --- the rights: what the object list shows is what is enforced ---------------------

    def access(self, number: int, association: Association | None) -> Access:
        """An attribute's access in `association` (None: the meter itself, which reads all)."""
        attribute = self.attributes.get(number)
        if attribute is None:
            return Access.NONE
        if association is None:
            return Access.READ if attribute.read is not None else Access.NONE
        rights = association.rights
        if rights is None:
            return Access.NONE
        readable = attribute.read is not None and (rights.read_all or self.public)
        writable = attribute.write is not None and rights.write
        return Access(int(readable) * Access.READ + int(writable) * Access.WRITE)

    def may_invoke(self, number: int, association: Association | None) -> bool:
        method = self.methods.get(number)
        if method is None or association is None or association.rights is None:
            return False
        if method.hls and association.mechanism == "hls-gmac":
            return True
        return method.invoke is not None and association.rights.invoke

    def visible(self, association: Association | None) -> bool:
        """Listed in the association's object list: it may do something with the object."""
        return any(self.access(n, association) for n in self.attributes) or any(
            self.may_invoke(m, association) for m in self.methods
        )

    # --- the services -----------------------------------------------------------------------

    def read(self, attribute: int, selection: Selection | None, association: Any) -> bytes:
        found = self.attributes.get(attribute)
        if found is None:
            raise AccessError(_DAR.OBJECT_UNDEFINED)
        if not self.access(attribute, association) & Access.READ:
            raise AccessError(_DAR.READ_WRITE_DENIED)
        if selection is not None and selection.selector not in found.selectors:
            raise AccessError(_DAR.SCOPE_OF_ACCESS_VIOLATED)
        assert found.read is not None
        return found.read(selection, association)

    def write(
        self, attribute: int, data: bytes, association: Association
    ) -> enums.DataAccessResult:
        found = self.attributes.get(attribute)
        if found is None:
            return _DAR.OBJECT_UNDEFINED
        if not self.access(attribute, association) & Access.WRITE:
            return _DAR.READ_WRITE_DENIED
        assert found.write is not None
        return found.write(data)

    def invoke(
        self, number: int, data: bytes, association: Association
    ) -> enums.ActionResultStatus:
        method = self.methods.get(number)
        if method is None:
            return enums.ActionResultStatus.OBJECT_UNDEFINED
        if not self.may_invoke(number, association):
            return enums.ActionResultStatus.READ_WRITE_DENIED
        if method.invoke is None:  # open to HLS, served by the security guard in pass 3
            return enums.ActionResultStatus.OTHER_REASON
        return method.invoke(data)

    def list_entry(self, association: Any) -> bytes:
        """This object's element of an object list: class, version, name, access rights."""
        attributes = [
            axdr.structure(
                axdr.integer(number),
                axdr.enum(self.access(number, association)),
                axdr.array(axdr.integer(s) for s in attribute.selectors)
                if attribute.selectors and self.access(number, association) & Access.READ
                else axdr.NULL,
            )
            for number, attribute in sorted(self.attributes.items())
        ]
        methods = [
            axdr.structure(axdr.integer(m), axdr.boolean(self.may_invoke(m, association)))
            for m in sorted(self.methods)
        ]
        return axdr.structure(
            axdr.long_unsigned(self.class_id),
            axdr.unsigned(self.version),
            axdr.octet_string(self.ln),
            axdr.structure(axdr.array(attributes), axdr.array(methods)),
        )


# --- requests ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Selection:
    """Selective access: the selector (1 range, 2 entry) and its A-XDR parameters, as sent."""

    selector: int
    parameters: bytes


@dataclass(frozen=True)
class GetRequest:
    invoke_id_and_priority: InvokeIdAndPriority
    class_id: int
    ln: bytes
    attribute: int
    selection: Selection | None


def parse_get_request(apdu: bytes) -> GetRequest:
    """A Get-Request-Normal (C0 01): any class id and attribute, both selectors. The library's
    own parser knows neither an unknown class id nor the entry descriptor. ValueError: malformed."""
    if len(apdu) < 13 or apdu[0] != 0xC0 or apdu[1] != 0x01:
        raise ValueError("not a whole Get-Request-Normal")
    invoke = InvokeIdAndPriority.from_bytes(apdu[2:3])
    class_id = int.from_bytes(apdu[3:5], "big")
    ln, attribute = bytes(apdu[5:11]), int.from_bytes(apdu[11:12], "big", signed=True)
    has_selection = apdu[12]
    if has_selection == 0:
        if len(apdu) != 13:
            raise ValueError("bytes after a Get-Request-Normal without selective access")
        return GetRequest(invoke, class_id, ln, attribute, None)
    if has_selection != 1 or len(apdu) < 15:
        raise ValueError("selective access flag is neither 0 nor 1, or no selector follows")
    return GetRequest(invoke, class_id, ln, attribute, Selection(apdu[13], bytes(apdu[14:])))


# --- profile generic (class 7) -----------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    class_id: int
    ln: bytes
    attribute: int
    data_index: int = 0

    def encode(self) -> bytes:
        return axdr.capture_object(self.class_id, self.ln, self.attribute, self.data_index)


@dataclass(frozen=True)
class Entry:
    """One row of a buffer: the time on its clock column (epoch s; None: no clock) and cells."""

    stamp_s: float | None
    cells: Sequence[bytes]


def _unsigned(value: Any, limit: int, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= limit:
        raise AccessError(_DAR.OTHER_REASON)
    return value


def select(
    entries: list[Entry],
    columns: list[Column],
    selection: Selection | None,
    time_column: int | None = 0,
) -> bytes:
    """The buffer's A-XDR array, restricted as the selection asks (Blue Book 4.3.6: a range on
    the time column, inclusive, with an optional list of columns; or entries from/to and
    columns from/to, 1-based, 0 meaning the last). The time column is the one whose date-time
    stamps the entry: the clock, or the billing date of the billing profile; None: the buffer
    has none, and a range is refused."""
    wanted = list(range(len(columns)))
    if selection is not None:
        try:
            parameters = parse_data(selection.parameters)
        except FrameError:
            raise AccessError(_DAR.OTHER_REASON) from None
        if not isinstance(parameters, list) or len(parameters) != 4:
            raise AccessError(_DAR.OTHER_REASON)
        if selection.selector == RANGE:
            entries, wanted = _by_range(entries, columns, parameters, time_column)
        else:
            entries, wanted = _by_entry(entries, columns, parameters)
    return axdr.array(
        bytes([axdr.STRUCTURE]) + axdr.length(len(wanted)) + b"".join(e.cells[i] for i in wanted)
        for e in entries
    )


def _column_index(columns: list[Column], definition: Any) -> int:
    if not isinstance(definition, list) or len(definition) != 4:
        raise AccessError(_DAR.OTHER_REASON)
    class_id, ln, attribute, _index = definition
    for index, column in enumerate(columns):
        if (column.class_id, column.ln, column.attribute) == (class_id, ln, attribute):
            return index
    raise AccessError(_DAR.OTHER_REASON)  # not a column of this buffer


def _by_range(
    entries: list[Entry], columns: list[Column], parameters: list[Any], time_column: int | None
) -> tuple[list[Entry], list[int]]:
    restricting, low, high, selected = parameters
    index = _column_index(columns, restricting)
    if index != time_column:  # a range is kept on the column that stamps the entries
        raise AccessError(_DAR.OTHER_REASON)
    try:
        start = decode_datetime(bytes(low)).timestamp()
        end = decode_datetime(bytes(high)).timestamp()
    except (FrameError, TypeError):
        raise AccessError(_DAR.OTHER_REASON) from None
    chosen = [e for e in entries if e.stamp_s is not None and start <= e.stamp_s <= end]
    if selected is None or selected == []:
        return chosen, list(range(len(columns)))
    if not isinstance(selected, list):
        raise AccessError(_DAR.OTHER_REASON)
    return chosen, [_column_index(columns, definition) for definition in selected]


def _by_entry(
    entries: list[Entry], columns: list[Column], parameters: list[Any]
) -> tuple[list[Entry], list[int]]:
    first = _unsigned(parameters[0], 0xFFFFFFFF, "from_entry")
    last = _unsigned(parameters[1], 0xFFFFFFFF, "to_entry") or len(entries)
    first_column = _unsigned(parameters[2], 0xFFFF, "from_selected_value")
    last_column = _unsigned(parameters[3], 0xFFFF, "to_selected_value") or len(columns)
    if first < 1 or first_column < 1 or last_column > len(columns) or first_column > last_column:
        raise AccessError(_DAR.OTHER_REASON)
    return entries[first - 1 : last], list(range(first_column - 1, last_column))


@dataclass
class Profile:
    """A profile generic object: columns (capture objects) and where its entries come from."""

    ln: bytes
    columns: list[Column]
    entries: Callable[[], list[Entry]]
    capture_period_s: int
    depth: int  # profile_entries: how many entries it keeps at most
    sort_method: int = 1  # fifo
    time_column: int | None = 0  # the column that stamps an entry (None: no time)
    public: bool = False

    def cosem_object(self) -> CosemObject:
        def buffer(selection: Selection | None, _association: Any) -> bytes:
            return select(self.entries(), self.columns, selection, self.time_column)

        return CosemObject(
            7,
            self.ln,
            {
                2: Attribute(buffer, selectors=(RANGE, ENTRY)),
                3: Attribute(constant(axdr.array(c.encode() for c in self.columns))),
                4: Attribute(constant(axdr.double_long_unsigned(self.capture_period_s))),
                5: Attribute(constant(axdr.enum(self.sort_method))),
                6: Attribute(constant(axdr.capture_object(0, bytes(6), 0, 0))),  # none: fifo
                7: Attribute(live(lambda: axdr.double_long_unsigned(len(self.entries())))),
                8: Attribute(constant(axdr.double_long_unsigned(self.depth))),
            },
            version=1,
            methods={1: Method(), 2: Method()},  # reset, capture: not carried out
            public=self.public,
        )


def cosem_time(stamp_s: float) -> bytes:
    """A date-time octet string (UTC, deviation 0) for the epoch second `stamp_s`."""
    return axdr.octet_string(encode_datetime(datetime.fromtimestamp(stamp_s, UTC)))


UNSPECIFIED_TIME = axdr.octet_string(
    bytes([0xFF, 0xFF, 0xFF, 0xFF, 0xFF] + [0xFF] * 4 + [0x80, 0, 0])
)

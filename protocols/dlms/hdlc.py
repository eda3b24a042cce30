"""HDLC frames as DLMS uses them (IEC 62056-46, frame format type 3), in both directions.

    7E | format(2) | destination | source | control | [HCS(2) information] | FCS(2) | 7E

The format field holds type 0xA, the segmentation bit and an 11-bit length (flags excluded).
Addresses are 1, 2 or 4 bytes, each byte's lowest bit marking the last one. Frames with an
information field carry a header check sequence; both checks are CRC-16/X.25.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from dlms_cosem.crc import CRCCCITT

from ..errors import CrcError, FrameError

FLAG = 0x7E
LLC_REQUEST = b"\xe6\xe6\x00"
LLC_RESPONSE = b"\xe6\xe7\x00"
MAX_FRAME_BYTES = 2048
_CRC = CRCCCITT()


def fcs(data: bytes) -> bytes:
    return _CRC.calculate_for(data)


class Kind(Enum):
    I = "I"  # noqa: E741  (the HDLC name of an information frame)
    RR = "RR"
    RNR = "RNR"
    SNRM = "SNRM"
    DISC = "DISC"
    UA = "UA"
    DM = "DM"
    FRMR = "FRMR"
    UI = "UI"


_U_CONTROL = {
    Kind.SNRM: 0x83,
    Kind.DISC: 0x43,
    Kind.UA: 0x63,
    Kind.DM: 0x0F,
    Kind.FRMR: 0x87,
    Kind.UI: 0x03,
}
_U_BY_CONTROL = {value: kind for kind, value in _U_CONTROL.items()}


@dataclass(frozen=True, slots=True)
class Address:
    """An HDLC address: a client's is one byte; a server's is a logical (upper) and an
    optional physical (lower) part."""

    logical: int
    physical: int | None = None

    def encode(self) -> bytes:
        if self.physical is None:
            if not 0 <= self.logical <= 0x7F:
                raise ValueError(f"one-byte HDLC address {self.logical} is outside 0-127")
            return bytes([(self.logical << 1) | 1])
        if self.logical <= 0x7F and self.physical <= 0x7F:
            return bytes([self.logical << 1, (self.physical << 1) | 1])
        if self.logical > 0x3FFF or self.physical > 0x3FFF:
            raise ValueError("HDLC address parts must fit in 14 bits")
        return bytes(
            [
                (self.logical >> 7) << 1,
                (self.logical & 0x7F) << 1,
                (self.physical >> 7) << 1,
                ((self.physical & 0x7F) << 1) | 1,
            ]
        )

    @classmethod
    def decode(cls, raw: bytes) -> Address:
        parts = [b >> 1 for b in raw]
        if len(parts) == 1:
            return cls(parts[0])
        if len(parts) == 2:
            return cls(parts[0], parts[1])
        if len(parts) == 4:
            return cls((parts[0] << 7) | parts[1], (parts[2] << 7) | parts[3])
        raise FrameError(f"HDLC address of {len(raw)} bytes (must be 1, 2 or 4)")


@dataclass(frozen=True, slots=True)
class Frame:
    kind: Kind
    destination: Address
    source: Address
    information: bytes = b""
    ssn: int = 0  # I frames: N(S)
    rsn: int = 0  # I and RR/RNR frames: N(R)
    poll_final: bool = True
    segmented: bool = False

    def control(self) -> int:
        pf = 0x10 if self.poll_final else 0
        if self.kind is Kind.I:
            return ((self.rsn & 7) << 5) | pf | ((self.ssn & 7) << 1)
        if self.kind is Kind.RR:
            return ((self.rsn & 7) << 5) | pf | 0x01
        if self.kind is Kind.RNR:
            return ((self.rsn & 7) << 5) | pf | 0x05
        return _U_CONTROL[self.kind] | pf

    def encode(self) -> bytes:
        dst, src = self.destination.encode(), self.source.encode()
        has_info = bool(self.information)
        length = 2 + len(dst) + len(src) + 1 + 2 + (2 + len(self.information) if has_info else 0)
        if length > 0x7FF:
            raise ValueError(f"HDLC frame of {length} bytes is longer than 2047")
        fmt = 0xA000 | (0x0800 if self.segmented else 0) | length
        header = fmt.to_bytes(2, "big") + dst + src + bytes([self.control()])
        body = header + (fcs(header) + self.information if has_info else b"")
        return bytes([FLAG]) + body + fcs(body) + bytes([FLAG])


def decode_frame(raw: bytes) -> Frame:
    """Decode one frame, flags included; raise FrameError/CrcError saying what is wrong."""
    if len(raw) < 9 or raw[0] != FLAG or raw[-1] != FLAG:
        raise FrameError(f"not an HDLC frame: {raw[:16].hex()}")
    body = raw[1:-1]
    fmt = int.from_bytes(body[:2], "big")
    if fmt >> 12 != 0xA:
        raise FrameError(f"HDLC format type {fmt >> 12:#x} is not 0xA")
    if fmt & 0x7FF != len(body):
        raise FrameError(f"HDLC length field says {fmt & 0x7FF} bytes, frame has {len(body)}")
    if fcs(body[:-2]) != body[-2:]:
        raise CrcError("HDLC frame check sequence (FCS) does not match")
    position = 2
    addresses = []
    for _ in range(2):
        start = position
        while position < len(body) - 2 and not body[position] & 1:
            position += 1
        position += 1
        addresses.append(Address.decode(body[start:position]))
    if position >= len(body) - 2:
        raise FrameError("HDLC frame ends inside its header")
    control = body[position]
    position += 1
    information = b""
    if len(body) - 2 > position:
        header_end = position
        if fcs(body[:header_end]) != body[header_end : header_end + 2]:
            raise CrcError("HDLC header check sequence (HCS) does not match")
        information = bytes(body[header_end + 2 : -2])
    segmented = bool(fmt & 0x0800)
    pf = bool(control & 0x10)
    destination, source = addresses
    if not control & 1:
        return Frame(
            Kind.I,
            destination,
            source,
            information,
            ssn=(control >> 1) & 7,
            rsn=control >> 5,
            poll_final=pf,
            segmented=segmented,
        )
    if control & 0x03 == 0x01:
        kind = {0x01: Kind.RR, 0x05: Kind.RNR}.get(control & 0x0F)
        if kind is None:
            raise FrameError(f"unsupported HDLC supervisory control {control:#04x}")
        return Frame(kind, destination, source, rsn=control >> 5, poll_final=pf)
    kind = _U_BY_CONTROL.get(control & ~0x10)
    if kind is None:
        raise FrameError(f"unknown HDLC control byte {control:#04x}")
    return Frame(kind, destination, source, information, poll_final=pf, segmented=segmented)


@dataclass
class FrameReader:
    """Splits a byte stream into HDLC frames. Bytes outside frames are skipped; a frame that
    fails its checks is reported and skipped, so the next one is still found."""

    buffer: bytearray = field(default_factory=bytearray)
    skipped_bytes: int = 0

    def feed(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) > 4 * MAX_FRAME_BYTES:  # line noise without flags: keep the tail
            self.skipped_bytes += len(self.buffer) - MAX_FRAME_BYTES
            del self.buffer[:-MAX_FRAME_BYTES]

    def next_frame(self) -> Frame | None:
        """The next complete frame, or None until more bytes arrive. Raises FrameError for a
        frame that is complete but bad (it is dropped from the buffer first)."""
        while True:
            start = self.buffer.find(FLAG)
            if start < 0:
                self.skipped_bytes += len(self.buffer)
                self.buffer.clear()
                return None
            if start:
                self.skipped_bytes += start
                del self.buffer[:start]
            if len(self.buffer) < 3:
                return None
            if self.buffer[1] == FLAG:  # two flags in a row: the first closed a frame
                del self.buffer[:1]
                continue
            fmt = int.from_bytes(self.buffer[1:3], "big")
            if fmt >> 12 != 0xA:
                self.skipped_bytes += 1
                del self.buffer[:1]
                continue
            total = (fmt & 0x7FF) + 2
            if len(self.buffer) < total:
                return None
            raw = bytes(self.buffer[:total])
            del self.buffer[:total]
            return decode_frame(raw)


# --- parameter negotiation (the information field of SNRM and UA) ------------------------------


@dataclass(frozen=True, slots=True)
class LinkParameters:
    max_info_tx: int = 128
    max_info_rx: int = 128
    window_tx: int = 1
    window_rx: int = 1

    def encode(self) -> bytes:
        def param(tag: int, value: int, size: int) -> bytes:
            return bytes([tag, size]) + value.to_bytes(size, "big")

        group = (
            param(0x05, self.max_info_tx, 2)
            + param(0x06, self.max_info_rx, 2)
            + param(0x07, self.window_tx, 4)
            + param(0x08, self.window_rx, 4)
        )
        return bytes([0x81, 0x80, len(group)]) + group

    @classmethod
    def decode(cls, raw: bytes) -> LinkParameters:
        if not raw:
            return cls()
        if len(raw) < 3 or raw[0] != 0x81 or raw[1] != 0x80:
            raise FrameError("HDLC parameter field does not start 81 80")
        values = {}
        position = 3
        while position + 2 <= len(raw):
            tag, size = raw[position], raw[position + 1]
            values[tag] = int.from_bytes(raw[position + 2 : position + 2 + size], "big")
            position += 2 + size
        return cls(
            values.get(0x05, 128), values.get(0x06, 128), values.get(0x07, 1), values.get(0x08, 1)
        )

"""A simulated Modbus meter: a vendor profile's register image over meter physics, with faults.

The meter answers protocol data units (function code + data) and knows nothing of the line; the
RTU bus and the TCP server frame its answers. It answers function codes 3 and 4; any other is
"illegal function". Registers it maps answer their value; unmapped registers close to mapped ones
read 0, as on the vendors' meters; anything else (and any forbidden range) is "illegal data
address".
"""

from __future__ import annotations

import random
import struct
from collections import Counter
from dataclasses import dataclass, field

from protocols.modbus.codec import encode_ascii, encode_value
from protocols.modbus.profile import ModbusProfile

from .clock import Clock
from .physics import MeterPhysics

ILLEGAL_FUNCTION = 1
ILLEGAL_DATA_ADDRESS = 2
ILLEGAL_DATA_VALUE = 3
DEVICE_BUSY = 6

READ_FUNCTIONS = {3: "holding", 4: "input"}


@dataclass
class LineFaults:
    """How a meter misbehaves on the line; rates are chances per transaction (1.0 = always)."""

    no_answer: float = 0.0
    late_answer_s: float = 0.0
    crc_error: float = 0.0
    garbage: float = 0.0
    truncated: float = 0.0
    exception_code: int | None = None  # answer every request with this exception code
    holes: list[tuple[str, int, int]] = field(default_factory=list)  # undeclared bad ranges


@dataclass
class Answer:
    """What the meter puts on the line for one request; `pdu` None means it stays silent."""

    pdu: bytes | None
    delay_s: float = 0.0
    corrupt_crc: bool = False
    garbage: bool = False
    truncate: bool = False


class SimulatedModbusMeter:
    def __init__(
        self,
        unit_id: int,
        profile: ModbusProfile,
        physics: MeterPhysics,
        clock: Clock,
        *,
        serial_number: int,
        turnaround_s: float = 0.005,
        seed: int = 0,
    ) -> None:
        if not 1 <= unit_id <= 247:
            raise ValueError(f"unit id {unit_id} is outside 1-247")
        self.unit_id = unit_id
        self.profile = profile
        self.physics = physics
        self.clock = clock
        self.serial_number = serial_number
        self.turnaround_s = turnaround_s
        self.faults = LineFaults()
        self.transactions = 0
        self.faults_injected: Counter[str] = Counter()  # by fault name: answers it spoiled
        self._rng = random.Random(seed ^ (unit_id << 16))
        self._readable = self._readable_spans()

    def _readable_spans(self) -> dict[str, list[tuple[int, int]]]:
        """Per register type, the [start, end) spans that read without an exception."""
        gap = self.profile.max_gap_registers
        spans: dict[str, list[tuple[int, int]]] = {"input": [], "holding": []}
        for spec in self.profile.registers:
            spans[spec.register_type].append((spec.address - gap, spec.end + gap))
        for extra in (self.profile.identify, self.profile.serial):
            spans[extra.register_type].append((extra.address, extra.address + extra.register_count))
        return spans

    def _is_readable(self, register_type: str, address: int, count: int) -> bool:
        last = address + count - 1
        if self.profile.is_forbidden(register_type, address, last):
            return False
        for kind, start, end in self.faults.holes:
            if kind == register_type and start <= last and address <= end:
                return False
        spans = self._readable[register_type]
        return all(any(s <= a < e for s, e in spans) for a in range(address, last + 1))

    def register_image(self, register_type: str, address: int, count: int) -> list[int]:
        """The registers [address, address+count) as the meter holds them right now."""
        words = [0] * count
        state = self.physics.state_at(self.clock.now_s())

        def place(start: int, values: list[int]) -> None:
            for offset, word in enumerate(values):
                index = start + offset - address
                if 0 <= index < count:
                    words[index] = word

        for spec in self.profile.registers:
            if spec.register_type != register_type or spec.end <= address:
                continue
            if spec.address >= address + count:
                continue
            value = state.values.get(spec.quantity, 0.0)
            place(spec.address, encode_value(value / spec.scale, spec.data_type, spec.word_order))
        ident, serial = self.profile.identify, self.profile.serial
        if ident.register_type == register_type:
            if ident.data_type == "ascii":
                text = ident.typical or str(ident.expect)
                place(ident.address, encode_ascii(text, ident.count))
            else:
                place(ident.address, encode_value(float(ident.expect), ident.data_type, "big"))
        if serial.register_type == register_type:
            if serial.data_type == "ascii":
                place(serial.address, encode_ascii(f"{self.serial_number:014d}", serial.count))
            else:
                place(serial.address, encode_value(self.serial_number, "u32", "big"))
        return words

    def answer(self, pdu: bytes) -> Answer:
        """The meter's answer to one request PDU addressed to it."""
        self.transactions += 1
        faults, rng = self.faults, self._rng
        if faults.no_answer and rng.random() < faults.no_answer:
            self.faults_injected["no_answer"] += 1
            return Answer(pdu=None)
        delay = self.turnaround_s + faults.late_answer_s
        function = pdu[0] if pdu else 0
        if faults.exception_code is not None:
            response = bytes([function | 0x80, faults.exception_code])
        else:
            response = self._respond(pdu)
        answer = Answer(
            pdu=response,
            delay_s=delay,
            corrupt_crc=bool(faults.crc_error and rng.random() < faults.crc_error),
            garbage=bool(faults.garbage and rng.random() < faults.garbage),
            truncate=bool(faults.truncated and rng.random() < faults.truncated),
        )
        for name, happened in (
            ("crc_error", answer.corrupt_crc),
            ("garbage", answer.garbage),
            ("truncated", answer.truncate),
        ):
            self.faults_injected[name] += happened
        return answer

    def _respond(self, pdu: bytes) -> bytes:
        function = pdu[0]
        register_type = READ_FUNCTIONS.get(function)
        if register_type is None:
            return bytes([function | 0x80, ILLEGAL_FUNCTION])
        if len(pdu) != 5:
            return bytes([function | 0x80, ILLEGAL_DATA_VALUE])
        address, count = struct.unpack(">HH", pdu[1:5])
        if not 1 <= count <= self.profile.max_registers_per_request:
            return bytes([function | 0x80, ILLEGAL_DATA_VALUE])
        if address + count > 0x10000 or not self._is_readable(register_type, address, count):
            return bytes([function | 0x80, ILLEGAL_DATA_ADDRESS])
        words = self.register_image(register_type, address, count)
        return bytes([function, 2 * count]) + struct.pack(f">{count}H", *words)

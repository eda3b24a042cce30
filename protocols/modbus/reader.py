"""Reading one Modbus meter: its read plan, executed on its line, decoded into values."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog

from ..errors import IllegalDataAddress
from ..reader import MeterValue
from .codec import decode_ascii, decode_words
from .plan import MeterReadPlan, ReadRequest
from .profile import IdentifySpec, ModbusProfile, PollClass, SerialSpec
from .transport import ModbusLine

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class ModbusMeterConfig:
    meter_id: str
    unit_id: int
    profile: ModbusProfile
    timeout_s: float = 0.5


def decode_request(request: ReadRequest, words: list[int]) -> dict[str, float]:
    """quantity -> value in the quantity's unit, for every group the request covered."""
    values = {}
    for spec in request.specs:
        offset = spec.address - request.address
        raw = decode_words(words[offset : offset + spec.count], spec.data_type, spec.word_order)
        values[spec.quantity] = raw * spec.scale
    return values


class ModbusMeterReader:
    def __init__(self, config: ModbusMeterConfig, line: ModbusLine) -> None:
        self.config = config
        self.line = line
        self.plan = MeterReadPlan(config.profile)
        self._log = log.bind(meter_id=config.meter_id, unit=config.unit_id)

    @property
    def meter_id(self) -> str:
        return self.config.meter_id

    async def _execute(self, request: ReadRequest) -> list[int]:
        return await self.line.read_registers(
            meter=self.meter_id,
            unit=self.config.unit_id,
            register_type=request.register_type,
            address=request.address,
            count=request.count,
            timeout_s=self.config.timeout_s,
        )

    async def read(self, poll_class: PollClass | None = None) -> list[MeterValue]:
        """Read every register of `poll_class` (None: all) and return their values, each in its
        quantity's unit (the profile's scale) and known to the quantity table (profile.py).

        A refused merged request is split and retried at once (the plan remembers); any other
        failure propagates, typed, and nothing of this read is returned half-done.
        """
        values: dict[str, float] = {}
        pending = list(self.plan.requests(poll_class))
        while pending:
            request = pending.pop(0)
            try:
                words = await self._execute(request)
            except IllegalDataAddress:
                replacement = self.plan.refused(request)
                self._log.warning(
                    "meter refused a read; plan split",
                    request=request.describe(),
                    replacement=len(replacement),
                    quarantined=sorted(self.plan.quarantined),
                )
                pending[:0] = replacement
                continue
            values.update(decode_request(request, words))
        now = datetime.now(UTC)
        samples = []
        for quantity, value in values.items():
            if not math.isfinite(value):
                self._log.warning("meter returned a non-finite value", quantity=quantity)
                continue
            samples.append(MeterValue(self.meter_id, quantity, now, value))
        return samples

    async def _read_block(self, spec: IdentifySpec | SerialSpec) -> int | str:
        words = await self.line.read_registers(
            meter=self.meter_id,
            unit=self.config.unit_id,
            register_type=spec.register_type,
            address=spec.address,
            count=spec.register_count,
            timeout_s=self.config.timeout_s,
        )
        if spec.data_type == "ascii":
            return decode_ascii(words)
        return int(decode_words(words, spec.data_type, "big"))

    async def identify(self) -> int | str:
        """The value of the profile's identification register (compare with `expect`)."""
        return await self._read_block(self.config.profile.identify)

    async def serial_number(self) -> str:
        return str(await self._read_block(self.config.profile.serial))

"""The one interface a scheduler polls, whatever the protocol.

Modbus (RTU, TCP) and DLMS/COSEM meters are polled: `read(poll_class)` returns the values of
that class ("fast": instantaneous values, "slow": energy registers; None: all), or raises a typed
`ProtocolError`. MQTT meters push instead: see `protocols.mqtt.reader.MqttMeterReader.updates()`.

A value is a `Sample` (the contract's, validated) or a `MeterValue`: the same fields in a plain
tuple, for a reader that decoded the value into its quantity's unit itself (Modbus: a register
map of known quantities), where validating each of thousands of values a second would cost more
than reading them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal, NamedTuple, Protocol, runtime_checkable

from shared import QUANTITIES, Quality, Sample

PollClass = Literal["fast", "slow"]


class MeterValue(NamedTuple):
    """One value read from one meter, as a `Sample` has it (a known quantity, in its unit)."""

    meter_id: str
    quantity: str
    ts: datetime
    value: float
    quality: Quality = Quality.OK

    @property
    def unit(self) -> str:
        return QUANTITIES[self.quantity].unit


Value = Sample | MeterValue


@runtime_checkable
class PolledMeterReader(Protocol):
    @property
    def meter_id(self) -> str: ...

    async def read(self, poll_class: PollClass | None = None) -> list[Value]: ...

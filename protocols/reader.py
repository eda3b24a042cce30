"""The one interface a scheduler polls, whatever the protocol.

Modbus (RTU, TCP) and DLMS/COSEM meters are polled: `read(poll_class)` returns the Samples of
that class ("fast": instantaneous values, "slow": energy registers; None: all), or raises a typed
`ProtocolError`. MQTT meters push instead: see `protocols.mqtt.reader.MqttMeterReader.updates()`.
"""

from __future__ import annotations

from typing import Literal, Protocol, runtime_checkable

from shared import Sample

PollClass = Literal["fast", "slow"]


@runtime_checkable
class PolledMeterReader(Protocol):
    @property
    def meter_id(self) -> str: ...

    async def read(self, poll_class: PollClass | None = None) -> list[Sample]: ...

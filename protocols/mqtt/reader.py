"""MQTT meters: one subscription per broker, payloads mapped through a profile into Samples.

MQTT meters push; `MqttMeterReader.updates()` yields what arrives: samples of one device, or a
change of its status (online/offline from its retained birth and last will). A payload that is
not JSON, too large, or lacks the profile's fields is logged and skipped; the stream goes on.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

import aiomqtt
import structlog

from shared import Sample

from ..errors import FrameError, TransportError
from .profile import MqttProfile

log = structlog.get_logger(__name__)
MAX_PAYLOAD_BYTES = 64 * 1024


@dataclass(frozen=True)
class MeterSamples:
    meter_id: str
    samples: list[Sample]


@dataclass(frozen=True)
class MeterStatus:
    meter_id: str
    online: bool
    ts: datetime


class MqttMeterReader:
    def __init__(
        self,
        host: str,
        port: int,
        profile: MqttProfile,
        devices: dict[str, str],
        *,
        topic_prefix: str = "",
        client_id: str | None = None,
    ) -> None:
        """`devices` maps each device name (as in its topics) to its GridGate meter id."""
        self.host, self.port = host, port
        self.profile = profile
        self.devices = devices
        self.prefix = topic_prefix
        self.client_id = client_id
        self.online: dict[str, bool] = {}
        self.rejected = 0

    def handle(self, topic: str, payload: bytes) -> MeterSamples | MeterStatus | None:
        """One message -> what it means (None: not ours, or unusable and logged)."""
        found = self.profile.device_of(topic, self.prefix)
        if found is None or found[0] not in self.devices:
            return None
        device, kind = found
        meter_id = self.devices[device]
        now = datetime.now(UTC)
        if kind == "status":
            text = payload.decode(errors="replace").strip()
            if text not in (self.profile.online, self.profile.offline):
                return None  # an emptied retained message, or a status we do not know
            self.online[meter_id] = text == self.profile.online
            return MeterStatus(meter_id, self.online[meter_id], now)
        try:
            if len(payload) > MAX_PAYLOAD_BYTES:
                raise FrameError(f"payload of {len(payload)} bytes is over the limit")
            try:
                decoded = json.loads(payload)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise FrameError(f"payload is not JSON: {exc}") from exc
            ts, values = self.profile.extract(decoded, now)
        except FrameError as exc:
            self.rejected += 1
            log.warning("mqtt payload skipped", meter_id=meter_id, topic=topic, error=str(exc))
            return None
        return MeterSamples(
            meter_id,
            [Sample(meter_id=meter_id, quantity=q, ts=ts, value=v) for q, v in values.items()],
        )

    async def updates(self) -> AsyncIterator[MeterSamples | MeterStatus]:
        try:
            async with aiomqtt.Client(self.host, self.port, identifier=self.client_id) as client:
                for topic in self.profile.topics(self.prefix):
                    await client.subscribe(topic, qos=1)
                async for message in client.messages:
                    payload = message.payload
                    if not isinstance(payload, bytes | bytearray):
                        payload = str(payload).encode()
                    update = self.handle(message.topic.value, bytes(payload))
                    if update is not None:
                        yield update
        except aiomqtt.MqttError as exc:
            raise TransportError(f"MQTT broker {self.host}:{self.port}: {exc}") from exc

"""Simulated MQTT meters that publish as Tasmota-flashed smart plugs and DIN meters do.

Each meter is one MQTT client named after its device. On connect it publishes a retained
`Online` to `tele/<device>/LWT` and registers a retained `Offline` as its last will, so the
broker announces it offline when it drops off without saying goodbye. Every `interval_s` it
publishes `tele/<device>/SENSOR`:

    {"Time": "2026-11-01T12:00:00+00:00",
     "ENERGY": {"Total": 1234.567, "Power": 1520, "ApparentPower": 1610, "ReactivePower": 530,
                "Factor": 0.94, "Voltage": 229.8, "Current": 7.03, "Frequency": 50.01}}

(Total in kWh, Power in W: Tasmota's units; the reader's MQTT profile scales them.)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from dataclasses import dataclass
from datetime import UTC, datetime

import aiomqtt
import structlog

from .clock import Clock
from .physics import MeterPhysics

log = structlog.get_logger(__name__)


def tasmota_payload(values: dict[str, float], t_s: float) -> dict[str, object]:
    """The SENSOR payload for a single-phase meter's values (quantity code -> value)."""
    return {
        "Time": datetime.fromtimestamp(t_s, UTC).isoformat(timespec="seconds"),
        "ENERGY": {
            "Total": round(values["1.8.0"], 3),
            "Power": round(values["16.7.0"] * 1000),
            "ApparentPower": round(values["9.7.0"] * 1000),
            "ReactivePower": round(values["3.7.0"] * 1000),
            "Factor": round(values["13.7.0"], 2),
            "Voltage": round(values["32.7.0"], 1),
            "Current": round(values["31.7.0"], 3),
            "Frequency": round(values["14.7.0"], 2),
        },
    }


@dataclass
class MqttMeterSettings:
    host: str
    port: int
    device: str
    topic_prefix: str = ""
    interval_s: float = 10.0


class SimulatedMqttMeter:
    def __init__(self, settings: MqttMeterSettings, physics: MeterPhysics, clock: Clock) -> None:
        if physics.shape.phases != 1:
            raise ValueError("the Tasmota-style MQTT meter is single-phase")
        self.settings = settings
        self.physics = physics
        self.clock = clock
        self.published = 0
        self._client: aiomqtt.Client | None = None
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()

    def topic(self, leaf: str) -> str:
        return f"{self.settings.topic_prefix}tele/{self.settings.device}/{leaf}"

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"mqtt-meter-{self.settings.device}")
        async with asyncio.timeout(15):
            await self._connected.wait()

    async def _run(self) -> None:
        s = self.settings
        will = aiomqtt.Will(self.topic("LWT"), b"Offline", qos=1, retain=True)
        async with aiomqtt.Client(
            s.host, s.port, identifier=s.device, will=will, keepalive=10
        ) as client:
            self._client = client
            await client.publish(self.topic("LWT"), b"Online", qos=1, retain=True)
            self._connected.set()
            log.info("mqtt meter online", device=s.device, broker=f"{s.host}:{s.port}")
            while True:
                await self.publish_once(client)
                await asyncio.sleep(s.interval_s)

    async def publish_once(self, client: aiomqtt.Client | None = None) -> dict[str, object]:
        client = client or self._client
        assert client is not None, "start() the meter first"
        t_s = self.clock.now_s()
        payload = tasmota_payload(self.physics.state_at(t_s).values, t_s)
        await client.publish(self.topic("SENSOR"), json.dumps(payload).encode(), qos=1)
        self.published += 1
        return payload

    async def stop(self) -> None:
        """A clean goodbye: the meter says Offline itself before leaving."""
        if self._client is not None:
            with contextlib.suppress(aiomqtt.MqttError):
                await self._client.publish(self.topic("LWT"), b"Offline", qos=1, retain=True)
        await self._cancel()

    async def drop_off(self) -> None:
        """Lose the connection without a goodbye (power cut): the broker publishes the will."""
        if self._client is not None:
            # paho's socket (aiomqtt has no public handle). shutdown, not close: the broker sees
            # the connection end without a DISCONNECT, and paho's descriptor stays valid.
            sock = self._client._client.socket()
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        await self._cancel()

    async def _cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await self._task
            self._task = None
            self._client = None

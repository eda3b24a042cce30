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
import struct
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


class _PowerCutRelay:
    """A TCP relay between the meter and the broker, so a power cut can be a real connection
    loss: `cut()` resets the broker-side socket (SO_LINGER 0), and the broker, which never got
    a DISCONNECT, publishes the meter's last will."""

    def __init__(self, broker_host: str, broker_port: int) -> None:
        self.broker = (broker_host, broker_port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._upstream: list[asyncio.StreamWriter] = []
        self._all: list[asyncio.StreamWriter] = []
        self._pumps: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._all.append(writer)
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.broker)
        except OSError:
            writer.close()
            return
        self._upstream.append(up_writer)
        self._all.append(up_writer)
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pump(source, sink))
            self._pumps.add(task)
            task.add_done_callback(self._pumps.discard)

    @staticmethod
    async def _pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        sink.close()

    def cut(self) -> None:
        for writer in self._upstream:
            sock = writer.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
        self._upstream.clear()

    async def stop(self) -> None:
        for task in list(self._pumps):
            task.cancel()
        for writer in self._all:  # the server's wait_closed waits for every connection
            writer.transport.abort()
        self._all.clear()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


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
        self._stopping = asyncio.Event()
        self._relay = _PowerCutRelay(settings.host, settings.port)

    def topic(self, leaf: str) -> str:
        return f"{self.settings.topic_prefix}tele/{self.settings.device}/{leaf}"

    async def start(self) -> None:
        await self._relay.start()
        self._task = asyncio.create_task(self._run(), name=f"mqtt-meter-{self.settings.device}")
        async with asyncio.timeout(15):
            await self._connected.wait()

    async def _run(self) -> None:
        s = self.settings
        will = aiomqtt.Will(self.topic("LWT"), b"Offline", qos=1, retain=True)
        async with aiomqtt.Client(
            "127.0.0.1", self._relay.port, identifier=s.device, will=will, keepalive=10
        ) as client:
            self._client = client
            await client.publish(self.topic("LWT"), b"Online", qos=1, retain=True)
            self._connected.set()
            log.info("mqtt meter online", device=s.device, broker=f"{s.host}:{s.port}")
            while not self._stopping.is_set():
                await self.publish_once(client)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), s.interval_s)

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
        self._relay.cut()
        await self._cancel()

    async def _cancel(self) -> None:
        self._stopping.set()
        if self._task is not None:
            # Cancel until it takes: on Python 3.11 a cancellation that lands while a QoS 1
            # publish completes can be swallowed inside aiomqtt (asyncio.wait_for, gh-86296).
            while not self._task.done():
                self._task.cancel()
                await asyncio.wait([self._task], timeout=0.5)
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                self._task.result()
            self._task = None
            self._client = None
        await self._relay.stop()

"""The MQTT meter publishes Tasmota-style readings and a retained birth / last will."""

from __future__ import annotations

import asyncio
import json

import aiomqtt
import pytest

from firmware_sim.clock import ManualClock
from firmware_sim.fleet import physics_for
from firmware_sim.mqtt_meter import MqttMeterSettings, SimulatedMqttMeter
from tests.support.services import MqttBroker


async def next_message(client: aiomqtt.Client, topic: str, timeout: float = 10) -> aiomqtt.Message:
    async with asyncio.timeout(timeout):
        async for message in client.messages:
            if message.topic.matches(topic):
                return message
    raise AssertionError("unreachable")


async def test_readings_birth_and_last_will(mqtt: MqttBroker, clock: ManualClock) -> None:
    device = "plug-test-1"
    prefix = f"{mqtt.topic_prefix}/"
    settings = MqttMeterSettings(mqtt.host, mqtt.port, device, prefix, interval_s=3600)
    physics = physics_for(42, 1, clock)
    meter = SimulatedMqttMeter(settings, physics, clock)
    async with aiomqtt.Client(mqtt.host, mqtt.port) as watcher:
        await watcher.subscribe(f"{prefix}tele/{device}/#", qos=1)
        await meter.start()
        try:
            birth = await next_message(watcher, f"{prefix}tele/{device}/LWT")
            assert birth.payload == b"Online"
            sensor = await next_message(watcher, f"{prefix}tele/{device}/SENSOR")
            energy = json.loads(sensor.payload)["ENERGY"]  # type: ignore[arg-type]
            truth = physics.state_at(clock.now_s()).values
            assert energy["Total"] == pytest.approx(truth["1.8.0"], abs=0.0005)
            assert energy["Power"] == round(truth["16.7.0"] * 1000)
            assert energy["Voltage"] == pytest.approx(truth["32.7.0"], abs=0.05)
        finally:
            await meter.drop_off()
        will = await next_message(watcher, f"{prefix}tele/{device}/LWT", timeout=30)
        assert will.payload == b"Offline"
        await watcher.publish(f"{prefix}tele/{device}/LWT", b"", retain=True)

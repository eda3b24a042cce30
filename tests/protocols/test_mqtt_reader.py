"""The MQTT reader against simulated Tasmota meters on a real broker."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import aiomqtt
import pytest

from firmware_sim.clock import ManualClock
from firmware_sim.fleet import physics_for
from firmware_sim.mqtt_meter import MqttMeterSettings, SimulatedMqttMeter
from protocols.errors import ProfileError
from protocols.mqtt.profile import get_mqtt_profile, parse_mqtt_profile
from protocols.mqtt.reader import MeterSamples, MeterStatus, MqttMeterReader
from tests.support.services import MqttBroker

PRECISION = {
    "1.8.0": 0.0005,
    "16.7.0": 0.0005,
    "9.7.0": 0.0005,
    "3.7.0": 0.0005,
    "13.7.0": 0.005,
    "32.7.0": 0.05,
    "31.7.0": 0.0005,
    "14.7.0": 0.005,
}


async def test_samples_and_status_from_a_simulated_meter(mqtt: MqttBroker) -> None:
    clock = ManualClock(datetime(2026, 11, 6, 8, tzinfo=UTC))
    prefix = f"{mqtt.topic_prefix}/{uuid.uuid4().hex[:6]}/"
    physics = physics_for(12, 1, clock)
    meter = SimulatedMqttMeter(
        MqttMeterSettings(mqtt.host, mqtt.port, "plug-7", prefix, 3600), physics, clock
    )
    reader = MqttMeterReader(
        mqtt.host, mqtt.port, get_mqtt_profile("tasmota"), {"plug-7": "mqtt-7"}, topic_prefix=prefix
    )
    seen: list[MeterSamples | MeterStatus] = []
    changed = asyncio.Event()

    async def collect() -> None:
        async for update in reader.updates():
            seen.append(update)
            changed.set()

    async def wait_until(condition: Callable[[], bool]) -> None:
        while not condition():
            changed.clear()
            await changed.wait()

    task = asyncio.create_task(collect())
    await asyncio.sleep(0.5)  # subscribed
    await meter.start()
    async with asyncio.timeout(10):
        await wait_until(lambda: any(isinstance(u, MeterSamples) for u in seen))
    batch = next(u for u in seen if isinstance(u, MeterSamples))
    truth = physics.state_at(clock.now_s()).values
    assert batch.meter_id == "mqtt-7"
    for sample in batch.samples:
        assert sample.ts == clock.now()
        assert abs(sample.value - truth[sample.quantity]) <= PRECISION[sample.quantity]
    assert reader.online["mqtt-7"] is True
    # a broken payload is skipped; the stream goes on
    async with aiomqtt.Client(mqtt.host, mqtt.port) as publisher:
        await publisher.publish(f"{prefix}tele/plug-7/SENSOR", b"{not json", qos=1)
        await publisher.publish(f"{prefix}tele/plug-7/SENSOR", b'{"ENERGY": {"Total": "x"}}', qos=1)
    await meter.drop_off()
    async with asyncio.timeout(20):
        await wait_until(lambda: reader.online.get("mqtt-7") is False)
    assert reader.rejected == 2
    task.cancel()
    async with aiomqtt.Client(mqtt.host, mqtt.port) as cleaner:
        await cleaner.publish(f"{prefix}tele/plug-7/LWT", b"", retain=True)


def test_topics_are_matched_exactly() -> None:
    profile = get_mqtt_profile("tasmota")
    assert profile.device_of("site/tele/plug-1/SENSOR", "site/") == ("plug-1", "sensor")
    assert profile.device_of("site/tele/plug-1/LWT", "site/") == ("plug-1", "status")
    assert profile.device_of("site/tele/a/b/SENSOR", "site/") is None
    assert profile.device_of("other/tele/plug-1/SENSOR", "site/") is None


def test_naive_time_is_read_in_the_profiles_zone() -> None:
    text = get_mqtt_profile("tasmota").model_dump()
    text["naive_time_zone"] = "Asia/Kolkata"
    profile = type(get_mqtt_profile("tasmota")).model_validate(text)
    ts, values = profile.extract(
        {"Time": "2026-11-06T13:30:00", "ENERGY": {"Total": 1.5}}, datetime.now(UTC)
    )
    assert ts == datetime(2026, 11, 6, 8, 0, tzinfo=UTC)
    assert values == {"1.8.0": 1.5}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ('quantity = "1.8.0"', "unknown quantity"),
        ('naive_time_zone = "UTC"', "time zone"),
        ('sensor_topic = "tele/{device}/SENSOR"', "sensor_topic"),
    ],
)
def test_bad_mqtt_profiles(change: str, message: str) -> None:
    from importlib import resources

    text = resources.files("protocols.mqtt").joinpath("profiles", "tasmota.toml").read_text()
    broken = text.replace(
        change,
        {
            'quantity = "1.8.0"': 'quantity = "1.8.7"',
            'naive_time_zone = "UTC"': 'naive_time_zone = "Mars/Olympus"',
            'sensor_topic = "tele/{device}/SENSOR"': 'sensor_topic = "tele/#"',
        }[change],
        1,
    )
    with pytest.raises(ProfileError, match=message):
        parse_mqtt_profile(broken, "bad.toml")

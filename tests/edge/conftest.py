"""Shared pieces of the edge tests: simulated meters on every transport, a config for them."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest

from firmware_sim.clock import SimClock
from firmware_sim.dlms_line import DlmsTcpServer
from firmware_sim.dlms_meter import SimulatedDlmsMeter
from firmware_sim.fleet import MeterSpec, build_modbus_meters, physics_for
from firmware_sim.mqtt_meter import MqttMeterSettings, SimulatedMqttMeter
from firmware_sim.rtu_bus import RtuBus
from firmware_sim.tcp_server import ModbusTcpServer
from protocols.modbus.timing import LineSettings
from tests.cloud.conftest import board, cloud, gateway, served  # noqa: F401 - fixtures
from tests.support.services import MqttBroker


@dataclass
class Field:
    """Simulated meters on four transports, and the TOML [[buses]] that reach them."""

    buses_toml: str
    meter_ids: list[str]
    rtu_link: Path
    dlms: SimulatedDlmsMeter | None = None  # the DLMS meter (dlms-1), to look at its relay


@pytest.fixture
async def field(tmp_path: Path, mqtt: MqttBroker) -> AsyncIterator[Field]:
    clock = SimClock()
    rtu_meters = build_modbus_meters(
        [MeterSpec(1, "sdm630"), MeterSpec(2, "sdm120"), MeterSpec(3, "em24")],
        clock,
        seed=11,
        turnaround_s=0.005,
    )
    tcp_meters = build_modbus_meters([MeterSpec(1, "iem3000")], clock, seed=12, turnaround_s=0.002)
    dlms = SimulatedDlmsMeter(physics_for(13, 3, clock), clock, serial_number=5, turnaround_s=0.002)
    prefix = f"{mqtt.topic_prefix}/{uuid.uuid4().hex[:6]}/"
    plug = SimulatedMqttMeter(
        MqttMeterSettings(mqtt.host, mqtt.port, "plug-1", prefix, 0.5),
        physics_for(14, 1, clock),
        clock,
    )
    link = tmp_path / "rs485"
    tcp = ModbusTcpServer(tcp_meters, "127.0.0.1", 0)
    dlms_server = DlmsTcpServer(dlms, "127.0.0.1", 0)
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(RtuBus(rtu_meters, LineSettings(9600), link=link))
        await tcp.start()
        stack.push_async_callback(tcp.stop)
        await dlms_server.start()
        stack.push_async_callback(dlms_server.stop)
        await plug.start()
        stack.push_async_callback(plug.stop)
        buses = f"""
[[buses]]
name = "rs485-1"
kind = "modbus-rtu"
port = "{link}"
baud = 9600

[[buses.meters]]
id = "rtu-1"
unit = 1
profile = "sdm630"
fast_s = 0.5
slow_s = 1.0

[[buses.meters]]
id = "rtu-2"
unit = 2
profile = "sdm120"
phases = 1
fast_s = 0.5
slow_s = 1.0

[[buses.meters]]
id = "rtu-3"
unit = 3
profile = "em24"
fast_s = 0.5
slow_s = 1.0

[[buses]]
name = "tcp-1"
kind = "modbus-tcp"
host = "127.0.0.1"
tcp_port = {tcp.port}

[[buses.meters]]
id = "tcp-1"
unit = 1
profile = "iem3000"
fast_s = 0.3
slow_s = 1.0

[[buses]]
name = "dlms-1"
kind = "dlms-tcp"
host = "127.0.0.1"
tcp_port = {dlms_server.port}

[[buses.meters]]
id = "dlms-1"
fast_s = 0.5
slow_s = 2.0
timeout_s = 2.0

[[buses]]
name = "mqtt-1"
kind = "mqtt"
host = "{mqtt.host}"
tcp_port = {mqtt.port}
topic_prefix = "{prefix}"

[[buses.meters]]
id = "plug-1"
device = "plug-1"
phases = 1
"""
        yield Field(buses, ["rtu-1", "rtu-2", "rtu-3", "tcp-1", "dlms-1", "plug-1"], link, dlms)

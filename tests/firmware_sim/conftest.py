"""Simulated buses for the simulator's own tests: a pty bus of meters on a manual clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from firmware_sim.clock import ManualClock
from firmware_sim.fleet import MeterSpec, build_modbus_meters
from firmware_sim.modbus_meter import SimulatedModbusMeter
from firmware_sim.rtu_bus import RtuBus
from protocols.modbus.timing import LineSettings

T0 = datetime(2026, 11, 2, 13, 30, tzinfo=UTC)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def meters(clock: ManualClock) -> list[SimulatedModbusMeter]:
    specs = [
        MeterSpec(1, "sdm630"),
        MeterSpec(2, "sdm120"),
        MeterSpec(3, "em24"),
        MeterSpec(4, "iem3000"),
    ]
    return build_modbus_meters(specs, clock, seed=7, turnaround_s=0.005)


@pytest.fixture
async def bus(meters: list[SimulatedModbusMeter], tmp_path: Path) -> AsyncIterator[RtuBus]:
    async with RtuBus(meters, LineSettings(9600), link=tmp_path / "rs485") as running:
        yield running

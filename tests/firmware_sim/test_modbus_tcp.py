"""The Modbus TCP face serves the same meters as the bus, read by pymodbus's TCP client."""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator

import pytest
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusIOException

from firmware_sim.clock import ManualClock
from firmware_sim.modbus_meter import SimulatedModbusMeter
from firmware_sim.tcp_server import ModbusTcpServer


@pytest.fixture
async def server(meters: list[SimulatedModbusMeter]) -> AsyncIterator[ModbusTcpServer]:
    srv = ModbusTcpServer(meters, "127.0.0.1", 0)
    await srv.start()
    yield srv
    await srv.stop()


async def test_tcp_reads_the_same_physics(
    server: ModbusTcpServer, meters: list[SimulatedModbusMeter], clock: ManualClock
) -> None:
    client = AsyncModbusTcpClient("127.0.0.1", port=server.port, timeout=1, retries=0)
    assert await client.connect()
    try:
        truth = meters[3].physics.state_at(clock.now_s()).values
        r = await client.read_holding_registers(3059, count=2, device_id=4)
        kw = struct.unpack(">f", struct.pack(">HH", *r.registers))[0]
        assert kw == pytest.approx(truth["16.7.0"], rel=1e-6)
        r = await client.read_input_registers(0x2000, count=1, device_id=1)
        assert r.isError()
        assert r.exception_code == 2
    finally:
        client.close()


async def test_tcp_faults(server: ModbusTcpServer, meters: list[SimulatedModbusMeter]) -> None:
    client = AsyncModbusTcpClient("127.0.0.1", port=server.port, timeout=0.3, retries=0)
    assert await client.connect()
    try:
        meters[1].faults.exception_code = 6
        r = await client.read_input_registers(0, count=2, device_id=2)
        assert r.isError()
        assert r.exception_code == 6
        meters[1].faults.exception_code = None
        meters[1].faults.no_answer = 1.0
        with pytest.raises(ModbusIOException):
            await client.read_input_registers(0, count=2, device_id=2)
    finally:
        client.close()

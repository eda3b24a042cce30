"""Bus efficiency: our planned sweep against the wire's minimum and a naive one-value poller.

A simulated 9600-baud 8N1 RS-485 bus (a real pty; the simulator holds every answer for its wire
time) carries 16 meters, four each of SDM630, SDM120, EM24 and iEM3000, each answering 5 ms after
a request. One sweep reads every register of every meter. Prints one JSON line per figure:

    sweep_s              our reader: read plans, one transaction at a time, t3.5 honoured
    theoretical_s        the same requests' frames + silences + turnaround, nothing else
    ratio                sweep_s / theoretical_s
    naive_sweep_s        one request per value, as many gateways are configured
    speedup_vs_naive     naive_sweep_s / sweep_s
    theoretical_speedup_vs_naive    the same from wire time alone: the bound for these maps
    theoretical_speedup_per_model   that bound for each model's map
    theoretical_speedup_dense_map   that bound for an ideal map of 40 adjacent float32 values

Run: python bench/bus_efficiency.py [--sweeps N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from firmware_sim.clock import ManualClock
from firmware_sim.fleet import MeterSpec, build_modbus_meters
from firmware_sim.rtu_bus import RtuBus
from protocols.modbus.plan import MeterReadPlan, ReadRequest
from protocols.modbus.reader import ModbusMeterConfig, ModbusMeterReader
from protocols.modbus.timing import LineSettings, read_request_bytes, read_response_bytes
from protocols.modbus.transport import ModbusSerialLine

MODELS = ("sdm630", "sdm120", "em24", "iem3000")
TURNAROUND_S = 0.005


def emit(name: str, value: float, unit: str, **extra: object) -> None:
    print(
        json.dumps(
            {
                "bench": "bus_efficiency",
                "figure": name,
                "value": round(value, 4),
                "unit": unit,
                **extra,
            }
        ),
        flush=True,
    )


def theoretical_s(requests: list[ReadRequest], line: LineSettings) -> float:
    return sum(
        line.transaction_s(read_request_bytes(), read_response_bytes(r.count), TURNAROUND_S)
        for r in requests
    )


async def sweep(readers: list[ModbusMeterReader]) -> float:
    started = time.perf_counter()
    for reader in readers:
        await reader.read()
    return time.perf_counter() - started


async def naive_sweep(readers: list[ModbusMeterReader], line: ModbusSerialLine) -> float:
    started = time.perf_counter()
    for reader in readers:
        for spec in reader.config.profile.registers:
            await line.read_registers(
                meter=reader.meter_id,
                unit=reader.config.unit_id,
                register_type=spec.register_type,
                address=spec.address,
                count=spec.count,
                timeout_s=0.5,
            )
    return time.perf_counter() - started


async def main(sweeps: int) -> None:
    clock = ManualClock(datetime(2026, 11, 1, 12, tzinfo=UTC))
    specs = [MeterSpec(unit, MODELS[(unit - 1) % 4]) for unit in range(1, 17)]
    meters = build_modbus_meters(specs, clock, seed=9, turnaround_s=TURNAROUND_S)
    line_settings = LineSettings(9600, "N", 1)
    with tempfile.TemporaryDirectory() as folder:
        link = Path(folder) / "rs485"
        async with RtuBus(meters, line_settings, link=link):
            line = ModbusSerialLine(str(link), line_settings)
            await line.connect()
            readers = [
                ModbusMeterReader(ModbusMeterConfig(f"m{m.unit_id}", m.unit_id, m.profile), line)
                for m in meters
            ]
            await sweep(readers)  # warm-up: opens the port, fills caches
            ours = [await sweep(readers) for _ in range(sweeps)]
            naive = [await naive_sweep(readers, line) for _ in range(max(1, sweeps // 2))]
            line.close()
    requests = [r for reader in readers for r in reader.plan.requests()]
    minimum = theoretical_s(requests, line_settings)
    values = sum(len(m.profile.registers) for m in meters)
    naive_minimum = sum(
        line_settings.transaction_s(8, read_response_bytes(s.count), TURNAROUND_S)
        for m in meters
        for s in m.profile.registers
    )
    sweep_s, naive_s = statistics.median(ours), statistics.median(naive)
    emit("meters", len(meters), "count", baud=9600, framing="8N1", turnaround_ms=5)
    emit("values_per_sweep", values, "count")
    emit("requests_per_sweep", len(requests), "count", naive_requests=values)
    emit("sweep_s", sweep_s, "s", runs=sweeps, min=round(min(ours), 4), max=round(max(ours), 4))
    emit("theoretical_s", minimum, "s")
    emit("ratio", sweep_s / minimum, "x", target="<= 1.15")
    emit("naive_sweep_s", naive_s, "s", theoretical_naive_s=round(naive_minimum, 4))
    emit("speedup_vs_naive", naive_s / sweep_s, "x", target=">= 5")
    emit(
        "theoretical_speedup_vs_naive",
        naive_minimum / minimum,
        "x",
        note="the wire's own bound for these register maps",
    )
    for model in MODELS:
        profile = next(m.profile for m in meters if m.profile.model == model)
        planned = theoretical_s(MeterReadPlan(profile).requests(), line_settings)
        one_by_one = sum(
            line_settings.transaction_s(8, read_response_bytes(s.count), TURNAROUND_S)
            for s in profile.registers
        )
        emit(
            "theoretical_speedup_per_model",
            one_by_one / planned,
            "x",
            model=model,
            values=len(profile.registers),
            requests=len(MeterReadPlan(profile).requests()),
        )
    dense = line_settings.transaction_s(8, read_response_bytes(2), TURNAROUND_S) / (
        line_settings.transaction_s(8, read_response_bytes(80), TURNAROUND_S) / 40
    )
    emit(
        "theoretical_speedup_dense_map",
        dense,
        "x",
        note="40 adjacent float32 values in one request against 40 requests",
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweeps", type=int, default=5)
    asyncio.run(main(parser.parse_args().sweeps))

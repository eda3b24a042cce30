"""A day's load profile over DLMS/HDLC at 9600 baud: plain (LLS) against HLS-GMAC with suite-0
ciphering, each against the wire's minimum for the very frames it sent and received.

The simulated meter sits on a real pty and holds every answer for its wire time (10 bits a byte
at 9600 baud, a short silence, then its turnaround). One read is what the gateway's backfill
does: connect (SNRM), associate (with HLS: AARQ and passes 3/4), read the profile's columns and
scaler-units, read 96 rows (a day of 15-minute captures, selected by range on the clock
column) in GET blocks carried in 128-byte HDLC segments, release, disconnect. Prints one JSON
line per figure:

    rows             profile rows read (96: one day)
    read_s           the read, wall time (median of --repeat)
    wire_min_s       every frame's bytes x 10 bits / baud + the meter's turnaround per answer:
                     no line can do it faster
    ratio            read_s / wire_min_s (target: within 1.15)
    frames, bytes    on the wire, both directions
    cipher_cost      read_s(hls) / read_s(plain): what ciphering costs on this line

The profile read is 1-0:99.1.0*255, the load profile this branch's simulated meter has (clock
and three energy registers per row). IS 15959's block load profile lives at the same logical
name with more columns (average voltage and current, ...): once the simulated meter carries
them, this bench reads them unchanged and its rows grow.

Run: python bench/dlms_read.py [--repeat N] [--baud 9600]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from firmware_sim.clock import ManualClock
from firmware_sim.dlms_line import HdlcMeterLine
from firmware_sim.dlms_meter import SimulatedDlmsMeter
from firmware_sim.dlms_security import MeterSecurity
from firmware_sim.fleet import physics_for
from protocols.dlms.hdlc import Frame
from protocols.dlms.reader import DlmsMeterConfig, DlmsMeterReader, hdlc_link_factory
from protocols.dlms.security import SecurityKeys
from protocols.modbus.timing import LineSettings

GUEK = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
GAK = bytes.fromhex("D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF")
METER_TITLE = bytes.fromhex("4D4D4D0000BC614E")
CLIENT_TITLE = bytes.fromhex("4747570000000001")
PASSWORD = b"ABCDEFGH"
TURNAROUND_S = 0.02
T0 = datetime(2026, 11, 2, 0, 5, tzinfo=UTC)


def emit(mode: str, name: str, value: float, unit: str, **extra: object) -> None:
    record = {"bench": "dlms_read", "mode": mode, "figure": name, "value": round(value, 4)}
    print(json.dumps({**record, "unit": unit, **extra}), flush=True)


class CountingLine(HdlcMeterLine):
    """The meter's line, counting every frame in and out (what the wire carried)."""

    frames = 0
    wire_bytes = 0
    answers = 0

    def _respond(self, frame: Frame) -> Frame | None:
        reply = super()._respond(frame)
        self.frames += 1
        self.wire_bytes += len(frame.encode())
        if reply is not None:
            self.frames += 1
            self.answers += 1
            self.wire_bytes += len(reply.encode())
        return reply

    def reset(self) -> None:
        self.frames = self.wire_bytes = self.answers = 0


def make_meter(clock: ManualClock, hls: bool) -> SimulatedDlmsMeter:
    security = MeterSecurity(GUEK, GAK, METER_TITLE) if hls else None
    return SimulatedDlmsMeter(
        physics_for(21, 3, clock),
        clock,
        serial_number=4242,
        password=PASSWORD,
        turnaround_s=TURNAROUND_S,
        security=security,
    )


async def measure(mode: str, baud: int, repeat: int) -> float:
    clock = ManualClock(T0)
    hls = mode == "hls"
    line_settings = LineSettings(baud)
    with tempfile.TemporaryDirectory() as folder:
        line = CountingLine(make_meter(clock, hls), line_settings, Path(folder) / "dlms")
        async with line:
            config = DlmsMeterConfig(
                "bench",
                password=None if hls else PASSWORD,
                keys=SecurityKeys(GUEK, GAK, CLIENT_TITLE, METER_TITLE) if hls else None,
                timeout_s=5.0,
            )
            reader = DlmsMeterReader(
                config, hdlc_link_factory(str(line.link), line_settings, config)
            )
            end = T0.replace(minute=0)
            start = end - timedelta(days=1) + timedelta(minutes=15)
            timings, minimums, rows = [], [], 0
            for _ in range(repeat):
                reader._scaler_units.clear()  # each read as the first of a backfill
                line.reset()
                began = time.perf_counter()
                samples = await reader.read_load_profile(start, end)
                timings.append(time.perf_counter() - began)
                rows = len({s.ts for s in samples})
                wire = line.wire_bytes * line_settings.bits_per_character / baud
                minimums.append(wire + line.answers * TURNAROUND_S)
    read_s, wire_min_s = statistics.median(timings), statistics.median(minimums)
    emit(mode, "rows", rows, "rows")
    emit(mode, "read_s", read_s, "s", baud=baud, repeat=repeat)
    emit(mode, "wire_min_s", wire_min_s, "s", baud=baud)
    emit(mode, "ratio", read_s / wire_min_s, "x", target=1.15)
    emit(mode, "frames", line.frames, "frames")
    emit(mode, "bytes", line.wire_bytes, "bytes")
    return read_s


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--baud", type=int, default=9600)
    args = parser.parse_args()
    plain = await measure("plain", args.baud, args.repeat)
    ciphered = await measure("hls", args.baud, args.repeat)
    emit("hls", "cipher_cost", ciphered / plain, "x")


if __name__ == "__main__":
    asyncio.run(main())

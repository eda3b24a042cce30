"""IS 15959's block load profile over DLMS/HDLC at 9600 baud: a day of it (96 entries) read by
the meter reader with LLS against the utility settings client with HLS-GMAC and suite-0
ciphering, each against the wire's minimum for the very frames it sent and received.

The simulated meter sits on a real pty and holds every answer for its wire time (10 bits a byte
at 9600 baud, a short silence, then its turnaround). One read is what a gateway does the first
time it reads the profile: connect (SNRM), associate (with HLS: AARQ and passes 3/4), read the
profile's capture objects and each register column's scaler-unit, read the 96 entries of the
day (selected by range on the clock column) in GET blocks carried in 128-byte HDLC segments,
release, disconnect. A second figure set is the backfill of the same day (`read_load_profile`:
the daily profile's midnight register plus the blocks, rebuilt into registers). Prints one JSON
line per figure:

    rows             profile rows read (96: one day)
    read_s           the read, wall time (median of --repeat)
    wire_min_s       every frame's bytes x 10 bits / baud + the meter's turnaround per answer:
                     no line can do it faster
    ratio            read_s / wire_min_s (target: within 1.15)
    frames, bytes    on the wire, both directions
    cipher_cost      read_s(hls) / read_s(lls): what ciphering costs on this line

Each block load entry is the clock, the three phases' mean voltage and current, and the block's
active import, export, reactive and apparent energy (IS 15959).

Run: PYTHONPATH=. python bench/dlms_read.py [--repeat N] [--baud 9600]
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
from protocols.dlms import is15959 as std
from protocols.dlms.hdlc import Frame
from protocols.dlms.profile_reader import ProfileReader
from protocols.dlms.profiles import RangeSelection
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


def make_meter(clock: ManualClock) -> SimulatedDlmsMeter:
    return SimulatedDlmsMeter(
        physics_for(21, 3, clock, history_s=2 * 86400),
        clock,
        serial_number=4242,
        password=PASSWORD,
        turnaround_s=TURNAROUND_S,
        security=MeterSecurity(GUEK, GAK, METER_TITLE),
    )


def config_for(mode: str) -> DlmsMeterConfig:
    """The meter reader (SAP 32) with the password, or utility settings (48) under HLS."""
    if mode == "hls":
        keys = SecurityKeys(GUEK, GAK, CLIENT_TITLE, METER_TITLE)
        return DlmsMeterConfig("bench", keys=keys, timeout_s=5.0)
    return DlmsMeterConfig("bench", password=PASSWORD, client_sap=32, timeout_s=5.0)


async def measure(mode: str, what: str, baud: int, repeat: int) -> float:
    clock = ManualClock(T0)
    line_settings = LineSettings(baud)
    with tempfile.TemporaryDirectory() as folder:
        line = CountingLine(make_meter(clock), line_settings, Path(folder) / "dlms")
        async with line:
            config = config_for(mode)
            reader = DlmsMeterReader(
                config, hdlc_link_factory(str(line.link), line_settings, config)
            )
            end = T0.replace(minute=0)
            start = end - timedelta(days=1) + timedelta(minutes=15)
            timings, minimums, rows = [], [], 0
            for _ in range(repeat):
                reader.profiles = ProfileReader("bench")  # each read as the first of its kind
                line.reset()
                began = time.perf_counter()
                if what == "block_profile":
                    table = await reader.read_profile(
                        std.BLOCK_LOAD_PROFILE, RangeSelection(start, end)
                    )
                    rows = len(table.rows)
                else:
                    samples = await reader.read_load_profile(start, end)
                    rows = len({s.ts for s in samples})
                timings.append(time.perf_counter() - began)
                wire = line.wire_bytes * line_settings.bits_per_character / baud
                minimums.append(wire + line.answers * TURNAROUND_S)
    read_s, wire_min_s = statistics.median(timings), statistics.median(minimums)
    extra = {"read": what}
    emit(mode, "rows", rows, "rows", **extra)
    emit(mode, "read_s", read_s, "s", baud=baud, repeat=repeat, **extra)
    emit(mode, "wire_min_s", wire_min_s, "s", baud=baud, **extra)
    emit(mode, "ratio", read_s / wire_min_s, "x", target=1.15, **extra)
    emit(mode, "frames", line.frames, "frames", **extra)
    emit(mode, "bytes", line.wire_bytes, "bytes", **extra)
    return read_s


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--baud", type=int, default=9600)
    args = parser.parse_args()
    for what in ("block_profile", "backfill"):
        plain = await measure("lls", what, args.baud, args.repeat)
        ciphered = await measure("hls", what, args.baud, args.repeat)
        emit("hls", "cipher_cost", ciphered / plain, "x", read=what)


if __name__ == "__main__":
    asyncio.run(main())

"""How long the IS 15959 reads take on a slow line: the simulated meter on a pty at 9600 baud
(HDLC, wire time simulated per byte), read by GridGate's reader. Prints one JSON line per figure:
a day's backfill rebuilt from the block load profile (daily anchor + 96 blocks) beside the same
day read by entries of the block profile alone, the object list, and a re-read of the event logs
with nothing new (what every slow poll costs).

    PYTHONPATH=. python bench/dlms_profiles.py [--baud 9600]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from firmware_sim.clock import ManualClock
from firmware_sim.dlms_line import HdlcMeterLine
from firmware_sim.dlms_meter import SimulatedDlmsMeter
from firmware_sim.fleet import physics_for
from protocols.dlms import is15959 as std
from protocols.dlms.profiles import EntrySelection
from protocols.dlms.reader import DlmsMeterConfig, DlmsMeterReader, hdlc_link_factory
from protocols.modbus.timing import LineSettings

NOW = datetime(2026, 12, 1, 6, 0, tzinfo=UTC)


async def main(baud: int) -> None:
    clock = ManualClock(NOW)
    meter = SimulatedDlmsMeter(
        physics_for(9, 3, clock, history_s=3 * 86400), clock, serial_number=9, turnaround_s=0.02
    )
    line = LineSettings(baud)
    with tempfile.TemporaryDirectory() as folder:
        link = Path(folder) / "dlms"
        async with HdlcMeterLine(meter, line, link):
            config = DlmsMeterConfig("bench", timeout_s=5.0)
            reader = DlmsMeterReader(config, hdlc_link_factory(str(link), line, config))

            async def timed(name: str, work, **extra: object) -> object:
                started = time.perf_counter()
                result = await work
                print(
                    json.dumps(
                        {
                            "figure": name,
                            "baud": baud,
                            "seconds": round(time.perf_counter() - started, 2),
                        }
                        | extra
                    ),
                    flush=True,
                )
                return result

            start = NOW - timedelta(days=1)
            samples = await timed(
                "backfill_one_day_rebuilt_from_blocks",
                reader.read_load_profile(start, NOW),
            )
            print(json.dumps({"figure": "backfill_samples", "value": len(samples)}), flush=True)
            await timed(
                "block_profile_96_entries_alone",
                reader.read_profile(std.BLOCK_LOAD_PROFILE, EntrySelection(1, 96)),
            )

            async def object_list() -> int:
                async with reader._session() as session:
                    return len(await session.get(15, std.ASSOCIATION_LN, 2))

            objects = await timed("object_list", object_list())
            print(json.dumps({"figure": "objects_listed", "value": objects}), flush=True)
            await reader.read_events({})
            await timed(
                "event_logs_reread_nothing_new", reader.read_events(dict.fromkeys(std.Log, NOW))
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--baud", type=int, default=9600)
    asyncio.run(main(parser.parse_args().baud))

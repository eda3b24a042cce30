"""The technician's commands against simulated meters on a real pty: scan (with automatic line
settings), identify, read (Modbus and DLMS), and writing the found meters into a config."""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
from pathlib import Path

import pytest

from edge.field import probe_time_s
from firmware_sim.clock import SimClock
from firmware_sim.dlms_line import DlmsTcpServer
from firmware_sim.dlms_meter import SimulatedDlmsMeter
from firmware_sim.fleet import MeterSpec, build_modbus_meters, physics_for
from firmware_sim.rtu_bus import RtuBus
from protocols.modbus.timing import LineSettings

# log lines rendered as on a terminal, at the default level: what a technician sees
EDGE = [sys.executable, "-m", "gridgate", "--console-logs", "edge"]
HEX_DUMP = re.compile(r"0x[0-9a-f]{1,2} 0x[0-9a-f]{1,2} 0x[0-9a-f]{1,2}")


async def gridgate(*args: str, log_level: str = "INFO") -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *EDGE[:3],
        "--log-level",
        log_level,
        *EDGE[3:],
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 120)
    return process.returncode, out.decode(), err.decode()


async def test_scan_identify_read_and_write_config(tmp_path: Path) -> None:
    clock = SimClock()
    meters = build_modbus_meters(
        [MeterSpec(1, "sdm630"), MeterSpec(2, "em24"), MeterSpec(5, "iem3000")],
        clock,
        seed=9,
        turnaround_s=0.003,
    )
    link = tmp_path / "ttyRS485"
    async with RtuBus(meters, LineSettings(19200), link=link):
        code, out, err = await gridgate(
            "scan", "--port", str(link), "--baud", "auto", "--units", "1-6", "--json"
        )
        assert code == 0, err
        found = json.loads(out)
        assert (found["baud"], found["parity"]) == (19200, "N")  # found by trying
        assert [(m["unit"], m["model"]) for m in found["meters"]] == [
            (1, "sdm630"),
            (2, "em24"),
            (5, "iem3000"),
        ]
        assert all(m["serial"] for m in found["meters"])
        assert "1.8.0" in found["meters"][0]["values"]
        assert found["meters"][0]["values"]["1.8.0"]["unit"] == "kWh"

        code, out, _ = await gridgate(
            "identify", "--port", str(link), "--unit", "2", "--baud", "19200"
        )
        assert code == 0
        assert "em24" in out
        code, out, err = await gridgate(
            "read",
            "--port",
            str(link),
            "--unit",
            "5",
            "--baud",
            "19200",
            "--json",
        )
        assert code == 0, err
        reading = json.loads(out)
        assert reading["model"] == "iem3000"
        assert reading["values"]["1.8.0"] > 0
        code, out, _ = await gridgate(
            "read",
            "--port",
            str(link),
            "--unit",
            "1",
            "--profile",
            "sdm630",
            "--baud",
            "19200",
        )
        assert code == 0
        assert "voltage_l1" in out  # a table with names and units
        code, _, err = await gridgate(
            "identify",
            "--port",
            str(link),
            "--unit",
            "9",
            "--baud",
            "19200",
            "--timeout",
            "0.2",
        )
        assert code == 2
        assert "unit 9 does not answer" in err

        config = tmp_path / "edge.toml"
        config.write_text('[gateway]\nid = "gw-field"\n')
        code, out, err = await gridgate(
            "scan",
            "--port",
            str(link),
            "--baud",
            "19200",
            "--units",
            "1-5",
            "--write-config",
            str(config),
        )
        assert code == 0, err
        assert "sdm630" in out
    code, out, err = await gridgate("check-config", str(config))
    assert code == 0, err
    assert "1 buses, 3 meters" in out


def assert_no_library_chatter(output: str) -> None:
    assert "No response received" not in output
    assert ">>>>>" not in output
    assert not HEX_DUMP.search(output), output


async def test_the_librarys_chatter_is_heard_only_at_debug(tmp_path: Path) -> None:
    """On a line whose every answer fails its CRC, each command says what went wrong in one
    sentence of its own; pymodbus's error lines and frame dumps appear only at DEBUG."""
    meters = build_modbus_meters([MeterSpec(1, "sdm630")], SimClock(), seed=9, turnaround_s=0.003)
    meters[0].faults.crc_error = 1.0
    link = tmp_path / "ttyRS485"
    port = ["--port", str(link), "--baud", "19200", "--timeout", "0.3"]
    async with RtuBus(meters, LineSettings(19200), link=link):
        code, out, err = await gridgate("read", *port, "--unit", "1", "--profile", "sdm630")
        assert code == 2
        # ours: the meter and the registers (a CRC error, or on a stalled machine no answer)
        assert re.search(r"^gridgate edge: unit-1: input registers \d+-\d+: ", err, re.M), err
        assert_no_library_chatter(out + err)
        _, out, err = await gridgate("identify", *port, "--unit", "1")
        assert_no_library_chatter(out + err)
        _, out, err = await gridgate("scan", *port, "--units", "1")
        assert_no_library_chatter(out + err)

        code, _, err = await gridgate(
            "read", *port, "--unit", "1", "--profile", "sdm630", log_level="DEBUG"
        )
        assert code == 2
        assert "No response received" in err
        assert "send: 0x1 0x4 0x0 0x0" in err  # the frames, one debug line each


async def test_reading_a_dlms_meter_and_a_missing_port(tmp_path: Path) -> None:
    clock = SimClock()
    meter = SimulatedDlmsMeter(
        physics_for(3, 3, clock), clock, serial_number=7, password=b"secret12"
    )
    server = DlmsTcpServer(meter, "127.0.0.1", 0)
    await server.start()
    try:
        code, out, err = await gridgate(
            "read",
            "--port",
            f"127.0.0.1:{server.port}",
            "--hdlc-address",
            "17",
            "--password",
            "secret12",
            "--json",
        )
        assert code == 0, err
        assert "32.7.0" in json.loads(out)["values"]
        code, _, err = await gridgate(
            "read",
            "--port",
            f"127.0.0.1:{server.port}",
            "--hdlc-address",
            "17",
            "--password",
            "wrong-one",
        )
        assert code == 2
        assert "Traceback" not in err
    finally:
        await server.stop()
    code, _, err = await gridgate("scan", "--port", str(tmp_path / "ttyUSB9"), "--units", "1-2")
    assert code == 2
    assert "dialout" in err


@pytest.mark.slow
async def test_a_full_scan_at_9600_finds_the_live_meters_in_the_time_its_timeouts_imply(
    tmp_path: Path,
) -> None:
    """Five meters of mixed models at scattered unit ids, one of them dead; all 247 ids asked."""
    layout = [(3, "sdm630"), (17, "em24"), (42, "sdm120"), (101, "iem3000"), (200, "sdm630")]
    meters = build_modbus_meters(
        [MeterSpec(u, m) for u, m in layout], SimClock(), seed=4, turnaround_s=0.005
    )
    meters[-1].faults.no_answer = 1.0  # unit 200 is dead
    link = tmp_path / "ttyRS485"
    line = LineSettings(9600)
    timeout_s = 0.05
    async with RtuBus(meters, line, link=link):
        started = time.monotonic()
        code, out, err = await gridgate(
            "scan", "--port", str(link), "--units", "1-247", "--timeout", str(timeout_s), "--json"
        )
        elapsed = time.monotonic() - started
    assert code == 0, err
    found = [(m["unit"], m["model"]) for m in json.loads(out)["meters"]]
    assert found == layout[:4]
    # every absent id costs its timeout and the quiet after it; the four live meters are
    # identified and read with a longer timeout (a few transactions each); plus start-up
    implied = 243 * probe_time_s(line, timeout_s) + 4 * 2.0
    assert elapsed <= implied * 1.3 + 10, (elapsed, implied)

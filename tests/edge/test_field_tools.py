"""The technician's commands against simulated meters on a real pty: scan (with automatic line
settings), identify (asking again on a noisy line, and saying so when it cannot), read (Modbus and
DLMS), and writing the found meters into a config."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from edge.field import (
    IDENTIFY_TRIES,
    FoundMeter,
    NotIdentified,
    describe_failures,
    identify,
    probe_time_s,
)
from firmware_sim.clock import SimClock
from firmware_sim.dlms_line import DlmsTcpServer
from firmware_sim.dlms_meter import SimulatedDlmsMeter
from firmware_sim.fleet import MeterSpec, build_modbus_meters, physics_for
from firmware_sim.rtu_bus import RtuBus
from protocols.errors import CrcError, FrameError, IllegalDataAddress, LateAnswer, MeterTimeout
from protocols.modbus.timing import LineSettings
from protocols.modbus.transport import ModbusSerialLine

HEX_DUMP = re.compile(r"0x[0-9a-f]{1,2} 0x[0-9a-f]{1,2} 0x[0-9a-f]{1,2}")


async def gridgate(*args: str, log_level: str = "INFO") -> tuple[int, str, str]:
    """`gridgate edge ARGS`, its log lines rendered as on a terminal: what a technician sees."""
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "gridgate", "--log-level", log_level, "--console-logs", "edge"),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 120)
    return process.returncode, out.decode(), err.decode()


@contextlib.asynccontextmanager
async def simulated_bus(link: Path, *args: str) -> AsyncIterator[None]:
    """`gridgate sim modbus --link LINK ARGS` in a process of its own, as a technician runs it
    beside the tools. Its meters answer on time however busy this test's process is; meters in
    this process would answer late whenever it stalls, while the command's timeout runs on."""
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "gridgate", "--log-level", "WARNING", "sim", "modbus"),
        *("--link", str(link), "--turnaround-ms", "3", *args),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    assert process.stderr is not None
    try:
        ready = await asyncio.wait_for(process.stdout.readline(), 60)  # printed once it listens
        assert ready.startswith(b"modbus rtu: "), ready + await process.stderr.read()
        yield
    finally:
        process.terminate()
        await asyncio.wait_for(process.communicate(), 30)


async def test_scan_identify_read_and_write_config(tmp_path: Path) -> None:
    link = tmp_path / "ttyRS485"
    meters = ("--meter", "1:sdm630", "--meter", "2:em24", "--meter", "5:iem3000")
    async with simulated_bus(link, "--baud", "19200", "--seed", "9", *meters):
        # twenty times what a probe takes at 19200 baud: room for two processes on a loaded
        # machine (the default, 0.06 s, is for a real line)
        patient = ("--timeout", "0.3")
        code, out, err = await gridgate(
            "scan", "--port", str(link), "--baud", "auto", "--units", "1-6", "--json", *patient
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
            *patient,
        )
        assert code == 0, err
        assert "sdm630" in out
    code, out, err = await gridgate("check-config", str(config))
    assert code == 0, err
    assert "1 bus, 3 meters" in out


def assert_no_library_chatter(output: str) -> None:
    assert "No response received" not in output
    assert ">>>>>" not in output
    assert not HEX_DUMP.search(output), output


async def test_the_librarys_chatter_is_heard_only_at_debug(tmp_path: Path) -> None:
    """On a line whose every answer fails its CRC, each command says what went wrong in one
    sentence of its own; pymodbus's error lines and frame dumps appear only at DEBUG."""
    link = tmp_path / "ttyRS485"
    port = ["--port", str(link), "--baud", "19200", "--timeout", "0.3"]
    async with simulated_bus(
        link, "--baud", "19200", "--meter", "1:sdm630", "--fault", "1:crc_error=1"
    ):
        code, out, err = await gridgate("read", *port, "--unit", "1", "--profile", "sdm630")
        assert code == 2
        assert re.search(
            r"^gridgate edge: unit-1: input registers \d+-\d+: answer failed its CRC check$",
            err,
            re.M,
        ), err
        assert_no_library_chatter(out + err)
        code, out, err = await gridgate("identify", *port, "--unit", "1")
        assert code == 2
        assert "could not identify" in err
        assert_no_library_chatter(out + err)
        _, out, err = await gridgate("scan", *port, "--units", "1")
        assert_no_library_chatter(out + err)

        code, _, err = await gridgate(
            "read", *port, "--unit", "1", "--profile", "sdm630", log_level="DEBUG"
        )
        assert code == 2
        assert "No response received" in err
        assert "send: 0x1 0x4 0x0 0x0" in err  # the frames, one debug line each


class ScriptedLine:
    """A line whose answers the test writes: for each (register type, address), what each
    successive request gets (registers, or an error to raise), the last repeating. A register
    with no script answers Modbus exception 2, as a meter does for a register it lacks."""

    def __init__(self, script: dict[tuple[str, int], list[list[int] | Exception]]) -> None:
        self.script = script
        self.asked: Counter[tuple[str, int]] = Counter()

    async def read_registers(
        self, *, meter: str, unit: int, register_type: str, address: int, count: int, **_: float
    ) -> list[int]:
        key = (register_type, address)
        answers = self.script.get(key) or [IllegalDataAddress("exception 2", code=2, meter=meter)]
        answer = answers[min(self.asked[key], len(answers) - 1)]
        self.asked[key] += 1
        if isinstance(answer, Exception):
            raise answer
        return answer


EASTRON_CODE, EASTRON_SERIAL = ("holding", 0xFC02), ("holding", 0xFC00)
EM24_CODE = ("input", 0x000B)
SDM630 = [0x0070]
SERIAL = [0x0140, 0x732A]  # 21001002
CRC, SILENCE, LATE = CrcError("crc"), MeterTimeout("silence"), LateAnswer("late")


async def identify_on(line: ScriptedLine) -> FoundMeter | None:
    return await identify(line, 1, timeout_s=0.5)  # type: ignore[arg-type]


async def test_each_question_is_asked_again_while_its_answer_is_lost_or_damaged() -> None:
    line = ScriptedLine({EASTRON_CODE: [CRC, SILENCE, CRC, SDM630], EASTRON_SERIAL: [SERIAL]})
    found = await identify_on(line)
    assert found is not None
    assert (found.model, found.serial, found.error) == ("sdm630", "21001002", None)
    assert line.asked[EASTRON_CODE] == 4


async def test_a_question_without_a_sound_answer_in_four_tries_is_not_guessed_at() -> None:
    line = ScriptedLine({EASTRON_CODE: [CRC, SILENCE, CRC, CRC, SDM630]})
    with pytest.raises(NotIdentified) as caught:
        await identify_on(line)
    assert (
        str(caught.value)
        == "unit 1: could not identify (CRC errors on 3 of 4 tries, no answer on 1)"
    )
    assert caught.value.fix.startswith("check the bus's termination")
    assert sum(line.asked.values()) == IDENTIFY_TRIES  # bounded, and no other model guessed at

    line = ScriptedLine({EASTRON_CODE: [LATE]})
    with pytest.raises(NotIdentified, match=r"late answers on 4 of 4 tries") as caught:
        await identify_on(line)
    assert "--timeout" in caught.value.fix


async def test_a_serial_number_without_a_sound_answer_is_said_to_be_unread() -> None:
    line = ScriptedLine({EASTRON_CODE: [SDM630], EASTRON_SERIAL: [CRC, CRC, CRC, CRC, SERIAL]})
    found = await identify_on(line)
    assert found is not None
    assert (found.model, found.serial) == ("sdm630", None)
    assert found.error == "serial number: could not read it (CRC errors on 4 of 4 tries)"


async def test_silence_is_nobody_at_first_and_a_register_the_meter_lacks_after() -> None:
    assert await identify_on(ScriptedLine({EASTRON_CODE: [SILENCE]})) is None
    # an Eastron code refused, the iEM3000's name ignored, the EM24's code sound
    line = ScriptedLine({("holding", 49): [SILENCE], EM24_CODE: [[1648]]})
    found = await identify_on(line)
    assert found is not None
    assert found.model == "em24"
    assert line.asked[("holding", 49)] == IDENTIFY_TRIES
    # every register refused: a meter that answers, of no model GridGate knows
    found = await identify_on(ScriptedLine({}))
    assert found is not None
    assert (found.model, found.error) == (None, "answers, but matches no known profile")


async def test_a_line_with_one_answer_in_ten_damaged_identifies_every_model(
    tmp_path: Path,
) -> None:
    """The simulated line of the issue: 10 % CRC errors, seeded so the run is repeatable."""
    models = ["sdm630", "sdm120", "iem3000", "em24"]
    damaged = 0
    for seed in (1, 2, 3):
        meters = build_modbus_meters(
            [MeterSpec(unit, model) for unit, model in enumerate(models, start=1)],
            SimClock(),
            seed=seed,
            turnaround_s=0.003,
        )
        for meter in meters:
            meter.faults.crc_error = 0.1
        async with RtuBus(meters, LineSettings(19200), link=tmp_path / "bus"):
            line = ModbusSerialLine(str(tmp_path / "bus"), LineSettings(19200))
            try:
                for meter in meters:
                    found = await identify(line, meter.unit_id, timeout_s=0.5)
                    assert found is not None
                    assert found.model == meter.profile.model
                    assert found.serial is not None
                    assert found.serial.lstrip("0") == str(meter.serial_number)
            finally:
                line.close()
        damaged += sum(m.faults_injected["crc_error"] for m in meters)
    assert damaged >= 1  # answers that had to be asked for again


async def test_identify_says_it_could_not_rather_than_guess(tmp_path: Path) -> None:
    meters = build_modbus_meters([MeterSpec(3, "em24")], SimClock(), seed=7, turnaround_s=0.003)
    meters[0].faults.crc_error = 1.0  # every answer damaged
    link = tmp_path / "bus"
    async with RtuBus(meters, LineSettings(19200), link=link):
        line = ModbusSerialLine(str(link), LineSettings(19200))
        try:
            with pytest.raises(NotIdentified) as caught:
                await identify(line, 3, timeout_s=0.5)
        finally:
            line.close()
        assert str(caught.value) == "unit 3: could not identify (CRC errors on 4 of 4 tries)"
        assert meters[0].transactions == IDENTIFY_TRIES

    link = tmp_path / "ttyRS485"
    async with simulated_bus(
        link, "--baud", "19200", "--meter", "3:em24", "--fault", "3:crc_error=1"
    ):
        code, out, err = await gridgate(
            "identify", "--port", str(link), "--unit", "3", "--baud", "19200", "--timeout", "1"
        )
    assert code == 2
    assert out == ""
    assert err.startswith(
        "gridgate edge: unit 3: could not identify (CRC errors on 4 of 4 tries)"
        f" on {link} at 19200 N; check the bus's termination"
    ), err


def test_what_the_tries_met_is_said_in_a_few_words() -> None:
    crc, silence, late = CrcError("x"), MeterTimeout("x"), LateAnswer("x")
    garbage = FrameError("x")
    assert (
        describe_failures([crc, silence, crc, crc], 4)
        == "CRC errors on 3 of 4 tries, no answer on 1"
    )
    assert describe_failures([late] * 4, 4) == "late answers on 4 of 4 tries"
    assert (
        describe_failures([garbage, crc], 2) == "damaged answers on 1 of 2 tries, CRC errors on 1"
    )
    assert NotIdentified(5, [late] * 4, 4).fix.startswith("it answers after the timeout")


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
    meters = [arg for unit, model in layout for arg in ("--meter", f"{unit}:{model}")]
    link = tmp_path / "ttyRS485"
    line = LineSettings(9600)
    # the simulated meters answer in ~20 ms at 9600 baud when they get the CPU; on a loaded
    # machine their process waits for it now and then (0.05 s and 0.1 s both lost live meters
    # with both cores busy), so the probes give them seven times that
    timeout_s = 0.15
    dead = ("--fault", "200:no_answer=1.0")  # unit 200 is dead
    async with simulated_bus(link, "--baud", "9600", "--seed", "4", *meters, *dead):
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

"""`gridgate sim` as a user runs it: a process that prints where it listens, and clear refusals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pymodbus.client import ModbusSerialClient

GRIDGATE = [sys.executable, "-m", "gridgate", "--console-logs", "--log-level", "WARNING"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--meter", "1:sdm999"], "unknown meter model 'sdm999'"),
        (["--meter", "1:sdm630", "--meter", "1:em24"], "unit id 1 is used by more than one"),
        (["--meter", "300:sdm630"], "outside 1-247"),
        (["--meter", "sdm630"], "must look like UNIT:MODEL"),
        (["--meter", "1:sdm630", "--fault", "1:melt"], "unknown fault 'melt'"),
        (["--meter", "1:sdm630", "--fault", "2:crc_error"], "no meter with unit id 2"),
        (["--meter", "1:sdm630", "--fault", "1:crc_error=7"], "between 0 and 1"),
        (["--meter", "1:sdm630", "--baud", "0"], "baud must be positive"),
    ],
)
def test_bad_input_is_one_line_and_non_zero(tmp_path: Path, args: list[str], message: str) -> None:
    done = subprocess.run(
        [*GRIDGATE, "sim", "modbus", "--link", str(tmp_path / "bus"), *args],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert message in lines[0]


@pytest.mark.parametrize("link", ["/nonexistent-dir/bus", "FILE"])
def test_unusable_link_path(tmp_path: Path, link: str) -> None:
    if link == "FILE":
        (tmp_path / "taken").write_text("not a symlink")
        link = str(tmp_path / "taken")
    done = subprocess.run(
        [*GRIDGATE, "sim", "modbus", "--link", link, "--meter", "1:sdm630"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1
    assert "--link" in done.stderr


def test_modbus_bus_runs_until_stopped(tmp_path: Path) -> None:
    link = tmp_path / "rs485"
    process = subprocess.Popen(
        [
            *GRIDGATE,
            "sim",
            "modbus",
            "--link",
            str(link),
            "--meter",
            "1:sdm630",
            "--meter",
            "7:iem3000",
            "--tcp",
            "127.0.0.1:0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert f"linked at {link}" in first
        assert "modbus tcp: 127.0.0.1:" in process.stdout.readline()
        client = ModbusSerialClient(str(link), baudrate=9600, timeout=1, retries=1)
        assert client.connect()
        r = client.read_holding_registers(3027, count=2, device_id=7)
        assert not r.isError()
        client.close()
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=15) == 0
    assert not link.exists()  # the symlink is removed on a clean stop


def test_faults_are_listed_within_80_columns() -> None:
    done = subprocess.run(
        [*GRIDGATE, "sim", "faults"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "COLUMNS": "80"},
    )
    assert [line for line in done.stdout.splitlines() if len(line) > 80] == []
    # a description too long for one line goes on under itself, every word kept
    assert "clock is this many seconds ahead (negative: behind), from now" in " ".join(
        done.stdout.split()
    )
    assert all(line.startswith(" " * 15) for line in done.stdout.splitlines() if line[0] == " ")
    for name in (
        "no_answer",
        "crc_error",
        "garbage",
        "truncated",
        "exception",
        "clock_drift",
        "reset",
        "rollover",
        "voltage_sag",
        "phase_loss",
        "stuck",
        "reverse_power",
    ):
        assert name in done.stdout


def test_mqtt_meters_with_an_embedded_broker() -> None:
    process = subprocess.Popen(
        [*GRIDGATE, "sim", "mqtt", "--meters", "2", "--interval-s", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert "embedded mqtt broker: mqtt://127.0.0.1:" in process.stdout.readline()
        assert "tele/gridgate-sim-1-1/SENSOR" in process.stdout.readline()
        assert "tele/gridgate-sim-1-2/SENSOR" in process.stdout.readline()
        time.sleep(0.5)
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=20) == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--phases", "2"], "--phases must be 1 or 3"),
        (["--fault", "melt"], "unknown fault 'melt'"),
        (["--speed", "0"], "--speed must be positive"),
        (["--tcp", "nowhere"], "must look like HOST:PORT"),
    ],
)
def test_dlms_bad_input(tmp_path: Path, args: list[str], message: str) -> None:
    done = subprocess.run(
        [*GRIDGATE, "sim", "dlms", "--link", str(tmp_path / "dlms"), *args],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1
    assert message in done.stderr


def test_dlms_meter_runs_until_stopped(tmp_path: Path) -> None:
    link = tmp_path / "dlms"
    process = subprocess.Popen(
        [
            *GRIDGATE,
            "sim",
            "dlms",
            "--link",
            str(link),
            "--tcp",
            "127.0.0.1:0",
            "--password",
            "12345678",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert f"linked at {link}" in process.stdout.readline()
        assert "LLS password" in process.stdout.readline()
        assert link.is_symlink()
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    assert not link.exists()


def test_mqtt_refuses_line_faults() -> None:
    done = subprocess.run(
        [*GRIDGATE, "sim", "mqtt", "--broker", "mqtt://127.0.0.1:1", "--fault", "1:crc_error"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert "no serial line" in done.stderr

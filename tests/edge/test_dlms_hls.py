"""The gateway's side of DLMS security: key files (owner-only, never logged), the daemon reading
and commanding a meter under HLS-GMAC over a pty, and invocation counters that survive kill -9
of a real `gridgate edge run` without one counter ever sent twice."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog
from typer.testing import CliRunner

from edge.cli import app
from edge.config import ConfigError, load_config
from edge.daemon import Daemon
from edge.dlms_counters import CounterFile, CounterFileError
from edge.meter_keys import KeyFileError, load_key_file, write_key_file
from edge.store import Store
from firmware_sim.clock import SimClock
from firmware_sim.dlms_line import HdlcMeterLine
from firmware_sim.dlms_meter import SimulatedDlmsMeter
from firmware_sim.dlms_security import MeterSecurity
from firmware_sim.fleet import physics_for
from protocols.dlms.security import CounterState, SecurityKeys
from protocols.modbus.timing import LineSettings

GUEK = bytes.fromhex("8A4F12C95E07B3D16A2C9F40E1B8735D")
GAK = bytes.fromhex("3C91E7A05B26D84F17C0A9E35D62B81F")
METER_TITLE = bytes.fromhex("4D4D4D0000BC614E")
CLIENT_TITLE = bytes.fromhex("4747570000000007")
KEYS = SecurityKeys(GUEK, GAK, CLIENT_TITLE, METER_TITLE)
SECRETS = (GUEK.hex(), GAK.hex())
BAUD = 38400
DAEMON = [sys.executable, "-m", "gridgate", "--log-level", "DEBUG", "edge", "run", "--config"]


def leaks(text: str) -> list[str]:
    lowered = text.lower()
    return [secret for secret in SECRETS if secret in lowered]


async def until(check: Callable[[], Awaitable[Any] | Any], what: str, timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if asyncio.iscoroutine(found):
            found = await found
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


# --- key files ---------------------------------------------------------------------------


def test_a_key_file_loads_and_refuses_group_or_other_access(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "meter-07.toml"
    write_key_file(path, KEYS)
    assert (path.stat().st_mode & 0o777) == 0o600
    assert load_key_file(path) == KEYS
    for mode in (0o640, 0o604, 0o660, 0o644):
        path.chmod(mode)
        with pytest.raises(KeyFileError, match=rf"meter-07.toml: .*mode {mode:03o}.*chmod 600"):
            load_key_file(path)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (f'guek = "{GUEK.hex()}"\n', "missing gak, client_system_title"),
        (
            f'guek = "{GUEK.hex()}"\ngak = "{GAK.hex()[:-2]}"\nclient_system_title = "00"\n',
            "gak must be 16 bytes written as 32 hex",
        ),
        (f"guek = {GUEK.hex()}\n", "not a TOML key file"),
        (f'guek = "{GUEK.hex()}"\nextra = "{GAK.hex()}"\n', "unknown entries extra"),
    ],
)
def test_a_bad_key_file_says_what_is_wrong_without_showing_a_key(
    tmp_path: Path, text: str, problem: str
) -> None:
    path = tmp_path / "k.toml"
    path.write_text(text)
    path.chmod(0o600)
    with pytest.raises(KeyFileError, match=problem) as caught:
        load_key_file(path)
    assert leaks(str(caught.value)) == []


def write_config(tmp_path: Path, link: Path, extra: str = "", mode: int = 0o600) -> Path:
    write_key_file(tmp_path / "keys" / "meter-07.toml", KEYS)
    (tmp_path / "keys" / "meter-07.toml").chmod(mode)
    path = tmp_path / "edge.toml"
    path.write_text(
        f"""
[gateway]
id = "gw-hls"
data_dir = "data"

[store]
commit_interval_s = 0.1

[clock]
require_ntp = false

[[buses]]
name = "dlms-hls"
kind = "dlms-hdlc"
port = "{link}"
baud = {BAUD}

[[buses.meters]]
id = "m-07"
hdlc_address = 17
keys = "keys/meter-07.toml"
fast_s = 0.2
slow_s = 0.5
timeout_s = 3.0
{extra}
"""
    )
    return path


def test_the_configuration_refuses_an_open_key_file_with_its_line(tmp_path: Path) -> None:
    path = write_config(tmp_path, tmp_path / "dlms", mode=0o644)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    [problem] = caught.value.problems
    line = path.read_text().splitlines().index('keys = "keys/meter-07.toml"') + 1
    assert problem.startswith(f"{path}:{line}: buses.0.meters.0.keys: ")
    assert "chmod 600" in problem
    result = CliRunner().invoke(app, ["check-config", str(path)])
    assert result.exit_code == 2
    assert "keys/meter-07.toml: key file is readable or writable by group or others" in (
        result.output
    )


def test_hls_settings_are_checked(tmp_path: Path) -> None:
    path = write_config(tmp_path, tmp_path / "dlms", extra='authentication = "lls"')
    with pytest.raises(ConfigError, match="keys are for hls-gmac, not authentication lls"):
        load_config(path)
    config = load_config(write_config(tmp_path, tmp_path / "dlms"))
    meter = config.buses[0].meters[0]
    assert meter.mechanism == "hls-gmac"
    assert config.meter_keys(meter) == KEYS
    assert "keys/meter-07.toml" in config.settings().model_dump_json()  # a path, never a key
    assert leaks(config.settings().model_dump_json()) == []


def test_a_counter_file_survives_and_refuses_to_guess(tmp_path: Path) -> None:
    ledger = CounterFile(tmp_path / "dlms-counters", "m-07")
    assert ledger.load() == CounterState()
    ledger.save(CounterState(next_client=513, meter_title=METER_TITLE, meter_counter=77))
    assert CounterFile(tmp_path / "dlms-counters", "m-07").load() == CounterState(
        513, METER_TITLE, 77
    )
    assert not list((tmp_path / "dlms-counters").glob("*.tmp"))
    ledger.path.write_text('{"next_client": ')  # torn by hand: never happens through save()
    with pytest.raises(CounterFileError, match=r"m-07\.json: unreadable invocation counters"):
        ledger.load()


# --- the daemon under HLS ----------------------------------------------------------------


def hls_meter(clock: SimClock) -> SimulatedDlmsMeter:
    return SimulatedDlmsMeter(
        physics_for(7, 3, clock),
        clock,
        serial_number=7,
        turnaround_s=0.002,
        security=MeterSecurity(GUEK, GAK, METER_TITLE),
    )


@pytest.fixture
async def line(tmp_path: Path) -> AsyncIterator[HdlcMeterLine]:
    async with HdlcMeterLine(hls_meter(SimClock()), LineSettings(BAUD), tmp_path / "dlms") as it:
        yield it


def client_counters(meter: SimulatedDlmsMeter) -> list[int]:
    assert meter.security is not None
    return [c for title, c in meter.security.seen if title == CLIENT_TITLE]


async def test_the_daemon_reads_and_commands_under_hls(line: HdlcMeterLine, tmp_path: Path) -> None:
    meter = line.meter
    config = load_config(write_config(tmp_path, line.link))
    meter.physics.set_meter_clock(meter.clock.now_s(), meter.clock.now_s() + 300)  # 5 min off
    with structlog.testing.capture_logs() as logged:
        daemon = Daemon(config)
        task = asyncio.create_task(daemon.run())
        try:
            await until(lambda: meter.associations >= 3, "three polls of the meter")
            clock = await daemon.set_meter_clock("m-07", 30)
            assert abs(clock["drift_after_s"]) < 30
            assert (await daemon.switch_supply("m-07", False))["connected"] is False
            end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
            filled = await daemon.backfill("m-07", end - timedelta(hours=2), end)
            assert filled["intervals"] >= 8
        finally:
            daemon.stopping.set()
            await asyncio.wait_for(task, 60)
    store = Store(config.store_path)
    try:
        quantities = {r.quantity for r in store.all_readings() if r.meter_id == "m-07"}
    finally:
        store.close()
    assert {"1.8.0", "32.7.0"} <= quantities
    assert meter.physics.faults.relay_open
    seen = client_counters(meter)
    assert len(seen) == len(set(seen))
    saved = CounterFile(config.counters_dir, "m-07").load()
    assert saved.next_client > max(seen)
    assert saved.meter_title == METER_TITLE
    assert leaks(repr(logged)) == [], "a key in the daemon's log"


@pytest.mark.slow
async def test_counters_survive_kill_nine_of_the_daemon_without_reuse(
    line: HdlcMeterLine, tmp_path: Path
) -> None:
    """A real `gridgate edge run`, killed with SIGKILL in the middle of a session (while the
    meter is taking in one of its ciphered requests) again and again, then restarted: the
    meter has seen every client counter once, and let the daemon in after every restart."""
    meter = line.meter
    assert meter.security is not None
    config = write_config(tmp_path, line.link)
    rng = random.Random(20261128)
    log_path = tmp_path / "daemon.log"
    rounds = 6
    with log_path.open("ab") as daemon_log:
        for round_ in range(rounds):
            process = await asyncio.create_subprocess_exec(
                *DAEMON, str(config), stdout=daemon_log, stderr=daemon_log
            )
            start_associations = meter.associations
            target = len(client_counters(meter)) + rng.randint(3, 40)

            def kill_at_target(
                title: bytes, counter: int, pid: int = process.pid, target: int = target
            ) -> None:
                if title == CLIENT_TITLE and len(client_counters(meter)) >= target:
                    os.kill(pid, signal.SIGKILL)  # now: the meter is mid-request

            meter.security.on_counter = kill_at_target if round_ < rounds - 1 else None
            if round_ < rounds - 1:
                returned = await asyncio.wait_for(process.wait(), 180)
                assert returned == -signal.SIGKILL, f"round {round_}: the daemon exited itself"
            else:  # the last run is let poll a few sessions, then stopped cleanly
                await until(
                    lambda s=start_associations: meter.associations >= s + 3,
                    "three sessions after the last restart",
                    timeout=180,
                )
                process.send_signal(signal.SIGTERM)
                assert await asyncio.wait_for(process.wait(), 60) == 0
            assert meter.associations > start_associations, f"round {round_}: never let in"
    seen = client_counters(meter)
    assert len(seen) > 60
    repeated = sorted({c for c in seen if seen.count(c) > 1})
    assert repeated == [], f"counters sent twice: {repeated}"
    text = log_path.read_text()
    assert "invocation-counter-error" not in text
    assert "Traceback" not in text
    assert leaks(text) == [], "a key in the daemon's log"


pytestmark = pytest.mark.skipif(os.name != "posix", reason="ptys and signals")

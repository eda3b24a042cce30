"""The gateway's clock: one definition of a trusted clock, and `gridgate edge status` and
`doctor` saying the same of it on the same machine."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from edge.clock import clock_state, kernel_synchronised
from edge.config import load_config
from edge.store import Store

NOW = datetime(2026, 11, 27, 15, 6, tzinfo=UTC)


def test_asking_the_kernel_for_ntp_starts_no_process() -> None:
    """The daemon asks every 5 s. Finding the C library by name runs `ldconfig -p`: a process
    started each time from the event loop, and the daemon's RSS grew by some 0.2 MB an hour."""
    started: list[object] = []
    listening = [True]

    def hook(event: str, args: tuple) -> None:
        if listening[0] and event == "subprocess.Popen":
            started.append(args)

    sys.addaudithook(hook)  # for the rest of this process: `listening` switches it off
    try:
        answers = {kernel_synchronised() for _ in range(3)}
    finally:
        listening[0] = False
    assert started == []
    assert len(answers) == 1  # the same kernel, the same answer (None off Linux)


def test_the_clock_is_trusted_by_one_definition() -> None:
    before = datetime(2026, 1, 1, tzinfo=UTC)
    early = before - timedelta(days=300)

    def state(now: datetime, require_ntp: bool, ntp: bool | None) -> tuple[bool, str]:
        found = clock_state(now=now, not_before=before, require_ntp=require_ntp, ntp=ntp)
        assert bool(found.fix) is not found.trusted  # a fix exactly when it is not trusted
        return found.trusted, found.detail

    assert state(NOW, True, True) == (True, "synchronised by NTP")
    assert state(NOW, True, False) == (False, "not synchronised by NTP")
    assert state(NOW, False, False) == (
        True,
        "not synchronised by NTP (this config does not require it)",
    )
    assert state(NOW, True, None) == (True, "time plausible (NTP state unknown here)")
    for require_ntp in (True, False):
        for ntp in (True, False, None):
            assert state(early, require_ntp, ntp) == (False, "the time is before 2026-01-01")


@pytest.mark.parametrize("require_ntp", ["true", "false"])
async def test_status_and_doctor_say_the_same_of_the_clock(
    tmp_path: Path, require_ntp: str
) -> None:
    """On this machine, whatever its kernel says of NTP, the two commands agree."""
    config = tmp_path / "edge.toml"
    config.write_text(
        f'[gateway]\nid = "gw-clock"\ndata_dir = "data"\n\n[clock]\nrequire_ntp = {require_ntp}\n'
    )
    Store(load_config(config).store_path).close()

    def run(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "gridgate", "edge", *args, "--config", str(config)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert "Traceback" not in done.stderr
        return done.stdout

    status, doctor = await asyncio.gather(
        asyncio.to_thread(run, "status"), asyncio.to_thread(run, "doctor")
    )
    said_by_status = re.search(r"^Clock: (.+)$", status, re.M)
    said_by_doctor = re.search(r"^(ok|FIX) +clock: (.+)$", doctor, re.M)
    assert said_by_status, status
    assert said_by_doctor, doctor
    assert said_by_status.group(1) == said_by_doctor.group(2)

"""`gridgate demo`: the whole system from one command, twice on the same data directory (the
second run carries on), once with the link to the cloud cut; and once with no database set, on
the embedded PostgreSQL a fresh machine would use."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from gridgate.demo import ADMIN

DEMO = [sys.executable, "-m", "gridgate", "--log-level", "ERROR", "demo"]


def demo(data_dir: Path, env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [*DEMO, "--data-dir", str(data_dir), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout


def final_count(output: str) -> int:
    counts = re.findall(r"cloud holds ([\d,]+)", output)
    assert counts, output
    return int(counts[-1].replace(",", ""))


def test_the_demo_runs_and_carries_on(database_url: str, tmp_path: Path) -> None:
    env = {**os.environ, "GRIDGATE_DATABASE_URL": database_url}
    first = demo(tmp_path / "demo", env, "--duration", "20", "--speed", "60")
    url = re.search(r"Dashboard: (http://127\.0\.0\.1:\d+)/dashboard", first)
    assert url, first
    assert ADMIN[0] in first
    assert "Consumer:" in first
    held = final_count(first)
    assert held > 0
    # again, with the link cut for the first 6 s: the backlog drains once it is back
    second = demo(tmp_path / "demo", env, "--duration", "20", "--offline-for", "0.1")
    summaries = [line for line in second.splitlines() if "readings taken" in line]
    assert "link OFFLINE" in summaries[0]  # at the start the cable is out ...
    assert "link online" in summaries[-1]  # ... and back by the end
    assert final_count(second) > held  # what was held back reached the cloud
    with httpx.Client(timeout=5) as client, pytest.raises(httpx.HTTPError):
        client.get(f"{url.group(1)}/health")  # the cloud stopped with the demo


@pytest.mark.skipif(
    bool(os.environ.get("GRIDGATE_SKIP_EMBEDDED")), reason="embedded PostgreSQL run skipped"
)
def test_the_demo_needs_no_services(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "GRIDGATE_DATABASE_URL"}
    output = demo(tmp_path / "fresh", env, "--duration", "15")
    assert final_count(output) > 0
    assert any((tmp_path / "fresh" / "cloud").iterdir())  # the embedded database lives here

"""`gridgate cloud`'s one-off commands as a person runs them on the embedded PostgreSQL: the
answer, without the routine steps behind it unless `--log-level` asks for them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path


def cloud(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRIDGATE_")}
    env |= {"GRIDGATE_DATA_DIR": str(data_dir), "COLUMNS": "80", "TZ": "Asia/Kolkata"}
    return subprocess.run(
        [sys.executable, "-m", "gridgate", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=180,
    )


def test_a_one_off_command_shows_its_answer_and_logs_only_when_asked(tmp_path: Path) -> None:
    first = cloud(tmp_path, "cloud", "migrate")  # a new database: every migration applied
    assert first.returncode == 0, first.stderr
    assert first.stdout == "schema is up to date\n"
    assert first.stderr == ""  # not "embedded postgresql started", nor a line per migration
    asked = cloud(tmp_path, "--log-level", "INFO", "--console-logs", "cloud", "migrate")
    assert asked.returncode == 0, asked.stderr
    assert asked.stdout == "schema is up to date\n"
    lines = asked.stderr.splitlines()
    # the time as the clock on the wall says it, with its zone
    assert re.match(r"\d\d:\d\d:\d\d IST embedded postgresql started", lines[0]), lines
    assert max(len(line) for line in lines) <= 80  # this test's long folder goes on below
    assert f"data_dir={tmp_path / 'postgres'}" in "".join(line.strip() for line in lines)


def test_a_refusal_is_one_sentence_within_80_columns(tmp_path: Path) -> None:
    """What a person typed wrong is said, not a traceback; long sentences wrap to the
    terminal."""
    state = cloud(tmp_path, "cloud", "admin", "create-state", "--code", "tn", "--name", "Tamil")
    assert state.returncode == 2, state.stderr
    assert state.stderr == (
        "gridgate cloud: 'tn' is not a state's code: 2 or 3 capital letters, such as DL\n"
    ), state.stderr
    made = cloud(tmp_path, "cloud", "admin", "create-state", "--code", "TN", "--name", "Tamil")
    assert made.returncode == 0, made.stderr
    board = cloud(
        tmp_path,
        "cloud", "admin", "create-board", "--state", "TN", "--code", "tneb north", "--name", "N",
    )  # fmt: skip
    assert board.returncode == 2, board.stderr
    said = " ".join(line.strip() for line in board.stderr.splitlines())
    assert said == (
        "gridgate cloud: 'tneb north' is not a board's code: 2 to 32 capital letters,"
        " digits, dashes or underscores, such as BRPL"
    ), board.stderr
    assert max(len(line) for line in board.stderr.splitlines()) <= 80
    assert "Traceback" not in state.stderr + board.stderr

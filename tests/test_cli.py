"""The `gridgate` command's shape: the groups of DESIGN.md, and honest 'not available yet'."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from gridgate.cli import app

runner = CliRunner()


def test_help_lists_every_group() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for group in ("demo", "sim", "edge", "cloud"):
        assert group in result.output


def test_console_script_runs() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "gridgate", "--version"], capture_output=True, text=True, check=True
    )
    assert done.stdout.startswith("gridgate ")


def _unavailable_groups() -> list[str]:
    return [
        command.name
        for command in app.registered_commands
        if command.callback is not None
        and (command.callback.__doc__ or "").startswith("[not available yet]")
    ]


@pytest.mark.parametrize("group", _unavailable_groups() or ["(none)"])
def test_unlanded_group_says_so_in_one_line_and_fails(group: str) -> None:
    if group == "(none)":
        return
    result = runner.invoke(app, [group, "anything", "--flag"])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert "not available yet" in lines[0]

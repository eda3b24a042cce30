"""The `gridgate` command's shape: the groups of docs/architecture.md, and honest
'not available yet'."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from gridgate.cli import mount

app = mount()

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


@pytest.mark.parametrize(
    "command",
    [
        ["demo"],
        ["edge", "run"],
        ["edge", "check-config"],
        ["edge", "status"],
        ["edge", "scan"],
        ["edge", "identify"],
        ["edge", "read"],
        ["edge", "enroll"],
        ["edge", "doctor"],
        ["cloud", "serve"],
        ["cloud", "billing", "run"],
    ],
)
def test_every_command_explains_itself_with_an_example(command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "Example:" in result.output


def test_a_bad_serve_setting_names_its_variable() -> None:
    result = runner.invoke(app, ["cloud", "serve"], env={"GRIDGATE_WORKERS": "0"})
    assert result.exit_code == 2
    assert "GRIDGATE_WORKERS: Input should be greater than or equal to 1" in result.output

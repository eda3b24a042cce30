"""The README stays true: its set-up commands are the ones CI runs."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def readme_setup_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Set up and test", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block, "README has no set-up code block"
    return [line.strip() for line in block.group(1).splitlines() if line.strip()]


def test_readme_has_exactly_two_setup_commands() -> None:
    assert len(readme_setup_commands()) == 2


def test_ci_runs_the_readme_commands() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    for command in readme_setup_commands():
        assert command in ci, f"CI does not run the README's command: {command}"


def test_readme_lists_every_command_group() -> None:
    text = (ROOT / "README.md").read_text()
    for group in ("demo", "sim", "edge", "cloud"):
        assert f"`gridgate {group}`" in text

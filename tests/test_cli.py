"""The `gridgate` command's shape: the groups of docs/architecture.md, and honest
'not available yet'."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edge.malloc import is_glibc
from gridgate.cli import DaemonOptions, daemon_options
from gridgate.commands import mount

app = mount()

runner = CliRunner()


@pytest.mark.parametrize(
    ("args", "options"),
    [
        (["edge", "run", "--config", "e.toml"], ("INFO", None, "e.toml")),
        (["edge", "run", "-c", "e.toml"], ("INFO", None, "e.toml")),
        (["edge", "run", "--config=e.toml"], ("INFO", None, "e.toml")),
        (["edge", "run", "-ce.toml"], ("INFO", None, "e.toml")),
        (["--log-level", "ERROR", "--json-logs", "edge", "run", "-c", "e"], ("ERROR", True, "e")),
        (["--log-level=DEBUG", "--console-logs", "edge", "run", "-c", "e"], ("DEBUG", False, "e")),
        # anything else is typer's to read, with its messages
        (["edge", "run"], None),
        (["edge", "run", "--config"], None),
        (["edge", "run", "--config", "a", "--config", "b"], None),
        (["edge", "run", "--config", "e.toml", "extra"], None),
        (["edge", "run", "--confg", "e.toml"], None),
        (["--version", "edge", "run", "-c", "e"], None),
        (["--log-level"], None),
        (["edge", "status", "--config", "e.toml"], None),
    ],
)
def test_the_daemon_starts_without_typer_on_the_command_lines_typer_would_accept(
    args: list[str], options: tuple[str, bool | None, str] | None
) -> None:
    expected = None if options is None else DaemonOptions(*options[:2], Path(options[2]))
    assert daemon_options(args) == expected


LOADED = """
import atexit, sys
def report():
    print("loaded:", *sorted({n for n, m in sys.modules.items() if m is not None}))
atexit.register(report)
sys.argv = ["gridgate", *sys.argv[1:]]
from gridgate.cli import main
main()
"""


def loaded_by(tmp_path, *args: str) -> tuple[subprocess.CompletedProcess, set[str]]:
    """Run `gridgate args...` in its own process; what it had imported when it exited."""
    done = subprocess.run(
        [sys.executable, "-c", LOADED, *args], capture_output=True, text=True, cwd=tmp_path
    )
    line = next(x for x in done.stdout.splitlines() if x.startswith("loaded: "))
    return done, set(line.split()[1:])


def test_the_daemon_process_loads_no_terminal_renderer_nor_typer(tmp_path) -> None:
    """structlog imports rich, pygments and greenlet whenever they are installed (httpx, in
    the doctor, click); the daemon's process refuses them, and starts without typer. Its HTTP is
    h11's, without httpx, httpcore and anyio (~5 MB). The daemon's modules are all loaded before
    its configuration is read, so a missing configuration still shows what it would load."""
    done, loaded = loaded_by(
        tmp_path, "--log-level", "ERROR", "edge", "run", "--config", "missing.toml"
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert "missing.toml" in done.stderr
    assert {"edge.daemon", "edge.cloud_http", "structlog", "h11"} <= loaded
    refused = ("rich", "pygments", "greenlet", "click", "typer", "httpx", "httpcore", "anyio")
    assert not {m for m in loaded if m.partition(".")[0] in refused}
    # a command line only typer reads (an unknown option) still gets typer's message
    done, loaded = loaded_by(tmp_path, "edge", "run", "--config", "missing.toml", "--fast")
    assert done.returncode == 2
    assert "No such option: --fast" in done.stderr
    # a technician's command keeps its tables
    done, loaded = loaded_by(tmp_path, "edge", "status", "--config", "missing.toml")
    assert done.returncode == 2, done.stderr[-2000:]
    assert "rich" in loaded


def test_a_log_level_that_does_not_exist_is_named_on_either_path(tmp_path) -> None:
    for args in (["edge", "run", "-c", "e.toml"], ["edge", "status", "-c", "e.toml"]):
        done = subprocess.run(
            [sys.executable, "-m", "gridgate", "--log-level", "LOUD", *args],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env={**os.environ, "COLUMNS": "200"},  # typer's box keeps the message on one line
        )
        assert done.returncode == 2, args
        assert "'LOUD' is not one of DEBUG, INFO, WARNING, ERROR" in done.stderr, args


# a program run as `gridgate` is: its main() reads the arguments it was started with
TYPED = """
import os
print("started with PYTHONMALLOC", os.environ.get("PYTHONMALLOC"), flush=True)
from gridgate.cli import main
main()
"""
# a program that calls main() with arguments of its own
CALLED = TYPED.replace(
    "from gridgate", 'sys.argv = ["gridgate", "edge", "run", "-c", "missing.toml"]\nfrom gridgate'
).replace("import os", "import os, sys")


@pytest.mark.skipif(not is_glibc(), reason="the daemon chooses glibc's allocator on glibc only")
def test_the_daemon_runs_itself_again_only_when_typed(tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONMALLOC"}
    typed = subprocess.run(
        [sys.executable, "-c", TYPED, "edge", "run", "--config", "missing.toml"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    # once as started, once again with glibc serving its objects (edge/malloc.py)
    assert typed.stdout.splitlines() == [
        "started with PYTHONMALLOC None",
        "started with PYTHONMALLOC malloc",
    ], typed.stderr[-2000:]
    assert typed.returncode == 2  # and the missing configuration named, as ever
    assert "missing.toml" in typed.stderr
    called = subprocess.run(
        [sys.executable, "-c", CALLED], capture_output=True, text=True, cwd=tmp_path, env=env
    )
    # main() called with arguments of the program's own: that program is not run again
    assert called.stdout.splitlines() == ["started with PYTHONMALLOC None"], called.stderr[-2000:]
    assert called.returncode == 2
    assert "missing.toml" in called.stderr


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


def command_tree() -> list[tuple[list[str], object]]:
    """Every command and group under `gridgate`, as (words after `gridgate`, click command)."""
    import typer.main

    found: list[tuple[list[str], object]] = []

    def walk(words: list[str], command: object) -> None:
        found.append((words, command))
        for name, sub in getattr(command, "commands", {}).items():
            walk([*words, name], sub)

    walk([], typer.main.get_command(app))
    return found


@pytest.mark.parametrize("words", [words for words, _ in command_tree()], ids=" ".join)
def test_help_fits_80_columns_and_shows_flags_as_flags(words: list[str]) -> None:
    result = runner.invoke(app, [*words, "--help"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    wide = [line for line in result.output.splitlines() if len(line) > 80]
    assert wide == []
    assert "<bool>" not in result.output  # --help, --json, --report take no value
    assert "--help" in result.output


def test_each_group_names_every_command_it_holds() -> None:
    """`gridgate --help` and `gridgate cloud --help` are where a person looks for a command: each
    group's summary, as its parent lists it, names all of its own."""
    for words, command in command_tree():
        held = getattr(command, "commands", {})
        if not words or not held:
            continue
        summary = command.get_short_help_str(limit=1000)
        missing = [name for name in held if name not in summary]
        assert missing == [], f"gridgate {' '.join(words)}: {summary!r}"

"""`gridgate`: one console command, a sub-command group per package
(docs/architecture.md: Command line).

Only the group a command line names is imported (`gridgate.commands.mount`): the gateway's
daemon never loads the cloud's or the simulators' code. The daemon is also the one command that
runs for months on a Raspberry Pi, so its process goes further:

- `gridgate [--log-level L] [--json-logs|--console-logs] edge run --config PATH` starts it
  without typer and click (`daemon_options`; ~2.5 MB). Any other spelling of the command line,
  and `--help`, goes through typer as usual, with its messages.
- that process runs itself again, at once, with Python's objects served by glibc's allocator
  (PYTHONMALLOC=malloc; `edge.malloc` says why and when: a typed command line, on glibc,
  PYTHONMALLOC not set): the same process id, so systemd and signals see one process.
- it refuses modules its libraries import whenever they are installed, for things
  the daemon never does (`DAEMON_REFUSES`): rich and pygments (structlog's pretty tracebacks
  and httpx's command line, ~5 MB; the daemon's `doctor` command loads httpx), greenlet
  (structlog's deprecated greenlet-local context; a C++ runtime, ~1 MB), click (httpx's
  command line again). None in `sys.modules` is Python's
  way to refuse an import: the importers fall back, as where those packages are not installed.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NamedTuple

GROUPS = ("demo", "sim", "edge", "cloud")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
# click: httpx imports its command line (click first) whenever click is installed
DAEMON_REFUSES = ("rich", "pygments", "greenlet", "click")


class DaemonOptions(NamedTuple):
    log_level: str
    json_logs: bool | None
    config: Path


def daemon_options(args: list[str]) -> DaemonOptions | None:
    """The options of `gridgate [--log-level L] [--json-logs|--console-logs] edge run
    --config PATH` (also `--log-level=L`, `-c PATH`, `-cPATH`, `--config=PATH`), read as
    typer reads them; None for any other command line."""
    log_level, json_logs, config = "INFO", None, None
    rest = list(args)
    while rest and rest[0] != "edge":
        arg = rest.pop(0)
        if arg in ("--json-logs", "--console-logs"):
            json_logs = arg == "--json-logs"
        elif arg == "--log-level" and rest:
            log_level = rest.pop(0)
        elif arg.startswith("--log-level="):
            log_level = arg.partition("=")[2]
        else:
            return None
    if rest[:2] != ["edge", "run"]:
        return None
    rest = rest[2:]
    while rest:
        arg = rest.pop(0)
        if arg in ("--config", "-c") and rest and config is None:
            config = rest.pop(0)
        elif arg.startswith("--config=") and config is None:
            config = arg.partition("=")[2]
        elif arg.startswith("-c") and len(arg) > 2 and config is None:
            config = arg[2:]
        else:
            return None
    if not config:
        return None
    return DaemonOptions(log_level, json_logs, Path(config))


def log_level_problem(level: str) -> str | None:
    """Why `--log-level` cannot be `level`, or None (any case: `info` is INFO)."""
    if level.upper() in LOG_LEVELS:
        return None
    return f"{level!r} is not one of {', '.join(LOG_LEVELS)}"


def _refuse(names: tuple[str, ...]) -> None:
    for name in names:
        if name not in sys.modules:
            sys.modules[name] = None  # type: ignore[assignment]


def main() -> None:
    args = sys.argv[1:]
    options = daemon_options(args)
    if options is not None:
        problem = log_level_problem(options.log_level)
        if problem:
            print(f"gridgate: invalid value for --log-level: {problem}", file=sys.stderr)
            sys.exit(2)
        from edge.malloc import run_again_with_glibc_objects

        run_again_with_glibc_objects(args)
        _refuse(DAEMON_REFUSES)
        from edge.daemon import run_from_file
        from shared import configure_logging

        configure_logging(options.log_level, json_output=options.json_logs)
        sys.exit(run_from_file(options.config))
    from gridgate.commands import mount

    named = next((arg for arg in args if arg in GROUPS), None)
    mount(named)()

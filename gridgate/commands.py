"""The `gridgate` command's typer application: the root options, `demo`, and a sub-command
group per package, each imported only when its command line names it (`mount`).

What a person's terminal shows: a command that answers and exits (the cloud's admin and billing
commands) prints its answer and, unless `--log-level` is given, only warnings and errors; the
demo prints its banner and keeps its log in its data folder; services log at INFO.
"""

from __future__ import annotations

from pathlib import Path

import typer

from gridgate import __version__
from gridgate.cli import log_level_problem

app = typer.Typer(
    rich_markup_mode="markdown",
    name="gridgate",
    help="GridGate: read electricity meters at the edge, sync them to the cloud, bill them.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"gridgate {__version__}")
        raise typer.Exit()


def _check_log_level(level: str | None) -> str | None:
    problem = log_level_problem(level) if level is not None else None
    if problem:
        raise typer.BadParameter(problem)
    return level


@app.callback()
def _root(
    log_level: str | None = typer.Option(
        None,
        callback=_check_log_level,
        help="Log level: DEBUG, INFO, WARNING, ERROR. Default: INFO, but the cloud's one-off"
        " commands show only warnings and the demo keeps its log in its data folder.",
    ),
    json_logs: bool | None = typer.Option(
        None, "--json-logs/--console-logs", help="Log format (default: JSON unless a terminal)."
    ),
    version: bool = typer.Option(
        False, "--version", callback=_show_version, is_eager=True, help="Print the version."
    ),
) -> None:
    from shared import configure_logging  # structlog: after main() has chosen what it loads

    configure_logging(log_level or "INFO", json_output=json_logs)


@app.command("demo")
def demo(
    ctx: typer.Context,
    data_dir: Path = typer.Option(
        Path("data/demo"), "--data-dir", help="Where the demo keeps everything."
    ),
    speed: float = typer.Option(
        1.0, "--speed", min=0.1, max=10_000, help="Meter physics speed-up."
    ),
    offline_for: float = typer.Option(
        0.0, "--offline-for", min=0, help="Minutes to keep the gateway's cloud link cut."
    ),
    port: int | None = typer.Option(None, "--port", help="Cloud port (default: a free one)."),
    duration: float | None = typer.Option(
        None, "--duration", help="Stop after this many seconds (default: until Ctrl-C)."
    ),
) -> None:
    """Run the whole system here: simulated meters, the edge daemon, the cloud and its dashboard.

    Uses GRIDGATE_DATABASE_URL when set, else an embedded PostgreSQL.

    Example: gridgate demo --speed 60 --offline-for 2
    """
    import asyncio

    from gridgate.demo import LOG_FILE, run  # the demo loads everything: only when asked for
    from shared import configure_logging

    # the terminal is the banner's and the live line's: the routine log goes to a file
    root = ctx.find_root().params
    configure_logging(
        root["log_level"] or "INFO",
        json_output=root["json_logs"],
        terminal_level="WARNING",
        log_file=data_dir.resolve() / LOG_FILE,
    )
    asyncio.run(
        run(
            data_dir.resolve(),
            speed=speed,
            offline_for_min=offline_for,
            duration_s=duration,
            port=port,
        )
    )


# What each group holds, every sub-command named: `gridgate --help` is where a person looks.
GROUP_SUMMARIES = {
    "sim": "Simulated meters: modbus (an RTU bus on a pty, Modbus TCP), dlms, mqtt; faults lists"
    " what they can be given.",
    "edge": "The gateway daemon (run, check-config, status) and the field technician's tools"
    " (scan, identify, read, enroll, doctor).",
    "cloud": "The cloud service: serve, migrate, admin, billing.",
}


def show_flags_as_flags() -> None:
    """Help that shows an on/off option as the flag it is (`--json`), not as an option taking a
    value (`--json <bool>`).

    typer 0.29's rich help writes every option's type beside it, flags' included, although its
    plain help leaves them out (`TyperOption.get_help_record`). Call once, before help is
    shown; to be removed when typer (pinned below 0.30) does this itself.
    """
    from typer.core import TyperOption

    typed = TyperOption.display_type_rich
    if getattr(typed, "shows_flags_as_flags", False):
        return

    def display_type_rich(self: TyperOption, ctx: typer.Context) -> str | None:
        return None if self.is_flag or self.count else typed(self, ctx)

    display_type_rich.shows_flags_as_flags = True  # type: ignore[attr-defined]
    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]


def mount(only: str | None = None) -> typer.Typer:
    """Add the package groups to `app` (all, or only `only`); returns `app`."""
    show_flags_as_flags()
    if only in (None, "sim"):
        from firmware_sim.cli import app as sim_app

        app.add_typer(sim_app, name="sim", help=GROUP_SUMMARIES["sim"])
    if only in (None, "edge"):
        from edge.cli import app as edge_app

        app.add_typer(edge_app, name="edge", help=GROUP_SUMMARIES["edge"])
    if only in (None, "cloud"):
        from cloud.cli import app as cloud_app

        app.add_typer(cloud_app, name="cloud", help=GROUP_SUMMARIES["cloud"])
    return app

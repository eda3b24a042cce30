"""`gridgate`: one console command, a sub-command group per package
(docs/architecture.md: Command line).

Only the group a command line names is imported: the gateway's daemon (`gridgate edge run`)
never loads the cloud's or the simulators' code, which keeps it small on a Raspberry Pi. Nor
does it load rich, the terminal renderer: structlog and httpx import it whenever it is installed
(for pretty tracebacks and httpx's own command line), which costs the daemon some 5 MB for output
it never shows; its process refuses the imports (`_without_terminal_renderer`).
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from gridgate import __version__

GROUPS = ("demo", "sim", "edge", "cloud")
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


@app.callback()
def _root(
    log_level: str = typer.Option("INFO", help="Log level: DEBUG, INFO, WARNING, ERROR."),
    json_logs: bool | None = typer.Option(
        None, "--json-logs/--console-logs", help="Log format (default: JSON unless a terminal)."
    ),
    version: bool = typer.Option(
        False, "--version", callback=_show_version, is_eager=True, help="Print the version."
    ),
) -> None:
    from shared import configure_logging  # structlog: after main() has chosen what it loads

    configure_logging(log_level, json_output=json_logs)


@app.command("demo")
def demo(
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

    from gridgate.demo import run  # the demo loads everything: only when asked for

    asyncio.run(
        run(
            data_dir.resolve(),
            speed=speed,
            offline_for_min=offline_for,
            duration_s=duration,
            port=port,
        )
    )


def mount(only: str | None = None) -> typer.Typer:
    """Add the package groups to `app` (all, or only `only`); returns `app`."""
    if only in (None, "sim"):
        from firmware_sim.cli import app as sim_app

        app.add_typer(
            sim_app,
            name="sim",
            help="Simulated meters: Modbus RTU/TCP bus, DLMS/COSEM meter, MQTT meters.",
        )
    if only in (None, "edge"):
        from edge.cli import app as edge_app

        app.add_typer(
            edge_app, name="edge", help="The gateway daemon and the field technician's tools."
        )
    if only in (None, "cloud"):
        from cloud.cli import app as cloud_app

        app.add_typer(cloud_app, name="cloud", help="The cloud service: serve, migrate, admin.")
    return app


def runs_the_daemon(args: list[str]) -> bool:
    """`gridgate [options] edge run ...` without --help: the long-running gateway process."""
    if "--help" in args or "edge" not in args:
        return False
    after = [arg for arg in args[args.index("edge") + 1 :] if not arg.startswith("-")]
    return after[:1] == ["run"]


TERMINAL_RENDERERS = ("rich", "pygments")  # pygments: the highlighter httpx's CLI loads first


def _without_terminal_renderer() -> None:
    """Make `import rich` (and pygments) fail in this process (None in sys.modules is Python's
    way to refuse a module): importers fall back to plain output, as where they are not
    installed."""
    for name in TERMINAL_RENDERERS:
        if name not in sys.modules:
            sys.modules[name] = None  # type: ignore[assignment]


def main() -> None:
    args = sys.argv[1:]
    if runs_the_daemon(args):
        _without_terminal_renderer()
    named = next((arg for arg in args if arg in GROUPS), None)
    mount(named)()

"""The `gridgate` command's typer application: the root options, `demo`, and a sub-command
group per package, each imported only when its command line names it (`mount`).
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


def _check_log_level(level: str) -> str:
    problem = log_level_problem(level)
    if problem:
        raise typer.BadParameter(problem)
    return level


@app.callback()
def _root(
    log_level: str = typer.Option(
        "INFO", callback=_check_log_level, help="Log level: DEBUG, INFO, WARNING, ERROR."
    ),
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

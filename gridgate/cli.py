"""`gridgate`: one console command, a sub-command group per package (DESIGN.md: Command line)."""

from __future__ import annotations

import typer

from cloud.cli import app as cloud_app
from edge.cli import app as edge_app
from firmware_sim.cli import app as sim_app
from gridgate import __version__, demo
from shared import configure_logging

app = typer.Typer(
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
    configure_logging(log_level, json_output=json_logs)


app.add_typer(
    sim_app, name="sim", help="Simulated meters: Modbus RTU/TCP bus, DLMS/COSEM meter, MQTT meters."
)
app.add_typer(cloud_app, name="cloud", help="The cloud service: serve, migrate, admin.")
app.command("demo")(demo.main)
app.add_typer(edge_app, name="edge", help="The gateway daemon and the field technician's tools.")


def main() -> None:
    app()

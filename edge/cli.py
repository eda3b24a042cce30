"""`gridgate edge`: the gateway daemon and its status."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from .config import ConfigError, EdgeConfig, load_config
from .status import read_status

app = typer.Typer(help="The gateway daemon and the field technician's tools.", no_args_is_help=True)
ConfigOption = typer.Option(..., "--config", "-c", help="The gateway's TOML configuration.")


def _load(path: Path) -> EdgeConfig:
    try:
        return load_config(path)
    except ConfigError as exc:
        for problem in exc.problems:
            typer.echo(f"gridgate edge: {problem}", err=True)
        raise typer.Exit(2) from None


@app.command("check-config")
def check_config(config: Path = typer.Argument(..., help="The TOML file to check.")) -> None:
    """Validate a configuration file; every problem is printed as FILE:LINE: key: problem.

    Example: gridgate edge check-config /etc/gridgate/edge.toml
    """
    loaded = _load(config)
    meters = sum(len(b.meters) for b in loaded.buses)
    typer.echo(f"{config}: ok ({len(loaded.buses)} buses, {meters} meters)")


@app.command()
def run(config: Path = ConfigOption) -> None:
    """Run the daemon until SIGTERM or Ctrl-C.

    Example: gridgate edge run --config /etc/gridgate/edge.toml
    """
    from .daemon import Daemon

    loaded = _load(config)
    asyncio.run(Daemon(loaded).run())


def _age(iso: str | None) -> str:
    if not iso:
        return "never"
    seconds = (datetime.now(UTC) - datetime.fromisoformat(iso)).total_seconds()
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"


@app.command()
def status(
    config: Path = ConfigOption,
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Buses, meters (last read, errors), open alerts, backlog and last sync — from the store,
    also while the daemon runs.

    Example: gridgate edge status --config /etc/gridgate/edge.toml
    """
    loaded = _load(config)
    try:
        report = read_status(loaded.store_path)
    except FileNotFoundError as exc:
        typer.echo(f"gridgate edge: {exc}", err=True)
        raise typer.Exit(2) from None
    if as_json:
        typer.echo(json.dumps(report, indent=2, default=str))
        return
    console = Console()
    daemon = report["daemon"]
    clock = daemon.get("clock_synced")
    console.print(
        f"[bold]{loaded.gateway.id}[/] · store {report['store']} · updated"
        f" {_age(daemon.get('updated_at'))} · clock "
        + ("[green]synchronised[/]" if clock else "[red]NOT synchronised[/]")
    )
    meters = Table(
        "meter",
        "bus",
        "last good read",
        "reads",
        "timeouts",
        "CRC",
        "exceptions",
        "latency",
        "last error",
        title="Meters",
    )
    for meter_id, stats in sorted(report["meters"].items()):
        failing = stats.get("failures_in_row", 0) > 0
        meters.add_row(
            f"[red]{meter_id}[/]" if failing else meter_id,
            stats.get("bus", ""),
            _age(stats.get("last_good_read")),
            str(stats.get("good_reads", 0)),
            str(stats.get("timeouts", 0)),
            str(stats.get("crc_errors", 0)),
            str(stats.get("exceptions", 0)),
            f"{stats['latency_ms']:.0f} ms" if stats.get("latency_ms") is not None else "-",
            (stats.get("last_error") or "")[:50] if failing else "",
        )
    console.print(meters)
    if report["alerts"]:
        alerts = Table("meter", "alert", "quantity", title="Open alerts")
        for alert in report["alerts"]:
            alerts.add_row(
                alert["meter_id"] or "(gateway)",
                f"[yellow]{alert['kind']}[/]",
                alert["quantity"] or "",
            )
        console.print(alerts)
    else:
        console.print("Open alerts: [green]none[/]")
    backlog, sync = report["backlog"], report["sync"]
    colour = "green" if backlog["readings"] < 10_000 else "yellow"
    console.print(
        f"Backlog: [{colour}]{backlog['readings']} readings[/], {backlog['events']} events"
        f" (oldest {backlog['oldest_unsent'] or '-'}) · last sync {_age(sync['last_sync_at'])}"
        + (f" · [red]last error: {sync['last_error']}[/]" if sync["last_error"] else "")
    )

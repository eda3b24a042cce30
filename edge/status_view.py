"""What `gridgate edge status` shows, laid out to fit a terminal 80 columns wide.

Each fact is a line of its own, so a narrow terminal wraps between facts, not through them; a
table per bus, so no column is spent repeating the bus; in the tables only the meter's id and
its errors may wrap, so the last read, the counts and the latency are never cut.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rich import box
from rich.console import Group, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from shared import QUANTITIES

from .clock import ClockState

ERROR_KINDS = (  # MeterStats counter, and how a technician reads it
    ("timeouts", "timeout"),
    ("crc_errors", "CRC"),
    ("frame_errors", "frame"),
    ("exceptions", "exception"),
    ("transport_errors", "port"),
)


def describe_age(iso: str | None, now: datetime | None = None) -> str:
    """'12 s ago', '5 min ago', '3.2 h ago', or 'never'."""
    if not iso:
        return "never"
    seconds = ((now or datetime.now(UTC)) - datetime.fromisoformat(iso)).total_seconds()
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"


def describe_local(iso: str) -> str:
    """'27 Nov 20:36 UTC': an instant in this machine's zone, as a technician reads it."""
    local = datetime.fromisoformat(iso).astimezone()
    return f"{local:%d %b %H:%M} {local.tzname()}".lstrip("0")


def describe_settings(version: int | None) -> str:
    """Which settings the daemon runs: its own file's, or a version from the cloud."""
    if version:
        return f"version {version} from the cloud"
    return "this gateway's own edge.toml"


def describe_errors(stats: dict[str, Any]) -> str:
    """'3 timeout, 8 CRC', or 'none'."""
    found = [f"{stats[key]} {name}" for key, name in ERROR_KINDS if stats.get(key)]
    return ", ".join(found) or "none"


def render_status(
    report: dict[str, Any], gateway_id: str, clock: ClockState, now: datetime | None = None
) -> Group:
    """The status report (`edge.status.read_status`) and the clock's state, ready to print."""
    daemon = report["daemon"]
    parts: list[RenderableType] = [
        f"[bold]{escape(gateway_id)}[/] · daemon updated"
        f" {describe_age(daemon.get('updated_at'), now)}",
        f"Clock: [{'green' if clock.trusted else 'red'}]{escape(clock.detail)}[/]",
        Text(f"Store: {report['store']}", overflow="fold"),
        f"Settings: {describe_settings(daemon.get('config_version'))}",
    ]
    meters = report["meters"]
    buses = sorted({stats.get("bus", "") for stats in meters.values()})
    for bus in buses:
        parts.append(_meters_table(bus, report["buses"].get(bus, {}), meters, now))
    for meter_id, stats in sorted(meters.items()):
        error = stats.get("last_error")
        if stats.get("failures_in_row", 0) > 0 and error:
            # a protocol error names its meter already: say it once
            error = error.removeprefix(f"{meter_id}: ")
            parts.append(Text.assemble((f"{meter_id}", "red"), f": {error}", overflow="fold"))
    if report["alerts"]:
        parts.append("[bold]Open alerts[/]")
        for alert in report["alerts"]:
            about = QUANTITIES.get(alert["quantity"] or "")
            parts.append(
                Text.assemble(
                    "  ",
                    (alert["kind"].replace("_", " ").capitalize(), "yellow"),
                    f" · {alert['meter_id'] or 'the gateway'}",
                    f" · {about.description}" if about else "",
                    overflow="fold",
                )
            )
    else:
        parts.append("Open alerts: [green]none[/]")
    backlog, sync = report["backlog"], report["sync"]
    colour = "green" if backlog["readings"] < 10_000 else "yellow"
    oldest = backlog["oldest_unsent"]
    parts.append(
        f"Backlog: [{colour}]{backlog['readings']:,} readings[/], {backlog['events']:,} events"
        + (f" (oldest {describe_local(oldest)}, {describe_age(oldest, now)})" if oldest else "")
    )
    parts.append(f"Last sync: {describe_age(sync['last_sync_at'], now)}")
    if sync["last_error"]:
        parts.append(Text.assemble("  last error: ", (sync["last_error"], "red"), overflow="fold"))
    return Group(*parts)


def _meters_table(
    bus: str, about: dict[str, Any], meters: dict[str, dict[str, Any]], now: datetime | None
) -> Table:
    utilisation = about.get("utilisation")
    title = " · ".join(
        part
        for part in (
            f"Bus {bus}",
            about.get("kind", ""),
            f"{utilisation:.0%} busy" if utilisation is not None else "",
        )
        if part
    )
    table = Table(title=escape(title), title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("meter", overflow="fold", min_width=12)
    table.add_column("last read", no_wrap=True)
    table.add_column("reads", justify="right", no_wrap=True)
    table.add_column("errors", overflow="fold", min_width=9)
    table.add_column("latency", justify="right", no_wrap=True)
    for meter_id, stats in sorted(meters.items()):
        if stats.get("bus", "") != bus:
            continue
        failing = stats.get("failures_in_row", 0) > 0
        latency = stats.get("latency_ms")
        table.add_row(
            Text(meter_id, style="red" if failing else ""),
            describe_age(stats.get("last_good_read"), now),
            f"{stats.get('good_reads', 0):,}",
            describe_errors(stats),
            f"{latency:.0f} ms" if latency is not None else "-",
        )
    return table

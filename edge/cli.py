"""`gridgate edge`: the gateway daemon and its status.

The field tools' modules (DLMS, the scanner, enrollment, tables and progress bars) are imported
by the commands that use them: `gridgate edge run` loads none of them.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import typer

from protocols.errors import ProfileError, ProtocolError, TransportError
from protocols.modbus.timing import LineSettings
from shared import QUANTITIES, BusSettings

from .clock import GatewayClock
from .config import EdgeConfig, load_or_report

if TYPE_CHECKING:
    from rich.table import Table

app = typer.Typer(
    rich_markup_mode="markdown",
    help="The gateway daemon and the field technician's tools.",
    no_args_is_help=True,
)
ConfigOption = typer.Option(..., "--config", "-c", help="The gateway's TOML configuration.")


def _load(path: Path) -> EdgeConfig:
    loaded = load_or_report(path)
    if loaded is None:
        raise typer.Exit(2)
    return loaded


@app.command("check-config")
def check_config(config: Path = typer.Argument(..., help="The TOML file to check.")) -> None:
    """Validate a configuration file; every problem is printed as FILE:LINE: key: problem.

    Example: gridgate edge check-config /etc/gridgate/edge.toml
    """
    loaded = _load(config)
    meters = sum(len(b.meters) for b in loaded.buses)
    typer.echo(f"{config}: ok ({_count(len(loaded.buses), 'bus')}, {_count(meters, 'meter')})")


@app.command()
def run(config: Path = ConfigOption) -> None:
    """Run the daemon until SIGTERM or Ctrl-C.

    Example: gridgate edge run --config /etc/gridgate/edge.toml
    """
    from .daemon import run_from_file

    code = run_from_file(config)
    if code:
        raise typer.Exit(code)


@app.command()
def status(
    config: Path = ConfigOption,
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """The clock, buses, meters (last read, errors), open alerts, backlog and last sync.

    Read from the store, so it works while the daemon runs.

    Example: gridgate edge status --config /etc/gridgate/edge.toml
    """
    from rich.console import Console

    from .status import read_status
    from .status_view import render_status

    loaded = _load(config)
    try:
        report = read_status(loaded.store_path)
    except FileNotFoundError as exc:
        typer.echo(f"gridgate edge: {exc}", err=True)
        raise typer.Exit(2) from None
    # the clock in doctor's words, from the same definition the daemon stamps readings by
    clock = GatewayClock.from_config(loaded.clock).state()
    if as_json:
        typer.echo(json.dumps({**report, "clock": asdict(clock)}, indent=2, default=str))
        return
    Console().print(render_status(report, loaded.gateway.id, clock))


def _count(n: int, thing: str) -> str:
    """'1 meter', '2 meters', '3 buses'."""
    if n == 1:
        return f"1 {thing}"
    return f"{n} {thing}{'es' if thing.endswith('s') else 's'}"


def _fail(message: str) -> NoReturn:
    typer.echo(f"gridgate edge: {message}", err=True)
    raise typer.Exit(2)


def _line_settings(baud: str, parity: str, stop_bits: int) -> LineSettings | None:
    if baud == "auto":
        return None
    if not baud.isdigit():
        _fail(f"--baud {baud!r} must be a number like 9600, or auto")
    try:
        return LineSettings(baud=int(baud), parity=parity.upper(), stop_bits=stop_bits)
    except ValueError as exc:
        _fail(str(exc))


def _values_table(title: str, values: dict[str, float]) -> Table:
    from rich.table import Table

    table = Table("quantity", "name", "value", "unit", title=title)
    for quantity, value in values.items():
        q = QUANTITIES[quantity]
        table.add_row(quantity, q.name, f"{value:,.3f}", q.unit)
    return table


PortOption = typer.Option(..., "--port", "-p", help="Serial device (/dev/ttyUSB0) or HOST:PORT.")
BaudOption = typer.Option("9600", "--baud", help="Baud rate, or auto to try the common ones.")
ParityOption = typer.Option("N", "--parity", help="N, E or O.")
StopOption = typer.Option(1, "--stop-bits", help="1 or 2.")
JsonOption = typer.Option(False, "--json", help="Plain JSON instead of tables.")


@app.command()
def scan(
    port: str = PortOption,
    baud: str = BaudOption,
    parity: str = ParityOption,
    stop_bits: int = StopOption,
    units: str = typer.Option("1-247", "--units", help="Unit ids to ask: 1-247, 1,3,10-12."),
    timeout_s: float = typer.Option(
        0.06, "--timeout", help="Seconds to wait for each unit (9600 baud needs ~0.05)."
    ),
    write_config: Path | None = typer.Option(
        None, "--write-config", help="Append the meters found to this config as a new bus."
    ),
    report: bool = typer.Option(
        False,
        "--report",
        help="Send what was found to the cloud (this gateway's, from --config), for an admin"
        " to give the meters to consumers; their settings then come back by themselves.",
    ),
    config: Path = typer.Option(
        Path("/etc/gridgate/edge.toml"), "--config", "-c", help="The gateway's config (--report)."
    ),
    bus_name: str | None = typer.Option(
        None, "--bus", help="The bus's name in the settings (default: from the port)."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Find the meters on a bus: model, serial number and a sample reading of each.

    Example: gridgate edge scan --port /dev/ttyUSB0 --baud auto --units 1-32 --report
    """
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    from shared import FoundMeter

    from .enrollment import EnrollmentFailed, report_scan
    from .field import find_settings, parse_units
    from .field import scan as scan_bus

    try:
        wanted = parse_units(units)
    except ValueError as exc:
        _fail(str(exc))
    settings = _line_settings(baud, parity, stop_bits)
    console = Console(stderr=True)

    async def work() -> tuple[LineSettings, list]:
        chosen = settings
        if chosen is None:
            console.print("trying the common line settings...")
            chosen = await find_settings(port, wanted, max(timeout_s, 0.1))
            if chosen is None:
                _fail(f"no meter answered on {port} at any common setting; check wiring (A/B)")
        with Progress(console=console, transient=True, disable=as_json) as progress:
            task = progress.add_task(
                f"scanning {port} at {chosen.baud} {chosen.parity}", total=len(wanted)
            )
            found = await scan_bus(
                port,
                chosen,
                wanted,
                timeout_s=timeout_s,
                progress=lambda _unit: progress.advance(task),
            )
        return chosen, found

    try:
        chosen, found = asyncio.run(work())
    except TransportError as exc:
        _fail(f"{exc} (does the port exist, and is this user in the dialout group?)")
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "port": port,
                    "baud": chosen.baud,
                    "parity": chosen.parity,
                    "meters": [m.as_dict() for m in found],
                },
                indent=2,
            )
        )
    else:
        table = Table(
            "unit", "model", "serial", "sample", title=f"{port} at {chosen.baud} {chosen.parity}"
        )
        for meter in found:
            sample = ", ".join(
                f"{QUANTITIES[q].name} {v:,.2f} {QUANTITIES[q].unit}"
                for q, v in list(meter.values.items())[:3]
            )
            table.add_row(
                str(meter.unit),
                meter.model
                or ("[yellow]unknown[/]" if meter.identified else "[red]not identified[/]"),
                meter.serial or "-",
                sample or (meter.error or ""),
            )
        Console().print(table)
        if not found:
            typer.echo("no meter answered", err=True)
    if write_config is not None and found:
        _append_bus(write_config, port, chosen, [m for m in found if m.model])
    if report and found:
        loaded = _load(config)
        bus = _bus_settings(bus_name or _bus_name(port), port, chosen)
        try:
            sent = report_scan(
                loaded,
                bus,
                [
                    FoundMeter(unit=m.unit, model=m.model, serial=m.serial, sample=m.values)
                    for m in found
                ],
            )
        except EnrollmentFailed as exc:
            _fail(str(exc))
        typer.echo(
            f"reported {sent} meter{'s' if sent != 1 else ''} on {bus.name} to"
            f" {loaded.cloud.url}: an admin gives them to consumers on the gateway's settings"
            " page",
            err=True,
        )
    if not found:
        raise typer.Exit(1)


def _bus_name(port: str) -> str:
    return f"bus-{Path(port).name.replace(':', '-')}"


def _bus_settings(name: str, port: str, settings: LineSettings) -> BusSettings:
    if not port.startswith("/") and ":" in port:
        host, _, tcp_port = port.rpartition(":")
        return BusSettings(name=name, kind="modbus-tcp", host=host, tcp_port=int(tcp_port))
    return BusSettings(
        name=name,
        kind="modbus-rtu",
        port=port,
        baud=settings.baud,
        parity=settings.parity,
        stop_bits=settings.stop_bits,
    )


def _append_bus(path: Path, port: str, settings: LineSettings, meters: list) -> None:
    text = path.read_text() if path.exists() else ""
    name = _bus_name(port)
    lines = ["", "[[buses]]", f'name = "{name}"']
    if not port.startswith("/") and ":" in port:
        host, _, tcp_port = port.rpartition(":")
        lines += ['kind = "modbus-tcp"', f'host = "{host}"', f"tcp_port = {tcp_port}"]
    else:
        lines += [
            'kind = "modbus-rtu"',
            f'port = "{port}"',
            f"baud = {settings.baud}",
            f'parity = "{settings.parity}"',
            f"stop_bits = {settings.stop_bits}",
        ]
    for meter in meters:
        serial = f"-{meter.serial}" if meter.serial else ""
        lines += [
            "",
            "[[buses.meters]]",
            f'id = "{meter.model}-{meter.unit}{serial}"'[:80],
            f"unit = {meter.unit}",
            f'profile = "{meter.model}"',
        ]
    path.write_text(text.rstrip("\n") + "\n" + "\n".join(lines) + "\n")
    typer.echo(
        f"appended {_count(len(meters), 'meter')} to {path};"
        f" check it: gridgate edge check-config {path}"
    )


@app.command()
def identify(
    port: str = PortOption,
    unit: int = typer.Option(..., "--unit", min=1, max=247, help="The meter's unit id."),
    baud: str = BaudOption,
    parity: str = ParityOption,
    stop_bits: int = StopOption,
    timeout_s: float = typer.Option(0.5, "--timeout", help="Seconds to wait for each answer."),
    as_json: bool = JsonOption,
) -> None:
    """Say which model one meter is, and its serial number.

    A lost or damaged answer is asked for again, up to 4 times. Exit status: 0 when the meter
    is identified (or answers as no known model), 1 when its serial number could not be read,
    2 when it does not answer or cannot be identified.

    Example: gridgate edge identify --port /dev/ttyUSB0 --unit 3
    """
    from .field import IDENTIFY_TRIES, NotIdentified, open_line
    from .field import identify as identify_unit

    settings = _line_settings(baud, parity, stop_bits) or LineSettings()
    where = f"{port} at {settings.baud} {settings.parity}"

    async def work():
        line = open_line(port, settings)
        try:
            return await identify_unit(line, unit, timeout_s)
        finally:
            line.close()

    try:
        found = asyncio.run(work())
    except TransportError as exc:
        _fail(f"{exc} (does the port exist, and is this user in the dialout group?)")
    except NotIdentified as exc:
        _fail(f"{exc} on {where}; {exc.fix}")
    if found is None:
        _fail(f"unit {unit} does not answer on {where} ({IDENTIFY_TRIES} tries)")
    if as_json:
        typer.echo(json.dumps(found.as_dict(), indent=2))
    elif found.model is None:
        typer.echo(f"unit {unit}: unknown model ({found.error})")
    elif found.serial is None:
        typer.echo(f"unit {unit}: {found.model}, {found.error}")
    else:
        typer.echo(f"unit {unit}: {found.model}, serial {found.serial}")
    if found.model is not None and found.serial is None:
        raise typer.Exit(1)


@app.command()
def read(
    port: str = PortOption,
    unit: int = typer.Option(1, "--unit", min=1, max=247, help="Modbus unit id."),
    profile: str | None = typer.Option(None, "--profile", help="Model (else identified)."),
    baud: str = BaudOption,
    parity: str = ParityOption,
    stop_bits: int = StopOption,
    hdlc_address: int | None = typer.Option(
        None, "--hdlc-address", help="Read a DLMS/COSEM meter at this HDLC address instead."
    ),
    password: str | None = typer.Option(None, "--password", help="DLMS LLS password."),
    timeout_s: float = typer.Option(1.0, "--timeout", help="Seconds to wait for each answer."),
    as_json: bool = JsonOption,
) -> None:
    """Read one meter fully: every quantity with its unit.

    Example: gridgate edge read --port /dev/ttyUSB0 --unit 3 --profile sdm630
    Example: gridgate edge read --port /dev/ttyUSB1 --hdlc-address 17 --password 12345678
    """
    from rich.console import Console

    from protocols.modbus.profile import get_profile

    from .field import NotIdentified, open_line
    from .field import identify as identify_unit
    from .field import read_meter as read_unit

    settings = _line_settings(baud, parity, stop_bits) or LineSettings()

    async def work() -> tuple[str, dict[str, float]]:
        if hdlc_address is not None:
            from protocols.dlms.reader import (
                DlmsMeterConfig,
                DlmsMeterReader,
                hdlc_link_factory,
                wrapper_link_factory,
            )

            config = DlmsMeterConfig(
                "dlms",
                password=password.encode() if password else None,
                physical_address=hdlc_address,
                timeout_s=max(timeout_s, 1.0),
            )
            if not port.startswith("/") and ":" in port:
                host, _, tcp_port = port.rpartition(":")
                factory = wrapper_link_factory(host, int(tcp_port), config)
            else:
                factory = hdlc_link_factory(port, settings, config)
            samples = await DlmsMeterReader(config, factory).read()
            return "DLMS/COSEM", {s.quantity: s.value for s in samples}
        line = open_line(port, settings)
        try:
            chosen = profile
            if chosen is None:
                try:
                    found = await identify_unit(line, unit, timeout_s)
                except NotIdentified as exc:
                    _fail(f"{exc}; {exc.fix}, or give --profile")
                if found is None:
                    _fail(f"unit {unit} does not answer on {port}")
                if found.model is None:
                    _fail(f"unit {unit} is not a known model; give --profile")
                chosen = found.model
            try:
                model = get_profile(chosen)
            except ProfileError as exc:
                _fail(str(exc))
            return chosen, await read_unit(line, unit, model, timeout_s)
        finally:
            line.close()

    try:
        model, values = asyncio.run(work())
    except ProtocolError as exc:
        _fail(str(exc))
    if as_json:
        typer.echo(json.dumps({"model": model, "values": values}, indent=2))
    else:
        Console().print(_values_table(f"{model} at {port}", values))


@app.command()
def enroll(
    config: Path = ConfigOption,
    cloud: str = typer.Option(
        ..., "--cloud", help="The cloud's address, e.g. https://cloud.example.in"
    ),
    token: str = typer.Option(..., "--token", help="The one-time token from the cloud admin."),
) -> None:
    """Register this gateway with the cloud using a one-time token.

    Generates the gateway's key, registers its public half, and records the cloud's address in
    the config. The private key never leaves the gateway.

    Example: gridgate edge enroll -c edge.toml --cloud https://cloud.example.in --token AbC...
    """
    from .enrollment import EnrollmentFailed
    from .enrollment import enroll as enroll_gateway

    loaded = _load(config)
    try:
        board = enroll_gateway(loaded, cloud, token)
    except EnrollmentFailed as exc:
        _fail(str(exc))
    typer.echo(f"enrolled {loaded.gateway.id} on board {board}; key in {loaded.key_path}")


@app.command()
def doctor(config: Path = ConfigOption, as_json: bool = JsonOption) -> None:
    """Check ports, clock, disk, key and cloud; say what to fix (exit 1 if anything).

    Covers serial-port permissions, clock synchronisation, disk space, the gateway key and the
    cloud's reachability.

    Example: gridgate edge doctor --config /etc/gridgate/edge.toml
    """
    from rich.console import Console
    from rich.markup import escape

    from .enrollment import doctor as run_doctor

    loaded = _load(config)
    findings = run_doctor(loaded)
    if as_json:
        typer.echo(json.dumps([f.__dict__ for f in findings], indent=2))
    else:
        console = Console(soft_wrap=True)  # fixes are commands: never broken across lines
        for f in findings:
            mark = "[green]ok  [/]" if f.ok else "[red]FIX [/]"
            console.print(  # what a check says is text: '[cloud] url' is not markup
                f"{mark} {escape(f.check)}: {escape(f.detail)}"
                + (f"\n     → {escape(f.fix)}" if f.fix and not f.ok else "")
            )
    if not all(f.ok for f in findings):
        raise typer.Exit(1)

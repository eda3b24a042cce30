"""`gridgate sim`: simulated meters on a pty, a TCP port or an MQTT broker, until stopped."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import sys
import textwrap
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

import typer

from protocols.modbus.timing import LineSettings

from .clock import SimClock
from .faults import FaultError, FaultTarget, apply_fault, parse_fault_spec
from .fleet import MeterSpecError, build_modbus_meters, parse_meter_spec, physics_for
from .pty_line import LinkPathError
from .rtu_bus import RtuBus
from .tcp_server import ModbusTcpServer

app = typer.Typer(
    rich_markup_mode="markdown",
    help="Simulated meters for tests, demos and benchmarks. Each runs until Ctrl-C.",
    no_args_is_help=True,
)


def fail(message: str) -> None:
    """One line on stderr, exit status 2: how every bad input ends."""
    typer.echo(f"gridgate sim: {message}", err=True)
    raise typer.Exit(2)


def parse_host_port(text: str, option: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        fail(f"{option} {text!r} must look like HOST:PORT (port 0 picks a free one)")
    return host or "127.0.0.1", int(port)


class Face(Protocol):
    """Something that serves simulated meters: a pty line or a TCP server."""

    async def start(self) -> None: ...
    async def stop(self) -> None: ...


def serve_faces(faces: list[tuple[Face, Callable[[], str]]]) -> None:
    """Start every face, print where each listens, run until a signal, stop them all."""

    async def start() -> None:
        for face, describe in faces:
            await face.start()
            typer.echo(describe())
        sys.stdout.flush()

    async def stop() -> None:
        for face, _ in faces:
            await face.stop()

    try:
        asyncio.run(run_until_stopped(start, stop))
    except LinkPathError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot listen: {exc.strerror or exc}")


async def run_until_stopped(
    start: Callable[[], Awaitable[None]], stop: Callable[[], Awaitable[None]]
) -> None:
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    await start()
    try:
        await stopping.wait()
    finally:
        await stop()


@app.command("modbus")
def modbus(
    meter: list[str] = typer.Option(
        ..., "--meter", "-m", help="UNIT:MODEL, repeatable (models: sdm630 sdm120 em24 iem3000)."
    ),
    link: Path | None = typer.Option(None, help="Symlink to create to the gateway end of the pty."),
    tcp: str | None = typer.Option(None, help="Also serve Modbus TCP on HOST:PORT."),
    baud: int = typer.Option(9600, help="Line speed; sets the simulated wire time."),
    parity: str = typer.Option("N", help="N, E or O."),
    stop_bits: int = typer.Option(1, help="1 or 2."),
    turnaround_ms: float = typer.Option(5.0, help="Each meter's answer delay after a request."),
    fault: list[str] = typer.Option([], help="UNIT:NAME[=VALUE], repeatable; see `faults`."),
    speed: float = typer.Option(1.0, help="Simulated time runs this many times faster."),
    seed: int = typer.Option(1, help="Seed of the meters' load models."),
) -> None:
    """A Modbus RTU bus of meters on a pseudo-terminal (and optionally Modbus TCP).

    Example: gridgate sim modbus --link /tmp/rs485 --meter 1:sdm630 --meter 2:sdm120 --meter 3:em24
    """
    try:
        specs = [parse_meter_spec(text) for text in meter]
        line = LineSettings(baud=baud, parity=parity.upper(), stop_bits=stop_bits)  # type: ignore[arg-type]
        if speed <= 0:
            raise ValueError(f"--speed must be positive, got {speed}")
        clock = SimClock(speed=speed)
        meters = build_modbus_meters(specs, clock, seed=seed, turnaround_s=turnaround_ms / 1000)
        by_unit = {m.unit_id: m for m in meters}
        for text in fault:
            unit, name, value = parse_fault_spec(text, with_unit=True)
            if unit not in by_unit:
                raise FaultError(f"fault {text!r}: no meter with unit id {unit}")
            target = by_unit[unit]
            apply_fault(FaultTarget(target.physics, target.faults, clock.now_s), name, value)
    except (MeterSpecError, FaultError, ValueError) as exc:
        fail(str(exc))
    if link is None and tcp is None:
        fail("give --link PATH (RTU on a pty) and/or --tcp HOST:PORT")
    units = sorted(by_unit)
    faces: list[tuple[Face, Callable[[], str]]] = []
    if link is not None:
        bus = RtuBus(meters, line, link=link, seed=seed)
        faces.append(
            (
                bus,
                lambda: (
                    f"modbus rtu: {bus.device_path} linked at {link} "
                    f"({baud} {parity}{stop_bits}), units {units}"
                ),
            )
        )
    if tcp:
        server = ModbusTcpServer(meters, *parse_host_port(tcp, "--tcp"), seed=seed)
        faces.append((server, lambda: f"modbus tcp: {server.host}:{server.port}, units {units}"))
    serve_faces(faces)


@app.command("mqtt")
def mqtt(
    broker: str | None = typer.Option(
        None, help="mqtt://HOST:PORT of the broker; without it an embedded broker is started."
    ),
    meters: int = typer.Option(1, min=1, max=500, help="How many meters to simulate."),
    interval_s: float = typer.Option(10.0, help="Seconds between readings (Tasmota TelePeriod)."),
    topic_prefix: str = typer.Option("", help="Prepended to every topic (e.g. site1/)."),
    fault: list[str] = typer.Option(
        [], help="INDEX:NAME[=VALUE] (meter 1..N), repeatable; physics faults only."
    ),
    speed: float = typer.Option(1.0, help="Simulated time runs this many times faster."),
    seed: int = typer.Option(1, help="Seed of the meters' load models."),
) -> None:
    """Single-phase MQTT meters publishing Tasmota-style JSON, with retained LWT status.

    Example: gridgate sim mqtt --broker mqtt://127.0.0.1:1883 --meters 3
    """
    from protocols.mqtt.embedded_broker import embedded_broker

    from .mqtt_meter import MqttMeterSettings, SimulatedMqttMeter

    host, port = ("127.0.0.1", 0)
    if broker is not None:
        parts = urlsplit(broker)
        if parts.scheme != "mqtt" or not parts.hostname:
            fail(f"--broker {broker!r} must look like mqtt://HOST:PORT")
        host, port = parts.hostname, parts.port or 1883
    if speed <= 0:
        fail(f"--speed must be positive, got {speed}")
    clock = SimClock(speed=speed)
    physics = {index: physics_for(seed * 1000 + index, 1, clock) for index in range(1, meters + 1)}
    try:
        for text in fault:
            index, name, value = parse_fault_spec(text, with_unit=True)
            if index not in physics:
                raise FaultError(f"fault {text!r}: no meter number {index} (1-{meters})")
            apply_fault(FaultTarget(physics[index], None, clock.now_s), name, value)
    except FaultError as exc:
        fail(str(exc))
    broker_cm: contextlib.AbstractAsyncContextManager[int | None] = (
        embedded_broker() if broker is None else contextlib.nullcontext(port)
    )
    stack = contextlib.AsyncExitStack()
    sims: list[SimulatedMqttMeter] = []

    async def start() -> None:
        bound = await stack.enter_async_context(broker_cm)
        if broker is None:
            typer.echo(f"embedded mqtt broker: mqtt://127.0.0.1:{bound}")
        for index in range(1, meters + 1):
            device = f"gridgate-sim-{seed}-{index}"
            settings = MqttMeterSettings(host, int(bound or port), device, topic_prefix, interval_s)
            sim = SimulatedMqttMeter(settings, physics[index], clock)
            await sim.start()
            sims.append(sim)
            typer.echo(f"mqtt meter {device}: {sim.topic('SENSOR')} every {interval_s:g} s")
        sys.stdout.flush()

    async def stop() -> None:
        for sim in sims:
            await sim.stop()
        await stack.aclose()

    try:
        asyncio.run(run_until_stopped(start, stop))
    except (OSError, TimeoutError) as exc:
        fail(f"cannot reach the MQTT broker at {host}:{port}: {exc}")


@app.command("dlms")
def dlms(
    link: Path | None = typer.Option(None, help="Symlink to the pty of the meter's HDLC port."),
    tcp: str | None = typer.Option(None, help="Also serve the DLMS TCP wrapper on HOST:PORT."),
    baud: int = typer.Option(9600, help="HDLC line speed; sets the simulated wire time."),
    hdlc_address: int = typer.Option(17, min=16, max=0x3FFD, help="Physical HDLC address."),
    password: str | None = typer.Option(
        None, help="Require a low-level-security association with this password."
    ),
    phases: int = typer.Option(3, help="1 or 3."),
    fault: list[str] = typer.Option([], help="NAME[=VALUE], repeatable; see `faults`."),
    speed: float = typer.Option(1.0, help="Simulated time runs this many times faster."),
    seed: int = typer.Option(1, help="Seed of the meter's load model."),
    keys: Path | None = typer.Option(
        None,
        help="IS 15959 associations with HLS-GMAC: a TOML file with guek, gak and"
        " meter_system_title (hex), as in a gateway's key file.",
    ),
    reader_auth: str = typer.Option("lls", help="With --keys: the meter reader's (SAP 32)"),
) -> None:
    """A DLMS/COSEM meter: HDLC on a pseudo-terminal and/or the TCP wrapper, with a load profile.

    Example: gridgate sim dlms --link /tmp/dlms --password 12345678 --speed 60

    With --keys the meter tells IS 15959's clients apart: public (16, no security), meter
    reader (32, LLS with --password or HLS-GMAC by --reader-auth) and utility settings (48,
    HLS-GMAC), and ciphers the HLS associations with suite 0.
    """
    from .dlms_line import DlmsTcpServer, HdlcMeterLine
    from .dlms_meter import SimulatedDlmsMeter
    from .dlms_security import load_meter_security

    if link is None and tcp is None:
        fail("give --link PATH (HDLC on a pty) and/or --tcp HOST:PORT")
    try:
        if phases not in (1, 3):
            raise ValueError(f"--phases must be 1 or 3, got {phases}")
        if speed <= 0:
            raise ValueError(f"--speed must be positive, got {speed}")
        line = LineSettings(baud=baud)
        clock = SimClock(speed=speed)
        meter = SimulatedDlmsMeter(
            physics_for(seed * 1000 + 500, phases, clock),
            clock,
            serial_number=31_000_000 + seed,
            physical_address=hdlc_address,
            password=password.encode() if password is not None else None,
            security=load_meter_security(keys, reader_auth) if keys is not None else None,
        )
        for text in fault:
            _, name, value = parse_fault_spec(text, with_unit=False)
            apply_fault(FaultTarget(meter.physics, meter.faults, clock.now_s), name, value)
    except (FaultError, ValueError) as exc:
        fail(str(exc))
    security = "LLS password" if password is not None else "no security"
    if meter.security is not None:
        security = f"IS 15959 clients 16/32 ({reader_auth})/48 (hls-gmac)"
    faces: list[tuple[Face, Callable[[], str]]] = []
    if link is not None:
        hdlc = HdlcMeterLine(meter, line, link, seed=seed)
        faces.append(
            (
                hdlc,
                lambda: (
                    f"dlms hdlc: {hdlc.device_path} linked at {link} ({baud} "
                    f"8N1), physical address {hdlc_address}, {security}"
                ),
            )
        )
    if tcp:
        server = DlmsTcpServer(meter, *parse_host_port(tcp, "--tcp"))
        faces.append((server, lambda: f"dlms tcp: {server.host}:{server.port}, {security}"))
    serve_faces(faces)


@app.command("faults")
def list_faults() -> None:
    """List the faults a simulated meter can be given with --fault.

    Example: gridgate sim faults
    """
    from .faults import FAULTS

    width = shutil.get_terminal_size().columns
    for name, (description, _) in FAULTS.items():
        # a description too long for the terminal goes on under itself, not under the names
        typer.echo(textwrap.fill(f"{name:<14} {description}", width, subsequent_indent=" " * 15))

"""The technician's tools on a bus: find the meters, say what they are, read one.

`scan` asks every unit id in a range with a short timeout; a unit that answers anything (even a
Modbus exception) is there. Its model is the known profile whose identification register holds
the expected value; its serial number and a sample reading follow from that profile. With
`baud="auto"` the common line settings are tried until one gets an answer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from protocols.errors import MeterException, MeterTimeout, ProtocolError, TransportError
from protocols.modbus.profile import ModbusProfile, builtin_profiles, get_profile
from protocols.modbus.reader import ModbusMeterConfig, ModbusMeterReader
from protocols.modbus.timing import LineSettings, read_response_bytes
from protocols.modbus.transport import ModbusLine, ModbusSerialLine, ModbusTcpLine
from shared import QUANTITIES

AUTO_SETTINGS = [  # the usual factory settings first, even parity after all the 8N1 rates
    *(LineSettings(baud=b, parity="N") for b in (9600, 19200, 38400, 4800, 2400, 115200)),
    *(LineSettings(baud=b, parity="E") for b in (9600, 19200, 38400)),
    LineSettings(baud=9600, parity="O"),
]


@dataclass
class FoundMeter:
    unit: int
    model: str | None  # None: it answers, but matches no known profile
    serial: str | None = None
    values: dict[str, float] = field(default_factory=dict)
    error: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "unit": self.unit,
            "model": self.model,
            "serial": self.serial,
            "values": {
                q: {"value": v, "unit": QUANTITIES[q].unit, "name": QUANTITIES[q].name}
                for q, v in self.values.items()
            },
            "error": self.error,
        }


def open_line(port: str, settings: LineSettings) -> ModbusLine:
    """A serial line, or Modbus TCP when `port` looks like HOST:PORT."""
    if not port.startswith("/") and ":" in port:
        host, _, tcp_port = port.rpartition(":")
        return ModbusTcpLine(host, int(tcp_port))
    return ModbusSerialLine(port, settings)


async def identify(
    line: ModbusLine, unit: int, timeout_s: float, profiles: dict[str, ModbusProfile] | None = None
) -> FoundMeter | None:
    """Who is at `unit`: None if nobody answers."""
    answered = False
    for profile in (profiles or builtin_profiles()).values():
        reader = ModbusMeterReader(
            ModbusMeterConfig(f"unit-{unit}", unit, profile, timeout_s), line
        )
        try:
            value = await reader.identify()
        except MeterTimeout:
            if not answered:
                return None  # silence: nobody at this unit id
            continue
        except (MeterException, ProtocolError) as exc:
            if isinstance(exc, TransportError):
                raise
            answered = True  # it spoke, just not this profile's language
            continue
        answered = True
        if profile.identify.matches(value):
            found = FoundMeter(unit, profile.model)
            try:
                found.serial = await reader.serial_number()
            except ProtocolError as exc:
                found.error = f"serial number: {exc}"
            return found
    return FoundMeter(unit, None, error="answers, but matches no known profile")


async def read_meter(
    line: ModbusLine, unit: int, profile: ModbusProfile, timeout_s: float
) -> dict[str, float]:
    reader = ModbusMeterReader(ModbusMeterConfig(f"unit-{unit}", unit, profile, timeout_s), line)
    return {s.quantity: s.value for s in await reader.read()}


async def scan(
    port: str,
    settings: LineSettings,
    units: list[int],
    *,
    timeout_s: float = 0.06,
    with_values: bool = True,
    progress: Callable[[int], None] | None = None,
) -> list[FoundMeter]:
    line = open_line(port, settings)
    found: list[FoundMeter] = []
    try:
        for unit in units:
            # a one-register probe with the short timeout finds who is there; only they are
            # asked (more patiently) what they are
            if not await probe(line, unit, timeout_s):
                if progress:
                    progress(unit)
                continue
            meter = await identify(line, unit, max(timeout_s, IDENTIFY_TIMEOUT_S))
            if meter is not None:
                if with_values and meter.model:
                    try:
                        meter.values = await read_meter(
                            line, unit, get_profile(meter.model), max(timeout_s, 0.5)
                        )
                    except ProtocolError as exc:
                        meter.error = f"reading: {exc}"
                found.append(meter)
            if progress:
                progress(unit)
    finally:
        line.close()
    return found


IDENTIFY_TIMEOUT_S = 0.3


async def probe(line: ModbusLine, unit: int, timeout_s: float) -> bool:
    """Does anything answer at `unit`? (An exception or a damaged frame is an answer too.)"""
    try:
        await line.read_registers(
            meter="probe",
            unit=unit,
            register_type="holding",
            address=0,
            count=1,
            timeout_s=timeout_s,
        )
    except MeterTimeout:
        return False
    except TransportError:
        raise
    except ProtocolError:
        return True
    return True


def probe_time_s(settings: LineSettings, timeout_s: float) -> float:
    """What probing one absent unit costs: the timeout, then the quiet the line keeps after a
    timeout (a late answer's full frame) and the inter-frame silence."""
    return 2 * timeout_s + settings.silence_s + read_response_bytes(1) * settings.character_s


async def find_settings(port: str, units: list[int], timeout_s: float = 0.1) -> LineSettings | None:
    """The first common line setting at which any unit in `units` answers."""
    for settings in AUTO_SETTINGS:
        line = open_line(port, settings)
        try:
            for unit in units:
                try:
                    await line.read_registers(
                        meter="probe",
                        unit=unit,
                        register_type="holding",
                        address=0,
                        count=1,
                        timeout_s=timeout_s,
                    )
                    return settings
                except MeterTimeout:
                    continue
                except TransportError:
                    raise
                except ProtocolError:
                    return settings  # an exception or a bad frame: someone is there
        finally:
            line.close()
    return None


def parse_units(text: str) -> list[int]:
    """`1-247`, `5`, `1,3,10-12` -> unit ids (1-247)."""
    units: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        low, _, high = part.partition("-")
        if not low.isdigit() or (high and not high.isdigit()):
            raise ValueError(f"units {text!r}: write them like 1-247 or 1,3,10-12")
        start, end = int(low), int(high or low)
        if not 1 <= start <= end <= 247:
            raise ValueError(f"units {text!r}: unit ids run from 1 to 247")
        units.update(range(start, end + 1))
    return sorted(units)

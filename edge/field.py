"""The technician's tools on a bus: find the meters, say what they are, read one.

`scan` asks every unit id in a range with a short timeout; a unit that answers anything (even a
Modbus exception) is there. Its model is the known profile whose identification register holds
the expected value; its serial number and a sample reading follow from that profile. With
`baud="auto"` the common line settings are tried until one gets an answer.

Identifying asks each question again, a bounded number of times, while its answer is lost or
damaged: on a line with CRC errors, a damaged answer says nothing about the model, so the meter
is either identified from a sound answer or reported as not identified (`NotIdentified`), never
guessed to be an unknown model.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from protocols.errors import (
    CrcError,
    FrameError,
    LateAnswer,
    MeterTimeout,
    ProtocolError,
    TransportError,
)
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
    model: str | None  # None: it answers, but matches no known profile (or was not identified)
    serial: str | None = None
    values: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    identified: bool = True  # False: its answers never came back sound enough to tell

    def as_dict(self) -> dict[str, object]:
        return {
            "unit": self.unit,
            "model": self.model,
            "identified": self.identified,
            "serial": self.serial,
            "values": {
                q: {"value": v, "unit": QUANTITIES[q].unit, "name": QUANTITIES[q].name}
                for q, v in self.values.items()
            },
            "error": self.error,
        }


# Each identifying question is asked at most this many times. On a line that damages one answer
# in ten, four damaged answers in a row happen once in ten thousand questions; each try costs at
# most the timeout and the quiet after it.
IDENTIFY_TRIES = 4

T = TypeVar("T")


class NotIdentified(ProtocolError):
    """The meter answered, but no sound answer to what identifies it came back within the tries.

    `failures` are the errors of the tries of the question that could not be answered.
    """

    def __init__(self, unit: int, failures: list[ProtocolError], tries: int) -> None:
        self.unit = unit
        self.failures = failures
        self.reason = f"could not identify ({describe_failures(failures, tries)})"
        super().__init__(self.reason, meter=f"unit {unit}")

    @property
    def fix(self) -> str:
        if all(isinstance(f, LateAnswer) for f in self.failures):
            return "it answers after the timeout: give a longer --timeout"
        return "check the bus's termination, wiring and shield, then try again"


def describe_failures(failures: list[ProtocolError], tries: int) -> str:
    """'CRC errors on 3 of 4 tries, no answer on 1': what the tries of one question met."""
    counts = Counter(_failure_kind(f) for f in failures)
    parts = [
        f"{kind} on {count} of {tries} tries" if i == 0 else f"{kind} on {count}"
        for i, (kind, count) in enumerate(counts.most_common())
    ]
    return ", ".join(parts)


def _failure_kind(error: ProtocolError) -> str:
    if isinstance(error, CrcError):
        return "CRC errors"
    if isinstance(error, LateAnswer):
        return "late answers"
    if isinstance(error, MeterTimeout):
        return "no answer"
    return "damaged answers"


class _Unanswered(Exception):
    def __init__(self, failures: list[ProtocolError]) -> None:
        self.failures = failures


async def _ask(question: Callable[[], Awaitable[T]], tries: int) -> T:
    """The answer to `question`, asked again while its answer is lost or damaged, `tries` times
    at most. Raises _Unanswered with every try's error when none came back sound."""
    failures: list[ProtocolError] = []
    for _ in range(tries):
        try:
            return await question()
        except (MeterTimeout, FrameError) as exc:
            failures.append(exc)
    raise _Unanswered(failures)


def open_line(port: str, settings: LineSettings) -> ModbusLine:
    """A serial line, or Modbus TCP when `port` looks like HOST:PORT."""
    if not port.startswith("/") and ":" in port:
        host, _, tcp_port = port.rpartition(":")
        return ModbusTcpLine(host, int(tcp_port))
    return ModbusSerialLine(port, settings)


async def identify(
    line: ModbusLine,
    unit: int,
    timeout_s: float,
    profiles: dict[str, ModbusProfile] | None = None,
    *,
    tries: int = IDENTIFY_TRIES,
) -> FoundMeter | None:
    """Who is at `unit`: None if nobody answers.

    Raises NotIdentified when the meter answers but one of the questions that tell its model
    gets no sound answer in `tries` tries. A model is found, and its serial number asked the same
    way; a serial number that cannot be read is noted in `error`.
    """
    answered = False
    for profile in (profiles or builtin_profiles()).values():
        reader = ModbusMeterReader(
            ModbusMeterConfig(f"unit-{unit}", unit, profile, timeout_s), line
        )
        try:
            value = await _ask(reader.identify, tries)
        except _Unanswered as lost:
            if all(type(f) is MeterTimeout for f in lost.failures):  # silence, every time
                if not answered:
                    return None  # nobody at this unit id
                continue  # some meters ignore a register they lack instead of refusing it
            raise NotIdentified(unit, lost.failures, tries) from lost.failures[-1]
        except TransportError:
            raise
        except ProtocolError:
            answered = True  # it spoke (a Modbus exception), just not this profile's language
            continue
        answered = True
        if profile.identify.matches(value):
            found = FoundMeter(unit, profile.model)
            try:
                found.serial = await _ask(reader.serial_number, tries)
            except _Unanswered as lost:
                found.error = (
                    f"serial number: could not read it ({describe_failures(lost.failures, tries)})"
                )
            except TransportError:
                raise
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
            try:
                meter = await identify(line, unit, max(timeout_s, IDENTIFY_TIMEOUT_S))
            except NotIdentified as exc:
                meter = FoundMeter(unit, None, error=exc.reason, identified=False)
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

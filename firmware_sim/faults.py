"""The fault catalogue: every fault a simulated meter can be given, by name, from the command
line (`--fault 2:crc_error=0.3`) or from a test (`apply_fault(meter, "crc_error", "0.3")`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .modbus_meter import LineFaults
from .physics import MeterPhysics


class FaultError(ValueError):
    """A fault name or value that cannot be used; the message says which and why."""


@dataclass(frozen=True)
class FaultTarget:
    """What a fault acts on: the meter's physics, and its line behaviour where it has a line."""

    physics: MeterPhysics
    line: LineFaults | None
    now_s: Callable[[], float]


def _rate(text: str | None) -> float:
    value = float(text) if text is not None else 1.0
    if not 0.0 <= value <= 1.0:
        raise FaultError(f"a rate must be between 0 and 1, got {value}")
    return value


def _number(text: str | None, default: float | None = None) -> float:
    if text is None:
        if default is None:
            raise FaultError("this fault needs a value (NAME=VALUE)")
        return default
    return float(text)


def _line(target: FaultTarget) -> LineFaults:
    if target.line is None:
        raise FaultError("this meter has no serial line; line faults apply to Modbus meters")
    return target.line


def _phase(text: str | None, target: FaultTarget) -> int:
    phase = int(_number(text, 1))
    if target.physics.shape.phases != 3 or phase not in (1, 2, 3):
        raise FaultError("phase_loss takes a phase 1-3 of a three-phase meter")
    return phase - 1


FAULTS: dict[str, tuple[str, Callable[[FaultTarget, str | None], None]]] = {
    "no_answer": (
        "the meter does not answer (rate)",
        lambda t, v: setattr(_line(t), "no_answer", _rate(v)),
    ),
    "late_answer": (
        "the meter answers this many seconds late",
        lambda t, v: setattr(_line(t), "late_answer_s", _number(v, 1.0)),
    ),
    "crc_error": (
        "answers carry a wrong CRC (rate)",
        lambda t, v: setattr(_line(t), "crc_error", _rate(v)),
    ),
    "garbage": (
        "random bytes instead of an answer (rate)",
        lambda t, v: setattr(_line(t), "garbage", _rate(v)),
    ),
    "truncated": (
        "answers cut off half way (rate)",
        lambda t, v: setattr(_line(t), "truncated", _rate(v)),
    ),
    "exception": (
        "every request answered with this exception code (6 = device busy)",
        lambda t, v: setattr(_line(t), "exception_code", int(_number(v, 6))),
    ),
    "clock_drift": (
        "the meter clock drifts this many seconds a day",
        lambda t, v: t.physics.set_fault(t.now_s(), clock_drift_s_per_day=_number(v, 60)),
    ),
    "clock_offset": (
        "the meter clock is this many seconds ahead (negative: behind), from now",
        lambda t, v: t.physics.set_meter_clock(t.now_s(), t.now_s() + _number(v, 300)),
    ),
    "reset": (
        "energy registers reset to zero now",
        lambda t, v: t.physics.reset_registers(t.now_s()),
    ),
    "rollover": (
        "the import register wraps at this many kWh, shortly",
        lambda t, v: t.physics.roll_over_soon(t.now_s(), _number(v, 100000.0)),
    ),
    "voltage_sag": (
        "voltages multiplied by this factor",
        lambda t, v: t.physics.set_fault(t.now_s(), voltage_sag=_number(v, 0.8)),
    ),
    "phase_loss": (
        "this phase (1-3) has no voltage or current",
        lambda t, v: t.physics.set_fault(t.now_s(), phase_loss=_phase(v, t)),
    ),
    "stuck": (
        "instantaneous values stop changing",
        lambda t, v: t.physics.set_fault(t.now_s(), stuck=True),
    ),
    "reverse_power": (
        "power flows to the grid",
        lambda t, v: t.physics.set_fault(t.now_s(), reverse_power=True),
    ),
}


def apply_fault(target: FaultTarget, name: str, value: str | None = None) -> None:
    """Apply fault `name` (with its optional value) to a meter."""
    try:
        _, action = FAULTS[name]
    except KeyError:
        raise FaultError(f"unknown fault {name!r}; known faults: {', '.join(FAULTS)}") from None
    try:
        action(target, value)
    except ValueError as exc:
        if isinstance(exc, FaultError):
            raise FaultError(f"fault {name}: {exc}") from None
        raise FaultError(f"fault {name}: bad value {value!r}") from exc


def parse_fault_spec(spec: str, *, with_unit: bool) -> tuple[int | None, str, str | None]:
    """`UNIT:NAME[=VALUE]` (Modbus buses) or `NAME[=VALUE]` -> (unit, name, value)."""
    unit: int | None = None
    if with_unit:
        unit_text, sep, spec = spec.partition(":")
        if not sep or not unit_text.isdigit():
            raise FaultError(f"fault {unit_text}{sep}{spec!r} must look like UNIT:NAME[=VALUE]")
        unit = int(unit_text)
    name, _, value = spec.partition("=")
    if name not in FAULTS:
        raise FaultError(f"unknown fault {name!r}; known faults: {', '.join(FAULTS)}")
    return unit, name, value or None

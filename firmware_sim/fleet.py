"""Building simulated meters from short specs such as `3:em24`, with physics to match."""

from __future__ import annotations

from dataclasses import dataclass

from protocols.errors import ProfileError
from protocols.modbus.profile import get_profile

from .clock import Clock
from .modbus_meter import SimulatedModbusMeter
from .physics import LoadShape, MeterPhysics

HISTORY_S = 86400.0  # meters start with a day of history so registers are not at zero


class MeterSpecError(ValueError):
    """A meter spec that cannot be used; the message says which and why."""


@dataclass(frozen=True)
class MeterSpec:
    unit_id: int
    model: str


def parse_meter_spec(text: str) -> MeterSpec:
    unit_text, sep, model = text.partition(":")
    if not sep or not unit_text.isdigit() or not model:
        raise MeterSpecError(f"meter {text!r} must look like UNIT:MODEL, e.g. 1:sdm630")
    unit = int(unit_text)
    if not 1 <= unit <= 247:
        raise MeterSpecError(f"meter {text!r}: unit id {unit} is outside 1-247")
    try:
        get_profile(model)
    except ProfileError as exc:
        raise MeterSpecError(f"meter {text!r}: {exc}") from None
    return MeterSpec(unit, model)


def check_unique_units(specs: list[MeterSpec]) -> None:
    seen: set[int] = set()
    for spec in specs:
        if spec.unit_id in seen:
            raise MeterSpecError(f"unit id {spec.unit_id} is used by more than one meter")
        seen.add(spec.unit_id)


def physics_for(
    seed: int, phases: int, clock: Clock, *, solar: bool = False, history_s: float = HISTORY_S
) -> MeterPhysics:
    """A consumer's load for one meter, with `history_s` of it behind; the seed picks its
    character."""
    scale = 0.6 + (seed % 7) / 6  # households of different sizes
    shape = LoadShape(
        phases=phases,
        base_kw=0.3 * scale * (2 if phases == 3 else 1),
        peak_kw=2.5 * scale * (2 if phases == 3 else 1),
        solar_kwp=3.0 if solar else 0.0,
    )
    now = clock.now_s()
    physics = MeterPhysics(
        seed=seed,
        shape=shape,
        start_s=now - history_s,
        initial_import_kwh=1000.0 + 97.3 * (seed % 50),
    )
    # the day of history is integrated now, not inside the first request's time to answer (a
    # third of a second on a slow machine: longer than a reader waits)
    physics.advance_to(now)
    return physics


def generation_physics_for(seed: int, clock: Clock, *, kwp: float = 3.0) -> MeterPhysics:
    """The generation meter of the household whose load `physics_for(seed, ..., solar=True)`
    draws: the same panels under the same clouds (the seed draws each day's), and no load, so
    the panels' whole output flows out through it and counts on its export register (2.8.0).
    Slot for slot it is at least what the household's own meter exports."""
    shape = LoadShape(phases=1, base_kw=0.0, peak_kw=0.0, appliance_kw=0.0, solar_kwp=kwp)
    now = clock.now_s()
    physics = MeterPhysics(seed=seed, shape=shape, start_s=now - HISTORY_S)
    physics.advance_to(now)
    return physics


def build_modbus_meters(
    specs: list[MeterSpec], clock: Clock, *, seed: int, turnaround_s: float
) -> list[SimulatedModbusMeter]:
    check_unique_units(specs)
    meters = []
    for spec in specs:
        profile = get_profile(spec.model)
        meter_seed = seed * 1000 + spec.unit_id
        meters.append(
            SimulatedModbusMeter(
                spec.unit_id,
                profile,
                physics_for(meter_seed, profile.phases, clock),
                clock,
                serial_number=21_000_000 + meter_seed,
                turnaround_s=turnaround_s,
                seed=meter_seed,
            )
        )
    return meters

"""Property: in every simulated meter model, apparent energy is never below active energy, at any
instant and through any fault but a register reset or rollover (which shift one register on
purpose); the increments agree with the power factor: kVAh² ≥ kWh² + kvarh² over any interval,
with equality inside a block (one power factor), and kVAh ≤ kWh + kvarh. Checked on the physics
and on what each meter's face reports: the Modbus register images (decoded as a reader does) and
the DLMS registers."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware_sim.clock import ManualClock
from firmware_sim.dlms_meter import SimulatedDlmsMeter
from firmware_sim.fleet import generation_physics_for, physics_for
from firmware_sim.modbus_meter import SimulatedModbusMeter
from firmware_sim.physics import MeterPhysics
from protocols.dlms.cosem import REGISTER, quantity_ln
from protocols.modbus.codec import decode_words
from protocols.modbus.profile import builtin_profiles, get_profile

START = datetime(2026, 7, 1, 6, 0, tzinfo=UTC)
MODELS = [*sorted(builtin_profiles()), "dlms-1", "dlms-3", "mqtt-1", "generation"]
FAULTS = st.sampled_from(
    [
        ("voltage_sag", 0.8),
        ("voltage_sag", 1.0),
        ("phase_loss", 1),
        ("phase_loss", None),
        ("reverse_power", True),
        ("reverse_power", False),
        ("power_failure", True),
        ("power_failure", False),
        ("relay_open", True),
        ("relay_open", False),
        ("magnet", True),
        ("stuck", True),
    ]
)


def meter_for(model: str, seed: int, clock: ManualClock) -> tuple[MeterPhysics, object | None]:
    if model == "generation":
        return generation_physics_for(seed, clock), None
    if model.startswith(("dlms", "mqtt")):
        phases = int(model[-1])
        physics = physics_for(seed, phases, clock)
        if model.startswith("dlms"):
            return physics, SimulatedDlmsMeter(physics, clock, serial_number=seed)
        return physics, None
    profile = get_profile(model)
    physics = physics_for(seed, profile.phases, clock)
    meter = SimulatedModbusMeter(1, profile, physics, clock, serial_number=seed)
    return physics, meter


def reported(meter: object | None) -> dict[str, float]:
    """The energy registers as the meter's face reports them, where it reports them."""
    found: dict[str, float] = {}
    if isinstance(meter, SimulatedModbusMeter):
        for spec in meter.profile.registers:
            if spec.quantity in ("1.8.0", "2.8.0", "3.8.0", "9.8.0"):
                words = meter.register_image(
                    spec.register_type, spec.address, spec.end - spec.address
                )
                found[spec.quantity] = decode_words(words, spec.data_type, spec.word_order) * (
                    spec.scale
                )
    elif isinstance(meter, SimulatedDlmsMeter):
        for quantity in ("1.8.0", "2.8.0", "3.8.0", "9.8.0"):
            raw = meter.read_attribute(REGISTER, quantity_ln(quantity), 2)
            found[quantity] = int.from_bytes(raw[1:], "big") / 1000
    return found


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    model=st.sampled_from(MODELS),
    seed=st.integers(0, 10_000),
    steps=st.lists(
        st.tuples(st.integers(30, 4 * 3600), st.none() | FAULTS), min_size=1, max_size=8
    ),
)
def test_apparent_energy_is_never_below_active_energy(
    model: str, seed: int, steps: list[tuple[int, tuple[str, object] | None]]
) -> None:
    clock = ManualClock(START)
    physics, meter = meter_for(model, seed, clock)
    before = physics.registers()
    for advance_s, fault in steps:
        if fault is not None:
            name, value = fault
            if name != "phase_loss" or physics.shape.phases == 3:
                physics.set_fault(clock.now_s(), **{name: value})
        clock.advance(advance_s)
        physics.advance_to(clock.now_s())
        now = physics.registers()
        active = now["1.8.0"] + now["2.8.0"]
        assert now["9.8.0"] >= active
        d_active = active - before["1.8.0"] - before["2.8.0"]
        d_apparent = now["9.8.0"] - before["9.8.0"]
        d_reactive = now["3.8.0"] - before["3.8.0"]
        assert d_apparent >= d_active - 1e-9
        assert d_apparent**2 >= d_active**2 + d_reactive**2 - 1e-9 * max(1.0, d_apparent**2)
        assert d_apparent <= d_active + d_reactive + 1e-9
        face = reported(meter)
        if "9.8.0" in face:
            active_face = face["1.8.0"] + face.get("2.8.0", 0.0)
            assert face["9.8.0"] >= active_face - 1e-3  # float32 registers round each value
        before = now


@settings(max_examples=30, deadline=None)
@given(model=st.sampled_from(MODELS), seed=st.integers(0, 10_000), block=st.integers(0, 200))
def test_inside_a_block_kvah_squared_is_kwh_squared_plus_kvarh_squared(
    model: str, seed: int, block: int
) -> None:
    """One power factor per 15-minute block: there the increments are a right triangle."""
    clock = ManualClock(START)
    physics, _ = meter_for(model, seed, clock)
    start = (math.floor(clock.now_s() / 900) + 1 + block) * 900 + 60
    physics.advance_to(start)
    a = physics.true_energy_kwh()
    physics.advance_to(start + 780)  # the same block
    b = physics.true_energy_kwh()
    d_active = b["1.8.0"] - a["1.8.0"] + b["2.8.0"] - a["2.8.0"]
    d_reactive = b["3.8.0"] - a["3.8.0"]
    d_apparent = b["9.8.0"] - a["9.8.0"]
    assert d_apparent >= 0  # the panels at night, a household's standing load: never negative
    assert math.isclose(d_apparent**2, d_active**2 + d_reactive**2, rel_tol=1e-9, abs_tol=1e-15)

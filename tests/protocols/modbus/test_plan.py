"""Read planning: coverage, limits, minimality (against an exhaustive search) and learning."""

from __future__ import annotations

import itertools
from functools import cache

from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.modbus.plan import MeterReadPlan, ReadRequest, plan_reads
from protocols.modbus.profile import ModbusProfile, RegisterSpec, builtin_profiles

QUANTITIES = [
    "1.8.0",
    "2.8.0",
    "3.8.0",
    "9.8.0",
    "1.7.0",
    "2.7.0",
    "16.7.0",
    "3.7.0",
    "9.7.0",
    "21.7.0",
    "41.7.0",
    "61.7.0",
    "32.7.0",
    "52.7.0",
    "72.7.0",
    "31.7.0",
    "51.7.0",
    "71.7.0",
    "13.7.0",
    "14.7.0",
]


@st.composite
def profiles(draw: st.DrawFn) -> ModbusProfile:
    """Random but valid profiles: non-overlapping groups, limits, forbidden gaps."""
    count = draw(st.integers(1, len(QUANTITIES)))
    address = draw(st.integers(0, 50))
    registers = []
    for quantity in QUANTITIES[:count]:
        data_type = draw(st.sampled_from(["u16", "s32", "float32", "s64"]))
        spec = RegisterSpec(
            quantity=quantity,
            register_type=draw(st.sampled_from(["input", "holding"])),
            address=address,
            data_type=data_type,
        )
        registers.append(spec)
        address = spec.end + draw(st.integers(0, 30))
    forbidden = []
    ordered = sorted(registers, key=lambda s: s.address)
    for before, after in itertools.pairwise(ordered):
        if after.address - before.end >= 2 and draw(st.booleans()):
            forbidden.append(
                {
                    "register_type": draw(st.sampled_from(["input", "holding"])),
                    "start": before.end,
                    "end": after.address - 1,
                }
            )
    return ModbusProfile.model_validate(
        {
            "model": "random",
            "vendor": "t",
            "description": "t",
            "phases": 3,
            "max_registers_per_request": draw(st.integers(4, 125)),
            "max_gap_registers": draw(st.integers(0, 20)),
            "identify": {
                "register_type": "holding",
                "address": 60000,
                "data_type": "u16",
                "expect": 1,
            },
            "serial": {"register_type": "holding", "address": 60001, "data_type": "u32"},
            "forbidden": forbidden,
            "registers": [r.model_dump() for r in registers],
        }
    )


def feasible(profile: ModbusProfile, group: list[RegisterSpec]) -> bool:
    if len({s.register_type for s in group}) > 1:
        return False
    if group[-1].end - group[0].address > profile.max_registers_per_request:
        return False
    for before, after in itertools.pairwise(group):
        if after.address - before.end > profile.max_gap_registers:
            return False
        if profile.is_forbidden(after.register_type, before.end, after.address - 1):
            return False
    return True


def minimum_requests(profile: ModbusProfile) -> int:
    """Exhaustive search over contiguous groupings of the sorted registers."""
    specs = sorted(profile.registers, key=lambda s: (s.register_type, s.address))

    @cache
    def best(i: int) -> int:
        if i == len(specs):
            return 0
        return min(
            1 + best(j) for j in range(i + 1, len(specs) + 1) if feasible(profile, specs[i:j])
        )

    return best(0)


@settings(max_examples=300, deadline=None)
@given(profiles())
def test_plan_covers_everything_within_limits_in_the_fewest_requests(
    profile: ModbusProfile,
) -> None:
    plan = plan_reads(profile, profile.registers)
    covered = [spec for request in plan for spec in request.specs]
    assert sorted(covered, key=lambda s: s.quantity) == sorted(
        profile.registers, key=lambda s: s.quantity
    )
    for request in plan:
        assert 1 <= request.count <= min(profile.max_registers_per_request, 125)
        assert feasible(profile, list(request.specs))
        assert request.address == request.specs[0].address
        assert not profile.is_forbidden(request.register_type, request.address, request.end - 1)
    assert len(plan) == minimum_requests(profile)


def test_shipped_profiles_plan_compactly() -> None:
    sizes = {model: len(MeterReadPlan(p).requests()) for model, p in builtin_profiles().items()}
    # one request per block of the vendor's map: SDM630 0x00-0x4F (80 registers, Eastron's
    # limit), demand 0x50-0x67, neutral and THD 0xE0-0xF5, per-phase energy 0x156-0x171
    assert sizes == {"sdm630": 4, "sdm120": 2, "em24": 2, "iem3000": 5}
    fast = MeterReadPlan(builtin_profiles()["sdm630"]).requests("fast")
    assert all(s.poll_class == "fast" for r in fast for s in r.specs)


def test_a_refused_merge_is_bisected_and_remembered() -> None:
    profile = builtin_profiles()["sdm630"]
    plan = MeterReadPlan(profile)
    first = plan.requests("fast")[0]
    assert len(first.specs) > 2
    replacement = plan.refused(first)
    assert len(replacement) == 2
    assert sorted(s.quantity for r in replacement for s in r.specs) == sorted(
        s.quantity for s in first.specs
    )
    # remembered: the next plan does not merge across the barrier again
    again = plan.requests("fast")
    assert not any(r.address == first.address and r.count == first.count for r in again)


def test_a_refused_single_group_is_quarantined() -> None:
    plan = MeterReadPlan(builtin_profiles()["sdm120"])
    spec = builtin_profiles()["sdm120"].register_for("3.8.0")
    assert plan.refused(ReadRequest("input", spec.address, spec.count, (spec,))) == []
    assert "3.8.0" in plan.quarantined
    assert all(s.quantity != "3.8.0" for r in plan.requests() for s in r.specs)

"""Meter physics: deterministic, plausible, and energy registers that integrate power exactly."""

from __future__ import annotations

import math
import statistics

import pytest

from firmware_sim.physics import CAPTURE_PERIOD_S, LoadShape, MeterPhysics
from tests.firmware_sim.conftest import T0

START = T0.timestamp()


def test_same_seed_same_meter() -> None:
    a = MeterPhysics(seed=5, shape=LoadShape(), start_s=START)
    b = MeterPhysics(seed=5, shape=LoadShape(), start_s=START)
    assert a.state_at(START + 7200).values == b.state_at(START + 7200).values
    c = MeterPhysics(seed=6, shape=LoadShape(), start_s=START)
    assert c.state_at(START + 7200).values != a.state_at(START + 7200).values


@pytest.mark.parametrize("solar", [0.0, 4.0])
def test_import_register_is_the_integral_of_sampled_power(solar: float) -> None:
    START = T0.timestamp() - 10 * 3600  # 09:00 IST: six hours through the solar noon
    physics = MeterPhysics(seed=11, shape=LoadShape(solar_kwp=solar), start_s=START, slot_s=5.0)
    before = physics.state_at(START).values
    # Power is constant within a slot: sample it once per slot and integrate independently.
    imported = exported = 0.0
    twin = MeterPhysics(seed=11, shape=LoadShape(solar_kwp=solar), start_s=START, slot_s=5.0)
    for k in range(int(6 * 3600 / 5)):
        net = twin.state_at(START + 5 * k).values["16.7.0"]
        imported += max(net, 0) * 5 / 3600
        exported += max(-net, 0) * 5 / 3600
    after = physics.state_at(START + 6 * 3600).values
    assert after["1.8.0"] - before["1.8.0"] == pytest.approx(imported, rel=1e-9, abs=1e-9)
    assert after["2.8.0"] - before["2.8.0"] == pytest.approx(exported, rel=1e-9, abs=1e-9)
    if solar:
        assert exported > 0


def test_values_are_physically_plausible() -> None:
    physics = MeterPhysics(seed=2, shape=LoadShape(), start_s=START)
    for hour in range(0, 48, 3):
        v = physics.state_at(START + hour * 3600).values
        for code in ("32.7.0", "52.7.0", "72.7.0"):
            assert 207 < v[code] < 253  # within EN 50160's ±10 %
        assert 49.9 < v["14.7.0"] < 50.1
        assert 0.85 < v["13.7.0"] <= 1.0
        assert v["9.7.0"] == pytest.approx(math.hypot(v["16.7.0"], v["3.7.0"]), rel=1e-9)
        phase_sum = v["21.7.0"] + v["41.7.0"] + v["61.7.0"]
        assert phase_sum == pytest.approx(v["16.7.0"], rel=1e-9)


def test_angles_distortion_and_current_sum_follow_the_phases() -> None:
    physics = MeterPhysics(seed=12, shape=LoadShape(solar_kwp=6.0), start_s=START)
    exporting = False
    for hour in range(0, 24):
        v = physics.state_at(START + hour * 3600).values
        for pf, power, angle, v_thd, i_thd in (
            ("33.7.0", "21.7.0", "81.7.40", "32.7.124", "31.7.124"),
            ("53.7.0", "41.7.0", "81.7.51", "52.7.124", "51.7.124"),
            ("73.7.0", "61.7.0", "81.7.62", "72.7.124", "71.7.124"),
        ):
            lag = math.degrees(math.acos(v[pf]))
            # importing: current lags by acos(pf); exporting: the same lag seen from the grid
            assert v[angle] == pytest.approx(lag if v[power] > 0 else 180 - lag, rel=1e-9)
            exporting |= v[power] < 0
            assert 1.5 <= v[v_thd] < 4.5
            assert 6 <= v[i_thd] < 30
        assert v["90.7.0"] == pytest.approx(v["31.7.0"] + v["51.7.0"] + v["71.7.0"], rel=1e-12)
    assert exporting
    physics.set_fault(START + 25 * 3600, phase_loss=2)
    lost = physics.state_at(START + 25 * 3600).values
    assert lost["81.7.62"] == lost["72.7.124"] == lost["71.7.124"] == 0


def test_demand_is_the_mean_power_of_the_last_whole_period() -> None:
    physics = MeterPhysics(seed=13, shape=LoadShape(), start_s=START + 100)
    assert physics.state_at(START + 1000).values["1.5.0"] == 0  # no whole period yet
    highest = 0.0
    for period in range(2, 40):
        boundary = START + period * CAPTURE_PERIOD_S
        v = physics.state_at(boundary + 7).values
        before, after = physics.captures[-2].values, physics.captures[-1].values
        assert physics.captures[-1].t_s == boundary
        mean_kw = (after["1.8.0"] - before["1.8.0"]) * 3600 / CAPTURE_PERIOD_S
        mean_kva = (after["9.8.0"] - before["9.8.0"]) * 3600 / CAPTURE_PERIOD_S
        assert v["1.5.0"] == pytest.approx(mean_kw, rel=1e-9)
        assert v["9.5.0"] == pytest.approx(mean_kva, rel=1e-9)
        highest = max(highest, mean_kw)
        assert v["1.6.0"] == pytest.approx(highest, rel=1e-9)
        assert v["9.6.0"] >= v["9.5.0"] >= v["1.5.0"] > 0


def test_phase_energy_adds_up_to_the_total_and_stops_with_a_lost_phase() -> None:
    physics = MeterPhysics(seed=14, shape=LoadShape(solar_kwp=5), start_s=START - 8 * 3600)
    phases = {
        "1.8.0": ("21.8.0", "41.8.0", "61.8.0"),
        "2.8.0": ("22.8.0", "42.8.0", "62.8.0"),
        "3.8.0": ("23.8.0", "43.8.0", "63.8.0"),
    }

    def check(values: dict[str, float]) -> None:
        for total, codes in phases.items():
            assert sum(values[c] for c in codes) == pytest.approx(values[total], rel=1e-9)
        assert values["15.8.0"] == pytest.approx(values["1.8.0"] + values["2.8.0"], rel=1e-12)

    check(physics.state_at(START).values)
    assert physics.registers()["22.8.0"] > 0  # the solar noon exported on every phase
    physics.set_fault(START + 3600, phase_loss=1)
    stopped, running = physics.registers()["41.8.0"], physics.registers()["21.8.0"]
    later = physics.state_at(START + 9 * 3600).values
    check(later)
    assert later["41.8.0"] == stopped
    assert later["21.8.0"] > running  # the phases still connected carry the load on
    physics.set_fault(START + 9 * 3600, phase_loss=None)
    check(physics.state_at(START + 12 * 3600).values)
    assert physics.registers()["41.8.0"] > stopped


def test_load_has_a_daily_shape() -> None:
    physics = MeterPhysics(seed=3, shape=LoadShape(appliance_kw=0), start_s=START)
    day = START - (START % 86400) + 86400  # next UTC midnight = 05:30 IST
    night = [physics.state_at(day + 21.5 * 3600 + m * 60).values["16.7.0"] for m in range(30)]
    evening = [physics.state_at(day + 38.5 * 3600 + m * 60).values["16.7.0"] for m in range(30)]
    assert sum(evening) > 3 * sum(night)  # 20:00 IST against 03:00 IST


def test_load_profile_captures_every_15_minutes() -> None:
    physics = MeterPhysics(seed=4, shape=LoadShape(), start_s=START)
    physics.state_at(START + 24 * 3600)
    times = [c.t_s for c in physics.captures]
    assert len(times) == 96
    assert all(t % CAPTURE_PERIOD_S == 0 for t in times)
    imports = [c.values["1.8.0"] for c in physics.captures]
    assert imports == sorted(imports)


def test_faults_change_what_is_measured_from_when_they_are_set() -> None:
    physics = MeterPhysics(seed=8, shape=LoadShape(), start_s=START)
    now = START + 3600
    physics.set_fault(now, voltage_sag=0.8)
    assert physics.state_at(now).values["32.7.0"] < 0.82 * 230 * 1.02
    physics.set_fault(now, voltage_sag=1.0, phase_loss=1)
    lost = physics.state_at(now + 60).values
    assert lost["52.7.0"] == 0
    assert lost["51.7.0"] == 0
    assert lost["41.7.0"] == 0
    physics.set_fault(now + 60, phase_loss=None, reverse_power=True)
    assert physics.state_at(now + 120).values["16.7.0"] < 0
    physics.set_fault(now + 120, reverse_power=False, stuck=True)
    frozen = physics.state_at(now + 180).values["32.7.0"]
    assert physics.state_at(now + 900).values["32.7.0"] == frozen


def test_reset_and_rollover_shift_the_reported_register_not_the_truth() -> None:
    physics = MeterPhysics(
        seed=9, shape=LoadShape(solar_kwp=3), start_s=START - 6 * 3600, initial_import_kwh=500
    )
    physics.state_at(START)  # some export and reactive energy by now
    assert physics.registers()["2.8.0"] > 0
    assert physics.registers()["3.8.0"] > 0
    physics.reset_registers(START + 3600)
    assert physics.registers() == pytest.approx(dict.fromkeys(physics.registers(), 0), abs=1e-9)
    assert physics.true_energy_kwh()["1.8.0"] > 500
    physics.roll_over_soon(START + 3600, modulus_kwh=100000, headroom_kwh=0.2)
    assert physics.state_at(START + 3600).values["1.8.0"] == pytest.approx(99999.8)
    after = physics.state_at(START + 5 * 3600).values
    assert after["1.8.0"] < 50  # it wrapped
    assert 0 <= after["3.8.0"] < 50  # the others carried on from their reset, unwrapped


def test_meter_clock_drift() -> None:
    physics = MeterPhysics(seed=1, shape=LoadShape(), start_s=START)
    physics.set_fault(START, clock_drift_s_per_day=86.4)
    assert physics.meter_clock_s(START + 86400) - (START + 86400) == pytest.approx(86.4)


def test_apparent_energy_never_falls_below_active_energy() -> None:
    """A meter installed with history on its import register has apparent energy to match."""
    physics = MeterPhysics(seed=3, shape=LoadShape(), start_s=START, initial_import_kwh=3400.0)
    for hours in (0, 1, 24, 24 * 30):
        values = physics.state_at(START + hours * 3600).values
        assert values["9.8.0"] >= values["1.8.0"], hours


def _daily_kwh(shape: LoadShape, first_day: int, days: int, seed: int = 21) -> list[float]:
    """Energy imported on each of `days` IST days from day `first_day` since 1970-01-01."""
    start = first_day * 86400 - 5.5 * 3600  # IST midnight
    physics = MeterPhysics(seed=seed, shape=shape, start_s=start, slot_s=900.0)
    out = []
    for day in range(1, days + 1):
        before = physics.registers()["1.8.0"]
        physics.advance_to(start + day * 86400)
        out.append(physics.registers()["1.8.0"] - before)
    return out


def test_households_differ_from_day_to_day_only_when_told() -> None:
    """By default every day is alike but for the appliances; habits, spells away and the season
    make days differ as a household's do."""
    day = 20_542  # Mon 30 Mar 2026
    plain = LoadShape(phases=1)
    alike = [e for i, e in enumerate(_daily_kwh(plain, day, 35)) if (i % 7) < 5]
    base_day = plain.base_kw * 24
    assert statistics.pstdev(alike) / statistics.mean(alike) < 0.1  # the appliances' draws
    varied = _daily_kwh(LoadShape(phases=1, day_to_day=0.3), day, 35)
    working = [e for i, e in enumerate(varied) if (i % 7) < 5]
    assert statistics.pstdev(working) / statistics.mean(working) > 0.1
    away = _daily_kwh(LoadShape(phases=1, away_chance=1.0), day, 28)
    # a spell away every week: those days draw the standing load only (noise of ±3 %)
    assert sum(1 for e in away if e <= base_day * 1.15 * 1.03) >= 2 * 4
    summer = _daily_kwh(LoadShape(phases=1, seasonal=0.3), day + 46, 14)  # mid-May
    winter = _daily_kwh(LoadShape(phases=1, seasonal=0.3), day + 230, 14)  # mid-November
    assert sum(summer) > 1.3 * sum(winter)

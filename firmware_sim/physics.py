"""Meter physics shared by every protocol face: a seeded model of one consumer's load.

Power is piecewise constant over short slots (`slot_s`), a pure function of (seed, slot): a
daily and weekly shape, appliances switching in 15-minute blocks, noise, and optional rooftop
solar. Energy registers integrate that power exactly, slot by slot, so the register difference
between two instants equals the integral of power between them. Voltage, current, power factor
and frequency follow from the same draw, and so do phase angles and harmonic distortion. Demand is
the mean power of the last completed 15-minute period (block demand, the period Indian tariffs
bill maximum demand on), computed from the same integrated energy, with its maximum since the last
billing date (midnight, local time, on the 1st), when the registers and the maximum are kept as a
billing entry and the maximum starts again. Every capture (15 minutes) keeps the registers and
the block's mean phase voltages and currents. Apparent energy is never below active energy, and
the increments of a slot satisfy kVAh² = kWh² + kvarh².
Faults (sag, phase loss, stuck values, reverse power, power failure, tamper, register
reset/rollover, clock drift) change what the meter reports from the instant they are set; each
change is kept in `fault_log`, with what the meter measured then, for the meter's event logs.
"""

from __future__ import annotations

import cmath
import math
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime

MASK64 = (1 << 64) - 1
CAPTURE_PERIOD_S = 900  # load profile capture period (15 minutes)
CAPTURE_DEPTH = 96 * 45  # 45 days of 15-minute captures
INITIAL_PF = 0.95  # the power factor the registers' past was drawn at
FAULT_LOG_DEPTH = 1000
BILLING_DEPTH = 12  # billing entries kept: a year of months
DEMAND_PERIOD_S = CAPTURE_PERIOD_S  # block demand over the same 15-minute periods
# per-phase energy registers of three-phase meters: import, export, reactive import, by phase
_PHASE_ENERGY = {
    "1.8.0": ("21.8.0", "41.8.0", "61.8.0"),
    "2.8.0": ("22.8.0", "42.8.0", "62.8.0"),
    "3.8.0": ("23.8.0", "43.8.0", "63.8.0"),
}
# per phase: voltage, current, active, apparent, reactive power, power factor, phase angle,
# voltage THD, current THD
_PHASE_CODES = (
    ("32.7.0", "31.7.0", "21.7.0", "29.7.0", "23.7.0", "33.7.0", "81.7.40", "32.7.124", "31.7.124"),
    ("52.7.0", "51.7.0", "41.7.0", "49.7.0", "43.7.0", "53.7.0", "81.7.51", "52.7.124", "51.7.124"),
    ("72.7.0", "71.7.0", "61.7.0", "69.7.0", "63.7.0", "73.7.0", "81.7.62", "72.7.124", "71.7.124"),
)


def _unit_interval(seed: int, *keys: int) -> float:
    """A deterministic uniform draw in [0, 1) from integer keys (splitmix64)."""
    x = seed & MASK64
    for key in keys:
        x = (x + 0x9E3779B97F4A7C15 + (key & MASK64)) & MASK64
        x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK64
        x ^= x >> 31
    return x / 2**64


@dataclass(frozen=True)
class LoadShape:
    """What kind of consumer this meter measures."""

    phases: int = 3
    base_kw: float = 0.4  # night-time standing load
    peak_kw: float = 3.5  # evening peak above base
    appliance_kw: float = 1.8  # typical appliance step
    solar_kwp: float = 0.0  # rooftop solar peak; > 0 makes the meter export at noon
    nominal_v: float = 230.0
    nominal_hz: float = 50.0
    utc_offset_h: float = 5.5  # local time of the daily shape (India by default)
    # How a household's days differ (all 0 by default: every day alike but for the appliances'
    # draws). `day_to_day`: the spread (standard deviation, a fraction) of a day's use above the
    # standing load — guests, cooking, washing — part of it shared by the days of one week;
    # `away_chance`: the chance that a week holds a spell of 2-5 days away, at the standing load
    # only; `seasonal`: the amplitude of the year's swing of that use (cooling), highest in
    # mid-May and lowest in mid-November.
    day_to_day: float = 0.0
    away_chance: float = 0.0
    seasonal: float = 0.0


@dataclass
class MeterFaults:
    """Faults in what the meter measures or reports; set them with `MeterPhysics.set_fault`."""

    voltage_sag: float = 1.0  # multiply voltages (0.8 = a 20 % sag)
    phase_loss: int | None = None  # index 0..2 of a phase with no voltage or current
    stuck: bool = False  # instantaneous values frozen at their last value
    reverse_power: bool = False  # power flows to the grid
    clock_drift_s_per_day: float = 0.0  # the meter's own clock runs fast (>0) or slow
    relay_open: bool = False  # the supply is disconnected at the meter: no load, no energy
    power_failure: bool = False  # the grid's supply is gone: no voltage, no load, no energy
    magnet: bool = False  # a magnet held against the meter (tamper; the meter logs it)
    cover_open: bool = False  # the meter's terminal cover is open (tamper)


@dataclass(frozen=True)
class FaultChange:
    """A fault set at `t_s` (from `old` to `new`), with what the meter measured then: the
    meter's event logs are made of these."""

    t_s: float
    name: str
    old: object
    new: object
    values: dict[str, float]


@dataclass(frozen=True)
class MeterState:
    """What the meter holds at one instant: quantity code -> value in the quantity's unit."""

    t_s: float
    values: dict[str, float]
    # captures only: the energy integrated since the start (before any reset or rollover shift)
    # and, per phase, the block's mean voltage and current (C.27.0)
    true_kwh: dict[str, float] | None = None


@dataclass(frozen=True)
class BillingState:
    """What the meter kept at a billing date: registers, the period's maximum demands (1.6.0,
    9.6.0) and power factor (13.0.0); `peaks`: when each maximum was reached."""

    t_s: float
    values: dict[str, float]
    peaks: dict[str, float | None]


@dataclass
class MeterPhysics:
    seed: int
    shape: LoadShape
    start_s: float
    slot_s: float = 5.0
    faults: MeterFaults = field(default_factory=MeterFaults)
    register_modulus_kwh: float = 1e9  # registers wrap around at this value
    initial_import_kwh: float = 0.0

    def __post_init__(self) -> None:
        if self.shape.phases not in (1, 3):
            raise ValueError("phases must be 1 or 3")
        rng = [_unit_interval(self.seed, 7, i) for i in range(3)]
        weights = [0.8 + 0.4 * r for r in rng] if self.shape.phases == 3 else [1.0, 0, 0]
        total = sum(weights)
        self._split = [w / total for w in weights]
        self._t = self.start_s
        self._energy = {
            "1.8.0": self.initial_import_kwh,
            "2.8.0": 0.0,
            # the past the import register carries was drawn at a power factor like today's:
            # apparent energy is never below active energy, and kVAh² = kWh² + kvarh²
            "3.8.0": self.initial_import_kwh * math.sqrt(1 - INITIAL_PF**2) / INITIAL_PF,
            "4.8.0": 0.0,  # no capacitive load in these households: stays at zero
            "9.8.0": self.initial_import_kwh / INITIAL_PF,
        }
        # Per-phase energy is the total's increase split by the phases' shares of the load (all
        # phases carry power the same way, so the split is exact); shares change only with a
        # phase-loss fault, which starts a new epoch from the per-phase registers of its moment.
        self._epoch_totals = dict(self._energy)
        self._epoch_phases = {
            code: self._energy[total] * share
            for total, codes in _PHASE_ENERGY.items()
            for code, share in zip(codes, self._split, strict=True)
        }
        self._offsets = dict.fromkeys(self.true_energy_kwh(), 0.0)  # reset/rollover shift
        self._clock_offset_s = 0.0
        self._drift_since_s = self.start_s
        self._frozen: dict[str, float] | None = None
        self._habits: dict[int, float] = {}  # local day -> its factor (a pure function of it)
        self.captures: deque[MeterState] = deque(maxlen=CAPTURE_DEPTH)
        self.fault_log: deque[FaultChange] = deque(maxlen=FAULT_LOG_DEPTH)
        # true energy when the running block began, and when that was
        self._block_start, self._block_start_s = dict(self._energy), self.start_s
        # demand: energy at the start of the running period (None until a whole period has begun)
        self._period_start: dict[str, float] | None = None
        self._demand = {"1.5.0": 0.0, "1.6.0": 0.0, "9.5.0": 0.0, "9.6.0": 0.0}
        self._peak_at: dict[str, float] = {}  # maximum demand code -> end of its period
        self.billings: deque[BillingState] = deque(maxlen=BILLING_DEPTH)
        self._billing_start = dict(self._energy)  # true energy at the last billing date
        self.billing_count = 0  # billing dates passed (the kept entries are the last 12)
        self._next_capture_s = (math.floor(self.start_s / CAPTURE_PERIOD_S) + 1) * CAPTURE_PERIOD_S

    # --- the load model ----------------------------------------------------------------------

    def _slot_power(self, slot: int) -> tuple[float, float, float]:
        """(net active kW, power factor, frequency Hz) during `slot`; net < 0 exports."""
        shape, seed = self.shape, self.seed
        t = slot * self.slot_s
        local_h = ((t / 3600.0) + shape.utc_offset_h) % 24.0
        day = int((t + shape.utc_offset_h * 3600) // 86400)
        weekend = (day + 3) % 7 >= 5  # 1970-01-01 was a Thursday
        evening = math.exp(-(((local_h - 20.0) / 2.2) ** 2))
        morning = math.exp(-(((local_h - 8.0) / 1.6) ** 2))
        habits = 1.0
        if self._varies:
            if day not in self._habits:
                self._habits[day] = self._day_factor(day)
            habits = self._habits[day]
        load = shape.base_kw + shape.peak_kw * (0.65 * evening + 0.35 * morning) * habits
        if weekend:
            load *= 1.15
        block = int(t // 900)
        if _unit_interval(seed, 1, block) < 0.3:
            load += shape.appliance_kw * (0.5 + _unit_interval(seed, 2, block)) * habits
        load *= 1.0 + 0.06 * (_unit_interval(seed, 3, slot) - 0.5)
        solar = 0.0
        if shape.solar_kwp > 0 and 6.0 < local_h < 18.0:
            clouds = 0.55 + 0.45 * _unit_interval(seed, 4, day)
            solar = shape.solar_kwp * math.sin(math.pi * (local_h - 6.0) / 12.0) * clouds
        net = load - solar
        if self.faults.reverse_power:
            net = -abs(net)
        pf = 0.90 + 0.08 * _unit_interval(seed, 5, block)
        hz = shape.nominal_hz + 0.08 * (_unit_interval(seed, 6, slot) - 0.5)
        return net, pf, hz

    @property
    def _varies(self) -> bool:
        shape = self.shape
        return bool(shape.day_to_day or shape.away_chance or shape.seasonal)

    def _day_factor(self, day: int) -> float:
        """What multiplies the use above the standing load on local day `day` (days since
        1970-01-01): the season, the week's and the day's habits, or 0 while away."""
        shape, seed = self.shape, self.seed
        week = (day + 3) // 7  # weeks start on Mondays
        for spell_week in (week, week - 1):  # a spell may run on into the next week
            if _unit_interval(seed, 13, spell_week) < shape.away_chance:
                first = spell_week * 7 - 3 + int(7 * _unit_interval(seed, 14, spell_week))
                if first <= day < first + 2 + int(4 * _unit_interval(seed, 15, spell_week)):
                    return 0.0
        # the sum of two uniform draws less 1 has a standard deviation of 1/sqrt(6)
        spread = math.sqrt(6.0)
        daily = (_unit_interval(seed, 10, day) + _unit_interval(seed, 11, day) - 1.0) * spread
        weekly = (_unit_interval(seed, 12, week) + _unit_interval(seed, 16, week) - 1.0) * spread
        habits = 1.0 + shape.day_to_day * (0.8 * daily + 0.6 * weekly)
        season = 1.0 + shape.seasonal * math.cos(2 * math.pi * ((day - 135) % 365.25) / 365.25)
        return max(habits, 0.1) * season

    def _phase_shares(self) -> list[float]:
        shares = list(self._split)
        if self.faults.phase_loss is not None and self.shape.phases == 3:
            shares[self.faults.phase_loss] = 0.0
        return shares

    def _active_fraction(self) -> float:
        """Share of the load still connected (a lost phase takes its load with it; an open
        relay all of it)."""
        if self.faults.relay_open or self.faults.power_failure:
            return 0.0
        return sum(self._phase_shares())

    # --- integration ---------------------------------------------------------------------------

    def advance_to(self, t_s: float) -> None:
        """Integrate energy up to `t_s`; earlier instants are already integrated."""
        while self._t < t_s:
            slot = math.floor(self._t / self.slot_s)
            slot_end = (slot + 1) * self.slot_s
            step_end = min(slot_end, t_s, self._next_capture_s)
            hours = (step_end - self._t) / 3600.0
            net, pf, _ = self._slot_power(slot)
            net *= self._active_fraction()
            apparent = abs(net) / pf
            reactive = math.sqrt(max(apparent * apparent - net * net, 0.0))
            self._energy["1.8.0"] += max(net, 0.0) * hours
            self._energy["2.8.0"] += max(-net, 0.0) * hours
            self._energy["3.8.0"] += reactive * hours
            self._energy["9.8.0"] += apparent * hours
            self._t = step_end
            if self._t >= self._next_capture_s:
                self.captures.append(
                    MeterState(self._t, self.registers() | self._block_means(), dict(self._energy))
                )
                self._block_start, self._block_start_s = dict(self._energy), self._t
                self._next_capture_s += CAPTURE_PERIOD_S
                self._close_demand_period()

    def _close_demand_period(self) -> None:
        """A demand period ended now: its mean powers become the demand, and maybe the maximum."""
        if self._period_start is not None:
            periods_per_hour = 3600.0 / DEMAND_PERIOD_S
            for energy, demand, maximum in (
                ("1.8.0", "1.5.0", "1.6.0"),
                ("9.8.0", "9.5.0", "9.6.0"),
            ):
                mean = (self._energy[energy] - self._period_start[energy]) * periods_per_hour
                self._demand[demand] = mean
                if mean > self._demand[maximum]:
                    self._demand[maximum] = mean
                    self._peak_at[maximum] = self._t
        self._period_start = dict(self._energy)
        if self._is_billing_instant(self._t):
            self._close_billing_period()

    def _is_billing_instant(self, t_s: float) -> bool:
        """Midnight (local time) on the 1st of a month: the billing date of Indian meters."""
        local = datetime.fromtimestamp(t_s + self.shape.utc_offset_h * 3600, UTC)
        return local.day == 1 and local.hour == 0 and local.minute == 0 and local.second == 0

    def billing_power_factor(self) -> float:
        """The running billing period's power factor: active over apparent energy since the
        last billing date (1 while nothing has flowed)."""
        since = self._billing_start
        active = self._energy["1.8.0"] - since["1.8.0"] + self._energy["2.8.0"] - since["2.8.0"]
        apparent = self._energy["9.8.0"] - since["9.8.0"]
        return active / apparent if apparent > 0 else 1.0

    def _close_billing_period(self) -> None:
        """The billing date: the registers, the period's maximum demands (and when) and its
        power factor are kept as a billing entry; the maximum demands start again from zero."""
        self.billings.append(
            BillingState(
                t_s=self._t,
                values=self.registers()
                | {
                    "1.6.0": self._demand["1.6.0"],
                    "9.6.0": self._demand["9.6.0"],
                    "13.0.0": self.billing_power_factor(),
                },
                peaks={code: self._peak_at.get(code) for code in ("1.6.0", "9.6.0")},
            )
        )
        self._billing_start = dict(self._energy)
        self.billing_count += 1
        self._demand["1.6.0"] = self._demand["9.6.0"] = 0.0
        self._peak_at.clear()

    def _block_means(self) -> dict[str, float]:
        """The block ending now: each phase's mean voltage (C.27.0 of its voltage code) and mean
        current. The voltage's daily swing is averaged exactly over the block; the slot-to-slot
        noise (a few tenths of a per cent, mean zero) is left out; faults are those of now."""
        t0, t1 = self._block_start_s, self._t  # a whole block but for the first
        hours = (t1 - t0) / 3600.0
        active = (self._energy["1.8.0"] - self._block_start["1.8.0"]) + (
            self._energy["2.8.0"] - self._block_start["2.8.0"]
        )
        apparent = self._energy["9.8.0"] - self._block_start["9.8.0"]
        shares = self._phase_shares()
        whole = sum(shares) or 1.0
        means: dict[str, float] = {}
        omega = 2 * math.pi / 86400
        for index in range(self.shape.phases):
            v_code, i_code = _PHASE_CODES[index][:2]
            share = shares[index] / whole
            swing = (math.cos(omega * t0 + index) - math.cos(omega * t1 + index)) / (
                omega * (t1 - t0)
            )
            volts = self.shape.nominal_v * (1 + 0.012 * swing) - 0.6 * active * share / hours
            volts *= self.faults.voltage_sag
            if self.faults.phase_loss == index or self.faults.power_failure:
                volts = 0.0
            amps = apparent * share / hours * 1000 / volts if volts > 1 else 0.0
            means[v_code.replace(".7.", ".27.")] = volts
            means[i_code.replace(".7.", ".27.")] = amps
        return means

    def peak_at(self, code: str) -> float | None:
        """When the maximum demand `code` (1.6.0, 9.6.0) was reached: the end of its period."""
        return self._peak_at.get(code)

    def registers(self) -> dict[str, float]:
        """Energy registers as the meter reports them (after any reset or rollover shift)."""
        return {
            code: (value + self._offsets[code]) % self.register_modulus_kwh
            for code, value in self.true_energy_kwh().items()
        }

    def true_energy_kwh(self) -> dict[str, float]:
        """Energy actually integrated since the start (no reset or rollover): the truth —
        totals, import plus export (15.8.0) and, on three-phase meters, each phase's share."""
        energy = dict(self._energy)
        energy["15.8.0"] = energy["1.8.0"] + energy["2.8.0"]
        if self.shape.phases == 3:
            shares = self._phase_shares()
            whole = sum(shares) or 1.0
            for total, codes in _PHASE_ENERGY.items():
                grown = energy[total] - self._epoch_totals[total]
                for code, share in zip(codes, shares, strict=True):
                    energy[code] = self._epoch_phases[code] + grown * share / whole
        return energy

    def state_at(self, t_s: float) -> MeterState:
        """Everything the meter holds at `t_s` (which must not be before the last call)."""
        self.advance_to(t_s)
        slot = math.floor(t_s / self.slot_s)
        net, pf, hz = self._slot_power(slot)
        shares = self._phase_shares()
        net *= self._active_fraction()
        apparent = abs(net) / pf
        reactive = math.sqrt(max(apparent * apparent - net * net, 0.0))
        values: dict[str, float] = {
            "16.7.0": net,
            "1.7.0": max(net, 0.0),
            "2.7.0": max(-net, 0.0),
            "9.7.0": apparent,
            "3.7.0": reactive,
            "13.7.0": pf,
            "14.7.0": hz,
        }
        total_share = sum(shares) or 1.0
        neutral = 0j  # the phase currents add up in the neutral, 120 degrees apart
        block = int(t_s // CAPTURE_PERIOD_S)
        for index in range(self.shape.phases):
            v_code, i_code, p_code, s_code, q_code, pf_code, angle, v_thd, i_thd = _PHASE_CODES[
                index
            ]
            share = shares[index]
            phase_kw = net * share / total_share if share else 0.0
            wobble = 0.012 * math.sin(2 * math.pi * t_s / 86400 + index) + 0.006 * (
                _unit_interval(self.seed, 8 + index, slot) - 0.5
            )
            volts = self.shape.nominal_v * (1 + wobble) - 0.6 * abs(phase_kw)
            volts *= self.faults.voltage_sag
            if self.faults.phase_loss == index or self.faults.power_failure:
                volts = 0.0
            live = volts > 1
            phase_va = abs(phase_kw) / pf if live else 0.0
            phase_var = math.sqrt(max(phase_va * phase_va - phase_kw * phase_kw, 0.0))
            values[v_code] = volts
            values[p_code] = phase_kw
            values[i_code] = abs(phase_kw) * 1000 / (volts * pf) if live else 0.0
            values[s_code] = phase_va
            values[q_code] = phase_var
            values[pf_code] = pf if live else 0.0
            # current lags voltage by acos(pf); exporting turns it past 90 degrees
            values[angle] = math.degrees(math.atan2(phase_var, phase_kw)) if phase_va else 0.0
            # distortion: a level per 15-minute block (what is switched on) plus slot-to-slot noise
            v_thd_pct = 1.5 + 2.8 * _unit_interval(self.seed, 20 + index, block)
            i_thd_pct = 6.0 + 22.0 * _unit_interval(self.seed, 23 + index, block)
            noise = _unit_interval(self.seed, 26 + index, slot)
            values[v_thd] = (v_thd_pct + 0.2 * noise) * live
            values[i_thd] = (i_thd_pct + 2.0 * noise) * (phase_va > 0)
            neutral += values[i_code] * cmath.exp(-2j * math.pi * index / 3)
        values["90.7.0"] = sum(values[codes[1]] for codes in _PHASE_CODES[: self.shape.phases])
        if self.shape.phases == 3:
            values["91.7.0"] = abs(neutral)
        values.update(self._demand)
        if self.faults.stuck and self._frozen is not None:
            values = dict(self._frozen)
        else:
            self._frozen = values
        values.update(self.registers())
        return MeterState(t_s, values)

    # --- faults and the meter's clock --------------------------------------------------------

    def set_fault(self, now_s: float, **changes: object) -> None:
        """Change faults from `now_s` on: energy up to then is integrated with the old ones."""
        self.advance_to(now_s)
        if "clock_drift_s_per_day" in changes:
            self._clock_offset_s = self.meter_clock_s(now_s) - now_s
            self._drift_since_s = now_s
        unknown = [name for name in changes if not hasattr(self.faults, name)]
        if unknown:
            raise ValueError(f"unknown meter fault {unknown[0]!r}")
        if "phase_loss" in changes:  # the load's split changes: per-phase energy starts an epoch
            energy = self.true_energy_kwh()
            self._epoch_totals = dict(self._energy)
            self._epoch_phases = {c: energy[c] for codes in _PHASE_ENERGY.values() for c in codes}
        before = {name: getattr(self.faults, name) for name in changes}
        for name, value in changes.items():
            setattr(self.faults, name, value)
        changed = [name for name in changes if before[name] != changes[name]]
        if changed:
            values = self.state_at(now_s).values
            for name in changed:
                self.fault_log.append(FaultChange(now_s, name, before[name], changes[name], values))

    def reset_registers(self, now_s: float) -> None:
        """Every energy register reads zero from now on (a tamper or a meter reset)."""
        self.advance_to(now_s)
        self._offsets = {code: -value for code, value in self.true_energy_kwh().items()}

    def roll_over_soon(self, now_s: float, modulus_kwh: float, headroom_kwh: float = 0.2) -> None:
        """Make the import register wrap at `modulus_kwh` after `headroom_kwh` more energy."""
        self.advance_to(now_s)
        self.register_modulus_kwh = modulus_kwh
        self._offsets["1.8.0"] = modulus_kwh - headroom_kwh - self._energy["1.8.0"]

    def set_meter_clock(self, now_s: float, meter_s: float) -> None:
        """The meter's clock reads `meter_s` at true time `now_s` (a SET of its clock, or a
        clock put wrong on purpose); it drifts on from there at the same rate."""
        self._clock_offset_s = meter_s - now_s
        self._drift_since_s = now_s

    def meter_clock_s(self, true_s: float) -> float:
        """The meter's own clock at true time `true_s` (drifts when that fault is set)."""
        drift = self.faults.clock_drift_s_per_day * (true_s - self._drift_since_s) / 86400.0
        return true_s + self._clock_offset_s + drift

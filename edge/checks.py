"""Local anomaly checks: they run on every read, offline, and their state survives restarts.

Each meter has a small state (EWMA baseline of power, last register values, open alerts, a
stale-value counter) kept in the store, written in the transaction of the events it produced
(`dump_dirty`, `Store.append`): a restart resumes from the state of the last events stored.
An alert is raised once and stays open until its condition ends, when it is cleared
(deduplicated); one-shot findings (a register going backwards, jumping, rolling over) are
notices. Readings that fail a check are flagged `suspect` before they are stored; readings of
real grid conditions (sag, swell, frequency) are not — they are true measurements of a bad
supply.

Thresholds come from `[checks]` in the configuration (defaults of the reference system and
EN 50160).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from shared import EVENT_KINDS, QUANTITIES, EventStatus, Quality, Severity

from .store import NewEvent, ReadingRow, from_us

if TYPE_CHECKING:
    from .config import ChecksSection

PHASE_VOLTAGES = ("32.7.0", "52.7.0", "72.7.0")
POWER = ("1.7.0", "16.7.0")
# what the checks ask of a quantity, asked once: energy registers, and the quantities whose
# reads differ from one read to the next on a live meter (energy registers may stand still at
# no load, and demand values hold for a whole period)
CUMULATIVE = frozenset(code for code, q in QUANTITIES.items() if q.is_cumulative)
VARYING = frozenset(code for code, q in QUANTITIES.items() if not q.changes_slowly)


@dataclass
class MeterState:
    baseline: float | None = None
    samples: int = 0
    registers: dict[str, list[float]] = field(default_factory=dict)  # quantity -> [ts_us, value]
    open: dict[str, str] = field(default_factory=dict)  # kind -> quantity ("" for none)
    last_values: list[float] | None = None
    same_reads: int = 0

    def dump(self) -> dict[str, Any]:
        """A copy: the store writes it on its own thread while the checks go on. (A register's
        pair and the last values are replaced whole, never changed in place.)"""
        return {
            "baseline": self.baseline,
            "samples": self.samples,
            "registers": dict(self.registers),
            "open": dict(self.open),
            "last_values": self.last_values,
            "same_reads": self.same_reads,
        }

    @classmethod
    def load(cls, data: dict[str, Any] | None) -> MeterState:
        return cls(**data) if data else cls()


@dataclass(frozen=True)
class MeterProfile:
    phases: int = 3
    export_allowed: bool = False


class Checker:
    """Run every check of docs/architecture.md's list over the readings of one meter's read."""

    def __init__(self, config: ChecksSection, state: dict[str, dict[str, Any]]) -> None:
        self.config = config
        self.states = {meter: MeterState.load(data) for meter, data in state.items()}
        self.dirty: set[str] = set()

    def state_of(self, meter_id: str) -> MeterState:
        return self.states.setdefault(meter_id, MeterState())

    def dump_dirty(self) -> dict[str, dict[str, Any]]:
        """The state of every meter changed since the last call: to be stored in the same
        transaction as the events returned meanwhile, so take both at one moment."""
        out = {m: self.states[m].dump() for m in self.dirty}
        self.dirty.clear()
        return out

    def process(
        self, meter_id: str, readings: list[ReadingRow], profile: MeterProfile
    ) -> tuple[list[ReadingRow], list[NewEvent]]:
        """The readings of one read (some flagged `suspect`) and the events it gives rise to."""
        state = self.state_of(meter_id)
        self.dirty.add(meter_id)
        run = _Run(meter_id, state, readings)
        by_quantity = {r.quantity: r for r in readings}
        self._power(run, by_quantity)
        self._voltage(run, by_quantity, profile)
        self._frequency(run, by_quantity)
        self._reverse(run, by_quantity, profile)
        self._registers(run, readings)
        self._stale(run, readings)
        return run.readings(), run.events

    def communication(
        self, meter_id: str, ok: bool, ts: datetime, detail: str = ""
    ) -> list[NewEvent]:
        """The scheduler's verdict: raise `communication_loss` once, clear it on the next read."""
        state = self.state_of(meter_id)
        run = _Run(meter_id, state, [], ts=ts)
        if ok:
            run.clear("communication_loss")
        else:
            run.raise_(
                "communication_loss", message=f"meter {meter_id} stopped answering: {detail}"
            )
        if run.events:
            self.dirty.add(meter_id)
        return run.events

    def meter_clock(self, meter_id: str, drift_s: float, ts: datetime) -> list[NewEvent]:
        run = _Run(meter_id, self.state_of(meter_id), [], ts=ts)
        if abs(drift_s) > self.config.meter_clock_drift_s:
            run.raise_(
                "meter_clock_drift",
                message=f"meter clock is {drift_s:+.1f} s off the gateway's",
                details={"drift_s": round(drift_s, 3)},
            )
        else:
            run.clear("meter_clock_drift", details={"drift_s": round(drift_s, 3)})
        if run.events:
            self.dirty.add(meter_id)
        return run.events

    # -- the checks -------------------------------------------------------------------------
    def _power(self, run: _Run, values: dict[str, ReadingRow]) -> None:
        reading = values.get(POWER[0]) or values.get(POWER[1])
        if reading is None:
            return
        c, state, power = self.config, run.state, reading.value
        base = state.baseline
        if base is not None and state.samples >= c.min_samples:
            if power < c.outage_kw and base > c.outage_baseline_kw:
                run.raise_(
                    "outage", reading.quantity, f"power {power:.3f} kW, usually {base:.2f} kW"
                )
            else:
                run.clear("outage", reading.quantity)
            change = (power - base) / base if base > 0 else 0.0
            if change > c.spike_ratio:
                severity = Severity.HIGH if change > c.spike_high_ratio else Severity.MEDIUM
                run.raise_(
                    "power_spike",
                    reading.quantity,
                    f"power {power:.3f} kW, {change:+.0%} against its usual {base:.3f} kW",
                    severity=severity,
                )
                run.flag(reading)
            else:
                run.clear("power_spike", reading.quantity)
            if -change > c.drop_ratio and not power < c.outage_kw:
                severity = Severity.MEDIUM if -change > c.drop_medium_ratio else Severity.LOW
                run.raise_(
                    "power_drop",
                    reading.quantity,
                    f"power {power:.3f} kW, {change:+.0%} against its usual {base:.3f} kW",
                    severity=severity,
                )
            else:
                run.clear("power_drop", reading.quantity)
        state.baseline = power if base is None else c.ewma_alpha * power + (1 - c.ewma_alpha) * base
        state.samples += 1

    def _voltage(self, run: _Run, values: dict[str, ReadingRow], profile: MeterProfile) -> None:
        c = self.config
        low, high = (
            c.nominal_voltage * (1 - c.voltage_band),
            c.nominal_voltage * (1 + c.voltage_band),
        )
        phases = PHASE_VOLTAGES[: profile.phases]
        lost = [q for q in phases if q in values and values[q].value < 0.5 * c.nominal_voltage]
        if profile.phases == 3 and lost and len(lost) < 3:
            run.raise_("phase_loss", lost[0], f"no voltage on {', '.join(map(_named, lost))}")
        else:
            run.clear("phase_loss")
        present = [values[q] for q in phases if q in values and q not in lost]
        sag = [r for r in present if r.value < low]
        swell = [r for r in present if r.value > high]
        for kind, found in (("voltage_sag", sag), ("voltage_swell", swell)):
            if found:
                worst = found[0]
                run.raise_(kind, worst.quantity, f"{_named(worst.quantity)} at {worst.value:.1f} V")
            elif present:
                run.clear(kind)

    def _frequency(self, run: _Run, values: dict[str, ReadingRow]) -> None:
        reading = values.get("14.7.0")
        if reading is None:
            return
        off = reading.value - self.config.nominal_frequency
        if abs(off) > self.config.frequency_band_hz:
            run.raise_("frequency_deviation", "14.7.0", f"frequency {reading.value:.2f} Hz")
        else:
            run.clear("frequency_deviation", "14.7.0")

    def _reverse(self, run: _Run, values: dict[str, ReadingRow], profile: MeterProfile) -> None:
        if profile.export_allowed:
            return
        export = values.get("2.7.0")
        net = values.get("16.7.0")
        if export is None and net is None:
            return
        if (export is not None and export.value > 0.01) or (net is not None and net.value < -0.01):
            culprit = export if export is not None and export.value > 0.01 else net
            run.raise_(
                "reverse_flow",
                culprit.quantity,
                f"{_named(culprit.quantity)} at {_value(culprit.quantity, culprit.value)}",
            )
        else:
            run.clear("reverse_flow")

    def _registers(self, run: _Run, readings: list[ReadingRow]) -> None:
        registers = run.state.registers
        for reading in readings:
            if reading.quantity not in CUMULATIVE:
                continue
            ts = reading.ts_us
            previous = registers.get(reading.quantity)
            registers[reading.quantity] = [ts, reading.value]
            if previous is None or ts <= previous[0]:
                continue
            before = previous[1]
            hours = (ts - previous[0]) / 3.6e9
            if reading.value < before:
                wrapped = _rollover(before, reading.value)
                kind = "register_rollover" if wrapped else "register_backwards"
                run.notice(
                    kind,
                    reading.quantity,
                    f"{_named(reading.quantity)} went from {_value(reading.quantity, before)}"
                    f" to {_value(reading.quantity, reading.value)}",
                    details={"before": before, "after": reading.value},
                )
                if not wrapped:
                    run.flag(reading)
            elif reading.value - before > self.config.max_power_kw * hours * 1.1 + 0.01:
                run.notice(
                    "register_jump",
                    reading.quantity,
                    f"{_named(reading.quantity)} rose"
                    f" {_value(reading.quantity, reading.value - before)} in {hours * 60:.1f} min",
                    details={"before": before, "after": reading.value},
                )
                run.flag(reading)

    def _stale(self, run: _Run, readings: list[ReadingRow]) -> None:
        values = [r.value for r in readings if r.quantity in VARYING]
        if not values:
            return
        state = run.state
        if values == state.last_values:
            state.same_reads += 1
        else:
            state.same_reads = 0
            state.last_values = values
            run.clear("stale_value")
        if state.same_reads + 1 >= self.config.stale_reads:
            if "stale_value" not in state.open:
                run.raise_("stale_value", **_stuck(readings, state.same_reads + 1))
            for reading in readings:
                if reading.quantity in VARYING:
                    run.flag(reading)


def _stuck(readings: list[ReadingRow], reads: int) -> dict[str, Any]:
    """A stale-value alert's words and details: which values stood still, and at what."""
    stuck = {r.quantity: r.value for r in readings if r.quantity in VARYING}
    named = "; ".join(f"{_named(q)} {_value(q, v)}" for q, v in list(stuck.items())[:2])
    more = f" and {len(stuck) - 2} more" if len(stuck) > 2 else ""
    return {
        "message": f"the same values {reads} reads running ({named}{more})",
        "details": {"reads": reads, **dict(list(stuck.items())[:12])},  # a dozen say enough
    }


def _rollover(before: float, after: float) -> bool:
    """A register wrapped if it was near a power-of-ten maximum and restarted near zero."""
    if before <= 0:
        return False
    magnitude = 10 ** len(str(int(before)))
    return before >= 0.9 * magnitude and after < 0.1 * magnitude and magnitude >= 10_000


class _Run:
    """What one read of one meter gives: flags on its readings and events."""

    def __init__(
        self,
        meter_id: str,
        state: MeterState,
        readings: list[ReadingRow],
        ts: datetime | None = None,
    ) -> None:
        self.meter_id = meter_id
        self.state = state
        self._readings = readings
        self._flagged: set[int] = set()
        self.events: list[NewEvent] = []
        self._ts = ts

    @property
    def ts(self) -> datetime | None:
        """The time of the read (its first reading's), made a datetime only for an event."""
        if self._ts is None and self._readings:
            self._ts = from_us(self._readings[0].ts_us)
        return self._ts

    def flag(self, reading: ReadingRow) -> None:
        self._flagged.add(id(reading))

    def readings(self) -> list[ReadingRow]:
        if not self._flagged:
            return self._readings
        return [
            r._replace(quality=Quality.SUSPECT)
            if id(r) in self._flagged and r.quality is Quality.OK
            else r
            for r in self._readings
        ]

    def _event(self, kind: str, status: EventStatus, quantity: str, message: str, **kw) -> None:
        severity = kw.pop("severity", None) or EVENT_KINDS[kind][0]
        self.events.append(
            NewEvent(
                ts=self.ts,
                kind=kind,
                status=status,
                severity=severity,
                meter_id=self.meter_id,
                quantity=quantity or None,
                message=message or EVENT_KINDS[kind][1],
                details=kw.pop("details", {}),
            )
        )

    def raise_(self, kind: str, quantity: str = "", message: str = "", **kw: Any) -> None:
        if kind in self.state.open:
            return
        self.state.open[kind] = quantity
        self._event(kind, EventStatus.RAISED, quantity, message, **kw)

    def clear(self, kind: str, quantity: str = "", **kw: Any) -> None:
        if kind not in self.state.open:
            return
        opened = self.state.open.pop(kind)
        self._event(kind, EventStatus.CLEARED, quantity or opened, f"{kind} cleared", **kw)

    def notice(self, kind: str, quantity: str, message: str, **kw: Any) -> None:
        self._event(kind, EventStatus.NOTICE, quantity, message, **kw)


def _named(code: str) -> str:
    """A quantity as a person reads it ('Voltage, phase L1'), its code if unknown."""
    known = QUANTITIES.get(code)
    return known.description if known else code


def _value(code: str, value: float) -> str:
    """A value with its unit, to the meter's resolution ('1,183.783 kvarh')."""
    known = QUANTITIES.get(code)
    return f"{value:,.3f} {known.unit}" if known else f"{value:,.3f}"

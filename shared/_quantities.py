"""The quantity table: OBIS short codes, the common language of every meter protocol.

Modbus profiles map registers onto these codes, DLMS reads them natively and MQTT payloads are
mapped onto them too. The unit of each quantity is fixed; decoders scale into it. Cumulative
quantities (`*.8.*`) are registers whose difference over a period is the energy consumed — the
billing truth. Instantaneous quantities are snapshots; demand (`*.5.0`, `*.6.0`) is the mean power
of the last completed demand period and the highest such mean, which meters hold between periods.
Value group E = 124 is the total harmonic distortion of the quantity named by C.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class QuantityKind(StrEnum):
    CUMULATIVE = "cumulative"
    INSTANTANEOUS = "instantaneous"


@dataclass(frozen=True, slots=True)
class Quantity:
    code: str
    name: str
    unit: str
    kind: QuantityKind
    description: str

    @property
    def is_cumulative(self) -> bool:
        return self.kind is QuantityKind.CUMULATIVE

    @property
    def is_demand(self) -> bool:
        """A demand value (`*.5.*` last period's mean, `*.6.*` its maximum): it changes only when
        a demand period closes, so equal reads within a period are not a stuck meter."""
        return self.code.split(".")[1] in ("5", "6")

    @property
    def group(self) -> str:
        """The kind a person looks for it under: energy, demand, power, voltage, current or
        quality (power factor, frequency, distortion, phase angles)."""
        channel, kind = self.code.split(".")[:2]
        if kind == "8":
            return "energy"
        if kind in ("5", "6"):
            return "demand"
        if self.code.endswith(".124") or channel in ("13", "33", "53", "73", "14", "81"):
            return "quality"
        if channel in ("32", "52", "72"):
            return "voltage"
        if channel in ("31", "51", "71", "90", "91"):
            return "current"
        return "power"

    @property
    def changes_slowly(self) -> bool:
        """Energy registers and demand: they move by small steps or once a period, so they are
        read in the slow poll class and equal reads in a row are not a stuck meter."""
        return self.is_cumulative or self.is_demand


def _q(code: str, name: str, unit: str, kind: QuantityKind, description: str) -> Quantity:
    return Quantity(code, name, unit, kind, description)


_C, _I = QuantityKind.CUMULATIVE, QuantityKind.INSTANTANEOUS

QUANTITIES: dict[str, Quantity] = {
    q.code: q
    for q in (
        _q("1.8.0", "active_energy_import", "kWh", _C, "Active energy imported, total"),
        _q("2.8.0", "active_energy_export", "kWh", _C, "Active energy exported, total"),
        _q("3.8.0", "reactive_energy_import", "kvarh", _C, "Reactive energy imported, total"),
        _q("4.8.0", "reactive_energy_export", "kvarh", _C, "Reactive energy exported, total"),
        _q("9.8.0", "apparent_energy", "kVAh", _C, "Apparent energy, total (kVAh billing)"),
        _q("15.8.0", "active_energy_absolute", "kWh", _C, "Active energy, import plus export"),
        _q("21.8.0", "active_energy_import_l1", "kWh", _C, "Active energy imported, phase L1"),
        _q("41.8.0", "active_energy_import_l2", "kWh", _C, "Active energy imported, phase L2"),
        _q("61.8.0", "active_energy_import_l3", "kWh", _C, "Active energy imported, phase L3"),
        _q("22.8.0", "active_energy_export_l1", "kWh", _C, "Active energy exported, phase L1"),
        _q("42.8.0", "active_energy_export_l2", "kWh", _C, "Active energy exported, phase L2"),
        _q("62.8.0", "active_energy_export_l3", "kWh", _C, "Active energy exported, phase L3"),
        _q("23.8.0", "reactive_energy_import_l1", "kvarh", _C, "Reactive energy imported, L1"),
        _q("43.8.0", "reactive_energy_import_l2", "kvarh", _C, "Reactive energy imported, L2"),
        _q("63.8.0", "reactive_energy_import_l3", "kvarh", _C, "Reactive energy imported, L3"),
        _q("1.7.0", "active_power_import", "kW", _I, "Active power import"),
        _q("2.7.0", "active_power_export", "kW", _I, "Active power export"),
        _q("16.7.0", "active_power_net", "kW", _I, "Net active power (import minus export)"),
        _q("3.7.0", "reactive_power", "kvar", _I, "Reactive power"),
        _q("9.7.0", "apparent_power", "kVA", _I, "Apparent power"),
        _q("21.7.0", "active_power_l1", "kW", _I, "Active power, phase L1 (signed)"),
        _q("41.7.0", "active_power_l2", "kW", _I, "Active power, phase L2 (signed)"),
        _q("61.7.0", "active_power_l3", "kW", _I, "Active power, phase L3 (signed)"),
        _q("32.7.0", "voltage_l1", "V", _I, "Voltage, phase L1 to neutral"),
        _q("52.7.0", "voltage_l2", "V", _I, "Voltage, phase L2 to neutral"),
        _q("72.7.0", "voltage_l3", "V", _I, "Voltage, phase L3 to neutral"),
        _q("31.7.0", "current_l1", "A", _I, "Current, phase L1"),
        _q("51.7.0", "current_l2", "A", _I, "Current, phase L2"),
        _q("71.7.0", "current_l3", "A", _I, "Current, phase L3"),
        _q("29.7.0", "apparent_power_l1", "kVA", _I, "Apparent power, phase L1"),
        _q("49.7.0", "apparent_power_l2", "kVA", _I, "Apparent power, phase L2"),
        _q("69.7.0", "apparent_power_l3", "kVA", _I, "Apparent power, phase L3"),
        _q("23.7.0", "reactive_power_l1", "kvar", _I, "Reactive power, phase L1"),
        _q("43.7.0", "reactive_power_l2", "kvar", _I, "Reactive power, phase L2"),
        _q("63.7.0", "reactive_power_l3", "kvar", _I, "Reactive power, phase L3"),
        _q("33.7.0", "power_factor_l1", "", _I, "Power factor, phase L1"),
        _q("53.7.0", "power_factor_l2", "", _I, "Power factor, phase L2"),
        _q("73.7.0", "power_factor_l3", "", _I, "Power factor, phase L3"),
        _q("91.7.0", "current_neutral", "A", _I, "Current in the neutral conductor"),
        _q("13.7.0", "power_factor", "", _I, "Power factor, total (dimensionless)"),
        _q("14.7.0", "frequency", "Hz", _I, "Supply frequency"),
        _q("90.7.0", "current_sum", "A", _I, "Sum of the phase currents"),
        _q("81.7.40", "phase_angle_l1", "°", _I, "Angle of current I(L1) to voltage U(L1)"),
        _q("81.7.51", "phase_angle_l2", "°", _I, "Angle of current I(L2) to voltage U(L2)"),
        _q("81.7.62", "phase_angle_l3", "°", _I, "Angle of current I(L3) to voltage U(L3)"),
        _q("32.7.124", "voltage_thd_l1", "%", _I, "Total harmonic distortion of voltage L1"),
        _q("52.7.124", "voltage_thd_l2", "%", _I, "Total harmonic distortion of voltage L2"),
        _q("72.7.124", "voltage_thd_l3", "%", _I, "Total harmonic distortion of voltage L3"),
        _q("31.7.124", "current_thd_l1", "%", _I, "Total harmonic distortion of current L1"),
        _q("51.7.124", "current_thd_l2", "%", _I, "Total harmonic distortion of current L2"),
        _q("71.7.124", "current_thd_l3", "%", _I, "Total harmonic distortion of current L3"),
        _q(
            "1.5.0",
            "active_power_import_demand",
            "kW",
            _I,
            "Active import demand: mean power over the last completed demand period",
        ),
        _q(
            "1.6.0",
            "active_power_import_max_demand",
            "kW",
            _I,
            "Maximum active import demand (highest period mean) since the last reset",
        ),
        _q(
            "9.5.0",
            "apparent_power_demand",
            "kVA",
            _I,
            "Apparent demand: mean apparent power over the last completed demand period",
        ),
        _q(
            "9.6.0",
            "apparent_power_max_demand",
            "kVA",
            _I,
            "Maximum apparent demand (highest period mean) since the last reset",
        ),
    )
}

QUANTITY_CODES: tuple[str, ...] = tuple(QUANTITIES)


def get_quantity(code: str) -> Quantity:
    """Look up a quantity by its OBIS short code; raise KeyError naming the known codes."""
    try:
        return QUANTITIES[code]
    except KeyError:
        raise KeyError(
            f"unknown quantity {code!r}; known OBIS codes: {', '.join(QUANTITY_CODES)}"
        ) from None

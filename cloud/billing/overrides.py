"""Temporary tariff overrides: for a window of the board's days, a category's energy charge is
replaced by a flat rate per unit (`energy_rate`) or multiplied (`multiplier`).

Pure arithmetic over plain data, like the rest of `cloud.billing`: `apply` gives the tariff
version as it stands under an override (every other charge untouched), `describe` the words the
bill's lines carry ("override 1.1× from 1 to 10 Nov (heat wave relief)"). The engine cuts a
period where an override begins or ends, exactly as it does where a version changes, so the part
of a period inside the window gets its share of the units by days and is priced under it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Literal

from .tariff import EnergyCharge, TariffSpec

OverrideKind = Literal["energy_rate", "multiplier"]


@dataclass(frozen=True)
class TariffOverride:
    id: int
    kind: OverrideKind
    value: Decimal
    start: date  # the board's local day it begins
    end: date  # exclusive: the first local day it no longer applies
    reason: str


def apply(spec: TariffSpec, override: TariffOverride) -> TariffSpec:
    """`spec` with its energy charge overridden: one flat rate for every unit, or every energy
    rate (flat, slab, time-of-day period) multiplied — slab and schedule limits unchanged."""
    if override.kind == "energy_rate":
        flat = EnergyCharge.model_construct(mode="flat", rate=override.value)
        return spec.model_copy(update={"energy": flat, "schedules": None})
    factor = override.value

    def scaled(charge: EnergyCharge) -> EnergyCharge:
        return charge.model_copy(
            update={
                "rate": None if charge.rate is None else charge.rate * factor,
                "slabs": None
                if charge.slabs is None
                else [s.model_copy(update={"rate": s.rate * factor}) for s in charge.slabs],
                "rates": None
                if charge.rates is None
                else {name: rate * factor for name, rate in charge.rates.items()},
            }
        )

    if spec.schedules is not None:
        schedules = [s.model_copy(update={"energy": scaled(s.energy)}) for s in spec.schedules]
        return spec.model_copy(update={"schedules": schedules})
    assert spec.energy is not None  # the validator allows nothing else
    return spec.model_copy(update={"energy": scaled(spec.energy)})


def describe(override: TariffOverride) -> str:
    """The override in a bill line's words: "override 1.1× from 1 to 10 Nov (reason)"."""
    last = override.end - timedelta(days=1)
    value = f"{override.value.normalize():f}"
    what = f"{value}×" if override.kind == "multiplier" else f"flat rate {value} a unit"
    if override.start == last:
        days = f"on {override.start.day} {override.start:%b}"
    elif (override.start.year, override.start.month) == (last.year, last.month):
        days = f"from {override.start.day} to {last.day} {last:%b}"
    else:
        days = f"from {override.start.day} {override.start:%b} to {last.day} {last:%b}"
    return f"override {what} {days} ({override.reason})"


def cut_by_overrides(
    start: date, end: date, overrides: list[TariffOverride]
) -> list[tuple[date, date, TariffOverride | None]]:
    """[start, end) cut where an override begins or ends: each piece with the override in force
    on it, or None. Overrides of one category never overlap (the service checks)."""
    pieces: list[tuple[date, date, TariffOverride | None]] = []
    day = start
    for override in sorted(overrides, key=lambda o: o.start):
        begin, stop = max(override.start, day), min(override.end, end)
        if begin >= stop:
            continue
        if begin > day:
            pieces.append((day, begin, None))
        pieces.append((begin, stop, override))
        day = stop
    if day < end:
        pieces.append((day, end, None))
    return pieces

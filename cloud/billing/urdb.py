"""Tariffs in and out as OpenEI URDB-like JSON.

The URDB fields used: `energyratestructure` (periods, each a list of tiers `{max, rate, adj}`,
the effective rate being `rate + adj`), `energyweekdayschedule` / `energyweekendschedule`
(12 x 24 period indexes), `fixedchargefirstmeter` (per month), `mincharge` (per month). What URDB
cannot say lives under `gridgate`: the slab mode (URDB tiers are telescopic; `non_telescopic`
prices all units at the reached tier), the energy unit, period names, banded fixed charges,
load-based tiers, fuel adjustment, taxes, rounding, net-metering terms and whether slab limits
are per month or per two months.

Supported shapes: one period with one tier (flat), one period with tiers (slabs), several
periods with one tier each (time of day). Several periods with several tiers each (tiered time
of day) is refused with a message saying so, and so is a version whose energy charge is chosen
by consumption among several schedules (URDB has no way to say it).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .tariff import DynamicTier, FixedCharge, NetMetering, Rounding, TariffSpec, Tax

Number = Annotated[Decimal, Field(ge=Decimal("-1e6"), le=Decimal("1e9"))]


class UrdbTier(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max: Number | None = None
    rate: Number = Decimal(0)
    adj: Number = Decimal(0)
    unit: Literal["kWh"] | None = None


class GridgateExtension(BaseModel):
    model_config = ConfigDict(extra="forbid")
    slab_mode: Literal["telescopic", "non_telescopic"] = "telescopic"
    limits_per: Literal["month", "two_months"] = "month"
    energy_unit: Literal["kWh", "kVAh"] = "kWh"
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] = "INR"
    period_names: list[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")]] | None = None
    fixed: FixedCharge | None = None
    dynamic: list[DynamicTier] = Field(default_factory=list, max_length=10)
    fuel_adjustment_per_unit: Number = Decimal(0)
    taxes: list[Tax] = Field(default_factory=list, max_length=10)
    rounding: Rounding = Rounding()
    net_metering: NetMetering | None = None


Meta = Annotated[str, Field(max_length=500)]


class UrdbRate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    label: Meta | None = None
    name: Meta | None = None
    utility: Meta | None = None
    sector: Meta | None = None
    description: Annotated[str, Field(max_length=5000)] | None = None
    source: Meta | None = None
    uri: Meta | None = None
    startdate: int | None = None
    enddate: int | None = None
    energyratestructure: Annotated[list[list[UrdbTier]], Field(min_length=1, max_length=12)]
    energyweekdayschedule: list[list[int]] | None = None
    energyweekendschedule: list[list[int]] | None = None
    fixedchargefirstmeter: Number = Decimal(0)
    fixedchargeunits: Literal["$/month"] | None = None
    mincharge: Number = Decimal(0)
    minchargeunits: Literal["$/month"] | None = None
    gridgate: GridgateExtension = GridgateExtension()


def from_urdb(data: dict[str, Any]) -> TariffSpec:
    """A TariffSpec from URDB-like JSON; ValueError/ValidationError name the field at fault."""
    rate = UrdbRate.model_validate(data)
    ext = rate.gridgate
    periods = rate.energyratestructure
    if len(periods) == 1:
        tiers = periods[0]
        if len(tiers) == 1 and tiers[0].max is None:
            energy: dict[str, Any] = {"mode": "flat", "rate": tiers[0].rate + tiers[0].adj}
        else:
            energy = {
                "mode": ext.slab_mode,
                "slabs": [{"up_to": t.max, "rate": t.rate + t.adj} for t in tiers],
            }
    else:
        if any(len(tiers) != 1 for tiers in periods):
            raise ValueError(
                "energyratestructure: several periods with several tiers each (tiered time of"
                " day) is not supported; give each period one tier"
            )
        names = ext.period_names or [f"p{i}" for i in range(len(periods))]
        if len(names) != len(periods):
            raise ValueError(
                f"gridgate.period_names: {len(names)} names for {len(periods)} periods"
            )
        schedules = {}
        for field in ("energyweekdayschedule", "energyweekendschedule"):
            matrix = getattr(rate, field)
            if matrix is None or len(matrix) != 12 or any(len(row) != 24 for row in matrix):
                raise ValueError(f"{field}: a schedule is 12 months x 24 hours")
            if any(not 0 <= p < len(periods) for row in matrix for p in row):
                raise ValueError(f"{field}: period indexes run from 0 to {len(periods) - 1}")
            schedules[field] = [[names[p] for p in row] for row in matrix]
        energy = {
            "mode": "time_of_day",
            "rates": {
                n: tiers[0].rate + tiers[0].adj for n, tiers in zip(names, periods, strict=True)
            },
            "weekday": schedules["energyweekdayschedule"],
            "weekend": schedules["energyweekendschedule"],
        }
    fixed = ext.fixed or FixedCharge(per_connection=rate.fixedchargefirstmeter)
    return TariffSpec.model_validate(
        {
            "currency": ext.currency,
            "energy_unit": ext.energy_unit,
            "energy": energy,
            "limits_per": ext.limits_per,
            "dynamic": ext.dynamic,
            "fixed": fixed,
            "fuel_adjustment_per_unit": ext.fuel_adjustment_per_unit,
            "taxes": ext.taxes,
            "minimum_charge": rate.mincharge,
            "rounding": ext.rounding,
            "net_metering": ext.net_metering,
        }
    )


def to_urdb(spec: TariffSpec) -> dict[str, Any]:
    """URDB-like JSON for a TariffSpec (from_urdb(to_urdb(spec)) == spec); ValueError for a
    version with schedules chosen by consumption, which URDB cannot express."""
    energy = spec.energy
    if energy is None:
        raise ValueError(
            "schedules: this version chooses its energy charge by consumption among"
            f" {len(spec.schedules or [])} schedules, which URDB cannot express; read its spec"
            " from the tariff's versions instead"
        )
    extension: dict[str, Any] = {
        "energy_unit": spec.energy_unit,
        "limits_per": spec.limits_per,
        "currency": spec.currency,
        "fixed": spec.fixed.model_dump(mode="json"),
        "dynamic": [t.model_dump(mode="json") for t in spec.dynamic],
        "fuel_adjustment_per_unit": str(spec.fuel_adjustment_per_unit),
        "taxes": [t.model_dump(mode="json") for t in spec.taxes],
        "rounding": spec.rounding.model_dump(mode="json"),
    }
    if spec.net_metering is not None:
        extension["net_metering"] = spec.net_metering.model_dump(mode="json")
    out: dict[str, Any] = {"mincharge": str(spec.minimum_charge), "minchargeunits": "$/month"}
    if energy.mode == "flat":
        out["energyratestructure"] = [[{"rate": str(energy.rate)}]]
    elif energy.mode in ("telescopic", "non_telescopic"):
        extension["slab_mode"] = energy.mode
        out["energyratestructure"] = [
            [
                {"rate": str(s.rate), **({"max": str(s.up_to)} if s.up_to is not None else {})}
                for s in energy.slabs or []
            ]
        ]
    else:
        names = list(energy.rates or {})
        extension["period_names"] = names
        out["energyratestructure"] = [[{"rate": str((energy.rates or {})[n])}] for n in names]
        out["energyweekdayschedule"] = [
            [names.index(p) for p in row] for row in energy.weekday or []
        ]
        out["energyweekendschedule"] = [
            [names.index(p) for p in row] for row in energy.weekend or []
        ]
    out["fixedchargefirstmeter"] = "0"
    out["fixedchargeunits"] = "$/month"
    out["gridgate"] = extension
    return out


__all__ = ["ValidationError", "from_urdb", "to_urdb"]

"""The cycle-bill forecast, backtested on simulated households: how far off is it at mid-cycle?

Simulates N households (`firmware_sim.physics`, one seed each, with their own standing load,
evening peak, appliances, day-to-day habits, weeks away and a season — spring into summer, so
use rises) from 1 Jan 2025, hourly register reads in Asia/Kolkata. The board bills monthly on
the 10th: three cycles, 10 Mar to 10 Jun (92 days). At the middle of each cycle it forecasts
the cycle's bill from the reads taken up to then — nothing later reaches the forecaster — and
compares it with the bill the engine makes of the whole cycle's reads, as a billing run would.
The linear projection (the cycle so far at the same daily rate, as `GET .../estimate` does)
is measured side by side. Both are priced through the billing engine with the same tariff
(Delhi's telescopic slabs with 5 % duty, or `--time-of-day` rates).

Prints JSON lines:

    households, cycles               how many were forecast
    mape_pct                         mean absolute % error of the forecast bill    target <= 10 %
    mape_linear_pct                  the same for the linear projection
    mape_units_pct                   the forecast's units (what the money is made from)
    within_range_pct                 bills inside the forecast's 80 % range (aim: about 80)
    p90_error_pct                    the 90th percentile of the forecast's absolute error
    next_mape_pct                    the next period's bill, forecast at the start of each cycle
                                     from the weeks before it and the season a year back
                                     (half the year-ago change believed, as the service does)
    next_mape_recent_only_pct        the same without the season (the recent weeks alone)
    next_mape_full_season_pct        the same with the whole year-ago change
    next_mape_linear_pct             the last 30 days' rate carried over the next period
    elapsed_s                        the whole run

For the next period the simulation starts more than a year earlier (1 Jan 2025), so each cycle
has the same weeks of a year before to take its seasonal factor from (daily units, as the
rollups hold them). The physics' season repeats exactly each year: the factor is here as good
as it gets.

`--regular` takes the habits, weeks away and season out (the physics' default): every day is
then alike but for the appliances' draws, and any forecast looks good.

Run: python bench/forecast.py [--households 200] [--time-of-day] [--regular]
"""

from __future__ import annotations

import argparse
import json
import random
import time
from datetime import UTC, date, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from cloud.billing import forecast
from cloud.billing.consumption import Consumption, MeterSpan, Read, consumption, to_decimal
from cloud.billing.engine import TariffVersion, compute_bill, local_midnight
from cloud.billing.examples import DELHI_DOMESTIC_2015
from cloud.billing.tariff import TariffSpec
from firmware_sim.physics import LoadShape, MeterPhysics

IST = ZoneInfo("Asia/Kolkata")
SIM_START = date(2025, 1, 1)  # a year before the cycles: the next period's season
CYCLES = [
    (date(2026, 3, 10), date(2026, 4, 10)),
    (date(2026, 4, 10), date(2026, 5, 10)),
    (date(2026, 5, 10), date(2026, 6, 10)),
]
DELHI = {
    **DELHI_DOMESTIC_2015,
    "taxes": [{"name": "Electricity duty", "percent": 5, "base": "energy"}],
}
EVENING_PEAK = ["off_peak"] * 6 + ["normal"] * 12 + ["peak"] * 4 + ["normal"] * 2
TIME_OF_DAY = {
    **DELHI,
    "energy": {
        "mode": "time_of_day",
        "rates": {"off_peak": "3.50", "normal": "5.00", "peak": "7.50"},
        "weekday": [EVENING_PEAK] * 12,
        "weekend": [["off_peak"] * 6 + ["normal"] * 18] * 12,
    },
}


def emit(figure: str, value: float, unit: str, **extra: object) -> None:
    line = {"bench": "forecast", "figure": figure, "value": round(value, 2), "unit": unit}
    print(json.dumps({**line, **extra}), flush=True)


def household(seed: int, regular: bool) -> LoadShape:
    """A single-phase household of its own kind: 150 to 900 kWh a month (`regular`: every day
    alike but for the appliances' draws, as the physics is by default)."""
    draw = random.Random(seed)
    return LoadShape(
        phases=1,
        base_kw=draw.uniform(0.05, 0.3),
        peak_kw=draw.uniform(0.3, 2.0),
        appliance_kw=draw.uniform(0.2, 1.2),
        day_to_day=0.0 if regular else draw.uniform(0.1, 0.35),
        away_chance=0.0 if regular else draw.uniform(0.0, 0.25),
        seasonal=0.0 if regular else draw.uniform(0.1, 0.4),
    )


def hourly_reads(seed: int, end: date, regular: bool) -> list[Read]:
    """The import register at every hour (UTC) from SIM_START to `end`, as a gateway sends it."""
    start = local_midnight(SIM_START, IST).astimezone(UTC)
    physics = MeterPhysics(
        seed=seed,
        shape=household(seed, regular),
        start_s=start.timestamp(),
        slot_s=900.0,
        initial_import_kwh=1000.0 + seed,
    )
    reads = []
    at = start
    stop = local_midnight(end, IST) + timedelta(hours=1)
    while at <= stop:
        physics.advance_to(at.timestamp())
        reads.append(Read(at, to_decimal(round(physics.registers()["1.8.0"], 3))))
        at += timedelta(hours=1)
    return reads


def bill(units: Decimal, by_hour: dict, start: date, end: date, versions) -> Decimal:
    return compute_bill(
        period_start=start,
        period_end=end,
        tz=IST,
        consumption=Consumption(units, by_hour, True, []),
        versions=versions,
        sanctioned_kw=Decimal(3),
        cycle_months=Decimal(1),
    ).total


def next_period(reads: list[Read], start: date, end: date, versions) -> dict:
    """The cycle [start, end) forecast from the reads up to its start, with and without the
    season a year back, and as the last 30 days' rate."""
    as_of = local_midnight(start, IST)
    known = [r for r in reads if r.ts <= as_of]
    since = as_of - timedelta(days=forecast.WINDOW_DAYS + 2)
    recent = [r for r in known if r.ts >= since]
    history = consumption([MeterSpan(1, recent, recent[0].ts, as_of)], IST, hourly=True)
    whole = consumption([MeterSpan(1, known, known[0].ts, as_of)], IST, hourly=True)
    year_ago = forecast.daily_units(whole.by_hour, IST, known[0].ts, as_of)
    out = {}
    for name, past in (("seasonal", year_ago), ("recent_only", None)):
        ahead = forecast.forecast_next(
            by_hour=history.by_hour,
            covered_from=recent[0].ts,
            as_of=as_of,
            period_start=start,
            period_end=end,
            tz=IST,
            year_ago=past,
        )
        out[name] = bill(ahead.expected, ahead.by_hour, start, end, versions)
        out[f"{name}_factor"] = ahead.seasonal_factor
    # the whole year-ago change, unweighted, for comparison
    recent_days = sorted(forecast.daily_units(history.by_hour, IST, recent[0].ts, as_of))
    change = forecast.seasonal_factor(year_ago, recent_days[-forecast.WINDOW_DAYS :], start, end)
    if change is not None:
        plain = forecast.forecast_next(
            by_hour=history.by_hour,
            covered_from=recent[0].ts,
            as_of=as_of,
            period_start=start,
            period_end=end,
            tz=IST,
        )
        hours = {h: e * change for h, e in plain.by_hour.items()}
        out["full_season"] = bill(plain.expected * change, hours, start, end, versions)
    else:
        out["full_season"] = out["recent_only"]
    month_ago = as_of - timedelta(days=30)
    last_30 = consumption([MeterSpan(1, known, month_ago, as_of)], IST).units
    out["linear"] = bill(last_30 / 30 * (end - start).days, {}, start, end, versions)
    return out


def backtest(seed: int, versions: list[TariffVersion], regular: bool) -> list[dict]:
    reads = hourly_reads(seed, CYCLES[-1][1], regular)
    out = []
    for start, end in CYCLES:
        # the whole cycle, as its billing run sees it
        cycle = MeterSpan(1, reads, local_midnight(start, IST), local_midnight(end, IST))
        actual_use = consumption([cycle], IST, hourly=True)
        actual = bill(actual_use.units, actual_use.by_hour, start, end, versions)
        # mid-cycle: only the reads taken by then
        middle = local_midnight(start + (end - start) / 2, IST)
        known = [r for r in reads if r.ts <= middle]
        as_of = known[-1].ts
        history = consumption([MeterSpan(1, known, known[0].ts, as_of)], IST, hourly=True)
        so_far = consumption([MeterSpan(1, known, local_midnight(start, IST), as_of)], IST)
        units = forecast.forecast_units(
            by_hour=history.by_hour,
            covered_from=known[0].ts,
            as_of=as_of,
            so_far=so_far.units,
            cycle_start=start,
            cycle_end=end,
            tz=IST,
        )
        priced = forecast.price(
            units, versions=versions, tz=IST, sanctioned_kw=Decimal(3), cycle_months=Decimal(1)
        )
        elapsed = Decimal((as_of - local_midnight(start, IST)).total_seconds()) / 86_400
        linear_units = so_far.units / elapsed * (end - start).days
        linear = bill(linear_units, {}, start, end, versions)
        ahead = next_period(reads, start, end, versions)
        out.append(
            {
                "next": ahead["seasonal"],
                "next_recent_only": ahead["recent_only"],
                "next_full_season": ahead["full_season"],
                "next_linear": ahead["linear"],
                "next_factor": ahead["seasonal_factor"],
                "actual": actual,
                "actual_units": actual_use.units,
                "forecast": priced.expected.total,
                "forecast_units": units.expected,
                "low": priced.low.total,
                "high": priced.high.total,
                "linear": linear,
            }
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--households", type=int, default=200)
    parser.add_argument("--time-of-day", action="store_true")
    parser.add_argument("--regular", action="store_true", help="households without habits")
    args = parser.parse_args()
    began = time.perf_counter()
    spec = TariffSpec.model_validate(TIME_OF_DAY if args.time_of_day else DELHI)
    versions = [TariffVersion(1, date(2020, 1, 1), None, spec)]
    results = [
        r for seed in range(1, args.households + 1) for r in backtest(seed, versions, args.regular)
    ]

    def pct(value: Decimal, truth: Decimal) -> float:
        return float(abs(value - truth) / truth * 100)

    errors = sorted(pct(r["forecast"], r["actual"]) for r in results)
    tariff = "time_of_day" if args.time_of_day else "telescopic_slabs"
    emit("households", args.households, "households", tariff=tariff, regular=args.regular)
    emit("cycles", len(results), "household-cycles", days=(CYCLES[-1][1] - CYCLES[0][0]).days)
    emit("mape_pct", sum(errors) / len(errors), "%", target="<= 10")
    linear = [pct(r["linear"], r["actual"]) for r in results]
    emit("mape_linear_pct", sum(linear) / len(linear), "%")
    units = [pct(r["forecast_units"], r["actual_units"]) for r in results]
    emit("mape_units_pct", sum(units) / len(units), "%")
    inside = sum(1 for r in results if r["low"] <= r["actual"] <= r["high"])
    emit("within_range_pct", 100 * inside / len(results), "%", aim="about 80")
    emit("p90_error_pct", errors[int(0.9 * (len(errors) - 1))], "%")
    for figure, key in (
        ("next_mape_pct", "next"),
        ("next_mape_recent_only_pct", "next_recent_only"),
        ("next_mape_full_season_pct", "next_full_season"),
        ("next_mape_linear_pct", "next_linear"),
    ):
        ahead = [pct(r[key], r["actual"]) for r in results]
        emit(figure, sum(ahead) / len(ahead), "%", at="the cycle's start")
    seasonal = sum(1 for r in results if r["next_factor"] is not None)
    emit("next_with_season_pct", 100 * seasonal / len(results), "%")
    mean_bill = sum(r["actual"] for r in results) / len(results)
    emit("mean_bill", float(mean_bill), "INR")
    emit("elapsed_s", time.perf_counter() - began, "s")


if __name__ == "__main__":
    main()

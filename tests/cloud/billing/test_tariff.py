"""Tariff arithmetic, worked by hand in each test (the sums are written out), plus properties."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from cloud.billing.tariff import TariffSpec, Usage, close_bill, price

# Delhi, DERC tariff order FY2015-16, domestic
DELHI = TariffSpec.model_validate(
    {
        "energy": {
            "mode": "telescopic",
            "slabs": [
                {"up_to": 200, "rate": "4.00"},
                {"up_to": 400, "rate": "5.95"},
                {"up_to": 800, "rate": "7.30"},
                {"up_to": 1200, "rate": "8.10"},
                {"rate": "8.75"},
            ],
        },
        "fixed": {
            "bands": [
                {"up_to_kw": 2, "amount": 40},
                {"up_to_kw": 5, "amount": 100},
                {"per_kw": 25},
            ]
        },
    }
)


def bill(spec: TariffSpec, units: str, kw: str = "3", months: str = "1", **kw_args) -> tuple:
    usage = Usage(units=D(units), months=D(months), sanctioned_kw=D(kw), **kw_args)
    lines, total = close_bill(spec, price(spec, usage))
    return lines, total


def test_delhi_domestic_450_units_on_3_kw() -> None:
    lines, total = bill(DELHI, "450", "3")
    # 200 x 4.00 = 800.00; 200 x 5.95 = 1190.00; 50 x 7.30 = 365.00; fixed (2-5 kW) = 100.00
    assert [(line.quantity, line.rate, line.amount) for line in lines] == [
        (D(200), D("4.00"), D("800.00")),
        (D(200), D("5.95"), D("1190.00")),
        (D(50), D("7.30"), D("365.00")),
        (D(1), D(100), D("100.00")),
    ]
    assert total == D("800.00") + D("1190.00") + D("365.00") + D("100.00") == D("2455.00")


def test_delhi_domestic_1300_units_on_6_kw_and_small_loads() -> None:
    _, total = bill(DELHI, "1300", "6")
    # 800 + 1190 + 400 x 7.30 (2920) + 400 x 8.10 (3240) + 100 x 8.75 (875) + 6 kW x 25 (150)
    assert total == D(800 + 1190 + 2920 + 3240 + 875 + 150) == D("9175.00")
    _, small = bill(DELHI, "150", "1.5")
    assert small == D(150 * 4) + D(40) == D("640.00")  # 150 x 4.00 + fixed up to 2 kW


def test_non_telescopic_prices_everything_at_the_reached_slab() -> None:
    spec = DELHI.model_copy(
        update={"energy": DELHI.energy.model_copy(update={"mode": "non_telescopic"})}
    )
    _, total = bill(spec, "450", "3")
    assert total == D(450) * D("7.30") + D(100) == D("3385.00")  # 3285 + 100


def test_time_of_day_flat_dynamic_fuel_taxes_minimum_and_rounding() -> None:
    peak_hours = ["normal"] * 18 + ["peak"] * 5 + ["normal"]
    spec = TariffSpec.model_validate(
        {
            "energy": {
                "mode": "time_of_day",
                "rates": {"normal": "5.00", "peak": "6.25"},
                "weekday": [peak_hours] * 12,
                "weekend": [["normal"] * 24] * 12,
            },
            "dynamic": [
                {"min_load_pct": 90, "adjust_pct": 20},
                {"min_load_pct": 75, "adjust_pct": 10},
                {"min_load_pct": 50, "adjust_pct": 0},
                {"min_load_pct": 0, "adjust_pct": -5},
            ],
            "fuel_adjustment_per_unit": "0.12",
            "fixed": {"per_kw": "30"},
            "taxes": [{"name": "Electricity duty", "percent": 5, "base": "energy"}],
            "rounding": {"total": "1"},
        }
    )
    usage = Usage(
        units=D("300.5"),
        months=D(1),
        by_period={"normal": D("250.5"), "peak": D(50)},
        sanctioned_kw=D(4),
        load_pct=D(80),
    )
    lines, total = close_bill(spec, price(spec, usage))
    amounts = {line.description.split(" at ")[0]: line.amount for line in lines}
    # normal 250.5 x 5.00 = 1252.50; peak 50 x 6.25 = 312.50; energy 1565.00
    # load 80 % -> +10 % of 1565.00 = 156.50; fuel 300.5 x 0.12 = 36.06
    # fixed 4 kW x 30 = 120.00; duty 5 % of energy (1565.00 + 156.50 + 36.06 = 1757.56) = 87.88
    assert amounts["Energy, normal hours"] == D("1252.50")
    assert amounts["Energy, peak hours"] == D("312.50")
    assert amounts["Load-based adjustment"] == D("156.50")
    assert amounts["Fuel and power purchase adjustment"] == D("36.06")
    assert amounts["Fixed charge, 4 kW sanctioned load"] == D("120.00")
    assert amounts["Electricity duty"] == D("87.88")
    raw = D("1252.50") + D("312.50") + D("156.50") + D("36.06") + D("120.00") + D("87.88")
    assert raw == D("1965.44")
    assert total == D(1965)  # rounded to the rupee ...
    assert lines[-1].amount == D("-0.44")  # ... by a visible line
    flat = TariffSpec.model_validate(
        {"energy": {"mode": "flat", "rate": "3"}, "minimum_charge": "200"}
    )
    lines, total = bill(flat, "20")
    assert total == D(200)  # 20 x 3 = 60, topped up to the minimum of 200
    assert lines[-1].amount == D(140)


def test_a_part_month_scales_slabs_and_fixed_charges() -> None:
    # 15 days of a 30-day month: slabs end at 100, 200, ...; fixed is half of 100
    _, total = bill(DELHI, "250", "3", months="0.5")
    assert total == D(100) * D(4) + D(100) * D("5.95") + D(50) * D("7.30") + D(50)


def test_fixed_charges_on_sanctioned_load_or_maximum_demand_whichever_is_higher() -> None:
    per_kw = TariffSpec.model_validate(
        {
            "energy": {"mode": "flat", "rate": "5"},
            "fixed": {"per_kw": "30", "basis": "higher_of_load_and_demand"},
        }
    )

    def fixed(spec: TariffSpec, demand: str | None) -> tuple[str, D]:
        lines, _ = bill(spec, "100", "4", max_demand_kw=None if demand is None else D(demand))
        [line] = [line for line in lines if line.code == "fixed"]
        return line.description, line.amount

    # 5.25 kW recorded on a 4 kW connection: 5.25 x 30 = 157.50
    assert fixed(per_kw, "5.25") == ("Fixed charge, 5.25 kW maximum demand", D("157.50"))
    # below the sanctioned load, or none recorded: 4 x 30 = 120.00
    assert fixed(per_kw, "3.1") == ("Fixed charge, 4 kW sanctioned load", D("120.00"))
    assert fixed(per_kw, None) == ("Fixed charge, 4 kW sanctioned load", D("120.00"))
    # the bands go by the same load: 6.2 kW of demand is past DELHI's 2-5 kW band, 6.2 x 25
    banded = DELHI.model_copy(
        update={"fixed": DELHI.fixed.model_copy(update={"basis": "higher_of_load_and_demand"})}
    )
    assert fixed(banded, "6.2") == ("Fixed charge, 6.2 kW maximum demand", D("155.00"))
    assert fixed(DELHI, "6.2") == ("Fixed charge for 4 kW sanctioned load", D("100.00"))


@given(
    units=st.decimals(min_value=0, max_value=5000, places=3), kw=st.sampled_from(["1", "4", "9"])
)
@settings(max_examples=200)
def test_total_is_the_sum_of_lines_and_each_line_is_rounded_once(units: D, kw: str) -> None:
    lines, total = bill(DELHI, str(units), kw)
    assert total == sum(line.amount for line in lines)
    for line in lines:
        assert line.amount == line.amount.quantize(D("0.01"))
        assert abs(line.amount - line.quantity * line.rate) <= D("0.005")


@given(
    a=st.decimals(min_value=0, max_value=3000, places=2),
    b=st.decimals(min_value=0, max_value=3000, places=2),
)
def test_telescopic_charge_never_falls_as_consumption_rises(a: D, b: D) -> None:
    low, high = sorted((a, b))
    assert bill(DELHI, str(low))[1] <= bill(DELHI, str(high))[1]


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"energy": {"mode": "flat", "rate": "-1"}}, "rate"),
        ({"energy": {"mode": "telescopic", "slabs": [{"up_to": 100, "rate": 1}]}}, "open-ended"),
        (
            {
                "energy": {
                    "mode": "telescopic",
                    "slabs": [{"up_to": 200, "rate": 1}, {"up_to": 100, "rate": 2}, {"rate": 3}],
                }
            },
            "slabs.1.up_to",
        ),
        (
            {
                "energy": {
                    "mode": "time_of_day",
                    "rates": {"normal": 5},
                    "weekday": [["normal"] * 24] * 11,
                    "weekend": [["normal"] * 24] * 12,
                }
            },
            "12 months x 24 hours",
        ),
        (
            {
                "energy": {
                    "mode": "time_of_day",
                    "rates": {"normal": 5},
                    "weekday": [["normal"] * 23 + ["peak"]] * 12,
                    "weekend": [["normal"] * 24] * 12,
                }
            },
            "peak",
        ),
        ({"energy": {"mode": "flat"}}, "rate is required"),
        ({"energy": {"mode": "flat", "rate": 1}, "surprise": 1}, "surprise"),
        (
            {
                "energy": {"mode": "flat", "rate": 1},
                "dynamic": [{"min_load_pct": 50, "adjust_pct": 1}],
            },
            "min_load_pct 0",
        ),
        (
            {"energy": {"mode": "flat", "rate": 1}, "fixed": {"basis": "contract_demand"}},
            "fixed.basis",
        ),
    ],
)
def test_bad_tariffs_name_what_is_wrong(spec: dict, field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        TariffSpec.model_validate(spec)
    assert field in str(caught.value)


def test_urdb_round_trip_and_time_of_day_import() -> None:
    from cloud.billing.urdb import from_urdb, to_urdb

    assert from_urdb(to_urdb(DELHI)) == DELHI
    imported = from_urdb(
        {
            "label": "TOD-1",
            "energyratestructure": [[{"rate": 5, "adj": "0.25"}], [{"rate": 7}]],
            "energyweekdayschedule": [[0] * 18 + [1] * 4 + [0] * 2] * 12,
            "energyweekendschedule": [[0] * 24] * 12,
            "fixedchargefirstmeter": 50,
            "mincharge": 100,
            "gridgate": {"period_names": ["normal", "peak"]},
        }
    )
    assert imported.energy.rates == {"normal": D("5.25"), "peak": D(7)}
    assert imported.energy.weekday[0][19] == "peak"
    assert imported.fixed.per_connection == D(50)
    assert imported.minimum_charge == D(100)
    assert from_urdb(to_urdb(imported)) == imported


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (
            {"energyratestructure": [[{"max": 1, "rate": 1}, {"rate": 2}], [{"rate": 3}]]},
            "tiered time of day",
        ),
        (
            {
                "energyratestructure": [[{"rate": 1}], [{"rate": 2}]],
                "energyweekdayschedule": [[0] * 24] * 12,
                "energyweekendschedule": [[0] * 24] * 10,
            },
            "energyweekendschedule",
        ),
        ({"energyratestructure": [[{"rate": 1}]], "colour": "red"}, "colour"),
    ],
)
def test_bad_urdb_names_the_field(data: dict, words: str) -> None:
    from cloud.billing.urdb import from_urdb

    with pytest.raises(ValueError, match=words):
        from_urdb(data)


@pytest.mark.parametrize(("start", "words"), [("150", "a gap"), ("50", "an overlap")])
def test_slabs_with_a_gap_or_an_overlap_are_refused(start: str, words: str) -> None:
    with pytest.raises(ValidationError, match=f"slabs.1.from.*{words}"):
        TariffSpec.model_validate(
            {
                "energy": {
                    "mode": "telescopic",
                    "slabs": [
                        {"from": 0, "up_to": 100, "rate": 1},
                        {"from": start, "up_to": 200, "rate": 2},
                        {"from": 200, "rate": 3},
                    ],
                }
            }
        )
    explicit = TariffSpec.model_validate(
        {
            "energy": {
                "mode": "telescopic",
                "slabs": [
                    {"from": 0, "up_to": 100, "rate": 1},
                    {"from": 100, "up_to": 200, "rate": 2},
                    {"from": 200, "rate": 3},
                ],
            }
        }
    )
    assert bill(explicit, "250")[1] == D(100) + D(200) + D(150)

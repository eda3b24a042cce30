"""Schedules chosen by consumption, worked by hand from the regulators' orders (energy charges
only): Kerala's KSEB LT-I domestic (KSERC, 2019) and Tamil Nadu's TANGEDCO domestic (TNERC,
September 2022). The invoices these make through the API are in test_regulator_bills.py."""

from __future__ import annotations

from datetime import date
from decimal import Decimal as D

import pytest
from pydantic import ValidationError

from cloud.billing.engine import months_between
from cloud.billing.examples import KSEB_DOMESTIC_2019, TANGEDCO_DOMESTIC_2022
from cloud.billing.tariff import TariffSpec, Usage, close_bill, price
from cloud.billing.urdb import to_urdb

KSEB = TariffSpec.model_validate(KSEB_DOMESTIC_2019)
TANGEDCO = TariffSpec.model_validate(TANGEDCO_DOMESTIC_2022)


def energy(spec: TariffSpec, units: str, months: str = "1", basis: str = "") -> list[tuple]:
    usage = Usage(units=D(units), months=D(months), months_basis=basis)
    lines, _ = close_bill(spec, price(spec, usage))
    return [(line.description, line.quantity, line.rate, line.amount) for line in lines]


def total(spec: TariffSpec, units: str, months: str = "1") -> D:
    usage = Usage(units=D(units), months=D(months))
    return close_bill(spec, price(spec, usage))[1]


# KSEB, a month: up to 250 units telescopic (0-50 @ 3.15, 51-100 @ 3.70, 101-150 @ 4.80,
# 151-200 @ 6.40, 201-250 @ 7.60); above 250 all units at one rate (<=300 @ 5.80, <=350 @ 6.60,
# <=400 @ 6.90, <=500 @ 7.10, above 500 @ 7.90)
KSEB_MONTH = {
    "180": D("50") * D("3.15") + 50 * D("3.70") + 50 * D("4.80") + 30 * D("6.40"),  # 774.50
    "250": D("50") * D("3.15") + 50 * D("3.70") + 50 * D("4.80") + 50 * D("6.40") + 50 * D("7.60"),
    "250.5": D("250.5") * D("5.80"),  # 1452.90: past 250, the whole at the 251-300 rate
    "251": D("251") * D("5.80"),  # 1455.80
    "320": D("320") * D("6.60"),  # 2112.00
    "500.4": D("500.4") * D("7.90"),  # 3953.16: above 500 by 0.4 unit, all at 7.90
    "600": D("600") * D("7.90"),  # 4740.00
}


@pytest.mark.parametrize("units", list(KSEB_MONTH))
def test_kseb_a_month(units: str) -> None:
    assert total(KSEB, units) == KSEB_MONTH[units].quantize(D("0.01"))


def test_kseb_hand_sums_to_the_paisa() -> None:
    assert [KSEB_MONTH[u] for u in ("180", "250", "250.5", "500.4")] == [
        D("774.50"),
        D("1282.50"),
        D("1452.90"),
        D("3953.16"),
    ]


def test_kseb_lines_say_which_schedule_applied_and_why() -> None:
    assert energy(KSEB, "250.5") == [
        (
            "Energy, 250.5 units: above 250 and up to 300, all units at ₹5.80",
            D("250.5"),
            D("5.80"),
            D("1452.90"),
        )
    ]
    assert energy(KSEB, "500.4")[0][0] == "Energy, 500.4 units: above 500, all units at ₹7.90"
    lines = energy(KSEB, "250")
    why = "(250 units: up to 250, each slab at its rate)"
    assert [line[0] for line in lines] == [
        f"Energy, slab {span} kWh {why}"
        for span in ("0 to 50", "50 to 100", "100 to 150", "150 to 200", "200 to 250")
    ]


def test_kseb_two_months_doubles_the_limits() -> None:
    # telescopic up to 500: 0-100 @ 3.15, 101-200 @ 3.70, 201-300 @ 4.80, 301-400 @ 6.40
    assert total(KSEB, "360", "2") == 100 * D("3.15") + 100 * D("3.70") + 100 * D("4.80") + 60 * D(
        "6.40"
    )  # 315 + 370 + 480 + 384 = 1549.00
    assert total(KSEB, "500", "2") == D("1549.00") + 40 * D("6.40") + 100 * D("7.60")  # 2565.00
    assert total(KSEB, "501", "2") == D("501") * D("5.80") == D("2905.80")  # past 500: <=600
    assert total(KSEB, "640.5", "2") == D("640.5") * D("6.60") == D("4227.30")  # <=700
    [line] = energy(KSEB, "1000.8", "2", "2 months")
    assert line == (
        "Energy, 1000.8 units: above 1000, all units at ₹7.90 (limits for 2 months)",
        D("1000.8"),
        D("7.90"),
        D("7906.32"),  # 1000.8 x 7.90
    )


# TANGEDCO, limits per two-month cycle: up to 500 units 0-100 free, 101-200 @ 2.25, 201-400 @
# 4.50, 401-500 @ 6.00; above 500 0-100 free, 101-400 @ 4.50, 401-500 @ 6.00, 501-600 @ 8.00,
# 601-800 @ 9.00, 801-1000 @ 10.00, above 1000 @ 11.00. The first set agrees with the bill
# increases the Tamil Nadu government published with the order (200 units: Rs 225, 300: Rs 675,
# 400: Rs 1,125, 500: Rs 1,725); the set above 500 is the structure with the rates cited in
# the order's schedule as we read them.
def test_tangedco_below_and_above_500_units() -> None:
    assert total(TANGEDCO, "200", "2") == 100 * D("2.25") == D("225.00")
    assert total(TANGEDCO, "300", "2") == D(225) + 100 * D("4.50") == D("675.00")
    assert total(TANGEDCO, "500", "2") == D(225) + 200 * D("4.50") + 100 * D(6) == D("1725.00")
    assert total(TANGEDCO, "480", "2") == D(225) + 200 * D("4.50") + 80 * D(6) == D("1605.00")
    # 520 units: the whole under the second set
    assert total(TANGEDCO, "520", "2") == 300 * D("4.50") + 100 * D(6) + 20 * D(8) == D("2110.00")
    assert total(TANGEDCO, "1200.5", "2") == (
        300 * D("4.50") + 100 * D(6) + 100 * D(8) + 200 * D(9) + 200 * D(10) + D("200.5") * 11
    )  # 1350 + 600 + 800 + 1800 + 2000 + 2205.50 = 8755.50
    assert total(TANGEDCO, "1200.5", "2") == D("8755.50")
    # a month is half a cycle: the limits are halved (250 units is the line)
    assert total(TANGEDCO, "240", "1") == 50 * D("2.25") + 100 * D("4.50") + 40 * D(6)
    assert energy(TANGEDCO, "520", "2")[0][0] == (
        "Energy, slab 0 to 100 kWh (520 units: above 500, each slab at its rate)"
    )


def test_a_part_period_pro_rates_the_limits_by_days() -> None:
    months, basis = months_between(date(2026, 10, 12), date(2026, 11, 1))
    assert (months, basis) == (D(20) / D(31), "20 of 31 days of October")
    # 250 x 20/31 = 161.29 units end the telescopic schedule; 200 units are past it, and past
    # 300 x 20/31 = 193.55, so all at the <=350 rate: 200 x 6.60
    [line] = energy(KSEB, "200", str(months), basis)
    assert line == (
        "Energy, 200 units: above 193.55 and up to 225.81, all units at ₹6.60"
        " (limits for 20 of 31 days of October)",
        D(200),
        D("6.60"),
        D("1320.00"),
    )


@pytest.mark.parametrize(
    ("start", "end", "months", "words"),
    [
        (date(2026, 9, 1), date(2026, 11, 1), D(2), "2 months"),
        (date(2026, 1, 31), date(2026, 2, 28), D(1), "1 month"),
        (date(2026, 9, 15), date(2026, 10, 1), D(16) / D(30), "16 of 30 days of September"),
        (
            date(2026, 9, 1),
            date(2026, 10, 16),
            1 + D(15) / D(31),
            "1 month and 15 of 31 days of October",
        ),
    ],
)
def test_months_between(start: date, end: date, months: D, words: str) -> None:
    assert months_between(start, end) == (months, words)


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ({}, "either energy"),
        (
            {
                "energy": {"mode": "flat", "rate": 1},
                "schedules": [{"energy": {"mode": "flat", "rate": 1}}],
            },
            "not both",
        ),
        (
            {"schedules": [{"up_to": 100, "energy": {"mode": "flat", "rate": 1}}]},
            "schedules.0.up_to",
        ),
        (
            {
                "schedules": [
                    {"up_to": 200, "energy": {"mode": "flat", "rate": 1}},
                    {"up_to": 100, "energy": {"mode": "flat", "rate": 2}},
                    {"energy": {"mode": "flat", "rate": 3}},
                ]
            },
            "schedules.1.up_to",
        ),
    ],
)
def test_bad_schedules_name_what_is_wrong(spec: dict, words: str) -> None:
    with pytest.raises(ValidationError, match=words):
        TariffSpec.model_validate(spec)


def test_urdb_refuses_schedules_and_carries_two_month_limits() -> None:
    from cloud.billing.urdb import from_urdb

    with pytest.raises(ValueError, match="URDB cannot express"):
        to_urdb(KSEB)
    two_monthly = TariffSpec.model_validate(
        {"limits_per": "two_months", "energy": TANGEDCO_DOMESTIC_2022["schedules"][0]["energy"]}
    )
    assert from_urdb(to_urdb(two_monthly)) == two_monthly

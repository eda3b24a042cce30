"""Figures as a person reads them: a bill line's rate as money with its unit, or a percentage
for a share of an amount (never a bare '4.0000' or '0.0500'); a change with a sign only when
it shows."""

from __future__ import annotations

import pytest

from cloud.formats import change, line_rate


@pytest.mark.parametrize(
    ("rate", "unit", "currency", "shown"),
    [
        ("4.0000", "kWh", "INR", "₹4.00 / kWh"),
        ("7.3", "kVAh", "INR", "₹7.30 / kVAh"),
        ("0.1234", "kWh", "INR", "₹0.1234 / kWh"),  # the tariff's own precision
        ("100.0000", "month", "INR", "₹100.00 / month"),
        ("25", "kW-month", "INR", "₹25.00 / kW-month"),
        ("1250", "month", "INR", "₹1,250.00 / month"),
        ("0.05", "INR", "INR", "5 %"),  # a tax: its quantity is an amount
        ("0.0125", "INR", "INR", "1.25 %"),
        ("612.50", "", "INR", "₹612.50"),  # a top-up: one of it
        ("0.12", "kWh", "USD", "$0.12 / kWh"),
        ("0.05", "USD", "USD", "5 %"),
    ],
)
def test_rates_in_words(rate: str, unit: str, currency: str, shown: str) -> None:
    assert line_rate(rate, unit, currency) == shown


@pytest.mark.parametrize(
    ("now", "before", "shown"),
    [(112, 100, "+12 %"), (97, 100, "−3 %"), (99.8, 100, "0 %"), (100.3, 100, "0 %"), (5, 0, "—")],
)
def test_a_change_in_percent_has_a_sign_only_when_it_shows(now, before, shown) -> None:
    assert change(now, before) == shown

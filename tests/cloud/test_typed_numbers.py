"""Numbers typed into forms: a comma groups digits or the number is refused, never read as
something a hundred times larger ("4,50" is not 450)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloud.formats import number, typed_decimal


@pytest.mark.parametrize(
    ("typed", "value"),
    [
        ("4.50", Decimal("4.50")),
        (" 1.1 ", Decimal("1.1")),
        ("1200", Decimal("1200")),
        (".5", Decimal("0.5")),
        ("1,234,567.25", Decimal("1234567.25")),  # grouped the Western way
        ("12,34,567.25", Decimal("1234567.25")),  # and the Indian way
        ("1,00,000", Decimal("100000")),
    ],
)
def test_numbers_as_people_type_them(typed: str, value: Decimal) -> None:
    assert typed_decimal(typed) == value


@pytest.mark.parametrize(
    "typed",
    ["4,50", "4,5", "1,2345", "12,3456,789", ",450", "4.50.1", "-1", "1e3", "NaN", "", "four"],
)
def test_what_is_not_a_grouped_number_is_refused(typed: str) -> None:
    assert typed_decimal(typed) is None


@given(st.decimals(min_value=0, max_value=10**9, places=2))
def test_what_the_app_prints_reads_back(value: Decimal) -> None:
    """A figure copied from a page (Indian or Western grouping) is read as the same figure."""
    assert typed_decimal(number(value, 2, indian=True)) == value
    assert typed_decimal(number(value, 2)) == value

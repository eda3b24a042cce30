"""Tariffs from published orders, as data: what the demo bills with and the benchmark prices."""

from __future__ import annotations

from typing import Any

# Delhi, DERC tariff order FY2015-16, domestic: telescopic slabs per month, fixed charges banded
# by sanctioned load.
DELHI_DOMESTIC_2015: dict[str, Any] = {
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
        "bands": [{"up_to_kw": 2, "amount": 40}, {"up_to_kw": 5, "amount": 100}, {"per_kw": 25}]
    },
}

# Kerala, KSERC tariff order 2019, LT-I domestic energy charges (fixed charges left out): up to
# 250 units a month telescopic slabs; above 250 every unit at the rate of the band reached.
# KSEB bills every two months; a two-month period doubles the limits.
KSEB_DOMESTIC_2019: dict[str, Any] = {
    "schedules": [
        {
            "up_to": 250,
            "energy": {
                "mode": "telescopic",
                "slabs": [
                    {"up_to": 50, "rate": "3.15"},
                    {"up_to": 100, "rate": "3.70"},
                    {"up_to": 150, "rate": "4.80"},
                    {"up_to": 200, "rate": "6.40"},
                    {"rate": "7.60"},  # 201-250: the schedule ends it
                ],
            },
        },
        {
            "energy": {
                "mode": "non_telescopic",
                "slabs": [
                    {"up_to": 300, "rate": "5.80"},
                    {"up_to": 350, "rate": "6.60"},
                    {"up_to": 400, "rate": "6.90"},
                    {"up_to": 500, "rate": "7.10"},
                    {"rate": "7.90"},
                ],
            },
        },
    ]
}

# Tamil Nadu, TNERC order of September 2022, domestic (LA-1A) energy charges, limits per
# two-month cycle as the order states them: up to 500 units one telescopic slab set, above 500
# the whole consumption under another.
TANGEDCO_DOMESTIC_2022: dict[str, Any] = {
    "limits_per": "two_months",
    "schedules": [
        {
            "up_to": 500,
            "energy": {
                "mode": "telescopic",
                "slabs": [
                    {"up_to": 100, "rate": "0"},
                    {"up_to": 200, "rate": "2.25"},
                    {"up_to": 400, "rate": "4.50"},
                    {"rate": "6.00"},  # 401-500
                ],
            },
        },
        {
            "energy": {
                "mode": "telescopic",
                "slabs": [
                    {"up_to": 100, "rate": "0"},
                    {"up_to": 400, "rate": "4.50"},
                    {"up_to": 500, "rate": "6.00"},
                    {"up_to": 600, "rate": "8.00"},
                    {"up_to": 800, "rate": "9.00"},
                    {"up_to": 1000, "rate": "10.00"},
                    {"rate": "11.00"},
                ],
            },
        },
    ],
}

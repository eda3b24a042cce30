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

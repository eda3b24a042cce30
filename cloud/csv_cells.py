"""Cells of the CSV files people open in spreadsheets. Pure.

A text cell that a spreadsheet would take for a formula (`=`, `+`, `-`, `@`, a tab or a carriage
return first) is written with a leading apostrophe, so opening an export never runs what a
meter's name or an audit entry happened to contain.
"""

from __future__ import annotations

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
BOM = "\ufeff"  # every CSV of the web app starts with it, so spreadsheets read UTF-8 (₹, names)


def spreadsheet_safe(value: str) -> str:
    return "'" + value if value.startswith(FORMULA_STARTS) else value

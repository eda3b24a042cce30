"""A report's layout: which of its kind's columns it shows, in which order and under which
headings, how its rows are grouped (with totals per group) and sorted. Pure: the builders give
every column of a kind, a layout picks from them.

Each kind has a catalog of columns (`KINDS`): what each holds, whether it is an amount that adds
up (those are summed when rows merge and in the totals), and the groupings that fit the kind.
Columns left out are folded away: rows that agree on every shown column (and on the group) are
merged, their amounts added, so a consumption report of `period` and `energy_kwh` alone is the
board's energy per day. A report asked for without a format gets its kind's default layout,
the columns the reports always had.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from .formats import Group, ReportData


@dataclass(frozen=True)
class Column:
    key: str
    label: str  # the heading when the format gives none
    summed: bool = False  # an amount: added up when rows merge, and in the totals


@dataclass(frozen=True)
class Grouping:
    key: str
    label: str  # the heading of the group column
    of: Callable[[dict[str, Any]], Any]  # a row's group


@dataclass(frozen=True)
class Kind:
    columns: tuple[Column, ...]
    default_columns: tuple[str, ...]
    groupings: tuple[Grouping, ...]
    default_sort: tuple[str, bool] | None = None  # (column, descending)

    def column(self, key: str) -> Column | None:
        return next((c for c in self.columns if c.key == key), None)

    def grouping(self, key: str) -> Grouping | None:
        return next((g for g in self.groupings if g.key == key), None)


def _week(value: date) -> date:
    return value - timedelta(days=value.weekday())  # weeks start on Monday


def _by(column: str) -> Callable[[dict[str, Any]], Any]:
    return lambda row: row[column]


def _dated(column: str, unit: str) -> Grouping:
    label = {"day": "Day", "week": "Week (from Monday)", "month": "Month"}[unit]
    pick = {
        "day": lambda d: d,
        "week": _week,
        "month": lambda d: d.replace(day=1),
    }[unit]
    return Grouping(unit, label, lambda row: pick(row[column]) if row[column] else None)


KINDS: dict[str, Kind] = {
    "consumption": Kind(
        columns=(
            Column("board", "Board"),
            Column("account_no", "Account"),
            Column("consumer", "Consumer"),
            Column("category", "Category"),
            Column("meter", "Meter"),
            Column("gateway", "Gateway"),
            Column("period", "Day or month"),
            Column("energy_kwh", "Energy (kWh)", summed=True),
        ),
        default_columns=("board", "account_no", "meter", "period", "energy_kwh"),
        groupings=(
            _dated("period", "day"),
            _dated("period", "week"),
            _dated("period", "month"),
            Grouping("consumer", "Account", _by("account_no")),
            Grouping("category", "Category", _by("category")),
            Grouping("gateway", "Gateway", _by("gateway")),
            Grouping("meter", "Meter", _by("meter")),
            Grouping("board", "Board", _by("board")),
        ),
    ),
    "billing_summary": Kind(
        columns=(
            Column("status", "Status"),
            Column("category", "Category"),
            Column("invoices", "Bills", summed=True),
            Column("billed", "Billed", summed=True),
            Column("due", "Due", summed=True),
            Column("paid", "Paid", summed=True),
        ),
        default_columns=("status", "invoices", "billed", "due", "paid"),
        groupings=(
            Grouping("status", "Status", _by("status")),
            Grouping("category", "Category", _by("category")),
        ),
    ),
    "alerts": Kind(
        columns=(
            Column("kind", "Alert"),
            Column("severity", "Severity"),
            Column("state", "State"),
            Column("gateway", "Gateway"),
            Column("day", "Day opened"),
            Column("alerts", "Alerts", summed=True),
        ),
        default_columns=("kind", "severity", "state", "alerts"),
        groupings=(
            Grouping("kind", "Alert", _by("kind")),
            Grouping("severity", "Severity", _by("severity")),
            Grouping("state", "State", _by("state")),
            Grouping("gateway", "Gateway", _by("gateway")),
            _dated("day", "day"),
            _dated("day", "week"),
            _dated("day", "month"),
        ),
        default_sort=("alerts", True),
    ),
    "fleet_health": Kind(
        columns=(
            Column("gateway", "Gateway"),
            Column("status", "Status"),
            Column("last_seen_at", "Last seen"),
            Column("backlog_readings", "Unsent readings", summed=True),
            Column("oldest_unsent_at", "Oldest unsent"),
            Column("clock_synced", "Clock synchronised"),
            Column("software_version", "Software"),
            Column("meters", "Meters", summed=True),
            Column("meters_failing", "Meters failing", summed=True),
        ),
        default_columns=(
            "gateway",
            "status",
            "last_seen_at",
            "backlog_readings",
            "oldest_unsent_at",
            "clock_synced",
            "software_version",
            "meters",
            "meters_failing",
        ),
        groupings=(
            Grouping("status", "Status", _by("status")),
            Grouping("software_version", "Software", _by("software_version")),
        ),
    ),
}
FILE_TYPES = ("csv", "json", "xml", "pdf")
MAX_COLUMNS = 20


class LayoutProblem(ValueError):
    """A layout that does not fit its kind; `field` names the part at fault."""

    def __init__(self, message: str, field: str, value: object) -> None:
        self.field, self.value = field, value
        super().__init__(message)


def check(
    kind: str,
    columns: list[dict[str, Any]],
    group_by: str | None,
    sort_by: str | None,
) -> None:
    """Refuse a layout that names what its kind does not have, with the first problem found."""
    if kind not in KINDS:
        raise LayoutProblem(f"{kind!r} is not a report kind", "kind", kind)
    spec = KINDS[kind]
    known = ", ".join(c.key for c in spec.columns)
    if not 1 <= len(columns) <= MAX_COLUMNS:
        raise LayoutProblem(
            f"choose between 1 and {MAX_COLUMNS} columns (of: {known})", "columns", len(columns)
        )
    seen: set[str] = set()
    headings: set[str] = set()
    for index, choice in enumerate(columns):
        key = choice["column"]
        if spec.column(key) is None:
            raise LayoutProblem(
                f"column {key!r} is not one of the {kind} report's columns ({known})",
                f"columns.{index}.column",
                key,
            )
        if key in seen:
            raise LayoutProblem(f"column {key!r} is chosen twice", f"columns.{index}.column", key)
        seen.add(key)
        heading = heading_of(kind, choice)
        if heading.casefold() in headings:
            raise LayoutProblem(
                f"heading {heading!r} is used twice: give each column its own",
                f"columns.{index}.label",
                heading,
            )
        headings.add(heading.casefold())
    if group_by is not None and spec.grouping(group_by) is None:
        raise LayoutProblem(
            f"a {kind} report cannot be grouped by {group_by!r}; it can by: "
            + ", ".join(g.key for g in spec.groupings),
            "group_by",
            group_by,
        )
    if sort_by is not None and sort_by not in seen:
        raise LayoutProblem(
            f"sort_by {sort_by!r} must be one of the chosen columns ({', '.join(seen)})",
            "sort_by",
            sort_by,
        )


def heading_of(kind: str, choice: dict[str, Any]) -> str:
    return choice.get("label") or KINDS[kind].column(choice["column"]).label  # type: ignore[union-attr]


def default_layout(kind: str) -> dict[str, Any]:
    """The layout of a report asked for without a format: the kind's columns as they always
    were, headed by their keys."""
    spec = KINDS[kind]
    sort = spec.default_sort
    return {
        "columns": [{"column": key, "label": key} for key in spec.default_columns],
        "group_by": None,
        "sort_by": sort[0] if sort else None,
        "sort_desc": bool(sort and sort[1]),
    }


def _sort_key(value: Any) -> tuple[int, Any]:
    """None last; otherwise by value (numbers as numbers, everything else as text)."""
    if value is None:
        return (2, "")
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        return (0, value)
    return (1, value.isoformat() if isinstance(value, date) else str(value))


def apply(data: ReportData, kind: str, layout: dict[str, Any]) -> ReportData:
    """The report `data` (every column of its kind) as `layout` shows it."""
    spec = KINDS[kind]
    chosen = [c["column"] for c in layout["columns"]]
    summed = {c for c in chosen if spec.column(c).summed}  # type: ignore[union-attr]
    grouping = spec.grouping(layout["group_by"]) if layout.get("group_by") else None
    merged: dict[tuple, dict[str, Any]] = {}
    for values in data.rows:
        row = dict(zip(data.columns, values, strict=True))
        group = grouping.of(row) if grouping else None
        key = (group, *(row[c] for c in chosen if c not in summed))
        kept = merged.get(key)
        if kept is None:
            merged[key] = {"_group": group, **{c: row[c] for c in chosen}}
        else:
            for column in summed:
                kept[column] = _add(kept[column], row[column])
    rows = list(merged.values())
    if layout.get("sort_by"):
        column = layout["sort_by"]
        rows.sort(key=lambda r: _sort_key(r[column]), reverse=bool(layout.get("sort_desc")))
    headers = [heading_of(kind, c) for c in layout["columns"]]
    shaped = ReportData(
        title=data.title,
        columns=chosen,
        headers=headers,
        rows=[[r[c] for c in chosen] for r in rows],
        summary=data.summary,
        chart=data.chart,
    )
    if grouping is None:
        return shaped
    groups: dict[Any, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(row["_group"], []).append(row)
    shaped.group_by, shaped.group_label = grouping.key, grouping.label
    shaped.groups = [
        Group(
            key=group,
            rows=[[r[c] for c in chosen] for r in members],
            totals=[_total(members, c) if c in summed else None for c in chosen],
        )
        for group, members in sorted(groups.items(), key=lambda item: _sort_key(item[0]))
    ]
    shaped.totals = [_total(rows, c) if c in summed else None for c in chosen]
    return shaped


def _add(a: Any, b: Any) -> Any:
    if a is None:
        return b
    if b is None:
        return a
    return a + b


def _total(rows: list[dict[str, Any]], column: str) -> Any:
    total: Any = None
    for row in rows:
        total = _add(total, row[column])
    return total if total is not None else 0

"""A report's layout on plain data, without a database: columns left out are folded away (their
amounts added), rows sorted with blanks last, groups with their totals, the file writers'
shapes; and a report without a format keeps the columns reports always had."""

from __future__ import annotations

import csv
import io
import json
from datetime import date
from decimal import Decimal as D

import pytest

from cloud.reports import layouts
from cloud.reports.formats import ReportData, to_csv, to_json, to_pdf

COLUMNS = ["kind", "severity", "state", "gateway", "day", "alerts"]
ROWS = [
    ["gateway_silent", "high", "active", "gw-1", date(2026, 10, 5), 2],
    ["gateway_silent", "high", "resolved", "gw-1", date(2026, 10, 6), 1],
    ["voltage_sag", "medium", "active", "gw-2", date(2026, 10, 5), 4],
    ["voltage_sag", "medium", "active", None, date(2026, 10, 12), 3],
    ["outage", "high", "active", "gw-2", date(2026, 10, 13), 5],
]


def alerts() -> ReportData:
    return ReportData(title="Alerts", columns=COLUMNS, rows=[list(r) for r in ROWS])


def test_columns_left_out_are_folded_away_and_their_amounts_added() -> None:
    layout = {
        "columns": [{"column": "severity", "label": "How bad"}, {"column": "alerts"}],
        "group_by": None,
        "sort_by": "alerts",
        "sort_desc": True,
    }
    shaped = layouts.apply(alerts(), "alerts", layout)
    assert shaped.headings == ["How bad", "Alerts"]
    assert shaped.rows == [["high", 8], ["medium", 7]]  # 2 + 1 + 5, 4 + 3


def test_groups_carry_their_totals_and_the_report_its_own() -> None:
    layout = {
        "columns": [{"column": "gateway"}, {"column": "kind"}, {"column": "alerts"}],
        "group_by": "week",
        "sort_by": "gateway",
        "sort_desc": False,
    }
    shaped = layouts.apply(alerts(), "alerts", layout)
    assert [g.key for g in shaped.groups] == [date(2026, 10, 5), date(2026, 10, 12)]
    first, second = shaped.groups
    # gw-1's two alerts of the first week fold into one row; a blank gateway sorts last
    assert first.rows == [["gw-1", "gateway_silent", 3], ["gw-2", "voltage_sag", 4]]
    assert second.rows == [["gw-2", "outage", 5], [None, "voltage_sag", 3]]
    assert (first.totals, second.totals) == ([None, None, 7], [None, None, 8])
    assert shaped.totals == [None, None, 15]
    lines = list(csv.reader(io.StringIO(to_csv(shaped).decode())))
    assert lines == [
        ["Week (from Monday)", "Gateway", "Alert", "Alerts"],
        ["2026-10-05", "gw-1", "gateway_silent", "3"],
        ["2026-10-05", "gw-2", "voltage_sag", "4"],
        ["2026-10-05 total", "", "", "7"],
        ["2026-10-12", "gw-2", "outage", "5"],
        ["2026-10-12", "", "voltage_sag", "3"],
        ["2026-10-12 total", "", "", "8"],
        ["Total", "", "", "15"],
    ]
    document = json.loads(to_json(shaped))
    assert document["groups"][1]["totals"] == {"Gateway": "", "Alert": "", "Alerts": "8"}
    assert document["totals"]["Alerts"] == "15"


def test_a_grouped_pdf_shows_each_groups_totals() -> None:
    pypdf = pytest.importorskip("pypdf")
    layout = {
        "columns": [{"column": "kind"}, {"column": "alerts"}],
        "group_by": "severity",
        "sort_by": None,
        "sort_desc": False,
    }
    pdf = pypdf.PdfReader(io.BytesIO(to_pdf(layouts.apply(alerts(), "alerts", layout))))
    text = " ".join(page.extract_text() for page in pdf.pages)
    assert "high total" in text
    assert "medium total" in text
    assert "Total" in text


def test_amounts_keep_their_decimals_when_added() -> None:
    data = ReportData(
        title="Energy",
        columns=[c.key for c in layouts.KINDS["consumption"].columns],
        rows=[
            ["B", "A-1", "Asha", "domestic", "m-1", "gw", date(2026, 10, 1), D("1.105")],
            ["B", "A-2", "Ravi", "domestic", "m-2", "gw", date(2026, 10, 1), D("2.2")],
        ],
    )
    layout = {
        "columns": [{"column": "category"}, {"column": "energy_kwh"}],
        "group_by": None,
        "sort_by": None,
        "sort_desc": False,
    }
    assert layouts.apply(data, "consumption", layout).rows == [["domestic", D("3.305")]]


def test_a_report_without_a_format_has_the_columns_reports_always_had() -> None:
    expected = {
        "consumption": ["board", "account_no", "meter", "period", "energy_kwh"],
        "billing_summary": ["status", "invoices", "billed", "due", "paid"],
        "alerts": ["kind", "severity", "state", "alerts"],
        "fleet_health": [
            "gateway",
            "status",
            "last_seen_at",
            "backlog_readings",
            "oldest_unsent_at",
            "clock_synced",
            "software_version",
            "meters",
            "meters_failing",
        ],
    }
    for kind, columns in expected.items():
        layout = layouts.default_layout(kind)
        assert [c["column"] for c in layout["columns"]] == columns
        assert [c["label"] for c in layout["columns"]] == columns  # headed by their keys

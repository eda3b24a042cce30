"""A report's table written as CSV, JSON, XML or PDF (the PDF with its chart drawn by
matplotlib). Pure and blocking: the service runs them in a worker thread.

A grouped report (`groups`, see `layouts.apply`) is written group by group with each group's
totals and the report's: in CSV a first column holds the group, and a group's totals follow its
rows in a row whose first cell is "<group> total" (the report's: "Total"); JSON and XML nest
rows and totals in their groups. Headings (`headers`) head the CSV and PDF columns and key the
JSON rows; XML elements are named by the column keys (headings are free text, which XML names
cannot be), each group element carrying its key.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from xml.etree import ElementTree as ET

PDF_ROWS = 500  # a PDF is for reading: longer tables belong in CSV


@dataclass
class Group:
    key: Any  # what the group's rows share (a day, a category, a gateway...)
    rows: list[list[Any]]
    totals: list[Any]  # per column: the sum of an amount, None for the others


@dataclass
class ReportData:
    title: str
    columns: list[str]
    rows: list[list[Any]]
    summary: dict[str, Any] = field(default_factory=dict)
    chart: tuple[list[str], list[float], str] | None = None  # labels, values, y label
    headers: list[str] | None = None  # the columns' headings (their keys when None)
    group_by: str | None = None
    group_label: str | None = None
    groups: list[Group] | None = None
    totals: list[Any] | None = None

    @property
    def headings(self) -> list[str]:
        return self.headers or self.columns


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):  # as XML Schema and JSON write them, not Python's True
        return "true" if value else "false"
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return f"{value:f}"
    return str(value)


def to_csv(data: ReportData) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    if data.groups is None:
        writer.writerow(data.headings)
        for row in data.rows:
            writer.writerow([_text(v) for v in row])
        return out.getvalue().encode()
    writer.writerow([data.group_label, *data.headings])
    for group in data.groups:
        for row in group.rows:
            writer.writerow([_text(group.key), *map(_text, row)])
        writer.writerow([f"{_text(group.key)} total", *map(_text, group.totals)])
    writer.writerow(["Total", *map(_text, data.totals or [])])
    return out.getvalue().encode()


def to_json(data: ReportData) -> bytes:
    def keyed(values: list[Any]) -> dict[str, str]:
        return dict(zip(data.headings, map(_text, values), strict=True))

    document: dict[str, Any] = {
        "title": data.title,
        "summary": {k: _text(v) for k, v in data.summary.items()},
    }
    if data.groups is None:
        document["rows"] = [keyed(row) for row in data.rows]
    else:
        document["group_by"] = data.group_by
        document["groups"] = [
            {
                "group": _text(group.key),
                "rows": [keyed(row) for row in group.rows],
                "totals": keyed(group.totals),
            }
            for group in data.groups
        ]
        document["totals"] = keyed(data.totals or [])
    return json.dumps(document, indent=1).encode()


def to_xml(data: ReportData) -> bytes:
    root = ET.Element("report", title=data.title)
    summary = ET.SubElement(root, "summary")
    for key, value in data.summary.items():
        ET.SubElement(summary, key).text = _text(value)
    if data.headers:
        columns = ET.SubElement(root, "columns")
        for key, heading in zip(data.columns, data.headers, strict=True):
            ET.SubElement(columns, "column", key=key, heading=heading)

    def add_row(parent: ET.Element, tag: str, values: list[Any]) -> None:
        element = ET.SubElement(parent, tag)
        for column, value in zip(data.columns, values, strict=True):
            ET.SubElement(element, column).text = _text(value)

    if data.groups is None:
        rows = ET.SubElement(root, "rows")
        for row in data.rows:
            add_row(rows, "row", row)
    else:
        groups = ET.SubElement(root, "groups", by=data.group_by or "")
        for group in data.groups:
            element = ET.SubElement(groups, "group", key=_text(group.key))
            for row in group.rows:
                add_row(element, "row", row)
            add_row(element, "totals", group.totals)
        add_row(root, "totals", data.totals or [])
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def to_pdf(data: ReportData) -> bytes:
    import matplotlib  # heavy: loaded when a PDF is made, not with the service

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from reportlab.lib.pagesizes import A4, landscape
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.lib.units import mm
    from reportlab.platypus import Image, Paragraph, SimpleDocTemplate, Spacer, Table

    styles = getSampleStyleSheet()
    out = io.BytesIO()
    document = SimpleDocTemplate(out, pagesize=landscape(A4), title=data.title)
    story: list[Any] = [Paragraph(data.title, styles["Title"])]
    for key, value in data.summary.items():
        story.append(Paragraph(f"{key.replace('_', ' ')}: {_text(value)}", styles["Normal"]))
    story.append(Spacer(1, 4 * mm))
    if data.chart and data.chart[0]:
        labels, values, ylabel = data.chart
        figure = Figure(figsize=(9, 2.8), dpi=110)
        axes = figure.add_subplot()
        axes.bar(range(len(values)), values, color="#2b6cb0")
        step = max(1, len(labels) // 15)
        axes.set_xticks(range(0, len(labels), step), labels[::step], rotation=30, fontsize=7)
        axes.set_ylabel(ylabel)
        axes.grid(axis="y", alpha=0.3)
        figure.tight_layout()
        image = io.BytesIO()
        figure.savefig(image, format="png")
        image.seek(0)
        story += [Image(image, width=250 * mm, height=78 * mm), Spacer(1, 4 * mm)]
    bold = "Helvetica-Bold"
    style: list[tuple] = [("FONTSIZE", (0, 0), (-1, -1), 7), ("FONTNAME", (0, 0), (-1, 0), bold)]
    if data.groups is None:
        shown = [[_text(v) for v in row] for row in data.rows[:PDF_ROWS]]
        table = Table([data.headings, *shown], repeatRows=1)
    else:  # each group's rows under its key, then its totals (bold)
        shown = []
        for group in data.groups:
            for row in group.rows:
                if len(shown) < PDF_ROWS:
                    shown.append([_text(group.key), *map(_text, row)])
            shown.append([f"{_text(group.key)} total", *map(_text, group.totals)])
            style.append(("FONTNAME", (0, len(shown)), (-1, len(shown)), bold))
        shown.append(["Total", *map(_text, data.totals or [])])
        style.append(("FONTNAME", (0, len(shown)), (-1, len(shown)), bold))
        table = Table([[data.group_label, *data.headings], *shown], repeatRows=1)
    table.setStyle(style)
    story.append(table)
    if len(data.rows) > PDF_ROWS:
        story.append(
            Paragraph(f"... {len(data.rows) - PDF_ROWS} more rows in the CSV", styles["Italic"])
        )
    document.build(story)
    return out.getvalue()


WRITERS = {"csv": to_csv, "json": to_json, "xml": to_xml, "pdf": to_pdf}
MEDIA_TYPES = {
    "csv": "text/csv",
    "json": "application/json",
    "xml": "application/xml",
    "pdf": "application/pdf",
}

"""A report's table written as CSV, JSON, XML or PDF (the PDF with its chart drawn by
matplotlib). Pure and blocking: the service runs them in a worker thread."""

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
class ReportData:
    title: str
    columns: list[str]
    rows: list[list[Any]]
    summary: dict[str, Any] = field(default_factory=dict)
    chart: tuple[list[str], list[float], str] | None = None  # labels, values, y label


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return f"{value:f}"
    return str(value)


def to_csv(data: ReportData) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(data.columns)
    for row in data.rows:
        writer.writerow([_text(v) for v in row])
    return out.getvalue().encode()


def to_json(data: ReportData) -> bytes:
    return json.dumps(
        {
            "title": data.title,
            "summary": {k: _text(v) for k, v in data.summary.items()},
            "rows": [dict(zip(data.columns, map(_text, row), strict=True)) for row in data.rows],
        },
        indent=1,
    ).encode()


def to_xml(data: ReportData) -> bytes:
    root = ET.Element("report", title=data.title)
    summary = ET.SubElement(root, "summary")
    for key, value in data.summary.items():
        ET.SubElement(summary, key).text = _text(value)
    rows = ET.SubElement(root, "rows")
    for row in data.rows:
        element = ET.SubElement(rows, "row")
        for column, value in zip(data.columns, row, strict=True):
            ET.SubElement(element, column).text = _text(value)
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
    shown = [[_text(v) for v in row] for row in data.rows[:PDF_ROWS]]
    table = Table([data.columns, *shown], repeatRows=1)
    table.setStyle(
        [("FONTSIZE", (0, 0), (-1, -1), 7), ("FONTNAME", (0, 0), (-1, 0), "Helvetica-Bold")]
    )
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

"""The invoice as a PDF: who, which period, every line with its arithmetic, the total, and a
chart of the consumer's daily consumption (drawn by matplotlib, laid out by reportlab).

Pure and blocking: the API runs it in a worker thread.
"""

from __future__ import annotations

import io
from datetime import date
from decimal import Decimal
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display on a server

from matplotlib.figure import Figure
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import Image, Paragraph, SimpleDocTemplate, Spacer, Table


def _chart(daily: list[tuple[date, Decimal]]) -> io.BytesIO:
    figure = Figure(figsize=(7, 2.4), dpi=110)
    axes = figure.add_subplot()
    axes.bar([d for d, _ in daily], [float(u) for _, u in daily], color="#2b6cb0")
    axes.set_ylabel("kWh per day")
    axes.set_title("Daily consumption")
    axes.grid(axis="y", alpha=0.3)
    figure.autofmt_xdate()
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    buffer.seek(0)
    return buffer


def render_invoice(
    invoice: dict[str, Any],
    consumer: dict[str, Any],
    board: dict[str, Any],
    daily: list[tuple[date, Decimal]],
) -> bytes:
    styles = getSampleStyleSheet()
    currency = invoice["currency"]
    out = io.BytesIO()
    document = SimpleDocTemplate(
        out, pagesize=A4, title=f"Invoice {invoice['id']}", leftMargin=15 * mm, rightMargin=15 * mm
    )
    story: list[Any] = [
        Paragraph(f"{board['name']} — electricity bill", styles["Title"]),
        Paragraph(
            f"Invoice {invoice['id']} (version {invoice['version']}) · status {invoice['status']}"
            + (" · <b>ESTIMATED</b>" if invoice["estimated"] else ""),
            styles["Normal"],
        ),
        Paragraph(
            f"Consumer {consumer['name']} · account {consumer['account_no']} ·"
            f" {consumer['category']} · sanctioned load {consumer['sanctioned_load_kw']} kW",
            styles["Normal"],
        ),
        Paragraph(
            f"Period {invoice['period_start']} to {invoice['period_end']} (exclusive) ·"
            f" {invoice['units']} units · due {invoice['due_date']}",
            styles["Normal"],
        ),
        Spacer(1, 6 * mm),
    ]
    rows = [["Line", "Quantity", "Rate", f"Amount ({currency})"]]
    for line in invoice["lines"]:
        rows.append(
            [
                Paragraph(line["description"], styles["BodyText"]),
                f"{Decimal(line['quantity']).normalize():f} {line['unit']}".strip(),
                f"{Decimal(line['rate']).normalize():f}",
                f"{Decimal(line['amount']):,.2f}",
            ]
        )
    rows.append(["Amount due", "", "", f"{Decimal(invoice['amount_due']):,.2f}"])
    table = Table(rows, colWidths=[95 * mm, 32 * mm, 22 * mm, 30 * mm], repeatRows=1)
    table.setStyle(
        [
            ("FONTNAME", (0, 0), (-1, 0), "Helvetica-Bold"),
            ("FONTNAME", (0, -1), (-1, -1), "Helvetica-Bold"),
            ("LINEBELOW", (0, 0), (-1, 0), 0.5, colors.grey),
            ("LINEABOVE", (0, -1), (-1, -1), 0.5, colors.grey),
            ("ALIGN", (1, 1), (-1, -1), "RIGHT"),
            ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ]
    )
    story += [table, Spacer(1, 6 * mm)]
    if daily:
        story.append(Image(_chart(daily), width=180 * mm, height=62 * mm))
    for note in invoice["details"].get("notes", []):
        story.append(Paragraph(f"Note: {note}", styles["Italic"]))
    document.build(story)
    return out.getvalue()

"""The invoice as a PDF: who, which period, every line with its arithmetic, the total, and a
chart of the consumer's daily consumption (drawn by matplotlib, laid out by reportlab).

Pure and blocking: the API runs it in a worker thread.
"""

from __future__ import annotations

import io
from datetime import date, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import matplotlib

matplotlib.use("Agg")  # no display on a server

from matplotlib.figure import Figure
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import Image, Paragraph, SimpleDocTemplate, Spacer, Table

from ..formats import fine_decimals, line_rate


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


STATUS = {
    "draft": "Draft — not yet issued",
    "issued": "Issued",
    "paid": "Paid",
    "overdue": "Overdue",
    "disputed": "Disputed",
    "cancelled": "Cancelled",
}


def _day(value: date | str | None) -> str:
    """'1 Oct 2026'."""
    if value is None:
        return "—"
    day = date.fromisoformat(value) if isinstance(value, str) else value
    return f"{day.day} {day:%b %Y}"


def _amount(value: object, places: int = 2) -> str:
    return f"{Decimal(str(value)):,.{places}f}"


def _rate(value: object, unit: str, currency: str) -> str:
    """A rate to its paise, or finer where the tariff is finer: 4.00, 7.30, 0.1234; a share of
    an amount (a tax: its unit is the currency) as a percentage, 5 %."""
    if unit == currency:
        return line_rate(value, unit, currency)
    rate = Decimal(str(value))
    return _amount(rate, fine_decimals(rate))


def render_invoice(
    invoice: dict[str, Any],
    consumer: dict[str, Any],
    board: dict[str, Any],
    daily: list[tuple[date, Decimal]],
) -> bytes:
    styles = getSampleStyleSheet()
    currency = invoice["currency"]
    start = invoice["period_start"]
    last = invoice["period_end"] - timedelta(days=1)
    out = io.BytesIO()
    document = SimpleDocTemplate(
        out,
        pagesize=A4,
        title=f"{board['name']} bill {consumer['account_no']} {start:%B %Y}",
        leftMargin=15 * mm,
        rightMargin=15 * mm,
    )
    status = STATUS.get(invoice["status"], invoice["status"].capitalize())
    if invoice.get("issued_at") and invoice["status"] != "draft":
        issued = invoice["issued_at"].astimezone(ZoneInfo(board["time_zone"])).date()
        status += f" on {_day(issued)}"
    revision = f" (revision {invoice['version']})" if invoice["version"] > 1 else ""
    story: list[Any] = [
        Paragraph(f"{board['name']} — electricity bill", styles["Title"]),
        Paragraph(
            f"<b>{consumer['name']}</b> · account {consumer['account_no']} ·"
            f" {str(consumer['category']).capitalize()} · sanctioned load"
            f" {Decimal(consumer['sanctioned_load_kw']).normalize():f} kW",
            styles["Normal"],
        ),
        Paragraph(
            f"Bill {invoice['id']} for {_day(start)} to {_day(last)}{revision} · {status}"
            + (" · <b>ESTIMATED</b>" if invoice["estimated"] else ""),
            styles["Normal"],
        ),
        Paragraph(
            f"Units used: <b>{_amount(invoice['units'])} kWh</b> · "
            + (
                "cancelled: <b>nothing is owed</b> on this bill"
                if invoice["status"] == "cancelled"
                else f"amount due <b>{currency} {_amount(invoice['amount_due'])}</b>"
                f" by {_day(invoice['due_date'])}"
            ),
            styles["Normal"],
        ),
        Spacer(1, 6 * mm),
    ]
    rows = [["Item", "Quantity", f"Rate ({currency})", f"Amount ({currency})"]]
    for line in invoice["lines"]:
        explains = line.get("code") == "net_metering"  # a figure of the netting, not a charge
        rows.append(
            [
                Paragraph(line["description"], styles["BodyText"]),
                f"{_amount(line['quantity'])} {line['unit']}".strip(),
                "" if explains else _rate(line["rate"], line["unit"], currency),
                "" if explains else _amount(line["amount"]),
            ]
        )
    rows.append(["Amount due", "", "", _amount(invoice["amount_due"])])
    table = Table(rows, colWidths=[90 * mm, 34 * mm, 25 * mm, 30 * mm], repeatRows=1)
    table.setStyle(
        [
            ("FONTNAME", (0, 0), (-1, 0), "Helvetica-Bold"),
            ("FONTNAME", (0, -1), (-1, -1), "Helvetica-Bold"),
            ("LINEBELOW", (0, 0), (-1, 0), 0.5, colors.grey),
            ("LINEABOVE", (0, -1), (-1, -1), 0.5, colors.grey),
            ("ALIGN", (1, 1), (-1, -1), "RIGHT"),
            ("ALIGN", (1, 0), (-1, 0), "RIGHT"),
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

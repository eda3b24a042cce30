"""The invoice as CSV for accounting: one row per line of the bill, its total and amount due,
one row per payment, what is paid and what is left. Pure.

Amounts are the `Decimal`s the database holds, written exactly as they are (no float, no
thousands separators, a point for decimals); days are the board's local dates, a payment's
instant is also given in UTC. UTF-8 with a byte-order mark, as every CSV of the web app, so
spreadsheets read the names. A text cell that a spreadsheet would take for a formula is written
with a leading apostrophe.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from ..csv_cells import BOM, spreadsheet_safe

COLUMNS = (
    "record",
    "invoice_id",
    "invoice_version",
    "account_no",
    "consumer",
    "period_start",
    "period_end",
    "date",
    "time_utc",
    "code",
    "description",
    "quantity",
    "unit",
    "rate",
    "amount",
    "currency",
    "reference",
)


def render_invoice_csv(
    invoice: dict[str, Any], consumer: dict[str, Any], board: dict[str, Any]
) -> bytes:
    """`invoice` as `cloud.services.invoices.get` gives it (lines and payments included)."""
    zone = ZoneInfo(board["time_zone"])
    issued = (
        invoice["issued_at"].astimezone(zone).date().isoformat() if invoice["issued_at"] else ""
    )
    common = {
        "invoice_id": invoice["id"],
        "invoice_version": invoice["version"],
        "account_no": _text(consumer["account_no"]),
        "consumer": _text(consumer["name"]),
        "period_start": invoice["period_start"].isoformat(),
        "period_end": invoice["period_end"].isoformat(),
        "currency": invoice["currency"],
    }
    rows: list[dict[str, Any]] = []
    for line in invoice["lines"]:
        rows.append(
            {
                "record": "line",
                "date": issued,
                "code": _text(line["code"]),
                "description": _text(line["description"]),
                "quantity": _exact(line["quantity"]),
                "unit": _text(line["unit"]),
                "rate": _exact(line["rate"]),
                "amount": _exact(line["amount"]),
            }
        )
    total, due, paid = (Decimal(invoice[k]) for k in ("total", "amount_due", "paid"))
    rows.append({"record": "total", "date": issued, "amount": _exact(total)})
    if due != total:  # a revision bills only the difference from the versions before it
        rows.append({"record": "earlier_versions", "amount": _exact(due - total)})
    rows.append(
        {"record": "amount_due", "date": invoice["due_date"].isoformat(), "amount": _exact(due)}
    )
    for payment in invoice["payments"]:
        at: datetime = payment["paid_at"]
        rows.append(
            {
                "record": "payment",
                "date": at.astimezone(zone).date().isoformat(),
                "time_utc": at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
                "code": payment.get("via", ""),
                "amount": _exact(payment["amount"]),
                "reference": _text(payment["reference"]),
            }
        )
    rows.append({"record": "paid", "amount": _exact(paid)})
    rows.append({"record": "outstanding", "amount": _exact(due - paid)})
    out = io.StringIO()
    out.write(BOM)
    writer = csv.DictWriter(out, COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows({**common, **row} for row in rows)
    return out.getvalue().encode("utf-8")


def _exact(value: Decimal | int | str) -> str:
    """The number as written in the database: never through float, never in exponent form."""
    return format(Decimal(value), "f")


def _text(value: str) -> str:
    return spreadsheet_safe(value)

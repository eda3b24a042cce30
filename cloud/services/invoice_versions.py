"""A billing run's bills recorded as invoice versions, a chunk of consumers at a time.

Each bill is compared with the latest version of its consumer's invoice for the period:
- none yet: version 1 is created (a draft);
- the latest was cancelled: a new version bills the whole period afresh;
- the same total, the same "estimated" flag and the same net metering: nothing is created (a
  second run changes nothing);
- different (late data arrived, a read was corrected): a new version references the old one and
  bills only the difference — its lines are the recalculated bill plus one line taking off what
  the earlier versions billed. An issued invoice is never edited.

The latest versions are read and locked (`FOR UPDATE`) in one statement for the chunk, the new
invoices inserted in one, their lines copied in (`COPY`), their audit rows sent in one pipeline:
a handful of round trips a chunk where each consumer took five. It all happens in the run's
transaction for the chunk, which commits with the chunk's progress, so a run stopped half-way
leaves whole chunks behind and is finished by running it again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from psycopg import AsyncConnection

from ..access import Principal
from ..billing.engine import Bill
from ..billing.tariff import Line
from . import audit
from .invoices import DUE_DAYS
from .scoped import actor

_INSERT = """
INSERT INTO invoices (board_id, consumer_id, period_start, period_end, version, previous_id,
                      currency, units, total, amount_due, estimated, due_date, details)
SELECT %(board)s, consumer_id, %(start)s, %(end)s, version, previous_id, %(currency)s, units,
       total, amount_due, estimated, %(due)s, details::jsonb
FROM unnest(%(consumers)s::bigint[], %(versions)s::int[], %(previous)s::bigint[],
            %(units)s::numeric[], %(totals)s::numeric[], %(due_amounts)s::numeric[],
            %(estimated)s::bool[], %(details)s::text[])
    AS n(consumer_id, version, previous_id, units, total, amount_due, estimated, details)
RETURNING id, consumer_id
"""


async def record(
    conn: AsyncConnection,
    principal: Principal,
    board: dict[str, Any],
    period_start: date,
    period_end: date,
    bills: list[tuple[int, Bill]],
) -> list[str]:
    """Record each consumer's bill for the period (one bill per consumer); returns, bill by
    bill, "created", "revised" or "unchanged"."""
    if not bills:
        return []
    cursor = await conn.execute(
        "SELECT id, consumer_id, version, total, estimated, status, details FROM invoices"
        " WHERE consumer_id = ANY(%s) AND period_start = %s AND period_end = %s"
        " ORDER BY consumer_id, version DESC FOR UPDATE",
        ([consumer_id for consumer_id, _ in bills], period_start, period_end),
    )
    latest: dict[int, dict[str, Any]] = {}
    for row in await cursor.fetchall():
        latest.setdefault(row["consumer_id"], row)  # the highest version comes first
    outcomes: list[str] = []
    new: list[_NewVersion] = []
    for consumer_id, bill in bills:
        before = latest.get(consumer_id)
        lines = list(bill.lines)
        net = bill.net.as_details() if bill.net is not None else None
        if before is None:
            version, previous, amount_due = 1, None, bill.total
        elif before["status"] == "cancelled":  # billed anew: nothing of the cancelled bill stands
            version, previous, amount_due = before["version"] + 1, before["id"], bill.total
        elif (
            Decimal(before["total"]) == bill.total
            and before["estimated"] == bill.estimated
            and (before["details"] or {}).get("net_metering") == net
        ):
            await _bank(conn, consumer_id, period_start, period_end, bill, before["id"])
            outcomes.append("unchanged")
            continue
        else:
            version, previous = before["version"] + 1, before["id"]
            billed = Decimal(before["total"])
            amount_due = bill.total - billed
            lines.append(_credit_line(f"Less: billed by version {before['version']}", billed))
        new.append(_NewVersion(consumer_id, bill, version, previous, amount_due, lines, net))
        outcomes.append("created" if version == 1 else "revised")
    if new:
        await _insert(conn, principal, board, period_start, period_end, new)
    return outcomes


@dataclass(frozen=True)
class _NewVersion:
    """An invoice version to insert."""

    consumer_id: int
    bill: Bill
    version: int
    previous: int | None
    amount_due: Decimal
    lines: list[Line]
    net: dict[str, Any] | None  # the bill's net metering, as the invoice's details hold it

    def details(self) -> dict[str, Any]:
        return {
            "segments": [
                {
                    "tariff_version": s.version_id,
                    "from": s.start.isoformat(),
                    "to": s.end.isoformat(),
                    "units": str(s.units),
                    **({"tariff_override": s.override_id} if s.override_id else {}),
                }
                for s in self.bill.segments
            ],
            "notes": self.bill.notes,
            **({"net_metering": self.net} if self.net is not None else {}),
        }


async def _insert(
    conn: AsyncConnection,
    principal: Principal,
    board: dict[str, Any],
    period_start: date,
    period_end: date,
    new: list[_NewVersion],
) -> None:
    cursor = await conn.execute(
        _INSERT,
        {
            "board": board["id"],
            "start": period_start,
            "end": period_end,
            "currency": board["currency"],
            "due": _due(board, period_end),
            "consumers": [n.consumer_id for n in new],
            "versions": [n.version for n in new],
            "previous": [n.previous for n in new],
            "units": [n.bill.units for n in new],
            "totals": [n.bill.total for n in new],
            "due_amounts": [n.amount_due for n in new],
            "estimated": [n.bill.estimated for n in new],
            "details": [json.dumps(n.details()) for n in new],
        },
    )
    invoice_of = {row["consumer_id"]: row["id"] for row in await cursor.fetchall()}
    for n in new:
        await _bank(
            conn, n.consumer_id, period_start, period_end, n.bill, invoice_of[n.consumer_id]
        )
    async with (
        conn.cursor() as cur,
        cur.copy(
            "COPY invoice_lines (invoice_id, position, code, description, quantity, unit, rate,"
            " amount) FROM STDIN"
        ) as copy,
    ):
        for n in new:
            for position, ln in enumerate(n.lines, start=1):
                await copy.write_row(
                    (
                        invoice_of[n.consumer_id],
                        position,
                        ln.code,
                        ln.description,
                        ln.quantity,
                        ln.unit,
                        ln.rate,
                        ln.amount,
                    )
                )
    await audit.record_many(
        conn,
        actor=actor(principal),
        entity="invoice",
        entries=[
            (
                "create" if n.version == 1 else "revise",
                invoice_of[n.consumer_id],
                {"version": n.version, "total": n.bill.total, "amount_due": n.amount_due},
            )
            for n in new
        ],
    )


def _due(board: dict[str, Any], period_end: date) -> date:
    """15 days after the period, or after today if the bill is made later (issuing it moves
    the date on again if it waits)."""
    today = datetime.now(ZoneInfo(board["time_zone"])).date()
    return max(period_end, today) + timedelta(days=DUE_DAYS)


def _credit_line(description: str, amount: Decimal) -> Line:
    return Line("previous", description, Decimal(1), "", -amount, -amount)


async def _bank(
    conn: AsyncConnection,
    consumer_id: int,
    period_start: date,
    period_end: date,
    bill: Bill,
    invoice_id: int,
) -> None:
    """The consumer's bank after this period (net-metered bills only), replacing the row an
    earlier run of the same period wrote: keyed by (consumer, period), it is carried once."""
    net = bill.net
    if net is None:
        return
    await conn.execute(
        "INSERT INTO net_metering_ledger (consumer_id, period_start, period_end, invoice_id,"
        " estimated, import_kwh, export_kwh, banked_in_kwh, billed_kwh, banked_out_kwh,"
        " settled_kwh, feed_in_rate, settled_amount, credit_in, credit_out)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (consumer_id, period_start) DO UPDATE SET period_end = EXCLUDED.period_end,"
        " invoice_id = EXCLUDED.invoice_id, estimated = EXCLUDED.estimated,"
        " import_kwh = EXCLUDED.import_kwh, export_kwh = EXCLUDED.export_kwh,"
        " banked_in_kwh = EXCLUDED.banked_in_kwh, billed_kwh = EXCLUDED.billed_kwh,"
        " banked_out_kwh = EXCLUDED.banked_out_kwh, settled_kwh = EXCLUDED.settled_kwh,"
        " feed_in_rate = EXCLUDED.feed_in_rate, settled_amount = EXCLUDED.settled_amount,"
        " credit_in = EXCLUDED.credit_in, credit_out = EXCLUDED.credit_out, updated_at = now()",
        (
            consumer_id,
            period_start,
            period_end,
            invoice_id,
            bill.estimated,
            net.import_kwh,
            net.export_kwh,
            net.banked_in_kwh,
            net.billed_kwh,
            net.banked_out_kwh,
            net.settled_kwh,
            net.feed_in_rate,
            net.settled_amount,
            net.credit_in,
            net.credit_out,
        ),
    )

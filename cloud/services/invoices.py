"""An invoice's life: draft -> issued -> paid / overdue / disputed / cancelled.

Issuing locks the tariff versions the bill used. Payments may be partial; the invoice is paid
when they cover its amount due (a revision that lowers the bill is a credit: paid on issue).
A dispute holds the invoice until it is upheld (the admin then cancels or revises the bill) or
rejected (the invoice returns to issued or overdue). A consumer opening its own bill is recorded
(view tracking). Every change is audited.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from psycopg import AsyncConnection, sql

from ..access import Principal
from ..billing.export import render_invoice_csv
from ..errors import Conflict, InvalidInput, NotFound
from ..formats import local_date, money
from . import audit, notifications, tariffs
from .scoped import BOARDS, CONSUMERS, INVOICES, actor, get_row

SETTLEABLE = ("issued", "overdue", "disputed")

DUE_DAYS = 15  # a bill is due this many days after its period ends, or after it is issued if later


async def get(conn: AsyncConnection, principal: Principal, invoice_id: int) -> dict[str, Any]:
    """The invoice with its lines, payments and disputes; a consumer's first look is recorded."""
    async with conn.transaction():
        invoice = await get_row(conn, principal, INVOICES, invoice_id)
        if principal.role == "CONSUMER" and invoice["viewed_at"] is None:
            await conn.execute("UPDATE invoices SET viewed_at = now() WHERE id = %s", (invoice_id,))
            await audit.record(
                conn, actor=actor(principal), action="view", entity="invoice", entity_id=invoice_id
            )
            invoice = await get_row(conn, principal, INVOICES, invoice_id)
        lines = await (
            await conn.execute(
                "SELECT position, code, description, quantity, unit, rate, amount"
                " FROM invoice_lines WHERE invoice_id = %s ORDER BY position",
                (invoice_id,),
            )
        ).fetchall()
        payments = await (
            await conn.execute(
                "SELECT id, amount, paid_at, reference, coalesce(provider, 'office') AS via"
                " FROM payments WHERE invoice_id = %s ORDER BY id",
                (invoice_id,),
            )
        ).fetchall()
        disputes = await (
            await conn.execute(
                "SELECT id, reason, status, resolution, created_at, resolved_at FROM disputes"
                " WHERE invoice_id = %s ORDER BY id",
                (invoice_id,),
            )
        ).fetchall()
    return {**invoice, "lines": lines, "payments": payments, "disputes": disputes}


async def _transition(
    conn: AsyncConnection,
    principal: Principal,
    invoice_id: int,
    allowed_from: tuple[str, ...],
    action: str,
    changes: dict[str, Any],
) -> dict[str, Any]:
    before = await get_row(conn, principal, INVOICES, invoice_id, for_update=True)
    if before["status"] not in allowed_from:
        raise Conflict(
            f"invoice {invoice_id} is {before['status']}; it can be {action}d only when"
            f" {' or '.join(allowed_from)}"
        )
    assignments = ", ".join(f"{column} = %s" for column in changes)  # fixed names below
    await conn.execute(
        f"UPDATE invoices SET {assignments} WHERE id = %s",  # noqa: S608
        [*changes.values(), invoice_id],
    )
    after = await get_row(conn, principal, INVOICES, invoice_id)
    await audit.record(
        conn,
        actor=actor(principal),
        action=action,
        entity="invoice",
        entity_id=invoice_id,
        before=before,
        after=after,
    )
    return after


async def issue(
    conn: AsyncConnection, principal: Principal, invoice_id: int, *, base_url: str
) -> dict[str, Any]:
    """Issue a draft; the consumer is told (`base_url` makes the e-mail's links)."""
    async with conn.transaction():
        invoice = await get_row(conn, principal, INVOICES, invoice_id, for_update=True)
        credit = Decimal(invoice["amount_due"]) <= 0
        board = await get_row(conn, principal, BOARDS, invoice["board_id"])
        issued_at = datetime.now(UTC)
        # a bill issued late is still given its days to pay
        today = issued_at.astimezone(ZoneInfo(board["time_zone"])).date()
        due = max(invoice["due_date"], today + timedelta(days=DUE_DAYS))
        after = await _transition(
            conn,
            principal,
            invoice_id,
            ("draft",),
            "issue",
            {"status": "paid" if credit else "issued", "issued_at": issued_at, "due_date": due},
        )
        used = [s["tariff_version"] for s in invoice["details"].get("segments", [])]
        await tariffs.lock(conn, used)
        month = f"{invoice['period_start']:%B %Y}"
        owed = money(invoice["amount_due"], invoice["currency"])
        await _tell(
            conn,
            invoice,
            base_url,
            kind="bill_issued",
            title=f"Your bill for {month} is ready",
            body=f"Your bill for {month} is nothing to pay (a credit of {owed})."
            if credit
            else f"Your bill for {month} is {owed}, due by {local_date(due)}.",
            event=f"issued:{invoice_id}",
        )
    return after


async def _tell(
    conn: AsyncConnection,
    invoice: dict[str, Any],
    base_url: str,
    *,
    kind: str,
    title: str,
    body: str,
    event: str,
) -> None:
    """Notify the consumer's users of an event of their bill."""
    users = await notifications.consumer_users(conn, invoice["consumer_id"])
    notice = notifications.Notice(
        kind, title, body, f"/dashboard/invoices/{invoice['id']}", f"invoice:{event}"
    )
    await notifications.notify(conn, users, notice, base_url=base_url)


async def cancel(conn: AsyncConnection, principal: Principal, invoice_id: int) -> dict[str, Any]:
    async with conn.transaction():
        invoice = await get_row(conn, principal, INVOICES, invoice_id, for_update=True)
        if Decimal(invoice["paid"]) > 0:
            raise Conflict(f"invoice {invoice_id} has payments; it cannot be cancelled")
        return await _transition(
            conn,
            principal,
            invoice_id,
            ("draft", "issued", "overdue", "disputed"),
            "cancel",
            {"status": "cancelled"},
        )


def payment_problem(invoice: dict[str, Any], amount: Decimal, currency: str) -> str | None:
    """Why `invoice` cannot take a payment of `amount` `currency`, or None if it can."""
    if invoice["status"] not in SETTLEABLE:
        return f"invoice {invoice['id']} is {invoice['status']}: it takes no payments"
    if currency != invoice["currency"]:
        return f"the payment is in {currency}; invoice {invoice['id']} is in {invoice['currency']}"
    outstanding = Decimal(invoice["amount_due"]) - Decimal(invoice["paid"])
    if amount > outstanding:
        return (
            f"a payment of {amount:,.2f} {currency} is more than the"
            f" {outstanding:,.2f} {currency} still owed on this bill"
        )
    return None


async def pay(
    conn: AsyncConnection,
    principal: Principal,
    invoice_id: int,
    *,
    amount: Decimal,
    reference: str,
    base_url: str,
) -> dict[str, Any]:
    """A payment staff take (cash, a cheque, a transfer they saw arrive)."""
    async with conn.transaction():
        invoice = await get_row(conn, principal, INVOICES, invoice_id, for_update=True)
        if invoice["status"] not in SETTLEABLE:
            raise Conflict(f"invoice {invoice_id} is {invoice['status']}: it takes no payments")
        problem = payment_problem(invoice, amount, invoice["currency"])
        if problem:
            raise InvalidInput(problem, errors=[("amount", str(amount))])
        _, after = await settle(
            conn,
            invoice,
            amount=amount,
            reference=reference,
            by=actor(principal),
            base_url=base_url,
        )
        return after


async def settle(
    conn: AsyncConnection,
    invoice: dict[str, Any],
    *,
    amount: Decimal,
    reference: str,
    by: str,
    base_url: str,
    paid_at: datetime | None = None,
    provider: str | None = None,
    provider_payment_id: str | None = None,
) -> tuple[int, dict[str, Any]]:
    """Record a payment on `invoice` (a row the caller has locked and checked with
    `payment_problem`, in the caller's transaction): paid in full, the bill is paid; otherwise
    it keeps its status with less owed. Audited as `by`; the consumer is told. The payment's id
    and the invoice after."""
    cursor = await conn.execute(
        "INSERT INTO payments (invoice_id, amount, paid_at, reference, actor, provider,"
        " provider_payment_id) VALUES (%s, %s, coalesce(%s, now()), %s, %s, %s, %s) RETURNING id",
        (invoice["id"], amount, paid_at, reference, by, provider, provider_payment_id),
    )
    payment_id = (await cursor.fetchone())["id"]
    paid = Decimal(invoice["paid"]) + amount
    status = "paid" if paid >= Decimal(invoice["amount_due"]) else invoice["status"]
    cursor = await conn.execute(
        sql.SQL("UPDATE invoices SET paid = %s, status = %s WHERE id = %s RETURNING {}").format(
            sql.SQL(", ").join(map(sql.Identifier, INVOICES.columns))
        ),
        (paid, status, invoice["id"]),
    )
    after = await cursor.fetchone()
    await audit.record(
        conn,
        actor=by,
        action="pay",
        entity="invoice",
        entity_id=invoice["id"],
        before=invoice,
        after=after,
    )
    month = f"{invoice['period_start']:%B %Y}"
    left = Decimal(invoice["amount_due"]) - paid
    await _tell(
        conn,
        invoice,
        base_url,
        kind="payment_received",
        title=f"Payment of {money(amount, invoice['currency'])} received",
        body=f"Thank you: {money(amount, invoice['currency'])} for your {month} bill. "
        + (
            "It is paid in full."
            if left <= 0
            else f"Still to pay: {money(left, invoice['currency'])}."
        ),
        event=f"payment:{payment_id}",
    )
    return payment_id, after


async def open_dispute(
    conn: AsyncConnection, principal: Principal, invoice_id: int, *, reason: str
) -> dict[str, Any]:
    async with conn.transaction():
        # the invoice first: in scope and open to a dispute, before anything is written
        invoice = await get_row(conn, principal, INVOICES, invoice_id, for_update=True)
        if invoice["status"] not in ("issued", "overdue"):
            raise Conflict(
                f"invoice {invoice_id} is {invoice['status']}; only an issued or overdue bill"
                " can be disputed"
            )
        await conn.execute(
            "INSERT INTO disputes (invoice_id, reason, opened_by) VALUES (%s, %s, %s)",
            (invoice_id, reason, actor(principal)),
        )
        return await _transition(
            conn, principal, invoice_id, ("issued", "overdue"), "dispute", {"status": "disputed"}
        )


async def resolve_dispute(
    conn: AsyncConnection,
    principal: Principal,
    invoice_id: int,
    *,
    upheld: bool,
    resolution: str,
    base_url: str,
) -> dict[str, Any]:
    """Close the open dispute. Upheld: the invoice is cancelled (a revision bills anew);
    rejected: it goes back to issued, or overdue if its due date has passed."""
    async with conn.transaction():
        invoice = await get_row(conn, principal, INVOICES, invoice_id, for_update=True)
        cursor = await conn.execute(
            "UPDATE disputes SET status = %s, resolution = %s, resolved_by = %s,"
            " resolved_at = now() WHERE invoice_id = %s AND status = 'open' RETURNING id",
            ("upheld" if upheld else "rejected", resolution, actor(principal), invoice_id),
        )
        dispute = await cursor.fetchone()
        if dispute is None:
            raise NotFound(f"invoice {invoice_id} has no open dispute")
        if upheld:
            status = "cancelled" if Decimal(invoice["paid"]) == 0 else "issued"
        else:
            status = "overdue" if invoice["due_date"] < date.today() else "issued"
        after = await _transition(
            conn, principal, invoice_id, ("disputed",), "resolve", {"status": status}
        )
        month = f"{invoice['period_start']:%B %Y}"
        await _tell(
            conn,
            invoice,
            base_url,
            kind="dispute_resolved",
            title=f"Your dispute of the {month} bill is settled",
            body=(
                f"We agreed with you: the {month} bill is withdrawn and a corrected one will"
                " follow."
                if upheld
                else f"We checked the {month} bill and it stands."
            )
            + f" {resolution}",
            event=f"dispute:{dispute['id']}",
        )
        return after


async def payments_of(
    conn: AsyncConnection,
    principal: Principal,
    consumer_id: int,
    *,
    limit: int = 200,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Every payment on the consumer's bills, newest first, with the bill's period and how it
    came (`via`: the provider's name, or 'office' for one staff recorded)."""
    await get_row(conn, principal, CONSUMERS, consumer_id)
    cursor = await conn.execute(
        "SELECT p.id, p.amount, p.paid_at, p.reference, coalesce(p.provider, 'office') AS via,"
        " i.id AS invoice_id, i.version AS invoice_version, i.period_start, i.currency"
        " FROM payments p JOIN invoices i ON i.id = p.invoice_id"
        " WHERE i.consumer_id = %s ORDER BY p.paid_at DESC, p.id DESC LIMIT %s OFFSET %s",
        (consumer_id, limit, offset),
    )
    return await cursor.fetchall()


async def issue_many(
    conn: AsyncConnection, principal: Principal, invoice_ids: list[int], *, base_url: str
) -> dict[str, Any]:
    """Issue each draft of `invoice_ids` (each in its own transaction: one that cannot be issued
    does not hold the others back); which were issued and why the others were not."""
    issued, refused = [], []
    for invoice_id in invoice_ids:
        try:
            await issue(conn, principal, invoice_id, base_url=base_url)
            await conn.commit()
            issued.append(invoice_id)
        except (Conflict, NotFound) as exc:
            await conn.rollback()
            refused.append({"invoice_id": invoice_id, "reason": str(exc)})
    return {"issued": issued, "refused": refused}


AGING_BUCKETS = ((0, 30), (31, 60), (61, 90), (91, None))


async def aging(
    conn: AsyncConnection, principal: Principal, board_id: int, *, today: date
) -> dict[str, Any]:
    """What consumers of the board owe on issued, overdue and disputed bills, by days past the
    due date (not yet due, 0-30, 31-60, 61-90, over 90)."""
    board = await get_row(conn, principal, BOARDS, board_id)
    # bucket 0: not yet due; bucket i: AGING_BUCKETS[i - 1]
    which = sql.SQL("CASE WHEN %(today)s - due_date < 0 THEN 0 {} END").format(
        sql.SQL(" ").join(
            sql.SQL("WHEN %(today)s - due_date <= {} THEN {}").format(b, i + 1)
            if b is not None
            else sql.SQL("ELSE {}").format(i + 1)
            for i, (_, b) in enumerate(AGING_BUCKETS)
        )
    )
    cursor = await conn.execute(
        sql.SQL(
            "SELECT {} AS bucket, count(*) AS invoices, sum(amount_due - paid) AS amount,"
            " count(*) FILTER (WHERE status = 'disputed') AS disputed FROM invoices"
            " WHERE board_id = %(board)s AND status IN ('issued', 'overdue', 'disputed')"
            " AND amount_due > paid GROUP BY 1"
        ).format(which),
        {"board": board_id, "today": today},
    )
    rows = await cursor.fetchall()
    buckets = [{"label": "not yet due", "from_days": None, "to_days": -1}] + [
        {"label": f"{a}-{b} days" if b else f"over {a - 1} days", "from_days": a, "to_days": b}
        for a, b in AGING_BUCKETS
    ]
    for bucket in buckets:
        bucket.update(invoices=0, amount=Decimal(0))
    for row in rows:
        buckets[row["bucket"]].update(invoices=row["invoices"], amount=Decimal(row["amount"]))
    return {
        "board_id": board_id,
        "currency": board["currency"],
        "as_of": today,
        "buckets": buckets,
        "outstanding": sum((b["amount"] for b in buckets), Decimal(0)),
        "disputed": sum(row["disputed"] for row in rows),
    }


async def mark_overdue(
    conn: AsyncConnection, principal: Principal, board_id: int, *, base_url: str
) -> int:
    """Issued invoices of a board in scope, past their due date and not fully paid, become
    overdue; their consumers are told."""
    async with conn.transaction():
        await get_row(conn, principal, BOARDS, board_id)  # 404 outside the caller's scope
        cursor = await conn.execute(
            "UPDATE invoices SET status = 'overdue' WHERE board_id = %s AND status = 'issued'"
            " AND due_date < current_date AND paid < amount_due"
            " RETURNING id, consumer_id, period_start, amount_due, paid, currency, due_date",
            (board_id,),
        )
        overdue = await cursor.fetchall()
        ids = [row["id"] for row in overdue]
        for invoice in overdue:
            owed = money(
                Decimal(invoice["amount_due"]) - Decimal(invoice["paid"]), invoice["currency"]
            )
            await _tell(
                conn,
                invoice,
                base_url,
                kind="bill_overdue",
                title=f"Your {invoice['period_start']:%B %Y} bill is overdue",
                body=f"{owed} was due by {local_date(invoice['due_date'])}. Please pay it soon.",
                event=f"overdue:{invoice['id']}",
            )
        if ids:
            await audit.record(
                conn,
                actor=actor(principal),
                action="mark_overdue",
                entity="board",
                entity_id=board_id,
                after={"invoices": ids},
            )
    return len(ids)


async def daily_units(
    conn: AsyncConnection, consumer_id: int, start: date, end: date, time_zone: str
) -> list[tuple[date, Decimal]]:
    """The consumer's energy per local day (for the bill's chart): register deltas of its
    meters, each counted on the day its interval ends in."""
    cursor = await conn.execute(
        """
        WITH reads AS (
            SELECT r.meter_id, r.ts, r.value,
                   r.value - lag(r.value) OVER (PARTITION BY r.meter_id ORDER BY r.ts) AS delta
            FROM readings r JOIN meters m ON m.id = r.meter_id
            WHERE m.consumer_id = %(c)s AND r.quantity = '1.8.0'
              AND r.quality IN ('ok', 'estimated')
              AND r.ts > (%(start)s::date::timestamp AT TIME ZONE %(tz)s) - interval '1 day'
              AND r.ts <= (%(end)s::date::timestamp AT TIME ZONE %(tz)s)
        )
        SELECT ((ts - interval '1 microsecond') AT TIME ZONE %(tz)s)::date AS day,
               sum(greatest(delta, 0)) AS units
        FROM reads WHERE delta IS NOT NULL
          AND ts > (%(start)s::date::timestamp AT TIME ZONE %(tz)s)
        GROUP BY 1 ORDER BY 1
        """,
        {"c": consumer_id, "start": start, "end": end, "tz": time_zone},
    )
    return [(row["day"], Decimal(str(row["units"]))) for row in await cursor.fetchall()]


async def pdf(conn: AsyncConnection, principal: Principal, invoice_id: int) -> tuple[str, bytes]:
    """The invoice as a PDF, with the consumer's daily consumption over the period, and the
    file's name ('bill-DEMO-003-2026-10.pdf')."""
    invoice = await get(conn, principal, invoice_id)
    consumer, board = await _consumer_and_board(conn, invoice)
    daily = await daily_units(
        conn, consumer["id"], invoice["period_start"], invoice["period_end"], board["time_zone"]
    )
    from ..billing.pdf import render_invoice  # matplotlib and reportlab: only when drawn

    body = await asyncio.to_thread(render_invoice, invoice, consumer, board, daily)
    return _file_name(invoice, consumer, "pdf"), body


async def csv_export(
    conn: AsyncConnection, principal: Principal, invoice_id: int
) -> tuple[str, bytes]:
    """The invoice as CSV for accounting (`cloud/billing/export.py`) and the file's name
    ('bill-DEMO-003-2026-10.csv', as the PDF's)."""
    invoice = await get(conn, principal, invoice_id)
    consumer, board = await _consumer_and_board(conn, invoice)
    return _file_name(invoice, consumer, "csv"), render_invoice_csv(invoice, consumer, board)


async def _consumer_and_board(
    conn: AsyncConnection, invoice: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    consumer = await (
        await conn.execute("SELECT * FROM consumers WHERE id = %s", (invoice["consumer_id"],))
    ).fetchone()
    board = await (
        await conn.execute("SELECT * FROM boards WHERE id = %s", (invoice["board_id"],))
    ).fetchone()
    return consumer, board


def _file_name(invoice: dict[str, Any], consumer: dict[str, Any], extension: str) -> str:
    revision = f"-v{invoice['version']}" if invoice["version"] > 1 else ""
    name = f"bill-{consumer['account_no']}-{invoice['period_start']:%Y-%m}{revision}.{extension}"
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)

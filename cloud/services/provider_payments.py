"""Payments a provider reports by webhook: kept once each, matched to a bill, settled.

`record` runs in one transaction. It first claims the provider's payment id (the row of
`provider_payments`, unique per provider): a second delivery of the same payment finds it taken
and changes nothing. Then it looks for the bill the payment names. A bill that can take the
payment (`invoices.payment_problem`) is settled exactly as a payment staff record
(`invoices.settle`: paid in full, or less owed); anything else — no such bill, another currency,
more than is owed, a bill that is paid, cancelled or a draft — keeps the payment as `unmatched`
with the reason, for staff to reconcile (`unmatched`); nothing a provider reports is dropped.
Every recorded payment is audited as `provider:<name>`.
"""

from __future__ import annotations

import json
from typing import Any

from psycopg import AsyncConnection, sql

from ..access import Principal, scope_filter
from ..payments.razorpay import CapturedPayment
from . import audit, invoices
from .scoped import INVOICES

_BIGINT_MAX = 2**63 - 1


async def record(
    conn: AsyncConnection,
    payment: CapturedPayment,
    *,
    provider: str,
    event: str,
    body: dict[str, Any],
    base_url: str,
) -> dict[str, Any]:
    """Keep a captured payment once and settle the bill it names if it can; what became of it
    (`outcome`: settled, unmatched, or duplicate for a payment already kept)."""
    by = f"provider:{provider}"
    async with conn.transaction():
        cursor = await conn.execute(
            "INSERT INTO provider_payments (provider, provider_payment_id, event, amount, currency,"
            " invoice_ref, reference, paid_at, status, body)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, 'unmatched', %s)"
            " ON CONFLICT (provider, provider_payment_id) DO NOTHING RETURNING id",
            (
                provider,
                payment.payment_id,
                event,
                payment.amount,
                payment.currency,
                payment.invoice_ref,
                payment.payment_id,
                payment.paid_at,
                json.dumps(body),
            ),
        )
        claimed = await cursor.fetchone()
        if claimed is None:
            return {"outcome": "duplicate", "payment": payment.payment_id}
        row_id = claimed["id"]
        invoice = await _named_invoice(conn, payment.invoice_ref)
        if invoice is None:
            reason = (
                f"names no invoice of ours ({payment.invoice_ref!r})"
                if payment.invoice_ref
                else "names no invoice (notes.invoice_id is missing)"
            )
        else:
            reason = invoices.payment_problem(invoice, payment.amount, payment.currency)
        changes: dict[str, Any] = {"reason": reason or ""}
        if invoice is not None:
            changes.update(invoice_id=invoice["id"], board_id=invoice["board_id"])
        if invoice is not None and reason is None:
            payment_id, _ = await invoices.settle(
                conn,
                invoice,
                amount=payment.amount,
                reference=payment.payment_id,
                by=by,
                base_url=base_url,
                paid_at=payment.paid_at,
                provider=provider,
                provider_payment_id=payment.payment_id,
            )
            changes.update(status="settled", payment_id=payment_id)
        cursor = await conn.execute(
            sql.SQL(
                "UPDATE provider_payments SET {} WHERE id = %s"
                " RETURNING id, provider, provider_payment_id, amount, currency, invoice_ref,"
                " invoice_id, board_id, payment_id, status, reason, paid_at"
            ).format(
                sql.SQL(", ").join(
                    sql.SQL("{} = %s").format(sql.Identifier(column)) for column in changes
                )
            ),
            [*changes.values(), row_id],
        )
        kept = await cursor.fetchone()
        await audit.record(
            conn,
            actor=by,
            action="receive",
            entity="provider_payment",
            entity_id=row_id,
            after=kept,
        )
    return {
        "outcome": kept["status"],
        "payment": payment.payment_id,
        "invoice_id": kept["invoice_id"],
        **({"reason": kept["reason"]} if kept["reason"] else {}),
    }


async def _named_invoice(conn: AsyncConnection, invoice_ref: str) -> dict[str, Any] | None:
    """The invoice a payment's notes name, locked; None if they name none of ours."""
    ref = invoice_ref.strip()
    if not (ref.isascii() and ref.isdigit()) or not 0 < int(ref) <= _BIGINT_MAX:
        return None
    cursor = await conn.execute(
        sql.SQL("SELECT {} FROM invoices WHERE id = %s FOR UPDATE").format(
            sql.SQL(", ").join(map(sql.Identifier, INVOICES.columns))
        ),
        (int(ref),),
    )
    return await cursor.fetchone()


async def unmatched(
    conn: AsyncConnection,
    principal: Principal,
    *,
    board_id: int | None,
    limit: int,
    offset: int,
) -> list[dict[str, Any]]:
    """Payments that wait for staff to reconcile, newest first: those naming a bill of a board
    in the caller's scope, and for the operator also those naming no bill of ours."""
    condition, params = scope_filter(principal, "board", "b")
    where = [sql.SQL("pp.status = 'unmatched'")]
    if board_id is not None:
        where.append(sql.SQL("pp.board_id = %s"))
        params = [*params, board_id]
    cursor = await conn.execute(
        sql.SQL(
            "SELECT pp.id, pp.provider, pp.provider_payment_id, pp.amount, pp.currency,"
            " pp.invoice_ref, pp.invoice_id, pp.board_id, pp.reason, pp.paid_at, pp.received_at"
            " FROM provider_payments pp LEFT JOIN boards b ON b.id = pp.board_id"
            " WHERE (CASE WHEN pp.board_id IS NULL THEN %s ELSE {} END) AND {}"
            " ORDER BY pp.received_at DESC, pp.id DESC LIMIT %s OFFSET %s"
        ).format(condition, sql.SQL(" AND ").join(where)),
        [principal.role == "SUPER_ADMIN", *params, limit, offset],
    )
    return await cursor.fetchall()

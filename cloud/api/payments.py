"""Payments under `/api/v1`: the provider's webhook (public: its signature is its
authentication), a consumer's payment history (the consumer themself and staff) and the
provider's payments that settled no bill (staff who take payments)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from ..access import Permission, Principal
from ..access.ids import BoardId, ConsumerId
from ..errors import Unavailable
from ..payments import razorpay
from ..services import invoices, provider_payments
from .deps import PoolDep, PublicBase, SettingsDep, require
from .ingest import read_bounded_body
from .paging import Limit, Offset
from .scoped_route import ScopedRoute

router = APIRouter(prefix="/api/v1", tags=["payments"], route_class=ScopedRoute)


@router.post(
    "/payments/webhook",
    responses={
        401: {"description": "no signature, or one that does not match the body"},
        503: {"description": "GRIDGATE_PAYMENT_WEBHOOK_SECRET is not set"},
    },
)
async def payment_webhook(
    request: Request, pool: PoolDep, settings: SettingsDep, public_base: PublicBase
) -> dict:
    """A payment provider's event (Razorpay's format, `cloud/payments/razorpay.py`), signed in
    `X-Razorpay-Signature`. A captured payment is kept once: it settles the bill its notes name,
    or waits unmatched for staff; the same payment sent again answers 200 and changes nothing.
    Other events are acknowledged and ignored."""
    secret = settings.payment_webhook_secret
    if not secret:
        raise Unavailable(
            "payments by webhook are not set up here: set GRIDGATE_PAYMENT_WEBHOOK_SECRET to the"
            " webhook secret of the provider's dashboard"
        )
    body = await read_bounded_body(request, razorpay.MAX_BODY_BYTES)
    razorpay.verify(secret, body, request.headers.get(razorpay.SIGNATURE_HEADER))
    event = razorpay.parse(body)
    if event.payment is None:
        return {"outcome": "ignored", "event": event.name}
    async with pool.connection() as conn:
        return await provider_payments.record(
            conn,
            event.payment,
            provider=razorpay.PROVIDER,
            event=event.name,
            body=event.body,
            base_url=public_base,
        )


@router.get("/consumers/{consumer_id}/payments")
async def consumer_payments(
    consumer_id: ConsumerId,
    pool: PoolDep,
    principal: Principal = require(Permission.BILLING_READ),
    limit: Limit = 50,
    offset: Offset = 0,
) -> dict:
    """The consumer's payments, newest first: amount, when, the bill, and how it came (`via`:
    the provider, or 'office' for one staff recorded)."""
    async with pool.connection() as conn:
        rows = await invoices.payments_of(conn, principal, consumer_id, limit=limit, offset=offset)
    return {"consumer_id": consumer_id, "items": rows, "limit": limit, "offset": offset}


@router.get("/payments/unmatched")
async def unmatched_payments(
    pool: PoolDep,
    principal: Principal = require(Permission.BILLING_COLLECT),
    board_id: BoardId | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> dict:
    """The provider's payments that settled no bill, newest first, each with the reason (no such
    bill, another currency, more than was owed, a bill that took no payments), for staff to
    reconcile. Those naming no bill of ours belong to no board: only the operator sees them."""
    async with pool.connection() as conn:
        rows = await provider_payments.unmatched(
            conn, principal, board_id=board_id, limit=limit, offset=offset
        )
    return {"items": rows, "limit": limit, "offset": offset}

"""Razorpay's payment webhook, as GridGate reads it: verify, then parse. No I/O here.

What the provider sends (set up in Razorpay's dashboard: the URL
`<GRIDGATE_PUBLIC_URL>/api/v1/payments/webhook`, the event `payment.captured`, and a secret that
is also `GRIDGATE_PAYMENT_WEBHOOK_SECRET`)::

    POST /api/v1/payments/webhook
    Content-Type: application/json
    X-Razorpay-Signature: <hex HMAC-SHA256 of the raw body, keyed with the webhook secret>

    {"entity": "event", "event": "payment.captured", "contains": ["payment"],
     "payload": {"payment": {"entity": {
        "id": "pay_29QQoUBi66xm2f", "entity": "payment", "amount": 50000, "currency": "INR",
        "status": "captured", "method": "upi", "created_at": 1767225600,
        "notes": {"invoice_id": "123"}}}},
     "created_at": 1767225601}

`amount` is in the currency's smallest unit (paise), `created_at` in Unix seconds. The bill is
named in the payment's `notes` as `invoice_id` (or `invoice`): the checkout GridGate's portal
would open puts it there. Razorpay sends `notes` as `[]` when there are none.

The signature is checked over the bytes as received, before any parsing, in constant time.
Razorpay retries a delivery it did not see answered 2xx, so the receiver makes a second delivery
of the same payment (`id`) harmless (`cloud/services/provider_payments.py`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from ..errors import InvalidInput, Unauthorized

PROVIDER = "razorpay"
SIGNATURE_HEADER = "X-Razorpay-Signature"
CAPTURED = "payment.captured"
MAX_BODY_BYTES = 64 * 1024  # a payment event is a few kilobytes
_PAISE = Decimal("0.01")
_MAX_PAISE = 10**12  # numeric(14, 2)
_MAX_ID_CHARS = 100


@dataclass(frozen=True)
class CapturedPayment:
    """A payment the provider captured: what it says was paid, for which bill, and when."""

    payment_id: str
    amount: Decimal  # rupees and paise, exact
    currency: str
    invoice_ref: str  # as the notes gave it; '' when they named no bill
    paid_at: datetime


@dataclass(frozen=True)
class WebhookEvent:
    name: str
    payment: CapturedPayment | None  # None: an event GridGate does not act on
    body: dict[str, Any]


def sign(secret: str, body: bytes) -> str:
    """The signature Razorpay sends with `body` (hex HMAC-SHA256); tests sign with it too."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, signature: str | None) -> None:
    """Unauthorized unless `signature` is the body's signature under `secret`."""
    if not signature:
        raise Unauthorized(f"the webhook carries no {SIGNATURE_HEADER} header")
    if not hmac.compare_digest(sign(secret, body).encode(), signature.strip().encode()):
        raise Unauthorized(
            f"the {SIGNATURE_HEADER} does not match the body: check that the provider's webhook"
            " secret is GRIDGATE_PAYMENT_WEBHOOK_SECRET"
        )


def parse(body: bytes) -> WebhookEvent:
    """The event a verified body carries; InvalidInput naming the field that is wrong."""
    try:
        event = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"the webhook body is not JSON: {exc}") from exc
    if not isinstance(event, dict) or not isinstance(event.get("event"), str):
        raise InvalidInput("the webhook body names no event", errors=[("event", "missing")])
    if event["event"] != CAPTURED:
        return WebhookEvent(event["event"][:100], None, event)
    entity = _at(event, "payload", "payment", "entity")
    payment_id = entity.get("id")
    if not isinstance(payment_id, str) or not 1 <= len(payment_id) <= _MAX_ID_CHARS:
        raise _bad("payload.payment.entity.id", payment_id)
    paise = entity.get("amount")
    if type(paise) is not int or not 0 < paise < _MAX_PAISE:
        raise _bad("payload.payment.entity.amount", paise)
    currency = entity.get("currency")
    if not isinstance(currency, str) or len(currency) != 3 or not currency.isalpha():
        raise _bad("payload.payment.entity.currency", currency)
    created = entity.get("created_at")
    if type(created) is not int or created <= 0:
        raise _bad("payload.payment.entity.created_at", created)
    notes = entity.get("notes") or {}  # [] when there are none
    if not isinstance(notes, dict):
        raise _bad("payload.payment.entity.notes", notes)
    invoice_ref = notes.get("invoice_id", notes.get("invoice", ""))
    return WebhookEvent(
        CAPTURED,
        CapturedPayment(
            payment_id=payment_id,
            amount=(Decimal(paise) * _PAISE).quantize(_PAISE),
            currency=currency.upper(),
            invoice_ref=str(invoice_ref)[:_MAX_ID_CHARS],
            paid_at=datetime.fromtimestamp(created, UTC),
        ),
        event,
    )


def _at(event: dict[str, Any], *path: str) -> dict[str, Any]:
    node: Any = event
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    if not isinstance(node, dict):
        raise _bad(".".join(path), None)
    return node


def _bad(field: str, value: object) -> InvalidInput:
    shown = repr(value)[:60]
    return InvalidInput(
        f"the webhook's {field} is missing or wrong ({shown})", errors=[(field, shown)]
    )

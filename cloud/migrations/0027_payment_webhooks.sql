-- Payments a provider (Razorpay) reports by webhook. Every verified event of a captured payment
-- is kept once, by the provider's payment id: a replayed webhook finds its row and changes
-- nothing. One that settles a bill names the `payments` row it made; one that cannot (no such
-- bill, another currency, more than is owed, a bill that takes no payments) is kept unmatched,
-- with the reason, for staff to reconcile.

ALTER TABLE payments ADD COLUMN provider text;
ALTER TABLE payments ADD COLUMN provider_payment_id text;
CREATE UNIQUE INDEX payments_provider_payment ON payments (provider, provider_payment_id)
    WHERE provider IS NOT NULL;

CREATE TABLE provider_payments (
    id                   bigserial PRIMARY KEY,
    provider             text NOT NULL,
    provider_payment_id  text NOT NULL CHECK (length(provider_payment_id) BETWEEN 1 AND 100),
    event                text NOT NULL,
    amount               numeric(14, 2) NOT NULL,
    currency             char(3) NOT NULL,
    invoice_ref          text NOT NULL DEFAULT '',     -- what the payment's notes named
    reference            text NOT NULL DEFAULT '',
    paid_at              timestamptz NOT NULL,          -- the provider's created_at
    invoice_id           bigint REFERENCES invoices(id),
    board_id             bigint REFERENCES boards(id),
    payment_id           bigint REFERENCES payments(id),
    status               text NOT NULL CHECK (status IN ('settled', 'unmatched')),
    reason               text NOT NULL DEFAULT '',
    body                 jsonb NOT NULL,
    received_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (provider, provider_payment_id),
    CHECK ((status = 'settled') = (payment_id IS NOT NULL))
);
CREATE INDEX provider_payments_unmatched ON provider_payments (board_id, received_at)
    WHERE status = 'unmatched';

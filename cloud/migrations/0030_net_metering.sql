-- Net metering. A consumer's generation source (one per consumer: rooftop solar and the like):
-- its kind, capacity in kWp and the day it was connected, all three or none; optionally the
-- meter that measures its output (a generation meter of the same board, read on its export
-- register 2.8.0, and never billed as consumption).
ALTER TABLE consumers
    ADD COLUMN generation_kind text
        CHECK (generation_kind IN ('rooftop_solar', 'ground_mounted_solar', 'wind')),
    ADD COLUMN generation_kwp numeric(10, 3)
        CHECK (generation_kwp > 0 AND generation_kwp <= 10000),
    ADD COLUMN generation_since date,
    ADD COLUMN generation_meter_id bigint REFERENCES meters(id),
    ADD CONSTRAINT consumers_generation_whole CHECK (
        (generation_kind IS NULL) = (generation_kwp IS NULL)
        AND (generation_kind IS NULL) = (generation_since IS NULL)
        AND (generation_kind IS NOT NULL OR generation_meter_id IS NULL)
    );

-- The bank of a net-metered consumer, one row per billed period: what was imported and
-- exported, the units banked in from the previous period and out to the next, what was
-- settled at the feed-in rate, and the money credit carried when a settlement exceeded the
-- bill's charges. A row is the state after its period, keyed by (consumer, period): billing the
-- period again replaces it, so a re-run never carries twice. The units banked into a period are
-- the units banked out of the consumer's latest period that ends on or before its start.
CREATE TABLE net_metering_ledger (
    consumer_id     bigint NOT NULL REFERENCES consumers(id),
    period_start    date NOT NULL,
    period_end      date NOT NULL CHECK (period_end > period_start),
    invoice_id      bigint REFERENCES invoices(id),
    estimated       boolean NOT NULL,
    import_kwh      numeric(18, 6),                  -- NULL: not measured (estimated bill)
    export_kwh      numeric(18, 6),
    banked_in_kwh   numeric(18, 6) NOT NULL CHECK (banked_in_kwh >= 0),
    billed_kwh      numeric(18, 6) NOT NULL CHECK (billed_kwh >= 0),
    banked_out_kwh  numeric(18, 6) NOT NULL CHECK (banked_out_kwh >= 0),
    settled_kwh     numeric(18, 6) NOT NULL DEFAULT 0 CHECK (settled_kwh >= 0),
    feed_in_rate    numeric(14, 6),
    settled_amount  numeric(18, 2) NOT NULL DEFAULT 0 CHECK (settled_amount >= 0),
    credit_in       numeric(18, 2) NOT NULL DEFAULT 0 CHECK (credit_in >= 0),
    credit_out      numeric(18, 2) NOT NULL DEFAULT 0 CHECK (credit_out >= 0),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_id, period_start)
);
CREATE INDEX net_metering_ledger_end ON net_metering_ledger (consumer_id, period_end);

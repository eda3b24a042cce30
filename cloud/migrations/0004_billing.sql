-- Tariffs (effective-dated versions, locked once a finalised bill used them), holidays,
-- invoices (versioned: a recalculation is a new version that bills the difference), their
-- lines, payments and disputes, and the billing runs that made them.

CREATE TABLE tariffs (
    id          bigserial PRIMARY KEY,
    board_id    bigint NOT NULL REFERENCES boards(id),
    category    text NOT NULL,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (board_id, category)
);

CREATE TABLE tariff_versions (
    id              bigserial PRIMARY KEY,
    tariff_id       bigint NOT NULL REFERENCES tariffs(id),
    effective_from  date NOT NULL,
    effective_to    date,                        -- exclusive; NULL: until further notice
    spec            jsonb NOT NULL,
    locked_at       timestamptz,                 -- a finalised bill used it: never edited again
    created_at      timestamptz NOT NULL DEFAULT now(),
    CHECK (effective_to IS NULL OR effective_to > effective_from)
);
CREATE INDEX tariff_versions_tariff ON tariff_versions (tariff_id, effective_from);

CREATE TABLE holidays (
    board_id  bigint NOT NULL REFERENCES boards(id),
    day       date NOT NULL,
    name      text NOT NULL DEFAULT '',
    PRIMARY KEY (board_id, day)
);

CREATE TABLE billing_runs (
    id            bigserial PRIMARY KEY,
    board_id      bigint NOT NULL REFERENCES boards(id),
    period_start  date NOT NULL,
    period_end    date NOT NULL,
    created       integer NOT NULL,
    revised       integer NOT NULL,
    unchanged     integer NOT NULL,
    failed        integer NOT NULL,
    actor         text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE invoices (
    id            bigserial PRIMARY KEY,
    board_id      bigint NOT NULL REFERENCES boards(id),
    consumer_id   bigint NOT NULL REFERENCES consumers(id),
    period_start  date NOT NULL,
    period_end    date NOT NULL,
    version       integer NOT NULL DEFAULT 1 CHECK (version >= 1),
    previous_id   bigint REFERENCES invoices(id),
    status        text NOT NULL DEFAULT 'draft'
                  CHECK (status IN ('draft', 'issued', 'paid', 'overdue', 'disputed', 'cancelled')),
    currency      char(3) NOT NULL,
    units         numeric(18, 6) NOT NULL,
    total         numeric(14, 2) NOT NULL,       -- what the period costs, as this version knows it
    amount_due    numeric(14, 2) NOT NULL,       -- what this version bills: total minus earlier versions
    paid          numeric(14, 2) NOT NULL DEFAULT 0,
    estimated     boolean NOT NULL,
    due_date      date NOT NULL,
    details       jsonb NOT NULL DEFAULT '{}',   -- segments, tariff versions, notes
    issued_at     timestamptz,
    viewed_at     timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (consumer_id, period_start, period_end, version),
    CHECK (period_end > period_start)
);
CREATE INDEX invoices_board_period ON invoices (board_id, period_start);

CREATE TABLE invoice_lines (
    invoice_id   bigint NOT NULL REFERENCES invoices(id),
    position     integer NOT NULL,
    code         text NOT NULL,
    description  text NOT NULL,
    quantity     numeric(20, 6) NOT NULL,
    unit         text NOT NULL,
    rate         numeric(20, 6) NOT NULL,
    amount       numeric(14, 2) NOT NULL,
    PRIMARY KEY (invoice_id, position)
);

CREATE TABLE payments (
    id          bigserial PRIMARY KEY,
    invoice_id  bigint NOT NULL REFERENCES invoices(id),
    amount      numeric(14, 2) NOT NULL CHECK (amount > 0),
    paid_at     timestamptz NOT NULL DEFAULT now(),
    reference   text NOT NULL DEFAULT '',
    actor       text NOT NULL
);

CREATE TABLE disputes (
    id           bigserial PRIMARY KEY,
    invoice_id   bigint NOT NULL REFERENCES invoices(id),
    reason       text NOT NULL CHECK (length(reason) BETWEEN 1 AND 2000),
    status       text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'upheld', 'rejected')),
    resolution   text,
    opened_by    text NOT NULL,
    resolved_by  text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    resolved_at  timestamptz
);

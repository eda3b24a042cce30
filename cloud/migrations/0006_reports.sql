-- Reports: generated as jobs, stored in a storage backend (a local directory by default), listed
-- and downloaded by scope. A report is about one board, or one whole state.

CREATE TABLE reports (
    id            bigserial PRIMARY KEY,
    board_id      bigint REFERENCES boards(id),
    state_id      bigint REFERENCES states(id),
    kind          text NOT NULL CHECK (kind IN ('consumption', 'billing_summary', 'alerts',
                                                'fleet_health')),
    format        text NOT NULL CHECK (format IN ('csv', 'json', 'xml', 'pdf')),
    granularity   text NOT NULL DEFAULT 'daily' CHECK (granularity IN ('daily', 'monthly')),
    period_start  date NOT NULL,
    period_end    date NOT NULL,
    status        text NOT NULL DEFAULT 'queued'
                  CHECK (status IN ('queued', 'running', 'done', 'failed')),
    storage_key   text,
    size_bytes    bigint,
    rows          integer,
    error         text,
    created_by    text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz,
    CHECK ((board_id IS NULL) <> (state_id IS NULL)),
    CHECK (period_end > period_start)
);
CREATE INDEX reports_board ON reports (board_id, created_at DESC);
CREATE INDEX reports_state ON reports (state_id, created_at DESC);

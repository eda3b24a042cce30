-- A board's own report formats (which columns, under which headings, grouped and sorted how, in
-- which file type) and schedules that make reports by themselves and deliver them: monthly once
-- the board's billing run of a period has completed, or weekly at a local time.

CREATE TABLE report_formats (
    id          bigserial PRIMARY KEY,
    board_id    bigint NOT NULL REFERENCES boards(id),
    name        text NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('consumption', 'billing_summary', 'alerts',
                                              'fleet_health')),
    file_type   text NOT NULL CHECK (file_type IN ('csv', 'json', 'xml', 'pdf')),
    columns     jsonb NOT NULL,                 -- [{column, label}] in order, of the kind's columns
    group_by    text,                           -- one of the kind's groupings
    sort_by     text,                           -- one of the chosen columns
    sort_desc   boolean NOT NULL DEFAULT false,
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (board_id, name)
);

CREATE TABLE report_schedules (
    id              bigserial PRIMARY KEY,
    board_id        bigint NOT NULL REFERENCES boards(id),
    name            text NOT NULL,
    format_id       bigint REFERENCES report_formats(id),  -- a format in use cannot be deleted
    kind            text CHECK (kind IN ('consumption', 'billing_summary', 'alerts',
                                         'fleet_health')),
    file_type       text CHECK (file_type IN ('csv', 'json', 'xml', 'pdf')),
    cadence         text NOT NULL CHECK (cadence IN ('monthly', 'weekly')),
    weekday         smallint CHECK (weekday BETWEEN 0 AND 6),  -- weekly: 0 Monday ... 6 Sunday
    at_time         time,                                      -- weekly: the board's local time
    user_ids        bigint[] NOT NULL DEFAULT '{}',            -- recipients: users of the board
    emails          text[] NOT NULL DEFAULT '{}',              -- and addresses outside it
    enabled         boolean NOT NULL DEFAULT true,
    -- nothing that fell due before this instant is made (set when created or re-enabled)
    effective_from  timestamptz NOT NULL DEFAULT now(),
    created_by      text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (board_id, name),
    CHECK ((format_id IS NULL) = (kind IS NOT NULL AND file_type IS NOT NULL)),
    CHECK (cadence = 'monthly' OR (weekday IS NOT NULL AND at_time IS NOT NULL)),
    CHECK (cardinality(user_ids) + cardinality(emails) BETWEEN 1 AND 30)
);

ALTER TABLE reports
    ADD COLUMN format_id bigint REFERENCES report_formats(id) ON DELETE SET NULL,
    ADD COLUMN layout jsonb,  -- the format as it stood when the report was asked for
    ADD COLUMN schedule_id bigint REFERENCES report_schedules(id) ON DELETE SET NULL;

-- One row per schedule and period, claimed with INSERT ... ON CONFLICT DO NOTHING (so of
-- several processes exactly one makes the report); a claim whose lease ran out (its process
-- died) is taken over with SELECT ... FOR UPDATE SKIP LOCKED, as billing cycles are.
CREATE TABLE report_schedule_runs (
    schedule_id   bigint NOT NULL REFERENCES report_schedules(id) ON DELETE CASCADE,
    period_start  date NOT NULL,
    period_end    date NOT NULL,                 -- exclusive
    report_id     bigint REFERENCES reports(id) ON DELETE SET NULL,
    status        text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'done', 'failed')),
    worker        text NOT NULL,
    lease_until   timestamptz NOT NULL,
    attempts      integer NOT NULL DEFAULT 1,
    delivered     integer NOT NULL DEFAULT 0,    -- recipients told
    last_error    text,
    claimed_at    timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz,
    PRIMARY KEY (schedule_id, period_start, period_end),
    CHECK (period_end > period_start)
);
CREATE INDEX report_schedule_runs_lease ON report_schedule_runs (lease_until)
    WHERE status = 'running';

-- A download link e-mailed to an address outside the board: only its hash is kept, it names
-- one report and ends after a week.
CREATE TABLE report_links (
    token_hash  bytea PRIMARY KEY,
    report_id   bigint NOT NULL REFERENCES reports(id) ON DELETE CASCADE,
    email       text NOT NULL,
    expires_at  timestamptz NOT NULL,
    downloads   integer NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT now()
);

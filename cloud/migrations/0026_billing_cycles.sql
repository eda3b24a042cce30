-- Billing cycles: each board's cycle (its day, one or two months, whether its drafts are issued
-- at once) and the scheduled runs the service's processes claim, one row per board and period.

CREATE TABLE billing_cycles (
    board_id        bigint PRIMARY KEY REFERENCES boards(id),
    cycle_day       smallint NOT NULL CHECK (cycle_day BETWEEN 1 AND 28),
    cycle           text NOT NULL CHECK (cycle IN ('monthly', 'bimonthly')),
    auto_issue      boolean NOT NULL DEFAULT false,
    enabled         boolean NOT NULL DEFAULT true,
    -- the board's local day the cycle took its present shape: the first period billed by the
    -- scheduler is the first to close on or after it
    effective_from  date NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- One row per board and closing day, claimed with INSERT ... ON CONFLICT DO NOTHING; a worker
-- holds it while `lease_until` lies ahead (renewing it as it goes), and one whose lease ran out
-- is taken over by another (SELECT ... FOR UPDATE SKIP LOCKED).
CREATE TABLE billing_cycle_runs (
    board_id      bigint NOT NULL REFERENCES boards(id),
    period_end    date NOT NULL,                     -- exclusive: the cycle day it closed on
    period_start  date NOT NULL,
    cycle_months  numeric(6, 4) NOT NULL CHECK (cycle_months > 0),  -- the period's months
    status        text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'done', 'failed')),
    worker        text NOT NULL,                     -- host:pid of the claimant
    lease_until   timestamptz NOT NULL,
    attempts      integer NOT NULL DEFAULT 1,
    run_id        bigint REFERENCES billing_runs(id),  -- the run that completed it
    auto_issue    boolean,                           -- as set when it completed
    issued        integer NOT NULL DEFAULT 0,
    not_issued    jsonb NOT NULL DEFAULT '[]',        -- drafts the issue refused, and why
    last_error    text,
    claimed_at    timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz,
    PRIMARY KEY (board_id, period_end),
    CHECK (period_end > period_start)
);
CREATE INDEX billing_cycle_runs_lease ON billing_cycle_runs (lease_until) WHERE status = 'running';

-- a run the scheduler started (a stale one is closed when another worker takes the claim over)
ALTER TABLE billing_runs ADD COLUMN scheduled boolean NOT NULL DEFAULT false;

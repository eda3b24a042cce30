-- What the console reads instead of raw readings: a board's energy per 15 minutes by consumer
-- category and each consumer's energy per local day, kept up to date by a job from the days
-- ingest marks dirty (late data marks its days again); when each meter last sent a reading; and
-- billing runs that report their progress and their outcome.

CREATE TABLE board_energy_15min (
    board_id    bigint NOT NULL REFERENCES boards(id),
    category    text NOT NULL,                 -- the consumers' category; '' for no consumer
    bucket      timestamptz NOT NULL,          -- the quarter hour's start
    energy_kwh  double precision NOT NULL,     -- 1.8.0 deltas ending inside the quarter hour
    meters      integer NOT NULL,              -- meters that contributed
    PRIMARY KEY (board_id, bucket, category)
);

CREATE TABLE consumer_energy_daily (
    consumer_id  bigint NOT NULL REFERENCES consumers(id),
    board_id     bigint NOT NULL REFERENCES boards(id),
    day          date NOT NULL,                -- the board's local day
    energy_kwh   double precision NOT NULL,
    peak_kw      double precision NOT NULL,    -- the largest quarter hour's energy x 4
    PRIMARY KEY (consumer_id, day)
);
CREATE INDEX consumer_energy_daily_board ON consumer_energy_daily (board_id, day);

-- (board, local day) whose aggregates must be computed again
CREATE TABLE aggregates_dirty (
    board_id   bigint NOT NULL REFERENCES boards(id),
    day        date NOT NULL,
    marked_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (board_id, day)
);

ALTER TABLE meters ADD COLUMN last_reading_at timestamptz;
UPDATE meters m SET last_reading_at = (SELECT max(ts) FROM readings r WHERE r.meter_id = m.id);
CREATE INDEX meters_board_last_reading ON meters (board_id, last_reading_at);

ALTER TABLE billing_runs
    ADD COLUMN status text NOT NULL DEFAULT 'done' CHECK (status IN ('running', 'done', 'failed')),
    ADD COLUMN consumers integer NOT NULL DEFAULT 0,      -- to measure
    ADD COLUMN measured integer NOT NULL DEFAULT 0,       -- done so far
    ADD COLUMN estimated integer NOT NULL DEFAULT 0,      -- bills with an estimated part
    ADD COLUMN unmeasured integer NOT NULL DEFAULT 0,     -- consumers without a meter then
    ADD COLUMN errors jsonb NOT NULL DEFAULT '[]',
    ADD COLUMN finished_at timestamptz;
ALTER TABLE billing_runs ALTER COLUMN created SET DEFAULT 0,
    ALTER COLUMN revised SET DEFAULT 0, ALTER COLUMN unchanged SET DEFAULT 0,
    ALTER COLUMN failed SET DEFAULT 0;
UPDATE billing_runs SET finished_at = created_at;
CREATE INDEX billing_runs_board ON billing_runs (board_id, created_at DESC);
CREATE INDEX invoices_board_status ON invoices (board_id, status, due_date);
CREATE INDEX alerts_board_opened ON alerts (board_id, opened_at);

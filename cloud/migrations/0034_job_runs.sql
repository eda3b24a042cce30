-- The periodic jobs' claims: one row per job and interval, inserted with ON CONFLICT DO NOTHING
-- by whichever server process gets there first, so each job runs once per interval however many
-- processes serve. The rows also say when each job last ran, by which process, and how it went.

CREATE TABLE job_runs (
    job             text NOT NULL CHECK (length(job) BETWEEN 1 AND 64),
    interval_start  timestamptz NOT NULL,               -- the start of the interval it ran for
    worker          text NOT NULL,                      -- host:pid of the process that ran it
    started_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at     timestamptz,                        -- null: running, or its process died
    outcome         text CHECK (outcome IN ('ok', 'failed')),
    error           text,
    PRIMARY KEY (job, interval_start)
);
-- the newest run of each job (health, the console) and the pruning of old rows
CREATE INDEX job_runs_started ON job_runs (started_at);

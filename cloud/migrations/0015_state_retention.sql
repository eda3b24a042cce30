-- Retention defaults per state, which its boards inherit field by field unless they set their
-- own: a board's policy row now holds only its overrides (NULL: inherit the state's, else the
-- service's default).
CREATE TABLE state_retention_defaults (
    state_id            bigint PRIMARY KEY REFERENCES states(id),
    raw_readings_days   integer CHECK (raw_readings_days >= 31),
    aggregates_days     integer CHECK (aggregates_days >= 31),
    alerts_days         integer CHECK (alerts_days >= 1),
    reports_days        integer CHECK (reports_days >= 1),
    audit_days          integer CHECK (audit_days >= 365),
    updated_at          timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE retention_policies
    ALTER COLUMN raw_readings_days DROP NOT NULL, ALTER COLUMN raw_readings_days DROP DEFAULT,
    ALTER COLUMN aggregates_days DROP NOT NULL, ALTER COLUMN aggregates_days DROP DEFAULT,
    ALTER COLUMN alerts_days DROP NOT NULL, ALTER COLUMN alerts_days DROP DEFAULT,
    ALTER COLUMN reports_days DROP NOT NULL, ALTER COLUMN reports_days DROP DEFAULT,
    ALTER COLUMN audit_days DROP NOT NULL, ALTER COLUMN audit_days DROP DEFAULT;

-- Retention: per-board policies, and the daily aggregates that outlive raw readings.

CREATE TABLE retention_policies (
    board_id            bigint PRIMARY KEY REFERENCES boards(id),
    raw_readings_days   integer NOT NULL DEFAULT 400 CHECK (raw_readings_days >= 31),
    aggregates_days     integer NOT NULL DEFAULT 3650 CHECK (aggregates_days >= 31),
    alerts_days         integer NOT NULL DEFAULT 730 CHECK (alerts_days >= 1),
    reports_days        integer NOT NULL DEFAULT 365 CHECK (reports_days >= 1),
    audit_days          integer NOT NULL DEFAULT 2555 CHECK (audit_days >= 365),
    updated_at          timestamptz NOT NULL DEFAULT now()
);

-- Per meter, quantity and local day: energy (cumulative registers) or min/avg/max (others).
CREATE TABLE readings_daily (
    meter_id   bigint NOT NULL,
    quantity   text NOT NULL,
    day        date NOT NULL,
    energy     double precision,
    min        double precision,
    avg        double precision,
    max        double precision,
    reads      integer NOT NULL,
    PRIMARY KEY (meter_id, quantity, day)
);

-- What each gateway's heartbeat says of its meters and its disk, and a history of its health
-- (a sample every few minutes) for the console.
ALTER TABLE gateways
    ADD COLUMN meter_health jsonb NOT NULL DEFAULT '[]',
    ADD COLUMN disk_used_bytes bigint,
    ADD COLUMN disk_budget_bytes bigint;

CREATE TABLE gateway_health (
    gateway_id        bigint NOT NULL REFERENCES gateways(id),
    at                timestamptz NOT NULL,
    backlog_readings  integer,
    clock_synced      boolean,
    disk_used_bytes   bigint,
    disk_budget_bytes bigint,
    meters            integer NOT NULL DEFAULT 0,
    meters_failing    integer NOT NULL DEFAULT 0,
    transactions      bigint NOT NULL DEFAULT 0,
    timeouts          bigint NOT NULL DEFAULT 0,
    crc_errors        bigint NOT NULL DEFAULT 0,
    utilisation       real,
    software_version  text,
    PRIMARY KEY (gateway_id, at)
);

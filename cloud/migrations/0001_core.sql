-- The fleet, gateways and their enrollment, readings (partitioned by month), events, audit.

CREATE TABLE states (
    id          bigserial PRIMARY KEY,
    code        text NOT NULL UNIQUE CHECK (code ~ '^[A-Z]{2,3}$'),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE boards (
    id          bigserial PRIMARY KEY,
    state_id    bigint NOT NULL REFERENCES states(id),
    code        text NOT NULL UNIQUE CHECK (code ~ '^[A-Z0-9_-]{2,32}$'),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    time_zone   text NOT NULL DEFAULT 'Asia/Kolkata',
    currency    char(3) NOT NULL DEFAULT 'INR',
    capacity_kw numeric(14, 3) CHECK (capacity_kw > 0),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE consumers (
    id                  bigserial PRIMARY KEY,
    board_id            bigint NOT NULL REFERENCES boards(id),
    account_no          text NOT NULL CHECK (length(account_no) BETWEEN 1 AND 64),
    name                text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    category            text NOT NULL DEFAULT 'domestic',
    sanctioned_load_kw  numeric(10, 3) NOT NULL DEFAULT 1 CHECK (sanctioned_load_kw > 0),
    created_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (board_id, account_no)
);

CREATE TABLE gateways (
    id                  bigserial PRIMARY KEY,
    board_id            bigint NOT NULL REFERENCES boards(id),
    gateway_code        text NOT NULL UNIQUE CHECK (gateway_code ~ '^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$'),
    status              text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'revoked')),
    public_key          text NOT NULL,
    key_rotated_at      timestamptz NOT NULL DEFAULT now(),
    enrolled_at         timestamptz NOT NULL DEFAULT now(),
    last_seen_at        timestamptz,
    acked_through_seq   bigint NOT NULL DEFAULT 0,
    backlog_readings    bigint,
    oldest_unsent_at    timestamptz,
    clock_synced        boolean,
    clock_offset_s      double precision,
    software_version    text
);

CREATE TABLE enrollment_tokens (
    id           bigserial PRIMARY KEY,
    board_id     bigint NOT NULL REFERENCES boards(id),
    token_hash   bytea NOT NULL UNIQUE,          -- sha256 of the token; the token is never stored
    expires_at   timestamptz NOT NULL,
    used_at      timestamptz,
    gateway_id   bigint REFERENCES gateways(id),
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE meters (
    id            bigserial PRIMARY KEY,
    board_id      bigint NOT NULL REFERENCES boards(id),
    external_id   text NOT NULL,                 -- the meter id gateways use on the wire
    consumer_id   bigint REFERENCES consumers(id),
    gateway_id    bigint REFERENCES gateways(id),
    model         text,
    protocol      text,
    phases        smallint CHECK (phases IN (1, 3)),
    ct_ratio      numeric(10, 3) NOT NULL DEFAULT 1,
    installed_at  timestamptz,
    replaced_at   timestamptz,
    replaces_id   bigint REFERENCES meters(id),
    created_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (board_id, external_id)
);
CREATE INDEX meters_consumer ON meters (consumer_id);
CREATE INDEX meters_gateway ON meters (gateway_id);

-- Readings: identity (meter, quantity, ts); monthly range partitions created ahead by ingest.
CREATE TABLE readings (
    meter_id     bigint NOT NULL,
    quantity     text NOT NULL,
    ts           timestamptz NOT NULL,
    value        double precision NOT NULL,
    quality      text NOT NULL,
    gateway_id   bigint NOT NULL,
    PRIMARY KEY (meter_id, quantity, ts)
) PARTITION BY RANGE (ts);

CREATE FUNCTION ensure_readings_partition(month_start date) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    first_day date := date_trunc('month', month_start)::date;
    part text := format('readings_%s', to_char(first_day, 'YYYY_MM'));
BEGIN
    IF to_regclass(part) IS NULL THEN
        -- bounds spelt with an explicit UTC offset: never the session's time zone
        EXECUTE format(
            'CREATE TABLE %I PARTITION OF readings FOR VALUES FROM (%L) TO (%L)',
            part, first_day::text || ' 00:00:00+00',
            (first_day + interval '1 month')::date::text || ' 00:00:00+00');
    END IF;
END $$;

-- Events and alerts from gateways (identity: gateway + seq) and, later, from cloud checks.
CREATE TABLE events (
    id           bigserial PRIMARY KEY,
    gateway_id   bigint REFERENCES gateways(id),
    seq          bigint,
    meter_id     bigint REFERENCES meters(id),
    board_id     bigint NOT NULL REFERENCES boards(id),
    ts           timestamptz NOT NULL,
    kind         text NOT NULL,
    status       text NOT NULL,
    severity     text NOT NULL,
    quantity     text,
    message      text NOT NULL DEFAULT '',
    details      jsonb NOT NULL DEFAULT '{}',
    received_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (gateway_id, seq)
);
CREATE INDEX events_board_ts ON events (board_id, ts DESC);

-- Batches seen, so a replay is recognised and acknowledged without work.
CREATE TABLE ingest_batches (
    batch_id      uuid PRIMARY KEY,
    gateway_id    bigint NOT NULL REFERENCES gateways(id),
    first_seq     bigint NOT NULL,
    last_seq      bigint NOT NULL,
    readings_new  integer NOT NULL,
    events_new    integer NOT NULL,
    received_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE audit_log (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    actor       text NOT NULL,                   -- 'user:<id>', 'gateway:<code>', 'cli'
    action      text NOT NULL,
    entity      text NOT NULL,
    entity_id   text,
    before      jsonb,
    after       jsonb
);
CREATE INDEX audit_entity ON audit_log (entity, entity_id);

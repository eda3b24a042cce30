-- Meters a technician's scan found on a gateway's bus, reported by the gateway (signed with its
-- key), waiting for an admin to give each to a consumer; assigning one adds it to the gateway's
-- desired configuration.
CREATE TABLE gateway_discoveries (
    id            bigserial PRIMARY KEY,
    gateway_id    bigint NOT NULL REFERENCES gateways(id),
    board_id      bigint NOT NULL REFERENCES boards(id),
    bus           jsonb NOT NULL,            -- the bus settings the meter answered on
    bus_name      text NOT NULL,
    unit          integer NOT NULL CHECK (unit BETWEEN 1 AND 247),
    model         text,
    serial        text CHECK (length(serial) <= 64),
    sample        jsonb NOT NULL DEFAULT '{}',
    found_at      timestamptz NOT NULL,
    reported_at   timestamptz NOT NULL DEFAULT now(),
    meter_id      bigint REFERENCES meters(id),   -- once assigned
    assigned_at   timestamptz,
    UNIQUE (gateway_id, bus_name, unit)
);
CREATE INDEX gateway_discoveries_open ON gateway_discoveries (gateway_id) WHERE meter_id IS NULL;

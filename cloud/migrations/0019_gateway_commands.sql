-- Commands from the cloud to a gateway (and on to its meters): queued here with an expiry,
-- handed over at the gateway's next contact, run there at most once, their results kept.
CREATE TABLE gateway_commands (
    id            bigserial PRIMARY KEY,
    uid           uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(),   -- the id on the wire
    gateway_id    bigint NOT NULL REFERENCES gateways(id),
    board_id      bigint NOT NULL REFERENCES boards(id),
    kind          text NOT NULL CHECK (kind IN ('read_now', 'doctor', 'upload_log', 'restart',
                                                'disconnect', 'reconnect')),
    meter_id      bigint REFERENCES meters(id),
    args          jsonb NOT NULL DEFAULT '{}',
    reason        text CHECK (length(reason) <= 500),
    requested_by  bigint REFERENCES users(id),
    status        text NOT NULL DEFAULT 'queued'
                  CHECK (status IN ('queued', 'delivered', 'succeeded', 'failed', 'refused',
                                    'interrupted', 'expired', 'cancelled')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    delivered_at  timestamptz,
    deliveries    integer NOT NULL DEFAULT 0,
    started_at    timestamptz,
    finished_at   timestamptz,
    detail        text,
    result        jsonb,
    -- the sender's key for this request (a form's, an API client's Idempotency-Key): a request
    -- sent twice queues one command
    client_key    text CHECK (length(client_key) <= 100),
    UNIQUE (gateway_id, client_key),
    CHECK (expires_at > created_at)
);
CREATE INDEX gateway_commands_waiting ON gateway_commands (gateway_id, created_at)
    WHERE status IN ('queued', 'delivered');
CREATE INDEX gateway_commands_gateway ON gateway_commands (gateway_id, id DESC);

-- Each gateway's desired configuration (its buses and meters, checks, store and sync limits),
-- versioned: an admin's edit or an assignment makes a new version, handed to the gateway at its
-- next contact; the gateway reports the outcome (applied, rejected, rolled back) and what runs.
CREATE TABLE gateway_configs (
    id            bigserial PRIMARY KEY,
    gateway_id    bigint NOT NULL REFERENCES gateways(id),
    board_id      bigint NOT NULL REFERENCES boards(id),
    version       integer NOT NULL CHECK (version >= 1),
    settings      jsonb NOT NULL,
    comment       text CHECK (length(comment) <= 500),
    created_by    bigint REFERENCES users(id),
    created_at    timestamptz NOT NULL DEFAULT now(),
    status        text NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending', 'delivered', 'applied', 'rejected', 'rolled_back',
                                    'superseded')),
    detail        text,
    delivered_at  timestamptz,
    reported_at   timestamptz,
    UNIQUE (gateway_id, version)
);
CREATE INDEX gateway_configs_open ON gateway_configs (gateway_id, version DESC)
    WHERE status IN ('pending', 'delivered');

-- What the gateway last said it runs: the version (0: its own file) and those settings.
ALTER TABLE gateways
    ADD COLUMN config_version integer,
    ADD COLUMN config_settings jsonb,
    ADD COLUMN config_reported_at timestamptz;

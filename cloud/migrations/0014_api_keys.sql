-- API keys for third parties, and the request counters of the rate limits.

-- A key is `ggk_<public_id>_<secret>`: looked up by its public id, its secret compared (in
-- constant time) with the SHA-256 kept here; the secret itself is never stored. A key carries a
-- subset of its owner's permissions and acts in its owner's scope; it is revoked, never deleted,
-- so the audit log keeps naming a real key.
CREATE TABLE api_keys (
    id            bigserial PRIMARY KEY,
    user_id       bigint NOT NULL REFERENCES users(id),
    public_id     text NOT NULL UNIQUE CHECK (public_id ~ '^[0-9a-f]{16}$'),
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 80),
    permissions   text[] NOT NULL CHECK (cardinality(permissions) BETWEEN 1 AND 64),
    secret_hash   bytea NOT NULL CHECK (length(secret_hash) = 32),
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    last_used_at  timestamptz,                  -- written at most once a minute per key
    revoked_at    timestamptz,
    CHECK (expires_at > created_at)
);
CREATE INDEX api_keys_user ON api_keys (user_id, created_at);

-- One row per limited subject ('user:<id>', 'key:<id>', 'address:<ip>'): the requests counted
-- since its window opened. A request upserts its subjects' rows in one statement, so every
-- server process counts against the same numbers. Unlogged: after a crash the counters start
-- again from zero, which costs nothing but a fresh window.
CREATE UNLOGGED TABLE rate_counters (
    subject       text PRIMARY KEY CHECK (length(subject) <= 100),
    window_start  timestamptz NOT NULL,
    count         integer NOT NULL
);
CREATE INDEX rate_counters_window ON rate_counters (window_start);

-- Software updates of gateways: releases the cloud knows (a wheel it serves, hash-checked, or a
-- version from the package index), the version each board (a share of its gateways first) or
-- gateway is to run, and each update handed to a gateway with how it ended.
CREATE TABLE software_releases (
    id          bigserial PRIMARY KEY,
    version     text NOT NULL UNIQUE CHECK (version ~ '^[0-9][0-9A-Za-z.+!_-]{0,62}$'),
    source      text NOT NULL CHECK (source IN ('wheel', 'index')),
    filename    text CHECK (length(filename) <= 200),
    sha256      text CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    size_bytes  bigint CHECK (size_bytes BETWEEN 1 AND 52428800),
    wheel       bytea,
    notes       text CHECK (length(notes) <= 500),
    created_by  bigint REFERENCES users(id),
    created_at  timestamptz NOT NULL DEFAULT now(),
    CHECK ((source = 'wheel') = (wheel IS NOT NULL AND sha256 IS NOT NULL))
);

CREATE TABLE board_software_targets (
    board_id     bigint PRIMARY KEY REFERENCES boards(id),
    version      text NOT NULL REFERENCES software_releases(version),
    percent      integer NOT NULL CHECK (percent BETWEEN 1 AND 100),
    set_by       bigint REFERENCES users(id),
    set_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE gateway_software_targets (    -- overrides the board's target
    gateway_id   bigint PRIMARY KEY REFERENCES gateways(id),
    version      text NOT NULL REFERENCES software_releases(version),
    set_by       bigint REFERENCES users(id),
    set_at       timestamptz NOT NULL DEFAULT now()
);

-- one attempt per gateway and version: a version that failed or was rolled back on a gateway is
-- not handed to it again (a new release is)
CREATE TABLE gateway_updates (
    id            bigserial PRIMARY KEY,
    gateway_id    bigint NOT NULL REFERENCES gateways(id),
    board_id      bigint NOT NULL REFERENCES boards(id),
    version       text NOT NULL REFERENCES software_releases(version),
    from_version  text,
    command_id    bigint NOT NULL REFERENCES gateway_commands(id),
    outcome       text CHECK (outcome IN ('confirmed', 'rolled_back')),
    detail        text CHECK (length(detail) <= 500),
    created_at    timestamptz NOT NULL DEFAULT now(),
    reported_at   timestamptz,
    UNIQUE (gateway_id, version)
);
CREATE INDEX gateway_updates_gateway ON gateway_updates (gateway_id, id DESC);

-- NOTE for merges: this list is 0019's plus 'update'; a migration that adds other kinds must
-- carry 'update' too
ALTER TABLE gateway_commands DROP CONSTRAINT gateway_commands_kind_check;
ALTER TABLE gateway_commands ADD CONSTRAINT gateway_commands_kind_check
    CHECK (kind IN ('read_now', 'doctor', 'upload_log', 'restart', 'disconnect', 'reconnect',
                    'update'));

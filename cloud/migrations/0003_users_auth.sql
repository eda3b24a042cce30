-- Users, their refresh-token families, and login attempts for rate limiting.
CREATE TABLE users (
    id             bigserial PRIMARY KEY,
    email          text NOT NULL UNIQUE CHECK (email ~ '^[^@\s]+@[^@\s]+$' AND length(email) <= 254),
    password_hash  text NOT NULL,
    role           text NOT NULL CHECK (role IN ('SUPER_ADMIN', 'STATE_ADMIN', 'BOARD_ADMIN',
                        'SUPPORT_AGENT', 'AUDITOR', 'TECHNICIAN', 'CONSUMER')),
    state_id       bigint REFERENCES states(id),
    board_id       bigint REFERENCES boards(id),
    consumer_id    bigint REFERENCES consumers(id),
    active         boolean NOT NULL DEFAULT true,
    created_at     timestamptz NOT NULL DEFAULT now(),
    -- a scoped role carries its scope: state admins a state, board roles a board, consumers
    -- themselves
    CHECK (role <> 'STATE_ADMIN' OR state_id IS NOT NULL),
    CHECK (role NOT IN ('BOARD_ADMIN', 'SUPPORT_AGENT', 'TECHNICIAN') OR board_id IS NOT NULL),
    CHECK (role <> 'CONSUMER' OR consumer_id IS NOT NULL)
);

CREATE TABLE refresh_tokens (
    id           bigserial PRIMARY KEY,
    user_id      bigint NOT NULL REFERENCES users(id),
    family       uuid NOT NULL,                 -- one login; rotation keeps the family
    token_hash   bytea NOT NULL UNIQUE,
    expires_at   timestamptz NOT NULL,
    used_at      timestamptz,                   -- rotated away (a second use is theft)
    revoked_at   timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family);

CREATE TABLE login_attempts (
    id          bigserial PRIMARY KEY,
    email       text NOT NULL,
    client_ip   text NOT NULL,
    succeeded   boolean NOT NULL,
    at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX login_attempts_email ON login_attempts (email, at);
CREATE INDEX login_attempts_ip ON login_attempts (client_ip, at);

-- Accounts people run themselves: contact details on consumer records and users, one-time codes
-- and links (sign-up, invitation, password reset, e-mail change), the requests that ask for
-- them (counted for limits whether or not they matched anything), and the e-mail outbox.

ALTER TABLE consumers
    ADD COLUMN email text CHECK (email IS NULL OR (email ~ '^[^@\s]+@[^@\s]+$' AND length(email) <= 254)),
    ADD COLUMN phone text CHECK (phone IS NULL OR phone ~ '^\+?[0-9][0-9 ()-]{5,24}$');
CREATE INDEX consumers_account_no ON consumers (upper(account_no));  -- sign-up ignores case

-- An invited user has no password until they set one (NULL never verifies).
ALTER TABLE users
    ALTER COLUMN password_hash DROP NOT NULL,
    ADD COLUMN name text CHECK (name IS NULL OR length(name) BETWEEN 1 AND 200),
    ADD COLUMN phone text CHECK (phone IS NULL OR phone ~ '^\+?[0-9][0-9 ()-]{5,24}$'),
    ADD COLUMN language text NOT NULL DEFAULT 'en' CHECK (language ~ '^[a-z]{2}$'),
    ADD COLUMN invited_by bigint REFERENCES users(id),
    ADD COLUMN password_set_at timestamptz;
UPDATE users SET password_set_at = created_at WHERE password_hash IS NOT NULL;

-- A code or link sent by e-mail. Only its keyed hash is kept (HMAC with the server's secret:
-- a copy of the database does not give a six-digit code away to a brute force). Single use;
-- a code dies after `max_attempts` wrong tries.
CREATE TABLE account_tokens (
    id            bigserial PRIMARY KEY,
    purpose       text NOT NULL CHECK (purpose IN ('signup', 'invitation', 'password_reset',
                                                   'email_change')),
    token_hash    bytea NOT NULL,
    email         text NOT NULL,               -- where it was sent
    user_id       bigint REFERENCES users(id),
    consumer_id   bigint REFERENCES consumers(id),
    attempts      integer NOT NULL DEFAULT 0,
    expires_at    timestamptz NOT NULL,
    used_at       timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CHECK (purpose <> 'signup' OR consumer_id IS NOT NULL),
    CHECK (purpose = 'signup' OR user_id IS NOT NULL)
);
CREATE INDEX account_tokens_hash ON account_tokens (token_hash);
CREATE INDEX account_tokens_signup ON account_tokens (consumer_id, email)
    WHERE purpose = 'signup' AND used_at IS NULL;
CREATE INDEX account_tokens_user ON account_tokens (user_id) WHERE used_at IS NULL;

-- Every unauthenticated account request (sign-up, code check, forgotten password), matched or
-- not: the limits per subject (account number or e-mail) and per address count these rows.
CREATE TABLE account_requests (
    id          bigserial PRIMARY KEY,
    kind        text NOT NULL CHECK (kind IN ('signup', 'signup_code', 'forgot_password',
                                              'reset_password', 'invitation')),
    subject     text NOT NULL,
    client_ip   text NOT NULL,
    at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX account_requests_subject ON account_requests (kind, subject, at);
CREATE INDEX account_requests_ip ON account_requests (kind, client_ip, at);

-- E-mail to send: written in the transaction of the event it tells of, sent after commit by
-- `cloud.mail.sender`. `event_key` names the event, so one event never makes two messages.
-- Bodies are blanked once sent (they may carry a code or a link).
CREATE TABLE email_outbox (
    id               bigserial PRIMARY KEY,
    event_key        text NOT NULL UNIQUE CHECK (length(event_key) <= 200),
    to_address       text NOT NULL,
    subject          text NOT NULL,
    body_text        text,
    body_html        text,
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'sending', 'sent', 'failed')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    claimed_until    timestamptz,
    sent_at          timestamptz,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX email_outbox_due ON email_outbox (next_attempt_at) WHERE status = 'pending';
CREATE INDEX email_outbox_claimed ON email_outbox (claimed_until) WHERE status = 'sending';

CREATE TABLE email_attempts (
    id          bigserial PRIMARY KEY,
    email_id    bigint NOT NULL REFERENCES email_outbox(id),
    at          timestamptz NOT NULL DEFAULT now(),
    outcome     text NOT NULL CHECK (outcome IN ('sent', 'retry', 'failed')),
    detail      text
);
CREATE INDEX email_attempts_email ON email_attempts (email_id);

-- Consents (grant and revoke, every change kept): the latest row per (user, kind) is in force.
CREATE TABLE consents (
    id           bigserial PRIMARY KEY,
    user_id      bigint NOT NULL REFERENCES users(id),
    consumer_id  bigint REFERENCES consumers(id),   -- a consumer's consent follows their record
    kind         text NOT NULL CHECK (kind IN ('energy_tracking', 'automated_support',
                                                'usage_insights')),
    granted      boolean NOT NULL,
    at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX consents_user ON consents (user_id, kind, at DESC);

-- How a user wants to hear of things; the notifications service delivers by these.
CREATE TABLE notification_preferences (
    user_id             bigint PRIMARY KEY REFERENCES users(id),
    channels            text[] NOT NULL DEFAULT '{in_app,email}'
                        CHECK (channels <@ '{in_app,email,sms}'),
    alert_min_severity  text NOT NULL DEFAULT 'medium'
                        CHECK (alert_min_severity IN ('info', 'low', 'medium', 'high', 'critical')),
    opted_out           text[] NOT NULL DEFAULT '{}'
                        CHECK (opted_out <@ '{bills,alerts,tariff_changes,support_replies}'),
    quiet_from          time,
    quiet_until         time,
    zone                text NOT NULL DEFAULT 'Asia/Kolkata' CHECK (length(zone) <= 64),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CHECK ((quiet_from IS NULL) = (quiet_until IS NULL))
);

-- Text messages to send: written in the transaction of the event they tell of, sent after commit
-- by `cloud.sms.sender` to the configured webhook provider. `event_key` names the event, so one
-- event never makes two texts. A text not sent by `expires_at` is given up ('expired'): news of
-- a power cut that arrives a day late is worse than none.
CREATE TABLE sms_outbox (
    id                   bigserial PRIMARY KEY,
    event_key            text NOT NULL UNIQUE CHECK (length(event_key) <= 200),
    user_id              bigint REFERENCES users(id),
    to_phone             text NOT NULL CHECK (to_phone ~ '^\+?[0-9]{6,20}$'),  -- digits only
    body                 text NOT NULL CHECK (length(body) BETWEEN 1 AND 480),
    status               text NOT NULL DEFAULT 'pending'
                         CHECK (status IN ('pending', 'sending', 'sent', 'failed', 'expired')),
    attempts             integer NOT NULL DEFAULT 0,
    next_attempt_at      timestamptz NOT NULL DEFAULT now(),
    claimed_until        timestamptz,
    sent_at              timestamptz,
    last_error           text CHECK (length(last_error) <= 500),
    provider_message_id  text CHECK (length(provider_message_id) <= 200),
    created_at           timestamptz NOT NULL DEFAULT now(),
    expires_at           timestamptz NOT NULL,
    CHECK ((status = 'sent') = (sent_at IS NOT NULL))
);
CREATE INDEX sms_outbox_due ON sms_outbox (next_attempt_at) WHERE status = 'pending';
CREATE INDEX sms_outbox_claimed ON sms_outbox (claimed_until) WHERE status = 'sending';

-- Every request made to the provider, with its HTTP status (NULL: no answer, e.g. a timeout).
CREATE TABLE sms_attempts (
    id           bigserial PRIMARY KEY,
    sms_id       bigint NOT NULL REFERENCES sms_outbox(id),
    at           timestamptz NOT NULL DEFAULT now(),
    outcome      text NOT NULL CHECK (outcome IN ('sent', 'retry', 'failed')),
    http_status  integer CHECK (http_status BETWEEN 100 AND 599),
    detail       text CHECK (length(detail) <= 500)
);
CREATE INDEX sms_attempts_sms ON sms_attempts (sms_id);

ALTER TABLE notification_deliveries ADD COLUMN sms_id bigint REFERENCES sms_outbox(id);

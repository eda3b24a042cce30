-- Each user's inbox, and how each notification was delivered on each channel.
CREATE TABLE notifications (
    id           bigserial PRIMARY KEY,
    user_id      bigint NOT NULL REFERENCES users(id),
    kind         text NOT NULL CHECK (kind IN ('bill_issued', 'payment_received', 'bill_overdue',
                                               'dispute_resolved', 'alert')),
    title        text NOT NULL CHECK (length(title) <= 200),
    body         text NOT NULL CHECK (length(body) <= 2000),
    link         text CHECK (link IS NULL OR link ~ '^/dashboard/'),
    urgent       boolean NOT NULL DEFAULT false,
    event_key    text NOT NULL,                  -- the event told of: one notification each
    created_at   timestamptz NOT NULL DEFAULT now(),
    read_at      timestamptz,
    deleted_at   timestamptz,
    UNIQUE (user_id, event_key)
);
CREATE INDEX notifications_inbox ON notifications (user_id, id DESC) WHERE deleted_at IS NULL;

CREATE TABLE notification_deliveries (
    notification_id  bigint NOT NULL REFERENCES notifications(id),
    channel          text NOT NULL CHECK (channel IN ('in_app', 'email', 'sms')),
    status           text NOT NULL CHECK (status IN ('delivered', 'queued', 'not_sent')),
    detail           text,
    email_id         bigint REFERENCES email_outbox(id),
    at               timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (notification_id, channel)
);

-- Alerts reach e-mail as a digest: one message gathers a user's alerts for a minute (and through
-- their quiet hours), rendered when it is sent.
ALTER TABLE email_outbox ADD COLUMN digest jsonb;
CREATE INDEX email_outbox_open_digest ON email_outbox (to_address) WHERE digest IS NOT NULL
    AND status = 'pending';

-- Each new notification is announced for the live streams of its user (cloud.services.alert_feed
-- listens on both channels; the payload names the user, never the content).
CREATE FUNCTION notifications_announce() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('gridgate_notifications', json_build_object(
        'channel', 'notification', 'id', NEW.id, 'user_id', NEW.user_id)::text);
    RETURN NEW;
END $$;

CREATE TRIGGER notifications_announce AFTER INSERT ON notifications
    FOR EACH ROW EXECUTE FUNCTION notifications_announce();

-- The support desk: a consumer's query and its thread, worked by the board's agents.
CREATE TABLE support_queries (
    id                 bigserial PRIMARY KEY,
    board_id           bigint NOT NULL REFERENCES boards(id),
    consumer_id        bigint NOT NULL REFERENCES consumers(id),
    opened_by          bigint NOT NULL REFERENCES users(id),
    subject            text NOT NULL CHECK (length(subject) BETWEEN 1 AND 120),
    category           text CHECK (category IN ('high_bill', 'billing_error', 'meter_fault',
                                                'outage', 'connection', 'tariff', 'payment',
                                                'other')),
    category_source    text CHECK (category_source IN ('consumer', 'classifier', 'agent')),
    -- what the classifier said (kept even when a person chose the category)
    predicted          text,
    confidence         numeric(4, 3) CHECK (confidence BETWEEN 0 AND 1),
    model_version      text,
    priority           text NOT NULL DEFAULT 'normal'
                       CHECK (priority IN ('low', 'normal', 'high', 'urgent')),
    status             text NOT NULL DEFAULT 'open'
                       CHECK (status IN ('open', 'in_progress', 'waiting_for_consumer',
                                         'resolved', 'closed')),
    assignee_id        bigint REFERENCES users(id),
    invoice_id         bigint REFERENCES invoices(id),
    meter_id           bigint REFERENCES meters(id),
    -- when an agent must next answer: the clock starts when the consumer writes (or asks for a
    -- person) and stops when an agent answers; NULL while nothing waits on the desk
    sla_started_at     timestamptz,
    sla_due_at         timestamptz,
    sla_breached_at    timestamptz,
    first_response_at  timestamptz,
    auto_answered_at   timestamptz,
    escalated_at       timestamptz,
    -- the reply drafted from the consumer's records, waiting for an agent (or sent by itself)
    draft              text CHECK (length(draft) <= 4000),
    draft_facts        jsonb,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    resolved_at        timestamptz,
    closed_at          timestamptz,
    deleted_at         timestamptz
);
CREATE INDEX support_queries_board ON support_queries (board_id, status, created_at DESC)
    WHERE deleted_at IS NULL;
CREATE INDEX support_queries_consumer ON support_queries (consumer_id, created_at DESC);
CREATE INDEX support_queries_sla ON support_queries (sla_due_at)
    WHERE sla_due_at IS NOT NULL AND sla_breached_at IS NULL AND deleted_at IS NULL;

CREATE TABLE support_messages (
    id          bigserial PRIMARY KEY,
    query_id    bigint NOT NULL REFERENCES support_queries(id),
    author_id   bigint REFERENCES users(id),       -- NULL for the automatic answer
    author_kind text NOT NULL CHECK (author_kind IN ('consumer', 'agent', 'automatic')),
    body        text NOT NULL CHECK (length(body) BETWEEN 1 AND 4000),
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX support_messages_query ON support_messages (query_id, id);

-- An announcement from an admin or agent to everyone in a scope (a board, or a board's
-- consumers of one category); each recipient gets it in their inbox.
CREATE TABLE broadcasts (
    id          bigserial PRIMARY KEY,
    board_id    bigint NOT NULL REFERENCES boards(id),
    category    text,                              -- consumers of this category only
    audience    text NOT NULL CHECK (audience IN ('consumers', 'staff', 'everyone')),
    title       text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    body        text NOT NULL CHECK (length(body) BETWEEN 1 AND 2000),
    urgent      boolean NOT NULL DEFAULT false,
    sent_by     bigint NOT NULL REFERENCES users(id),
    recipients  integer NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX broadcasts_board ON broadcasts (board_id, id DESC);

-- The events that now reach inboxes, and the topics a user may opt out of.
ALTER TABLE notifications DROP CONSTRAINT notifications_kind_check;
ALTER TABLE notifications ADD CONSTRAINT notifications_kind_check CHECK (kind IN (
    'bill_issued', 'payment_received', 'bill_overdue', 'dispute_resolved', 'alert',
    'tariff_changed', 'support_reply', 'support_update', 'sla_breached', 'report_ready',
    'fleet_alert', 'broadcast'));
ALTER TABLE notification_preferences DROP CONSTRAINT notification_preferences_opted_out_check;
ALTER TABLE notification_preferences ADD CONSTRAINT notification_preferences_opted_out_check
    CHECK (opted_out <@ '{bills,alerts,tariff_changes,support_replies,reports,announcements}');

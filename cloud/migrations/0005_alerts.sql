-- Alerts: open conditions from gateways (edge checks) and from the cloud's own checks, with a
-- lifecycle active -> acknowledged -> resolved. One open alert per (board, subject, kind).
-- Every change is announced on the 'gridgate_alerts' channel for live views.

CREATE TABLE alerts (
    id                bigserial PRIMARY KEY,
    board_id          bigint NOT NULL REFERENCES boards(id),
    gateway_id        bigint REFERENCES gateways(id),
    meter_id          bigint REFERENCES meters(id),
    subject           text NOT NULL,               -- 'meter:<id>', 'gateway:<id>', 'board:<id>'
    kind              text NOT NULL,
    severity          text NOT NULL CHECK (severity IN ('info', 'low', 'medium', 'high', 'critical')),
    source            text NOT NULL CHECK (source IN ('edge', 'cloud')),
    state             text NOT NULL DEFAULT 'active'
                      CHECK (state IN ('active', 'acknowledged', 'resolved')),
    message           text NOT NULL DEFAULT '',
    details           jsonb NOT NULL DEFAULT '{}',
    opened_at         timestamptz NOT NULL,
    last_seen_at      timestamptz NOT NULL,
    occurrences       integer NOT NULL DEFAULT 1,
    acknowledged_by   text,
    acknowledged_at   timestamptz,
    acknowledge_note  text,
    resolved_by       text,
    resolved_at       timestamptz,
    resolve_note      text
);
CREATE UNIQUE INDEX alerts_open ON alerts (board_id, subject, kind) WHERE state <> 'resolved';
CREATE INDEX alerts_board_state ON alerts (board_id, state, opened_at DESC);

-- Small state the periodic cloud checks keep between runs (consecutive windows, trends).
CREATE TABLE check_state (
    key         text PRIMARY KEY,
    value       jsonb NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION announce_alert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('gridgate_alerts', json_build_object(
        'id', NEW.id, 'board_id', NEW.board_id, 'state', NEW.state,
        'change', lower(TG_OP))::text);
    RETURN NEW;
END $$;

CREATE TRIGGER alerts_announce AFTER INSERT OR UPDATE ON alerts
    FOR EACH ROW EXECUTE FUNCTION announce_alert();

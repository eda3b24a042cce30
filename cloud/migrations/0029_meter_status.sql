-- A meter's status, which the cloud checks and billing respect: active (the default), inactive
-- (not in use: not checked, not billed), under maintenance (not checked; its consumer's bill
-- estimated) or faulty (one alert while faulty; its consumer's bill estimated).
ALTER TABLE meters
    ADD COLUMN status text NOT NULL DEFAULT 'active'
        CHECK (status IN ('active', 'inactive', 'under_maintenance', 'faulty')),
    ADD COLUMN status_reason text,
    ADD COLUMN status_since timestamptz;

-- Every change of status, so billing knows a meter's status during any period, not only now.
CREATE TABLE meter_status_changes (
    id        bigserial PRIMARY KEY,
    meter_id  bigint NOT NULL REFERENCES meters(id) ON DELETE CASCADE,
    status    text NOT NULL
        CHECK (status IN ('active', 'inactive', 'under_maintenance', 'faulty')),
    reason    text NOT NULL,
    at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX meter_status_changes_meter ON meter_status_changes (meter_id, at);
CREATE INDEX meters_status ON meters (board_id, status);

-- The audit log's filters: by actor (newest first) and by time range. The entity filter uses
-- audit_entity (entity, entity_id); an action alone is read along the primary key.
CREATE INDEX audit_actor ON audit_log (actor, id);
CREATE INDEX audit_at ON audit_log (at);

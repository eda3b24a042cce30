-- Sessions that end when an account changes, login attempts recorded before the password is
-- checked, meters a gateway discovered awaiting an admin's confirmation, re-key tokens bound to
-- one gateway, and what ingest refused (so a replayed batch is answered the same way).

-- Every change of role, scope, status or password moves the user's session version; access
-- tokens carry the version they were issued under and are refused once it moved. A trigger, so
-- that no path (API, CLI, a hand-run UPDATE) can change an account and leave its tokens valid.
ALTER TABLE users ADD COLUMN session_version integer NOT NULL DEFAULT 0;

CREATE FUNCTION users_bump_session_version() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF (NEW.role, NEW.state_id, NEW.board_id, NEW.consumer_id, NEW.active, NEW.password_hash)
       IS DISTINCT FROM
       (OLD.role, OLD.state_id, OLD.board_id, OLD.consumer_id, OLD.active, OLD.password_hash)
    THEN
        NEW.session_version := OLD.session_version + 1;
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER users_session_version BEFORE UPDATE ON users
    FOR EACH ROW EXECUTE FUNCTION users_bump_session_version();

-- An attempt is recorded (succeeded NULL: being checked) before the password is verified, and
-- counts as a failure until it is known to have succeeded.
ALTER TABLE login_attempts ALTER COLUMN succeeded DROP NOT NULL;
CREATE INDEX login_attempts_email_ip ON login_attempts (email, client_ip, at);

-- Meters a gateway reported that the cloud did not know: kept, awaiting confirmation.
ALTER TABLE meters ADD COLUMN confirmed_at timestamptz;
UPDATE meters SET confirmed_at = created_at;
CREATE INDEX meters_unconfirmed ON meters (board_id) WHERE confirmed_at IS NULL;

-- A token issued to re-key one enrolled gateway (NULL: a board token, for new gateways only).
ALTER TABLE enrollment_tokens ADD COLUMN for_gateway_id bigint REFERENCES gateways(id);

ALTER TABLE ingest_batches ADD COLUMN refused jsonb NOT NULL DEFAULT '[]';

-- Two more commands for DLMS meters: backfill (a range of the load profile into the readings)
-- and set_clock (correct a drifting meter clock).
-- NOTE for merges: this list is 0019's plus 'update' (0023, software updates, on its own
-- branch) plus this migration's two, so that whichever of the two is applied last keeps every
-- kind; a later migration that adds kinds must carry this whole list forward.
ALTER TABLE gateway_commands DROP CONSTRAINT gateway_commands_kind_check;
ALTER TABLE gateway_commands ADD CONSTRAINT gateway_commands_kind_check
    CHECK (kind IN ('read_now', 'doctor', 'upload_log', 'restart', 'disconnect', 'reconnect',
                    'update', 'backfill', 'set_clock'));

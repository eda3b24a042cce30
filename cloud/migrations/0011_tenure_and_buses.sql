-- Each gateway's buses as its last heartbeat described them (meters, failing, transactions,
-- timeouts, CRC errors, latency, utilisation).
ALTER TABLE gateways ADD COLUMN bus_stats jsonb NOT NULL DEFAULT '[]';

-- Since when a meter has been its consumer's: a consumer sees the meter's readings from then on,
-- never the previous occupant's. NULL: since the meter was installed.
ALTER TABLE meters ADD COLUMN consumer_since timestamptz;

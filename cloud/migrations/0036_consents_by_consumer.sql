-- A household's consent is asked by its record (the ways to pay less ask for usage_insights),
-- whichever of its online users gave it: the latest row per (consumer, kind) is in force.
CREATE INDEX consents_consumer ON consents (consumer_id, kind, at DESC) WHERE consumer_id IS NOT NULL;

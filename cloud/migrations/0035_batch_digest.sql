-- A batch taken before is known by the SHA-256 of its verified JSON bytes, before they are parsed:
-- a gateway that did not hear an acknowledgement and sends the same bytes again is answered from
-- this row for a signature check and a hash, not a parse of its readings. Batches taken before
-- this column have no digest; they are still known by their batch id, after the parse.
ALTER TABLE ingest_batches ADD COLUMN body_sha256 bytea
    CHECK (body_sha256 IS NULL OR length(body_sha256) = 32);
CREATE INDEX ingest_batches_digest ON ingest_batches (gateway_id, body_sha256)
    WHERE body_sha256 IS NOT NULL;

-- A billing run reads every read of the month for each meter (a fall of the register between two
-- reads must be seen). Ingest writes in time order, so one meter's reads lie scattered over the
-- partition: fetching each from the table cost a page visit per read. With value and quality in
-- the primary key's index the scan is index-only, one sweep of the meter's index entries.
ALTER TABLE readings DROP CONSTRAINT readings_pkey;
ALTER TABLE readings ADD PRIMARY KEY (meter_id, quantity, ts) INCLUDE (value, quality);

-- Index-only scans skip the table only for pages the visibility map marks all-visible, and
-- readings are insert-only (ingest never updates them): vacuum each partition after every 1 % of
-- growth (the default waits for 20 %), so a closed month is all-visible by the time it is billed.
DO $$
DECLARE
    part regclass;
BEGIN
    FOR part IN SELECT inhrelid::regclass FROM pg_inherits WHERE inhparent = 'readings'::regclass
    LOOP
        EXECUTE format('ALTER TABLE %s SET (autovacuum_vacuum_insert_scale_factor = 0.01)', part);
    END LOOP;
END $$;

CREATE OR REPLACE FUNCTION ensure_readings_partition(month_start date) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    first_day date := date_trunc('month', month_start)::date;
    part text := format('readings_%s', to_char(first_day, 'YYYY_MM'));
BEGIN
    IF to_regclass(part) IS NOT NULL THEN
        RETURN;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext(part));
    BEGIN
        -- bounds spelt with an explicit UTC offset: never the session's time zone
        EXECUTE format(
            'CREATE TABLE %I PARTITION OF readings FOR VALUES FROM (%L) TO (%L)'
            ' WITH (autovacuum_vacuum_insert_scale_factor = 0.01)',
            part, first_day::text || ' 00:00:00+00',
            (first_day + interval '1 month')::date::text || ' 00:00:00+00');
    EXCEPTION WHEN duplicate_table OR unique_violation THEN
        NULL;  -- another transaction created it first
    END;
END $$;

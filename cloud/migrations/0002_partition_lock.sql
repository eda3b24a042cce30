-- Concurrent ingests of a new month raced to create its partition (DuplicateTable). Creation is
-- serialised per partition with a transaction-scoped advisory lock, and a creation that still
-- collides (the waiter's catalog cache can predate the winner's commit) counts as done.
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
            'CREATE TABLE %I PARTITION OF readings FOR VALUES FROM (%L) TO (%L)',
            part, first_day::text || ' 00:00:00+00',
            (first_day + interval '1 month')::date::text || ' 00:00:00+00');
    EXCEPTION WHEN duplicate_table OR unique_violation THEN
        NULL;  -- another transaction created it first
    END;
END $$;

-- A meter's page and the meters list name the household whose panels a generation meter
-- measures: found by the meter, not by a scan of the board's consumers.
CREATE INDEX consumers_generation_meter ON consumers (generation_meter_id)
    WHERE generation_meter_id IS NOT NULL;

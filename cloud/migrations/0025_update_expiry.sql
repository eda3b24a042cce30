-- An update the gateway never said anything more about (handed over, or installed and never
-- confirmed nor rolled back) is marked failed by the cloud's periodic jobs: `failed` is an
-- outcome the cloud records, never one a gateway reports.
ALTER TABLE gateway_updates DROP CONSTRAINT gateway_updates_outcome_check;
ALTER TABLE gateway_updates ADD CONSTRAINT gateway_updates_outcome_check
    CHECK (outcome IN ('confirmed', 'rolled_back', 'failed'));

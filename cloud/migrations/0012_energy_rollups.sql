-- Rollups of the aggregates for consumption over long periods: a board's energy per local day by
-- consumer category (what consumption per board and category sums: a few rows a day), kept by the
-- same job from the same reads as board_energy_15min.
CREATE TABLE board_energy_daily (
    board_id    bigint NOT NULL REFERENCES boards(id),
    category    text NOT NULL,                 -- the consumers' category; '' for no consumer
    day         date NOT NULL,                 -- the board's local day
    energy_kwh  double precision NOT NULL,
    PRIMARY KEY (board_id, day, category)
);

INSERT INTO board_energy_daily (board_id, category, day, energy_kwh)
SELECT e.board_id, e.category, (e.bucket AT TIME ZONE b.time_zone)::date, sum(e.energy_kwh)
FROM board_energy_15min e JOIN boards b ON b.id = e.board_id
GROUP BY 1, 2, 3;

-- Each consumer's energy per local month (the sum of its days), so a consumer's energy over a
-- long period reads a row a month and only the days of the months it covers in part.
CREATE TABLE consumer_energy_monthly (
    consumer_id  bigint NOT NULL REFERENCES consumers(id),
    board_id     bigint NOT NULL REFERENCES boards(id),
    month        date NOT NULL,                -- the month's first local day
    energy_kwh   double precision NOT NULL,
    PRIMARY KEY (consumer_id, month)
);
CREATE INDEX consumer_energy_monthly_board ON consumer_energy_monthly (board_id, month);

INSERT INTO consumer_energy_monthly (consumer_id, board_id, month, energy_kwh)
SELECT consumer_id, board_id, date_trunc('month', day)::date, sum(energy_kwh)
FROM consumer_energy_daily GROUP BY 1, 2, 3;

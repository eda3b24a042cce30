-- Ways a consumer could pay less, stored so each has a life the consumer steers: new (not shown
-- yet), seen, done, dismissed ("not for me"). One row per consumer, kind and billing period:
-- generating again for the same period updates the figures of an open one (new or seen) and
-- leaves a done or dismissed one as the consumer left it; an open one the period no longer
-- offers is withdrawn (deleted). `figures` holds what the words need (rates, loads, the power
-- factor), `assumption` the habit or change the saving rests on, in words.
CREATE TABLE recommendations (
    id                bigserial PRIMARY KEY,
    board_id          bigint NOT NULL REFERENCES boards(id),
    consumer_id       bigint NOT NULL REFERENCES consumers(id) ON DELETE CASCADE,
    kind              text NOT NULL CHECK (kind IN ('shift_to_off_peak', 'stay_below_slab',
                          'cut_standby', 'reduce_sanctioned_load', 'improve_power_factor')),
    category          text NOT NULL CHECK (category IN ('cost_reduction', 'energy_saving')),
    period_start      date NOT NULL,
    period_end        date NOT NULL CHECK (period_end > period_start),
    currency          text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    energy_unit       text NOT NULL CHECK (energy_unit IN ('kWh', 'kVAh')),
    saving            numeric(14, 2) NOT NULL CHECK (saving >= 0),   -- money a billing period
    units             numeric(14, 3) NOT NULL,                       -- moved or not used
    units_per_day     numeric(14, 2) NOT NULL,
    figures           jsonb NOT NULL DEFAULT '{}',
    assumption        text NOT NULL CHECK (length(assumption) BETWEEN 1 AND 1000),
    status            text NOT NULL DEFAULT 'new'
                          CHECK (status IN ('new', 'seen', 'done', 'dismissed')),
    as_of             timestamptz NOT NULL,       -- the latest read the figures go by
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    status_changed_at timestamptz,
    status_changed_by text,
    UNIQUE (consumer_id, kind, period_start)
);
CREATE INDEX recommendations_board ON recommendations (board_id, status);

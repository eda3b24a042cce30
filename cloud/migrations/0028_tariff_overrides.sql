-- Temporary tariff overrides: for a window that ends by itself, a board's category is priced at
-- a flat rate per unit instead of its energy charge (`energy_rate`), or its energy charge is
-- multiplied (`multiplier`). The window is stored as UTC instants at the board's local
-- midnights (bills go by the board's local days); an override taken off early keeps its row,
-- with who removed it and when, and counts only up to the board's local day it was removed.

CREATE TABLE tariff_overrides (
    id          bigserial PRIMARY KEY,
    board_id    bigint NOT NULL REFERENCES boards(id),
    category    text NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('energy_rate', 'multiplier')),
    value       numeric(14, 6) NOT NULL CHECK (value >= 0),
    starts_at   timestamptz NOT NULL,
    ends_at     timestamptz NOT NULL,                    -- exclusive
    reason      text NOT NULL CHECK (length(reason) BETWEEN 1 AND 500),
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    removed_at  timestamptz,
    removed_by  text,
    CHECK (ends_at > starts_at AND ends_at <= starts_at + interval '367 days'),
    CHECK ((removed_at IS NULL) = (removed_by IS NULL))
);
CREATE INDEX tariff_overrides_board ON tariff_overrides (board_id, category, starts_at);

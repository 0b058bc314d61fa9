-- Every price we received, for charts, bets (the price in force at a time)
-- and audits. observed_at is when we received it, stamped before the insert.
-- The primary key leads with observed_at so the table can later be
-- partitioned by time without changing keys.
CREATE TABLE price_history (
    id          BIGINT GENERATED ALWAYS AS IDENTITY,
    symbol      TEXT NOT NULL REFERENCES currencies (code),
    price_usd   NUMERIC(38, 18) NOT NULL CHECK (price_usd > 0),
    source      TEXT NOT NULL,
    observed_at TIMESTAMPTZ NOT NULL,
    -- The schedule tick the observation answered (NULL if not scheduled).
    tick        TIMESTAMPTZ,
    PRIMARY KEY (observed_at, id)
);
-- Latest price of a symbol, price at a time, history ranges.
CREATE INDEX price_history_symbol_time_idx ON price_history (symbol, observed_at DESC);

-- One row per schedule tick that was refreshed: the guard that makes a
-- refresh run once per tick however often its job is delivered.
CREATE TABLE rate_refreshes (
    tick         TIMESTAMPTZ PRIMARY KEY,
    worker       TEXT NOT NULL,
    observations INTEGER NOT NULL,
    errors       TEXT,
    finished_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

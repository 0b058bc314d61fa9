CREATE TABLE price_history_flat (
    id          BIGINT GENERATED ALWAYS AS IDENTITY,
    symbol      TEXT NOT NULL REFERENCES currencies (code),
    price_usd   NUMERIC(38, 18) NOT NULL CHECK (price_usd > 0),
    source      TEXT NOT NULL,
    observed_at TIMESTAMPTZ NOT NULL,
    tick        TIMESTAMPTZ,
    PRIMARY KEY (observed_at, id)
);
INSERT INTO price_history_flat (id, symbol, price_usd, source, observed_at, tick)
OVERRIDING SYSTEM VALUE
SELECT id, symbol, price_usd, source, observed_at, tick FROM price_history;
SELECT setval(pg_get_serial_sequence('price_history_flat', 'id'),
              coalesce((SELECT max(id) FROM price_history), 0) + 1, false);
DROP TABLE price_history;
DROP FUNCTION price_history_make_partitions(TIMESTAMPTZ, TIMESTAMPTZ);
DROP FUNCTION price_history_drop_partitions(TIMESTAMPTZ);
ALTER TABLE price_history_flat RENAME TO price_history;
ALTER TABLE price_history RENAME CONSTRAINT price_history_flat_pkey TO price_history_pkey;
CREATE INDEX price_history_symbol_time_idx ON price_history (symbol, observed_at DESC);

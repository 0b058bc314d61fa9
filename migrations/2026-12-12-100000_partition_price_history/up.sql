-- price_history grows by half a million rows a day. It becomes a table
-- partitioned by month of observed_at, so old months go by dropping a
-- partition (PRICE_HISTORY_RETENTION_DAYS), not by deleting rows. Keys and
-- indexes are unchanged (the primary key already led with observed_at), and
-- "the price in force at t" is still one index descent per partition, newest
-- partition first.
ALTER TABLE price_history RENAME TO price_history_unpartitioned;
ALTER INDEX price_history_symbol_time_idx RENAME TO price_history_unpartitioned_symbol_time_idx;
ALTER TABLE price_history_unpartitioned RENAME CONSTRAINT price_history_pkey
    TO price_history_unpartitioned_pkey;
ALTER TABLE price_history_unpartitioned RENAME CONSTRAINT price_history_price_usd_check
    TO price_history_unpartitioned_price_usd_check;
ALTER TABLE price_history_unpartitioned RENAME CONSTRAINT price_history_symbol_fkey
    TO price_history_unpartitioned_symbol_fkey;

CREATE TABLE price_history (
    id          BIGINT GENERATED ALWAYS AS IDENTITY,
    symbol      TEXT NOT NULL REFERENCES currencies (code),
    price_usd   NUMERIC(38, 18) NOT NULL CHECK (price_usd > 0),
    source      TEXT NOT NULL,
    observed_at TIMESTAMPTZ NOT NULL,
    tick        TIMESTAMPTZ,
    PRIMARY KEY (observed_at, id)
) PARTITION BY RANGE (observed_at);
CREATE INDEX price_history_symbol_time_idx ON price_history (symbol, observed_at DESC);
-- Rows outside every month made so far (a clock far off): kept, not lost.
CREATE TABLE price_history_default PARTITION OF price_history DEFAULT;

-- Makes the monthly partitions (UTC months, named price_history_pYYYYMM)
-- from the month of `from` to the month of `upto`; returns how many it made.
-- A month some of whose rows already sit in the default partition is left to
-- the default (creating it would fail) and reported in the server log.
CREATE FUNCTION price_history_make_partitions(from_at TIMESTAMPTZ, upto TIMESTAMPTZ)
RETURNS INTEGER LANGUAGE plpgsql AS $$
DECLARE
    month TIMESTAMPTZ := date_trunc('month', from_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    name TEXT;
    made INTEGER := 0;
BEGIN
    WHILE month <= upto LOOP
        name := 'price_history_p' || to_char(month AT TIME ZONE 'UTC', 'YYYYMM');
        IF to_regclass(name) IS NULL THEN
            IF EXISTS (SELECT 1 FROM price_history_default
                       WHERE observed_at >= month AND observed_at < month + interval '1 month') THEN
                RAISE LOG 'price_history: % has rows in the default partition; not made', name;
            ELSE
                EXECUTE format(
                    'CREATE TABLE %I PARTITION OF price_history FOR VALUES FROM (%L) TO (%L)',
                    name, month, month + interval '1 month');
                made := made + 1;
            END IF;
        END IF;
        month := month + interval '1 month';
    END LOOP;
    RETURN made;
END $$;

-- Drops the monthly partitions that end at or before `before`; returns
-- their names.
CREATE FUNCTION price_history_drop_partitions(before TIMESTAMPTZ)
RETURNS SETOF TEXT LANGUAGE plpgsql AS $$
DECLARE
    part RECORD;
BEGIN
    FOR part IN
        SELECT c.relname AS name
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'price_history'::regclass
          AND c.relname ~ '^price_history_p[0-9]{6}$'
          AND (to_timestamp(substr(c.relname, 16), 'YYYYMM') AT TIME ZONE 'UTC'
               + interval '1 month') <= before
        ORDER BY c.relname
    LOOP
        EXECUTE format('DROP TABLE %I', part.name);
        RETURN NEXT part.name;
    END LOOP;
END $$;

SELECT price_history_make_partitions(
    least(coalesce((SELECT min(observed_at) FROM price_history_unpartitioned), now()), now()),
    now() + interval '2 months');

INSERT INTO price_history (id, symbol, price_usd, source, observed_at, tick)
OVERRIDING SYSTEM VALUE
SELECT id, symbol, price_usd, source, observed_at, tick FROM price_history_unpartitioned;
SELECT setval(pg_get_serial_sequence('price_history', 'id'),
              coalesce((SELECT max(id) FROM price_history_unpartitioned), 0) + 1, false);
DROP TABLE price_history_unpartitioned;

-- The observations whose liquidations have not been evaluated yet
-- (PRODUCT.md §7). An expiry settlement must end a bet as liquidated when
-- an observation in (placement, settles_at] reached its liquidation price;
-- searching the whole price history for that costs a one-day bet up to
-- 86,400 rows per settlement. But an observation whose liquidation job has
-- finished has already closed every open bet it reached (the job waits for
-- a bet a settlement holds rather than skipping it, so a settlement that
-- rolls back leaves the bet to it). So a settlement needs to look only at
-- the observations listed here: normally a handful.
--
-- Every observation is listed as it is stored (the trigger below, so no
-- writer can forget); the liquidation job deletes its observation's rows in
-- the transaction of its last batch. Rows that no job will clear (an
-- observation never announced) are deleted once no bet can span them
-- (bets last at most a day).
CREATE TABLE liquidation_pending (
    symbol      TEXT NOT NULL,
    observed_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (symbol, observed_at)
);
CREATE INDEX liquidation_pending_observed_at_idx ON liquidation_pending (observed_at);

CREATE FUNCTION liquidation_pending_add() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO liquidation_pending (symbol, observed_at)
    VALUES (NEW.symbol, NEW.observed_at) ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;
CREATE TRIGGER price_history_liquidation_pending AFTER INSERT ON price_history
    FOR EACH ROW EXECUTE FUNCTION liquidation_pending_add();

-- Bets open now were checked, until this release, against the whole
-- history: list what lies in their windows, so nothing is missed.
INSERT INTO liquidation_pending (symbol, observed_at)
SELECT DISTINCT h.symbol, h.observed_at FROM price_history h
WHERE h.observed_at > (SELECT min(created_at) FROM bets WHERE status = 'open')
  AND h.symbol IN (SELECT symbol FROM bets WHERE status = 'open');

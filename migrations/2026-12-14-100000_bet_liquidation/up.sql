-- Liquidation (PRODUCT.md §7): a bet is closed when an observation reaches
-- its liquidation price, fixed at placement: start × (1 − 1/leverage) for
-- `up`, start × (1 + 1/leverage) for `down`, to 8 decimal places, rounded
-- away from the start price (a bet is never closed before its loss reaches
-- its stake). Bets placed before this release get theirs by the same rule.
ALTER TABLE bets
    ADD COLUMN liquidation_price NUMERIC(38, 18),
    ADD COLUMN liquidated boolean NOT NULL DEFAULT false;
UPDATE bets SET liquidation_price = CASE direction
    WHEN 'up' THEN floor(start_price * (leverage - 1) / leverage * 100000000) / 100000000
    ELSE ceil(start_price * (leverage + 1) / leverage * 100000000) / 100000000 END;
ALTER TABLE bets ALTER COLUMN liquidation_price SET NOT NULL;
-- Each observation finds the open bets it liquidates as a range of one of
-- these per symbol, nearest the price first (as the alerts' indexes).
CREATE INDEX bets_liquidation_up_idx ON bets (symbol, liquidation_price DESC)
    WHERE status = 'open' AND direction = 'up';
CREATE INDEX bets_liquidation_down_idx ON bets (symbol, liquidation_price)
    WHERE status = 'open' AND direction = 'down';
-- A placement counts the user's open bets and their stakes (the limits):
-- a range of this, however many bets the user has settled.
CREATE INDEX bets_open_user_idx ON bets (user_id) WHERE status = 'open';
-- The house's open notional (stake × leverage of open bets) per symbol and
-- direction, kept as a counter: a placement adds to it under its row lock
-- and is refused past BET_MAX_HOUSE_NOTIONAL; settling or liquidating a
-- bet takes it off. Summing the open bets instead would cost every
-- placement a scan of all of them.
CREATE TABLE bet_exposure (
    symbol        TEXT NOT NULL,
    direction     TEXT NOT NULL,
    open_notional NUMERIC(38, 2) NOT NULL DEFAULT 0,
    PRIMARY KEY (symbol, direction)
);
INSERT INTO bet_exposure (symbol, direction, open_notional)
SELECT symbol, direction, sum(stake * leverage) FROM bets WHERE status = 'open'
GROUP BY symbol, direction;

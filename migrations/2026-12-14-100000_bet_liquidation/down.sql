DROP TABLE bet_exposure;
DROP INDEX bets_open_user_idx;
DROP INDEX bets_liquidation_down_idx;
DROP INDEX bets_liquidation_up_idx;
ALTER TABLE bets DROP COLUMN liquidated, DROP COLUMN liquidation_price;

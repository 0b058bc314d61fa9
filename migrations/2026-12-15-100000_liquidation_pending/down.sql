DROP TRIGGER price_history_liquidation_pending ON price_history;
DROP FUNCTION liquidation_pending_add();
DROP TABLE liquidation_pending;

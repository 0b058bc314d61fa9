DROP TABLE rate_refreshes;
DROP TABLE price_history;

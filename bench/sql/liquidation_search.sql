-- The expiry settlement's search for a liquidation crossing, before and
-- after `liquidation_pending` (migration 2026-12-15-100000): 100 one-day
-- `up` bets (liquidation price below every price, so nothing is found and
-- the whole lifetime is searched) over a day of observations at one a
-- second for each priced symbol, all but the last ten seconds' evaluated.
--
-- Run on a scratch database with the migrations applied
-- (`bourse-api migrate`), e.g.:
--   psql -h 127.0.0.1 -U postgres -d bourse_scratch -f bench/sql/liquidation_search.sql
-- Each search runs twice (the second with warm caches); psql prints the
-- times.
SELECT price_history_make_partitions(now() - interval '40 days', now() + interval '40 days');
INSERT INTO price_history (symbol, price_usd, source, observed_at)
SELECT s, 43000 + (g % 100), 'x', now() - make_interval(secs => g)
FROM generate_series(1, 86400) g, unnest(ARRAY['BTC','ETH','SOL','XRP','DOGE','ADA']) s
WHERE s IN (SELECT code FROM currencies);
-- every observation evaluated except the last ten seconds'
DELETE FROM liquidation_pending WHERE observed_at < now() - interval '10 seconds';
VACUUM ANALYZE price_history; VACUUM ANALYZE liquidation_pending;
SELECT count(*) AS history, (SELECT count(*) FROM liquidation_pending) AS pending FROM price_history;
CREATE TEMP TABLE b AS SELECT 'BTC'::text AS symbol, now() - interval '86399 seconds' AS created_at, now() AS settles_at, 'up'::text AS direction, 42000::numeric AS liquidation_price, 'open'::text AS status FROM generate_series(1,100);
\timing on
-- the search before: the whole lifetime's history (100 bets)
SELECT count(l.*) FROM b LEFT JOIN LATERAL (
  SELECT price_usd, observed_at FROM price_history h
  WHERE b.status = 'open' AND h.symbol = b.symbol
    AND h.observed_at > b.created_at AND h.observed_at <= b.settles_at
    AND CASE WHEN b.direction = 'up' THEN h.price_usd <= b.liquidation_price ELSE h.price_usd >= b.liquidation_price END
  ORDER BY h.observed_at LIMIT 1) l ON true;
SELECT count(l.*) FROM b LEFT JOIN LATERAL (
  SELECT price_usd, observed_at FROM price_history h
  WHERE b.status = 'open' AND h.symbol = b.symbol
    AND h.observed_at > b.created_at AND h.observed_at <= b.settles_at
    AND CASE WHEN b.direction = 'up' THEN h.price_usd <= b.liquidation_price ELSE h.price_usd >= b.liquidation_price END
  ORDER BY h.observed_at LIMIT 1) l ON true;
-- after: the pending observations only
SELECT count(l.*) FROM b LEFT JOIN LATERAL (
  SELECT h.price_usd, h.observed_at FROM liquidation_pending k
  CROSS JOIN LATERAL (SELECT price_usd, observed_at FROM price_history h
      WHERE h.symbol = k.symbol AND h.observed_at = k.observed_at ORDER BY h.id DESC LIMIT 1) h
  WHERE b.status = 'open' AND k.symbol = b.symbol
    AND k.observed_at > b.created_at AND k.observed_at <= b.settles_at
    AND CASE WHEN b.direction = 'up' THEN h.price_usd <= b.liquidation_price ELSE h.price_usd >= b.liquidation_price END
  ORDER BY k.observed_at LIMIT 1) l ON true;
SELECT count(l.*) FROM b LEFT JOIN LATERAL (
  SELECT h.price_usd, h.observed_at FROM liquidation_pending k
  CROSS JOIN LATERAL (SELECT price_usd, observed_at FROM price_history h
      WHERE h.symbol = k.symbol AND h.observed_at = k.observed_at ORDER BY h.id DESC LIMIT 1) h
  WHERE b.status = 'open' AND k.symbol = b.symbol
    AND k.observed_at > b.created_at AND k.observed_at <= b.settles_at
    AND CASE WHEN b.direction = 'up' THEN h.price_usd <= b.liquidation_price ELSE h.price_usd >= b.liquidation_price END
  ORDER BY k.observed_at LIMIT 1) l ON true;

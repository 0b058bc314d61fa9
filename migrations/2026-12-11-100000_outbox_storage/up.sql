-- The outbox is a queue table: every row is inserted, claimed (an update),
-- marked dispatched (an update) and purged. Room on each page lets the
-- claim, which changes no indexed column, stay a HOT update (no new index
-- entries), and vacuuming after 1% of the rows changed (not PostgreSQL's
-- 20%), without the cost delay, keeps dead row versions from piling up
-- between purges at thousands of jobs a second.
ALTER TABLE outbox SET (
    fillfactor = 70,
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_insert_scale_factor = 0.01,
    autovacuum_analyze_scale_factor = 0.02,
    autovacuum_vacuum_cost_delay = 0
);

-- Jobs that must follow a database change are written here in the same
-- transaction as the change; the worker relay moves due rows to Redis.
-- A rolled-back change leaves no row, so no job runs for it.
CREATE TABLE outbox (
    id            UUID PRIMARY KEY,
    queue         TEXT NOT NULL,
    job           TEXT NOT NULL,
    version       SMALLINT NOT NULL DEFAULT 1,
    payload       JSONB NOT NULL,
    run_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- A relay that claimed the row; another relay may take it over after
    -- this time (the first one died between claiming and dispatching).
    claimed_until TIMESTAMPTZ,
    relay_attempts INTEGER NOT NULL DEFAULT 0,
    last_error    TEXT,
    dispatched_at TIMESTAMPTZ
);
-- The relay's only query path: due, undispatched rows in due order.
CREATE INDEX outbox_pending_idx ON outbox (run_at) WHERE dispatched_at IS NULL;
CREATE INDEX outbox_dispatched_idx ON outbox (dispatched_at) WHERE dispatched_at IS NOT NULL;

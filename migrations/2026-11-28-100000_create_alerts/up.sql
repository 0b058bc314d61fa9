-- Price alerts (PRODUCT.md §8). An alert is `created` until an observation
-- crosses its target (then `triggered`, once, with the price and time that
-- did it) or its owner deletes it.
CREATE TABLE alerts (
    id              UUID PRIMARY KEY,
    user_id         UUID NOT NULL REFERENCES users (id),
    symbol          TEXT NOT NULL REFERENCES currencies (code),
    target_price    NUMERIC(38, 18) NOT NULL CHECK (target_price > 0),
    direction       TEXT NOT NULL CHECK (direction IN ('above', 'below')),
    status          TEXT NOT NULL DEFAULT 'created'
                    CHECK (status IN ('created', 'triggered', 'deleted')),
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- The observation that crossed the target: its price, when we received
    -- it, and when the alert was marked.
    triggered_price NUMERIC(38, 18),
    observed_at     TIMESTAMPTZ,
    triggered_at    TIMESTAMPTZ,
    deleted_at      TIMESTAMPTZ,
    -- A triggered alert says what triggered it (and keeps it if deleted
    -- afterwards); an active one has not triggered.
    CONSTRAINT alerts_triggered_complete CHECK (
        (status <> 'triggered' OR (triggered_at IS NOT NULL AND triggered_price IS NOT NULL))
        AND (status <> 'created' OR triggered_at IS NULL)),
    CONSTRAINT alerts_deleted_complete CHECK ((status = 'deleted') = (deleted_at IS NOT NULL))
);
-- A user's list, newest first (ids are UUIDv7), with or without a status.
CREATE INDEX alerts_user_idx ON alerts (user_id, id DESC);
CREATE INDEX alerts_user_status_idx ON alerts (user_id, status, id DESC);
-- Evaluation: the active alerts a price crosses are one range scan per
-- symbol and direction, so the work is proportional to the alerts crossed,
-- not to all alerts. `above` alerts fire when price >= target (the lowest
-- targets first), `below` when price <= target.
CREATE INDEX alerts_active_above_idx ON alerts (symbol, target_price)
    WHERE status = 'created' AND direction = 'above';
CREATE INDEX alerts_active_below_idx ON alerts (symbol, target_price)
    WHERE status = 'created' AND direction = 'below';

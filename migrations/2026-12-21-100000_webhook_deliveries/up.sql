-- Webhook events and their deliveries (PRODUCT.md §11).
--
-- An event is written in the transaction of the change that causes it,
-- only for a user with an endpoint subscribed to its type; it keeps the id
-- every delivery of it carries (`Bourse-Event-Id`), so receivers can
-- deduplicate. One delivery per (endpoint, event); every attempt at it is
-- a row of `webhook_attempts`, which `GET /webhooks/{id}/deliveries` shows.

-- Since when an endpoint has failed without a success in between: an
-- endpoint failing for `WEBHOOK_DISABLE_AFTER_SECS` is disabled.
ALTER TABLE webhook_endpoints ADD COLUMN failing_since TIMESTAMPTZ;

CREATE TABLE webhook_events (
    id         UUID PRIMARY KEY,
    user_id    UUID NOT NULL REFERENCES users (id),
    type       TEXT NOT NULL,
    data       JSONB NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE webhook_deliveries (
    id              UUID PRIMARY KEY,
    endpoint_id     UUID NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_id        UUID NOT NULL REFERENCES webhook_events (id),
    -- pending: an attempt is queued; delivered: a 2xx answer; failed: given
    -- up (retried for a day, or the endpoint was disabled or deleted).
    status          TEXT NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    delivered_at    TIMESTAMPTZ,
    UNIQUE (endpoint_id, event_id)
);
-- An endpoint's deliveries, newest first (ids are UUIDv7); and its
-- pending ones, oldest first, which the attempt holding its turn sends.
CREATE INDEX webhook_deliveries_endpoint_idx ON webhook_deliveries (endpoint_id, id);
CREATE INDEX webhook_deliveries_pending_idx ON webhook_deliveries (endpoint_id, id)
    WHERE status = 'pending';

CREATE TABLE webhook_attempts (
    id           UUID PRIMARY KEY,
    delivery_id  UUID NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempted_at TIMESTAMPTZ NOT NULL,
    duration_ms  INTEGER NOT NULL,
    -- The answer's status code, or NULL when there was none (the error
    -- says why: refused address, timeout, connection).
    status_code  INTEGER,
    error        TEXT
);
CREATE INDEX webhook_attempts_delivery_idx ON webhook_attempts (delivery_id, id);

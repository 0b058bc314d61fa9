-- Webhook endpoints (PRODUCT.md §11): where a user wants events POSTed,
-- which events, and the secret deliveries are signed with. The secret is
-- kept as is: signing needs it (it is shown to its owner once, at
-- registration). An endpoint failing for a day is disabled, with the
-- reason.
CREATE TABLE webhook_endpoints (
    id              UUID PRIMARY KEY,
    user_id         UUID NOT NULL REFERENCES users (id),
    url             TEXT NOT NULL CHECK (length(url) <= 2048),
    events          TEXT[] NOT NULL CHECK (cardinality(events) > 0),
    secret          TEXT NOT NULL,
    enabled         BOOLEAN NOT NULL DEFAULT true,
    disabled_reason TEXT,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- A user's endpoints, oldest first (ids are UUIDv7); and the endpoints an
-- event of a user goes to.
CREATE INDEX webhook_endpoints_user_idx ON webhook_endpoints (user_id, id);

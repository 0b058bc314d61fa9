-- Trading (PRODUCT.md §6). An order is bought from or sold to the house at
-- the fresh price in one ledger transaction; the house then hedges it at an
-- outside exchange. Orders worth the clearing threshold or more are hedged
-- alone; smaller ones are grouped, per currency and side, into a batch
-- once their sum reaches the threshold. Batches are formed under a lock
-- per currency and side (see shared/src/trading/clearing.rs): an order
-- joins exactly one batch, once.

CREATE TABLE clearing_batches (
    -- Also the idempotency reference sent to the exchange: a retried call
    -- for the same batch cannot buy or sell twice.
    id                 UUID PRIMARY KEY,
    currency           TEXT NOT NULL REFERENCES currencies (code),
    side               TEXT NOT NULL CHECK (side IN ('buy', 'sell')),
    -- Sum of the orders' crypto amounts and of their USD values.
    amount             NUMERIC(38, 18) NOT NULL CHECK (amount > 0),
    usd_amount         NUMERIC(38, 18) NOT NULL CHECK (usd_amount > 0),
    order_count        INTEGER NOT NULL CHECK (order_count > 0),
    status             TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'cleared')),
    -- Exchange calls made and the last failure, for operators; a batch
    -- pending long after its last attempt is submitted again by the sweep.
    attempts           INTEGER NOT NULL DEFAULT 0,
    last_attempt_at    TIMESTAMPTZ,
    last_error         TEXT,
    exchange_reference TEXT,
    exchange_price     NUMERIC(38, 18),
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    cleared_at         TIMESTAMPTZ,
    CONSTRAINT clearing_batches_cleared_has_reference
        CHECK (status = 'pending' OR (exchange_reference IS NOT NULL AND cleared_at IS NOT NULL))
);
CREATE INDEX clearing_batches_pending_idx ON clearing_batches (created_at) WHERE status = 'pending';

CREATE TABLE orders (
    id                 UUID PRIMARY KEY,
    user_id            UUID NOT NULL REFERENCES users (id),
    side               TEXT NOT NULL CHECK (side IN ('buy', 'sell')),
    currency           TEXT NOT NULL REFERENCES currencies (code),
    -- The crypto amount bought or sold.
    amount             NUMERIC(38, 18) NOT NULL CHECK (amount > 0),
    -- USD per unit, the fresh price used.
    price_usd          NUMERIC(38, 18) NOT NULL CHECK (price_usd > 0),
    -- USD paid (buy, rounded up to the cent) or received (sell, rounded
    -- down): the house keeps the rounding.
    usd_amount         NUMERIC(38, 18) NOT NULL CHECK (usd_amount > 0),
    -- The USD wallet paid from or into (another user's for a sale to them).
    usd_wallet         UUID NOT NULL REFERENCES wallets (id),
    crypto_wallet      UUID NOT NULL REFERENCES wallets (id),
    -- A sale whose USD went to another user.
    recipient_id       UUID REFERENCES users (id),
    transaction_id     UUID NOT NULL REFERENCES ledger_transactions (id),
    status             TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'cleared')),
    batch_id           UUID REFERENCES clearing_batches (id),
    exchange_reference TEXT,
    cleared_at         TIMESTAMPTZ,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT orders_cleared_has_batch
        CHECK (status = 'pending' OR (batch_id IS NOT NULL AND exchange_reference IS NOT NULL))
);
CREATE INDEX orders_user_idx ON orders (user_id, id DESC);
-- The orders still waiting for a batch, oldest first, per currency and side.
CREATE INDEX orders_unbatched_idx ON orders (currency, side, created_at, id) WHERE batch_id IS NULL;
CREATE INDEX orders_batch_idx ON orders (batch_id) WHERE batch_id IS NOT NULL;

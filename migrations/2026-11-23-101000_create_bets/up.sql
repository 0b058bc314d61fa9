-- Bets on price moves (PRODUCT.md §7). The stake moves to the escrow
-- account when the bet is created; the settlement job (queued through the
-- outbox, due at settles_at) pays out from escrow and the house at the
-- price in force at settles_at, once.
CREATE TABLE bets (
    id                    UUID PRIMARY KEY,
    user_id               UUID NOT NULL REFERENCES users (id),
    -- The USD wallet the stake came from and the payout goes to.
    wallet_id             UUID NOT NULL REFERENCES wallets (id),
    symbol                TEXT NOT NULL REFERENCES currencies (code),
    direction             TEXT NOT NULL CHECK (direction IN ('up', 'down')),
    stake                 NUMERIC(38, 18) NOT NULL CHECK (stake > 0),
    leverage              INTEGER NOT NULL CHECK (leverage BETWEEN 1 AND 100),
    duration_seconds      INTEGER NOT NULL CHECK (duration_seconds BETWEEN 10 AND 86400),
    -- The price in force at creation, and when it was observed.
    start_price           NUMERIC(38, 18) NOT NULL CHECK (start_price > 0),
    start_observed_at     TIMESTAMPTZ NOT NULL,
    status                TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'settled', 'void')),
    -- W (right direction), L (wrong), D (no move); none for void.
    result                TEXT CHECK (result IN ('W', 'L', 'D')),
    end_price             NUMERIC(38, 18),
    end_observed_at       TIMESTAMPTZ,
    payout                NUMERIC(38, 18) CHECK (payout >= 0),
    profit                NUMERIC(38, 18),
    stake_transaction_id  UUID NOT NULL REFERENCES ledger_transactions (id),
    payout_transaction_id UUID REFERENCES ledger_transactions (id),
    created_at            TIMESTAMPTZ NOT NULL,
    settles_at            TIMESTAMPTZ NOT NULL,
    settled_at            TIMESTAMPTZ,
    -- The last time the reconciler queued this bet's settlement again.
    rescheduled_at        TIMESTAMPTZ,
    CONSTRAINT bets_settled_complete CHECK (
        (status = 'open' AND settled_at IS NULL AND payout IS NULL)
        OR (status <> 'open' AND settled_at IS NOT NULL AND payout IS NOT NULL))
);
CREATE INDEX bets_user_idx ON bets (user_id, id DESC);
-- The reconciler's search: open bets by due time.
CREATE INDEX bets_open_due_idx ON bets (settles_at) WHERE status = 'open';

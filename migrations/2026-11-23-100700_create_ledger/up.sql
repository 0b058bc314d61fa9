-- The double-entry ledger. Every money movement is one ledger transaction
-- whose entries sum to zero per currency. Balances live on accounts and are
-- changed only by the trigger below, from entries: a balance always equals
-- the sum of its account's entries.

-- User wallets and the system accounts (per currency): the outside world
-- (deposits and withdrawals), the house (rounding remainders, bet results),
-- fees, the exchange (conversions and trades) and escrow (bet stakes).
CREATE TABLE ledger_accounts (
    id         UUID PRIMARY KEY,
    kind       TEXT NOT NULL CHECK (kind IN ('wallet', 'outside', 'house', 'fees', 'exchange', 'escrow')),
    currency   TEXT NOT NULL REFERENCES currencies (code),
    balance    NUMERIC(38, 18) NOT NULL DEFAULT 0,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- A user's money never goes below zero, whatever the code does.
    CONSTRAINT wallet_balance_not_negative CHECK (kind <> 'wallet' OR balance >= 0)
);
CREATE UNIQUE INDEX ledger_accounts_system_key ON ledger_accounts (kind, currency) WHERE kind <> 'wallet';
-- The lookup of a system account by kind and currency: our connections
-- use generic plans (see shared/src/db.rs), which cannot use the partial
-- index above for a `kind = $1` parameter.
CREATE INDEX ledger_accounts_kind_currency_idx ON ledger_accounts (kind, currency);

-- One system account of each kind per currency, now and for currencies
-- added later.
INSERT INTO ledger_accounts (id, kind, currency)
SELECT gen_random_uuid(), k.kind, c.code
FROM currencies c CROSS JOIN (VALUES ('outside'), ('house'), ('fees'), ('exchange'), ('escrow')) AS k(kind);

CREATE FUNCTION ledger_create_system_accounts() RETURNS trigger AS $$
BEGIN
    INSERT INTO ledger_accounts (id, kind, currency)
    SELECT gen_random_uuid(), k.kind, NEW.code
    FROM (VALUES ('outside'), ('house'), ('fees'), ('exchange'), ('escrow')) AS k(kind);
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER currencies_system_accounts AFTER INSERT ON currencies
    FOR EACH ROW EXECUTE FUNCTION ledger_create_system_accounts();

CREATE TABLE wallets (
    -- The wallet's ledger account.
    id            UUID PRIMARY KEY REFERENCES ledger_accounts (id),
    user_id       UUID NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    currency      TEXT NOT NULL REFERENCES currencies (code),
    wallet_number TEXT NOT NULL UNIQUE CHECK (wallet_number ~ '^[1-9][0-9]{9}$'),
    name          TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    status        TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'blocked')),
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT wallets_user_currency_key UNIQUE (user_id, currency)
);
SELECT diesel_manage_updated_at('wallets');

CREATE TABLE ledger_transactions (
    id            UUID PRIMARY KEY,
    kind          TEXT NOT NULL CHECK (kind IN
                  ('deposit', 'withdrawal', 'transfer', 'buy', 'sell', 'bet_stake', 'bet_payout', 'fee')),
    -- Both sides as users see them: the wallets, amounts and currencies.
    from_wallet   UUID,
    to_wallet     UUID,
    -- No foreign keys on the currency columns of this table and of
    -- ledger_entries: every concurrent movement would take a KEY SHARE lock
    -- on the same few currency rows, and PostgreSQL's multixacts make that
    -- the bottleneck. The currencies come from accounts, whose currency is
    -- checked on creation.
    from_amount   NUMERIC(38, 18),
    from_currency TEXT,
    to_amount     NUMERIC(38, 18),
    to_currency   TEXT,
    -- Units of to_currency per unit of from_currency, when converted.
    rate          NUMERIC(38, 18),
    created_by    UUID REFERENCES users (id),
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE ledger_entries (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    transaction_id UUID NOT NULL REFERENCES ledger_transactions (id),
    -- Not a foreign key either: every deposit would KEY SHARE-lock the one
    -- "outside" account row. The ledger check reports entries of unknown
    -- accounts.
    account_id     UUID NOT NULL,
    currency       TEXT NOT NULL,
    -- Positive: money into the account; negative: out of it.
    amount         NUMERIC(38, 18) NOT NULL CHECK (amount <> 0),
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX ledger_entries_account_idx ON ledger_entries (account_id, id DESC);
CREATE INDEX ledger_entries_transaction_idx ON ledger_entries (transaction_id);

-- The only way a wallet balance changes: an entry. Entries are append-only.
-- System accounts keep no running balance (it is the sum of their entries):
-- updating one row for every deposit or conversion would serialise them all
-- on that row.
CREATE FUNCTION ledger_apply_entry() RETURNS trigger AS $$
BEGIN
    UPDATE ledger_accounts SET balance = balance + NEW.amount
    WHERE id = NEW.account_id AND kind = 'wallet';
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER ledger_entries_apply AFTER INSERT ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_apply_entry();

CREATE FUNCTION ledger_entries_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'ledger entries are append-only';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER ledger_entries_immutable BEFORE UPDATE OR DELETE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_entries_append_only();

-- Idempotency-Key records: the first response to a key, kept 24 hours,
-- written in the same transaction as the movement it answers for.
CREATE TABLE idempotency_keys (
    user_id         UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    key             TEXT NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    request_hash    TEXT NOT NULL,
    response_status SMALLINT,
    response_body   JSONB,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, key)
);
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);

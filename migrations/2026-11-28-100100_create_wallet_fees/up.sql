-- The monthly wallet fee (PRODUCT.md §9).
-- Every fiat wallet has its next fee time: creation + 30 days, then every
-- 30 days, and the number of periods already dealt with. Crypto wallets
-- pay none and have no row. A table of its own, narrow and without
-- triggers: a run moves a million rows to their next period, and on
-- `wallets` each move would rewrite a wide row and four indexes and run
-- the updated_at trigger. The fee run charges due wallets in batches; each
-- (wallet, period) has at most one row in wallet_fees, enforced by its
-- primary key, whatever the retries, crashes or number of workers.
CREATE TABLE wallet_fee_schedule (
    wallet_id   UUID PRIMARY KEY REFERENCES wallets (id),
    currency    TEXT NOT NULL,
    next_fee_at TIMESTAMPTZ NOT NULL,
    period      INTEGER NOT NULL DEFAULT 0 CHECK (period >= 0)
);
-- The fee run's search: due wallets by due time.
CREATE INDEX wallet_fee_schedule_due_idx ON wallet_fee_schedule (next_fee_at);
INSERT INTO wallet_fee_schedule (wallet_id, currency, next_fee_at)
SELECT w.id, w.currency, w.created_at + interval '30 days'
FROM wallets w JOIN currencies c ON c.code = w.currency
WHERE c.kind = 'fiat';

-- New fiat wallets get their first fee time from their creation time,
-- whoever inserts them.
CREATE FUNCTION wallets_schedule_fee() RETURNS trigger AS $$
BEGIN
    INSERT INTO wallet_fee_schedule (wallet_id, currency, next_fee_at)
    SELECT NEW.id, NEW.currency, NEW.created_at + interval '30 days'
    FROM currencies WHERE code = NEW.currency AND kind = 'fiat';
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER wallets_schedule_fee AFTER INSERT ON wallets
    FOR EACH ROW EXECUTE FUNCTION wallets_schedule_fee();

-- One row per wallet and period: charged (with its ledger transaction), or
-- outstanding (the wallet was short and is blocked until a credit covers
-- it). Amounts are in the wallet's currency, converted from the configured
-- fee at the rate stored here.
--
-- No foreign keys: a run writes a million rows, and each key would add a
-- lookup (and a KEY SHARE lock) per row. The wallet is locked by the run
-- that writes its row, and the transaction is inserted by the same
-- statement; the ledger check covers the transactions themselves.
CREATE TABLE wallet_fees (
    wallet_id      UUID NOT NULL,
    period         INTEGER NOT NULL CHECK (period >= 1),
    due_at         TIMESTAMPTZ NOT NULL,
    amount         NUMERIC(38, 18) NOT NULL CHECK (amount > 0),
    currency       TEXT NOT NULL,
    fee_amount     NUMERIC(38, 18) NOT NULL,
    fee_currency   TEXT NOT NULL,
    -- Units of the wallet's currency per unit of the fee's.
    rate           NUMERIC(38, 18) NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('charged', 'outstanding')),
    transaction_id UUID,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    charged_at     TIMESTAMPTZ,
    PRIMARY KEY (wallet_id, period),
    CONSTRAINT wallet_fees_charged_complete CHECK (
        (status = 'charged') = (transaction_id IS NOT NULL AND charged_at IS NOT NULL))
);
CREATE INDEX wallet_fees_outstanding_idx ON wallet_fees (wallet_id) WHERE status = 'outstanding';

-- Balances from entries, once per statement: a fee batch inserts thousands
-- of entries in one statement, and a row trigger would run once per entry
-- (system-account entries included). A posting's few accounts get one
-- primary-key update each, in ascending id order (the lock order of
-- ledger_post): a cached plan that cannot turn into a scan. A bulk insert's
-- thousands get one set-based update, planned for its actual size.
DROP TRIGGER ledger_entries_apply ON ledger_entries;
DROP FUNCTION ledger_apply_entry();
CREATE FUNCTION ledger_apply_entries() RETURNS trigger AS $$
DECLARE
    r RECORD;
BEGIN
    IF (SELECT count(*) FROM new_entries) <= 32 THEN
        FOR r IN SELECT account_id, sum(amount) AS change
                 FROM new_entries GROUP BY account_id ORDER BY account_id LOOP
            UPDATE ledger_accounts SET balance = balance + r.change
            WHERE id = r.account_id AND kind = 'wallet';
        END LOOP;
    ELSE
        EXECUTE 'UPDATE ledger_accounts a SET balance = a.balance + n.change
                 FROM (SELECT account_id, sum(amount) AS change
                       FROM new_entries GROUP BY account_id) n
                 WHERE a.id = n.account_id AND a.kind = ''wallet''';
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER ledger_entries_apply AFTER INSERT ON ledger_entries
    REFERENCING NEW TABLE AS new_entries
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_apply_entries();

-- Entries lose their foreign key to their transaction, like their account
-- and currency before them: the key costs a lookup and a KEY SHARE lock of
-- the transaction row per entry, which dominated bulk posting. Entries are
-- written only with their transaction, in the same statement (ledger_post,
-- the fee run), and the ledger check reports entries whose transaction or
-- account does not exist.
ALTER TABLE ledger_entries DROP CONSTRAINT ledger_entries_transaction_id_fkey;

-- ledger_post as before, plus: a credit to a blocked wallet that now covers
-- all its outstanding fees charges them (one `fee` transaction each, to the
-- fees account) and unblocks the wallet, in the same statement and so in
-- the same transaction as the credit. Deposits, transfers, sale proceeds
-- and bet payouts all post through here.
CREATE OR REPLACE FUNCTION ledger_post(
    p_id                  UUID,
    p_kind                TEXT,
    p_from_wallet         UUID,
    p_to_wallet           UUID,
    p_from_amount         NUMERIC,
    p_from_currency       TEXT,
    p_to_amount           NUMERIC,
    p_to_currency         TEXT,
    p_rate                NUMERIC,
    p_created_by          UUID,
    p_allow_blocked_debit BOOLEAN,
    p_accounts            UUID[],
    p_currencies          TEXT[],
    p_amounts             NUMERIC[],
    p_net_accounts        UUID[],
    p_net_changes         NUMERIC[],
    OUT refusal           TEXT,
    OUT refused_wallet    UUID,
    OUT posted_at         TIMESTAMPTZ,
    OUT wallet_ids        UUID[],
    OUT wallet_balances   NUMERIC[]
) AS $$
DECLARE
    v_balance     NUMERIC;
    v_status      TEXT;
    v_change      NUMERIC;
    v_blocked     UUID[] := ARRAY[]::UUID[];
    v_outstanding NUMERIC;
    v_fees        UUID;
    v_fee         RECORD;
    v_tx          UUID;
BEGIN
    wallet_ids := ARRAY[]::UUID[];
    wallet_balances := ARRAY[]::NUMERIC[];
    FOR i IN 1 .. coalesce(array_length(p_net_accounts, 1), 0) LOOP
        SELECT a.balance, w.status INTO v_balance, v_status
        FROM ledger_accounts a JOIN wallets w ON w.id = a.id
        WHERE a.id = p_net_accounts[i]
        FOR UPDATE;
        CONTINUE WHEN NOT FOUND;
        v_change := p_net_changes[i];
        IF v_change < 0 THEN
            IF v_status = 'blocked' AND NOT p_allow_blocked_debit THEN
                refusal := 'wallet_blocked';
                refused_wallet := p_net_accounts[i];
                RETURN;
            END IF;
            IF v_balance + v_change < 0 THEN
                refusal := 'insufficient_funds';
                refused_wallet := p_net_accounts[i];
                RETURN;
            END IF;
        ELSIF v_change > 0 AND v_status = 'blocked' THEN
            v_blocked := v_blocked || p_net_accounts[i];
        END IF;
        wallet_ids := wallet_ids || p_net_accounts[i];
        wallet_balances := wallet_balances || (v_balance + v_change);
    END LOOP;

    INSERT INTO ledger_transactions (id, kind, from_wallet, to_wallet, from_amount,
        from_currency, to_amount, to_currency, rate, created_by)
    VALUES (p_id, p_kind, p_from_wallet, p_to_wallet, p_from_amount,
        p_from_currency, p_to_amount, p_to_currency, p_rate, p_created_by)
    RETURNING created_at INTO posted_at;

    INSERT INTO ledger_entries (transaction_id, account_id, currency, amount)
    SELECT p_id, t.account, t.currency, t.amount
    FROM unnest(p_accounts, p_currencies, p_amounts) AS t(account, currency, amount);

    -- Credited blocked wallets (locked above): settle their outstanding
    -- fees if the new balance covers them all.
    FOR i IN 1 .. coalesce(array_length(v_blocked, 1), 0) LOOP
        SELECT sum(amount) INTO v_outstanding FROM wallet_fees
        WHERE wallet_id = v_blocked[i] AND status = 'outstanding';
        SELECT balance INTO v_balance FROM ledger_accounts WHERE id = v_blocked[i];
        IF v_outstanding IS NULL THEN
            -- Blocked for another reason than fees: not ours to lift.
            CONTINUE;
        END IF;
        CONTINUE WHEN v_balance < v_outstanding;
        SELECT f.id INTO v_fees
        FROM wallets w JOIN ledger_accounts f ON f.kind = 'fees' AND f.currency = w.currency
        WHERE w.id = v_blocked[i];
        FOR v_fee IN SELECT period, amount, currency, fee_amount, fee_currency, rate
                     FROM wallet_fees
                     WHERE wallet_id = v_blocked[i] AND status = 'outstanding'
                     ORDER BY period LOOP
            v_tx := gen_random_uuid();
            INSERT INTO ledger_transactions (id, kind, from_wallet, from_amount,
                from_currency, to_amount, to_currency, rate, created_by)
            VALUES (v_tx, 'fee', v_blocked[i], v_fee.amount, v_fee.currency,
                v_fee.fee_amount, v_fee.fee_currency,
                CASE WHEN v_fee.rate > 0 THEN round(1 / v_fee.rate, 18) END, NULL);
            INSERT INTO ledger_entries (transaction_id, account_id, currency, amount)
            VALUES (v_tx, v_blocked[i], v_fee.currency, -v_fee.amount),
                   (v_tx, v_fees, v_fee.currency, v_fee.amount);
            UPDATE wallet_fees SET status = 'charged', transaction_id = v_tx,
                charged_at = clock_timestamp()
            WHERE wallet_id = v_blocked[i] AND period = v_fee.period;
        END LOOP;
        UPDATE wallets SET status = 'active' WHERE id = v_blocked[i];
        FOR j IN 1 .. array_length(wallet_ids, 1) LOOP
            IF wallet_ids[j] = v_blocked[i] THEN
                wallet_balances[j] := v_balance - v_outstanding;
            END IF;
        END LOOP;
    END LOOP;
END;
$$ LANGUAGE plpgsql;

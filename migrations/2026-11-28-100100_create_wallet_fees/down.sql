-- ledger_post as it was before fees (see 2026-11-23-100800_create_ledger_post).
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
    -- Each account once, in ascending order, with its net change.
    p_net_accounts        UUID[],
    p_net_changes         NUMERIC[],
    OUT refusal           TEXT,
    OUT refused_wallet    UUID,
    OUT posted_at         TIMESTAMPTZ,
    OUT wallet_ids        UUID[],
    OUT wallet_balances   NUMERIC[]
) AS $$
DECLARE
    v_balance NUMERIC;
    v_status  TEXT;
    v_change  NUMERIC;
BEGIN
    wallet_ids := ARRAY[]::UUID[];
    wallet_balances := ARRAY[]::NUMERIC[];
    -- One primary-key lookup per account, in ascending id order: a plan
    -- that cannot turn into a scan, and the lock order that rules out
    -- deadlocks. System accounts have no wallet row: not locked.
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
END;
$$ LANGUAGE plpgsql;

DROP TABLE wallet_fees;
DROP TRIGGER wallets_schedule_fee ON wallets;
DROP FUNCTION wallets_schedule_fee();
DROP TABLE wallet_fee_schedule;
DROP TRIGGER ledger_entries_apply ON ledger_entries;
DROP FUNCTION ledger_apply_entries();
CREATE FUNCTION ledger_apply_entry() RETURNS trigger AS $$
BEGIN
    UPDATE ledger_accounts SET balance = balance + NEW.amount
    WHERE id = NEW.account_id AND kind = 'wallet';
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER ledger_entries_apply AFTER INSERT ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_apply_entry();
ALTER TABLE ledger_entries ADD CONSTRAINT ledger_entries_transaction_id_fkey
    FOREIGN KEY (transaction_id) REFERENCES ledger_transactions (id);

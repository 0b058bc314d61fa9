-- Security hardening (issue 17).

-- The resend/reset cool-down, keyed by the address asked for (a SHA-256 of
-- it, lowercased) whether or not an account has it: a second request
-- within the cool-down answers 429 for every address alike, so the answer
-- tells nothing about which addresses have accounts, and no request is
-- silently dropped.
CREATE TABLE code_cooldowns (
    address_hash TEXT NOT NULL,
    purpose      TEXT NOT NULL CHECK (purpose IN ('verify_email', 'password_reset')),
    last_sent_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (address_hash, purpose)
);
CREATE INDEX code_cooldowns_last_sent_idx ON code_cooldowns (last_sent_at);

-- Session revocation: every API process reads the sessions revoked since
-- its last look (a few times a second) and refuses their access tokens.
CREATE INDEX refresh_tokens_revoked_idx ON refresh_tokens (revoked_at)
    WHERE revoked_at IS NOT NULL;
-- The purge of expired refresh tokens.
CREATE INDEX refresh_tokens_expires_idx ON refresh_tokens (expires_at);
-- The purge of spent and expired codes.
CREATE INDEX one_time_codes_expires_idx ON one_time_codes (expires_at);

-- ledger_post as in 2026-11-28-100100_create_wallet_fees, plus the
-- per-wallet balance cap: a credit that would take a wallet past 10^15
-- units is refused (`limit_exceeded`) and writes nothing. Without it an
-- attacker could push a victim's balance to the column's limit
-- (NUMERIC(38, 18): below 10^20), after which every credit to it failed
-- with a numeric overflow. Bet payouts are exempt: the house owes them
-- whatever the balance, and stake limits keep them far below the column's
-- limit. The cap is also shared::money::WALLET_BALANCE_CAP.
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
        ELSIF v_change > 0 THEN
            IF p_kind <> 'bet_payout' AND v_balance + v_change > 1000000000000000 THEN
                refusal := 'limit_exceeded';
                refused_wallet := p_net_accounts[i];
                RETURN;
            END IF;
            IF v_status = 'blocked' THEN
                v_blocked := v_blocked || p_net_accounts[i];
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

DROP INDEX IF EXISTS one_time_codes_expires_idx;
DROP INDEX IF EXISTS refresh_tokens_expires_idx;
DROP INDEX IF EXISTS refresh_tokens_revoked_idx;
DROP TABLE IF EXISTS code_cooldowns;
-- ledger_post keeps the balance cap: the previous body is in
-- 2026-11-28-100100_create_wallet_fees/up.sql.

-- Currencies are data; every rate is a price in USD.
CREATE TABLE currencies (
    code       TEXT PRIMARY KEY CHECK (code ~ '^[A-Z]{3,5}$'),
    name       TEXT NOT NULL,
    kind       TEXT NOT NULL CHECK (kind IN ('fiat', 'crypto')),
    decimals   SMALLINT NOT NULL CHECK (decimals BETWEEN 0 AND 18),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
INSERT INTO currencies (code, name, kind, decimals) VALUES
    ('USD', 'US Dollar', 'fiat', 2),
    ('EUR', 'Euro', 'fiat', 2),
    ('KZT', 'Kazakhstani Tenge', 'fiat', 2),
    ('BTC', 'Bitcoin', 'crypto', 8),
    ('ETH', 'Ether', 'crypto', 8),
    ('SOL', 'Solana', 'crypto', 8);

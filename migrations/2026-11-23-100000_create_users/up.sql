CREATE TABLE users (
    id                UUID PRIMARY KEY,
    -- Stored lowercased; the unique index on lower() also guards direct SQL.
    username          TEXT NOT NULL CHECK (username ~ '^[a-z0-9_]{3,32}$'),
    email             TEXT NOT NULL CHECK (length(email) BETWEEN 3 AND 254),
    password_hash     TEXT NOT NULL,
    email_verified_at TIMESTAMPTZ,
    first_name        TEXT,
    last_name         TEXT,
    role              TEXT NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_username_key ON users (lower(username));
CREATE UNIQUE INDEX users_email_key ON users (lower(email));
SELECT diesel_manage_updated_at('users');

-- One-time codes sent by email: address verification and password reset.
-- Only a hash of the code is kept; a code is spent by a successful check, by
-- too many wrong tries, by expiry, or by a newer code of the same purpose.
CREATE TABLE one_time_codes (
    id          UUID PRIMARY KEY,
    user_id     UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose     TEXT NOT NULL CHECK (purpose IN ('verify_email', 'password_reset')),
    -- The address the code was sent to: changing the email voids it.
    email       TEXT NOT NULL,
    code_hash   TEXT NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    expires_at  TIMESTAMPTZ NOT NULL,
    consumed_at TIMESTAMPTZ,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX one_time_codes_live_idx
    ON one_time_codes (user_id, purpose, created_at DESC)
    WHERE consumed_at IS NULL;

-- Refresh tokens: opaque random values, stored only as SHA-256 hashes.
-- Every login starts a family; each refresh rotates the token within it.
-- Presenting a token that was already rotated means it was stolen (or
-- replayed): the whole family is revoked.
CREATE TABLE refresh_tokens (
    id         UUID PRIMARY KEY,
    user_id    UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    family_id  UUID NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at TIMESTAMPTZ NOT NULL,
    rotated_at TIMESTAMPTZ,
    revoked_at TIMESTAMPTZ
);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_live_idx ON refresh_tokens (user_id)
    WHERE rotated_at IS NULL AND revoked_at IS NULL;

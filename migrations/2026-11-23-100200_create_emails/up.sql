-- One row per email event. The send_email job claims the row before talking
-- SMTP, so an email is sent at most once however often the job is delivered.
CREATE TABLE emails (
    id          UUID PRIMARY KEY,
    user_id     UUID REFERENCES users (id) ON DELETE SET NULL,
    to_address  TEXT NOT NULL,
    template    TEXT NOT NULL,
    -- Template variables; cleared once sent because they can hold codes.
    context     JSONB NOT NULL DEFAULT '{}'::jsonb,
    status      TEXT NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'sending', 'sent', 'failed')),
    attempts    INTEGER NOT NULL DEFAULT 0,
    last_error  TEXT,
    message_id  TEXT,
    claimed_at  TIMESTAMPTZ,
    sent_at     TIMESTAMPTZ,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX emails_user_idx ON emails (user_id, created_at DESC);
SELECT diesel_manage_updated_at('emails');

-- A job may carry a uniqueness key (`JobSpec::unique_key`): while a job of
-- the same name and key waits in its queue, the relay drops another
-- instead of pushing it (see the queue crate's `waiting` module). Nullable
-- and without a default, so adding it rewrites nothing, however many rows
-- wait; rows written by an earlier release have none and are pushed as
-- before.
ALTER TABLE outbox ADD COLUMN unique_key text;

-- The trace context of what queued the job (W3C `traceparent`) and the API
-- request behind it, so the relay and the job continue that trace and the
-- job's logs name the request (`shared::trace`). Same reasoning: nullable,
-- no default, nothing rewritten.
ALTER TABLE outbox ADD COLUMN traceparent text, ADD COLUMN request_id text;

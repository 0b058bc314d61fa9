-- The email reconciler (shared::email::reconcile) queues a new job for an
-- email still pending long after it was queued: its job was lost, say with
-- Redis's data. `requeued_at` spaces those attempts out; the partial index
-- keeps the reconciler's scan to the few unsent rows.
ALTER TABLE emails ADD COLUMN requeued_at TIMESTAMPTZ;
CREATE INDEX emails_pending_idx ON emails (created_at) WHERE status = 'pending';
-- The worker process that claimed the row for sending: an operator (or a
-- test) can tell which process an interrupted send belonged to.
ALTER TABLE emails ADD COLUMN claimed_by TEXT;

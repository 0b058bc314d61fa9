ALTER TABLE emails DROP COLUMN claimed_by;
DROP INDEX emails_pending_idx;
ALTER TABLE emails DROP COLUMN requeued_at;

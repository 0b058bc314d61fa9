ALTER TABLE outbox DROP COLUMN unique_key;

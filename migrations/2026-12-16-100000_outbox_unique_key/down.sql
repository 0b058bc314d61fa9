ALTER TABLE outbox DROP COLUMN unique_key, DROP COLUMN traceparent, DROP COLUMN request_id;

-- The email reconciler also gives up claims that never finished (a delivery
-- whose process died mid-send): it scans the few `sending` rows by claim
-- time. Before, a duplicate job of the email found them, retrying until
-- the claim went stale and spending its attempts on the wait.
CREATE INDEX emails_sending_idx ON emails (claimed_at) WHERE status = 'sending';

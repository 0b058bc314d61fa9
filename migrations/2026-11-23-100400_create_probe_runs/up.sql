-- Runs of diagnostic probe jobs (see shared::jobs::Probe): which worker ran
-- which attempt, and whether it finished. Used by operators and tests to see
-- the job pipeline from the outside.
CREATE TABLE probe_runs (
    id          BIGSERIAL PRIMARY KEY,
    tag         TEXT NOT NULL,
    job_id      UUID NOT NULL,
    attempt     INTEGER NOT NULL,
    worker      TEXT NOT NULL,
    started_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at TIMESTAMPTZ,
    failed      BOOLEAN NOT NULL DEFAULT false
);
CREATE INDEX probe_runs_tag_idx ON probe_runs (tag);

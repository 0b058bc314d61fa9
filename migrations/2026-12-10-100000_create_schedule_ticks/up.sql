-- The cluster-wide schedules' election. Every worker process carries every
-- schedule and, on each tick, tries to insert the tick's row here; the one
-- insert that lands (ON CONFLICT DO NOTHING) wins the tick, and only the
-- winner queues (through the outbox, in the same transaction) or runs the
-- tick's work. The election used to be a SET NX in Redis, so a Redis outage
-- stopped every schedule: no price refresh, and every bet falling due in the
-- gap was voided for want of a price.
--
-- The hourly purge deletes rows older than a day: a claim must outlive any
-- process that could still try the same tick (a paused one skips ticks more
-- than 2 s late), and a day of the every-second refresh is under 100,000
-- small rows.
CREATE TABLE schedule_ticks (
    schedule    TEXT NOT NULL,
    tick        TIMESTAMPTZ NOT NULL,
    -- The worker process that won the tick, for operators.
    claimed_by  TEXT NOT NULL,
    claimed_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (schedule, tick)
);

//! The cluster-wide schedules' election, in PostgreSQL.
//!
//! Every worker process carries the schedules, and on each tick each one
//! calls [`claim_tick`] (or [`claim_tick_and_queue`]): an `INSERT … ON
//! CONFLICT DO NOTHING` of the tick's `schedule_ticks` row, which exactly one
//! of them lands. So a tick runs once however many processes carry the
//! schedule, and ticks keep coming while any process lives (there is no
//! scheduler process to lose).
//!
//! The election used to be a `SET NX` in Redis. That put Redis on the money
//! path: with Redis gone no tick was won, no price was refreshed, and every
//! bet falling due in the gap was voided for want of a price. PostgreSQL is
//! the system of record: a tick claimed here depends on nothing a refresh or
//! a settlement does not depend on already.
//!
//! Claims are kept a day, then deleted by the hourly purge
//! (`crate::hygiene`). A claim must outlive every process that could still
//! try the same tick, or that tick would be won twice; a process skips the
//! ticks it notices more than a couple of seconds late, so a day is ample
//! (the Redis claim keys lived as long).

use chrono::{DateTime, Utc};
use diesel::{sql_query, sql_types};
use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl};

use crate::{
    jobs::{JobSpec, Queue},
    outbox,
};

/// What a won tick queues through the outbox: the job's queue, name,
/// version and payload, built from the tick's time.
#[derive(Debug, Clone, PartialEq)]
pub struct TickJob {
    pub queue: Queue,
    pub job: &'static str,
    pub version: u16,
    pub args: serde_json::Value,
}

impl TickJob {
    /// The tick job for payload `job`. Tick payloads are plain structs of
    /// timestamps and counters, which always serialise.
    pub fn of<J: JobSpec>(job: &J) -> Self {
        Self {
            queue: J::QUEUE,
            job: J::NAME,
            version: J::VERSION,
            args: serde_json::to_value(job).unwrap_or_default(),
        }
    }
}

/// Claims `tick` of `schedule` for `claimant`. Returns true when this call
/// won the tick (its row was inserted), false when another process had
/// claimed it already. Exactly one caller per `(schedule, tick)` gets true
/// while the claim is kept (a day); the primary key decides, so concurrent
/// callers need no lock of their own.
pub async fn claim_tick(
    conn: &mut AsyncPgConnection,
    schedule: &str,
    tick: DateTime<Utc>,
    claimant: &str,
) -> diesel::QueryResult<bool> {
    let inserted = sql_query(
        "INSERT INTO schedule_ticks (schedule, tick, claimed_by) VALUES ($1, $2, $3)
         ON CONFLICT DO NOTHING",
    )
    .bind::<sql_types::Text, _>(schedule)
    .bind::<sql_types::Timestamptz, _>(tick)
    .bind::<sql_types::Text, _>(claimant)
    .execute(conn)
    .await?;
    Ok(inserted == 1)
}

/// [`claim_tick`], and when it is won, queues `job` through the outbox in
/// the same transaction: no process can win a tick and die before its job
/// exists, and the job reaches Redis whenever a relay can reach it (a Redis
/// outage delays it and loses nothing). Returns whether this call won.
pub async fn claim_tick_and_queue(
    conn: &mut AsyncPgConnection,
    schedule: &str,
    tick: DateTime<Utc>,
    claimant: &str,
    job: &TickJob,
) -> diesel::QueryResult<bool> {
    conn.transaction(async |conn| {
        if !claim_tick(conn, schedule, tick, claimant).await? {
            return Ok(false);
        }
        outbox::push_parts(conn, job.queue, job.job, job.version, &job.args).await?;
        Ok(true)
    })
    .await
}

//! The transactional outbox: how a database change asks for a job.
//!
//! [`push`] inserts a row in the caller's transaction. If the transaction
//! rolls back, the row never existed and no job runs; if it commits, the
//! worker relay delivers the job to Redis at least once (see the worker's
//! `relay` module). A `pg_notify` in the same transaction wakes relays at
//! commit time, so dispatch does not wait for the next poll.
//!
//! Not every push notifies: PostgreSQL serialises the commits of all
//! transactions that sent a notification (a database-wide lock held
//! through the commit's WAL flush), which caps a hot path at one commit per
//! flush. Delayed rows never notify (the relays' timers find them), and
//! hot background paths use [`push_quiet`]: their jobs go out on the
//! relays' next poll (`OUTBOX_POLL_MS`).

use chrono::{DateTime, Utc};
use diesel::{prelude::*, sql_types};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::{jobs::JobSpec, schema::outbox};

/// The channel relays LISTEN on; the payload is the queue name.
pub const NOTIFY_CHANNEL: &str = "bourse_outbox";

/// Records `job` to run at `run_at` (now when `None`). Call it inside the
/// transaction that makes the change the job follows. Returns the job id
/// (the outbox row id, also the job's id in Redis).
pub async fn push<J: JobSpec>(
    conn: &mut AsyncPgConnection,
    job: &J,
    run_at: Option<DateTime<Utc>>,
) -> QueryResult<Uuid> {
    push_on(conn, job, run_at).await
}

/// [`push`] of a job due now, without waking the relays: for hot
/// background paths where a poll interval's delay does not matter.
pub async fn push_quiet<J: JobSpec>(conn: &AsyncPgConnection, job: &J) -> QueryResult<Uuid> {
    insert(conn, job, None, false).await
}

/// [`push`] on a shared connection, so it can be pipelined with other
/// statements of the same transaction (`futures::try_join!`).
pub async fn push_on<J: JobSpec>(
    conn: &AsyncPgConnection,
    job: &J,
    run_at: Option<DateTime<Utc>>,
) -> QueryResult<Uuid> {
    insert(conn, job, run_at, run_at.is_none()).await
}

/// Many jobs due now in one statement, without waking the relays (see
/// [`push_quiet`]). Returns their ids in order.
pub async fn push_many_quiet<J: JobSpec>(
    conn: &AsyncPgConnection,
    jobs: &[J],
) -> QueryResult<Vec<Uuid>> {
    let ids: Vec<Uuid> = jobs.iter().map(|_| Uuid::now_v7()).collect();
    let payloads = jobs
        .iter()
        .map(serde_json::to_value)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| diesel::result::Error::SerializationError(e.into()))?;
    diesel::sql_query(
        "INSERT INTO outbox (id, queue, job, version, payload, run_at)
         SELECT id, $3, $4, $5, payload, now()
         FROM unnest($1::uuid[], $2::jsonb[]) AS j(id, payload)",
    )
    .bind::<sql_types::Array<sql_types::Uuid>, _>(&ids)
    .bind::<sql_types::Array<sql_types::Jsonb>, _>(&payloads)
    .bind::<sql_types::Text, _>(J::QUEUE.as_str())
    .bind::<sql_types::Text, _>(J::NAME)
    .bind::<sql_types::SmallInt, _>(i16::try_from(J::VERSION).unwrap_or(i16::MAX))
    .execute(&mut &*conn)
    .await?;
    Ok(ids)
}

async fn insert<J: JobSpec>(
    conn: &AsyncPgConnection,
    job: &J,
    run_at: Option<DateTime<Utc>>,
    wake: bool,
) -> QueryResult<Uuid> {
    let payload = serde_json::to_value(job)
        .map_err(|e| diesel::result::Error::SerializationError(e.into()))?;
    // v7: time-ordered ids keep the primary key index append-only.
    let id = Uuid::now_v7();
    // The row and the wake-up in one round trip.
    diesel::sql_query(
        "WITH row AS (
             INSERT INTO outbox (id, queue, job, version, payload, run_at)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING queue)
         SELECT pg_notify($7, queue) FROM row WHERE $8",
    )
    .bind::<sql_types::Uuid, _>(id)
    .bind::<sql_types::Text, _>(J::QUEUE.as_str())
    .bind::<sql_types::Text, _>(J::NAME)
    .bind::<sql_types::SmallInt, _>(i16::try_from(J::VERSION).unwrap_or(i16::MAX))
    .bind::<sql_types::Jsonb, _>(payload)
    .bind::<sql_types::Timestamptz, _>(run_at.unwrap_or_else(Utc::now))
    .bind::<sql_types::Text, _>(NOTIFY_CHANNEL)
    .bind::<sql_types::Bool, _>(wake)
    .execute(&mut &*conn)
    .await?;
    Ok(id)
}

/// Undispatched rows, for operators and tests.
pub async fn pending_count(conn: &mut AsyncPgConnection) -> QueryResult<i64> {
    outbox::table
        .filter(outbox::dispatched_at.is_null())
        .count()
        .get_result(conn)
        .await
}

/// Jobs committed but not yet relayed to Redis, of one queue.
#[derive(Debug, Clone, QueryableByName)]
pub struct Backlog {
    #[diesel(sql_type = sql_types::Text)]
    pub queue: String,
    /// Due now: the relay is behind or Redis is unreachable.
    #[diesel(sql_type = sql_types::BigInt)]
    pub due: i64,
    /// Delayed jobs (bet settlements) waiting for their time.
    #[diesel(sql_type = sql_types::BigInt)]
    pub scheduled: i64,
}

/// The outbox backlog per queue (queues with none are left out). The
/// partial index on undispatched rows keeps this to the backlog itself.
pub async fn backlog(conn: &mut AsyncPgConnection) -> QueryResult<Vec<Backlog>> {
    diesel::sql_query(
        "SELECT queue,
                count(*) FILTER (WHERE run_at <= now()) AS due,
                count(*) FILTER (WHERE run_at > now()) AS scheduled
           FROM outbox WHERE dispatched_at IS NULL GROUP BY queue",
    )
    .load(conn)
    .await
}

//! The transactional outbox: how a database change asks for a job.
//!
//! [`push`] inserts a row in the caller's transaction. If the transaction
//! rolls back, the row never existed and no job runs; if it commits, the
//! worker relay delivers the job to Redis at least once (see the worker's
//! `relay` module). A `pg_notify` in the same transaction wakes relays at
//! commit time, so dispatch does not wait for the next poll.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::{jobs::JobSpec, schema::outbox};

/// The channel relays LISTEN on; the payload is the queue name.
pub const NOTIFY_CHANNEL: &str = "bourse_outbox";

#[derive(Insertable)]
#[diesel(table_name = outbox)]
struct NewOutboxRow<'a> {
    id: Uuid,
    queue: &'a str,
    job: &'a str,
    version: i16,
    payload: serde_json::Value,
    run_at: DateTime<Utc>,
}

/// Records `job` to run at `run_at` (now when `None`). Call it inside the
/// transaction that makes the change the job follows. Returns the job id
/// (the outbox row id, also the job's id in Redis).
pub async fn push<J: JobSpec>(
    conn: &mut AsyncPgConnection,
    job: &J,
    run_at: Option<DateTime<Utc>>,
) -> QueryResult<Uuid> {
    let payload = serde_json::to_value(job)
        .map_err(|e| diesel::result::Error::SerializationError(e.into()))?;
    // v7: time-ordered ids keep the primary key index append-only.
    let id = Uuid::now_v7();
    diesel::insert_into(outbox::table)
        .values(NewOutboxRow {
            id,
            queue: J::QUEUE.as_str(),
            job: J::NAME,
            version: i16::try_from(J::VERSION).unwrap_or(i16::MAX),
            payload,
            run_at: run_at.unwrap_or_else(Utc::now),
        })
        .execute(conn)
        .await?;
    diesel::sql_query("SELECT pg_notify($1, $2)")
        .bind::<diesel::sql_types::Text, _>(NOTIFY_CHANNEL)
        .bind::<diesel::sql_types::Text, _>(J::QUEUE.as_str())
        .execute(conn)
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

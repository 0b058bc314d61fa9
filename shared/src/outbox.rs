//! The transactional outbox: how a database change asks for a job.
//!
//! [`push`] inserts a row in the caller's transaction. If the transaction
//! rolls back, the row never existed and no job runs; if it commits, the
//! worker relay delivers the job to Redis at least once (see the worker's
//! `relay` module).
//!
//! **Waking the relays.** A push of a job due now is noted in the
//! surrounding [`noting_pushes`] scope (one per API request and per job
//! attempt); after the work succeeded, and so after its commit, the API or
//! worker publishes the queue's name on the relays' wake-up channel in
//! Redis, so dispatch does not wait for the next poll. Not `pg_notify`:
//! PostgreSQL serialises the commits of all transactions that notified (a
//! database-wide lock held through each commit's WAL flush), which capped
//! order placement at one commit per flush. Delayed rows wake no one (the
//! relays' timers find them), and hot background paths use [`push_quiet`]:
//! their jobs go out on the relays' next poll (`OUTBOX_POLL_MS`), which is
//! also the fallback for a lost wake-up.
//!
//! Every statement on the `outbox` table is in this module: the writers'
//! above, the relay's below ([`claim`], [`remove_dispatched`], ...); the
//! relay itself keeps only its loop.

use std::{cell::Cell, time::Duration};

use chrono::{DateTime, Utc};
use diesel::{prelude::*, sql_types};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::{
    jobs::{JobSpec, Queue, SendEmail},
    schema::outbox,
};

tokio::task_local! {
    /// The first queue a job due now was pushed on in this scope.
    static PUSHED: Cell<Option<Queue>>;
}

/// Runs `work` and says on which queue, if any, it pushed a job due now
/// (the first such queue): the caller wakes the relays once `work` has
/// succeeded. Pushes outside any scope (the CLI, tests) wake no one; the
/// relays find those rows on their next poll.
pub async fn noting_pushes<F: Future>(work: F) -> (F::Output, Option<Queue>) {
    PUSHED
        .scope(Cell::new(None), async move {
            let output = work.await;
            (output, PUSHED.with(Cell::get))
        })
        .await
}

fn note_push(queue: Queue) {
    let _ = PUSHED.try_with(|pushed| {
        if pushed.get().is_none() {
            pushed.set(Some(queue));
        }
    });
}

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
    insert_many(conn, jobs, false).await
}

/// Many jobs due now in one statement, waking the relays after the
/// surrounding work succeeds (see [`noting_pushes`]). Returns their ids in
/// order.
pub async fn push_many<J: JobSpec>(conn: &AsyncPgConnection, jobs: &[J]) -> QueryResult<Vec<Uuid>> {
    insert_many(conn, jobs, true).await
}

async fn insert_many<J: JobSpec>(
    conn: &AsyncPgConnection,
    jobs: &[J],
    wake: bool,
) -> QueryResult<Vec<Uuid>> {
    let ids: Vec<Uuid> = jobs.iter().map(|_| Uuid::now_v7()).collect();
    let payloads = jobs
        .iter()
        .map(serde_json::to_value)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| diesel::result::Error::SerializationError(e.into()))?;
    let unique_keys: Vec<Option<String>> = jobs.iter().map(JobSpec::unique_key).collect();
    let origin = crate::trace::current();
    diesel::sql_query(
        "INSERT INTO outbox (id, queue, job, version, payload, run_at, unique_key,
                             traceparent, request_id)
         SELECT id, $3, $4, $5, payload, now(), unique_key, $7, $8
         FROM unnest($1::uuid[], $2::jsonb[], $6::text[]) AS j(id, payload, unique_key)",
    )
    .bind::<sql_types::Array<sql_types::Uuid>, _>(&ids)
    .bind::<sql_types::Array<sql_types::Jsonb>, _>(&payloads)
    .bind::<sql_types::Text, _>(J::QUEUE.as_str())
    .bind::<sql_types::Text, _>(J::NAME)
    .bind::<sql_types::SmallInt, _>(i16::try_from(J::VERSION).unwrap_or(i16::MAX))
    .bind::<sql_types::Array<sql_types::Nullable<sql_types::Text>>, _>(&unique_keys)
    .bind::<sql_types::Nullable<sql_types::Text>, _>(traceparent(origin.as_ref()))
    .bind::<sql_types::Nullable<sql_types::Text>, _>(request_id(origin.as_ref()))
    .execute(&mut &*conn)
    .await?;
    if wake && !ids.is_empty() {
        note_push(J::QUEUE);
    }
    Ok(ids)
}

/// Records a job given by its parts, due now, waking the relays: for
/// callers that build jobs of several types at run time (the schedules'
/// ticks, see [`crate::schedule`]). Call it inside the transaction the job
/// follows. Returns the job id.
pub async fn push_parts(
    conn: &AsyncPgConnection,
    queue: Queue,
    job: &str,
    version: u16,
    payload: &serde_json::Value,
) -> QueryResult<Uuid> {
    let parts = Parts {
        queue,
        job,
        version,
        payload,
        unique_key: None,
    };
    insert_parts(conn, &parts, None, true).await
}

/// A job as the outbox stores it.
struct Parts<'a> {
    queue: Queue,
    job: &'a str,
    version: u16,
    payload: &'a serde_json::Value,
    unique_key: Option<String>,
}

async fn insert<J: JobSpec>(
    conn: &AsyncPgConnection,
    job: &J,
    run_at: Option<DateTime<Utc>>,
    wake: bool,
) -> QueryResult<Uuid> {
    let payload = serde_json::to_value(job)
        .map_err(|e| diesel::result::Error::SerializationError(e.into()))?;
    let parts = Parts {
        queue: J::QUEUE,
        job: J::NAME,
        version: J::VERSION,
        payload: &payload,
        unique_key: job.unique_key(),
    };
    insert_parts(conn, &parts, run_at, wake).await
}

async fn insert_parts(
    conn: &AsyncPgConnection,
    parts: &Parts<'_>,
    run_at: Option<DateTime<Utc>>,
    wake: bool,
) -> QueryResult<Uuid> {
    // v7: time-ordered ids keep the primary key index append-only.
    let id = Uuid::now_v7();
    let origin = crate::trace::current();
    diesel::sql_query(
        "INSERT INTO outbox (id, queue, job, version, payload, run_at, unique_key,
                             traceparent, request_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind::<sql_types::Uuid, _>(id)
    .bind::<sql_types::Text, _>(parts.queue.as_str())
    .bind::<sql_types::Text, _>(parts.job)
    .bind::<sql_types::SmallInt, _>(i16::try_from(parts.version).unwrap_or(i16::MAX))
    .bind::<sql_types::Jsonb, _>(parts.payload)
    .bind::<sql_types::Timestamptz, _>(run_at.unwrap_or_else(Utc::now))
    .bind::<sql_types::Nullable<sql_types::Text>, _>(&parts.unique_key)
    .bind::<sql_types::Nullable<sql_types::Text>, _>(traceparent(origin.as_ref()))
    .bind::<sql_types::Nullable<sql_types::Text>, _>(request_id(origin.as_ref()))
    .execute(&mut &*conn)
    .await?;
    if wake {
        note_push(parts.queue);
    }
    Ok(id)
}

/// The trace context a row carries: the current request's or job's.
fn traceparent(origin: Option<&crate::trace::Origin>) -> Option<String> {
    origin.map(|o| o.traceparent.to_string())
}

fn request_id(origin: Option<&crate::trace::Origin>) -> Option<&str> {
    origin.and_then(|o| o.request_id.as_deref())
}

/// Undispatched rows, for operators and tests.
pub async fn pending_count(conn: &mut AsyncPgConnection) -> QueryResult<i64> {
    outbox::table
        .filter(outbox::dispatched_at.is_null())
        .count()
        .get_result(conn)
        .await
}

/// Rows of one queue committed but not yet relayed to Redis.
#[derive(Debug, Clone, QueryableByName)]
pub struct Backlog {
    #[diesel(sql_type = sql_types::Text)]
    pub queue: String,
    #[diesel(sql_type = sql_types::BigInt)]
    pub rows: i64,
}

/// Counting stops here: past it the relays are far behind anyway, and
/// the count stays a bounded range scan.
pub const DUE_BACKLOG_CAP: i64 = 100_000;

/// Rows due now and not relayed, per queue (queues with none left out), up
/// to [`DUE_BACKLOG_CAP`] in all: the relays are behind or Redis is
/// unreachable. A range of the partial index on undispatched rows, up to
/// now: it never reads the scheduled rows beyond (a million waiting bet
/// settlements), so it is cheap to sample every few seconds.
pub async fn due_backlog(conn: &mut AsyncPgConnection) -> QueryResult<Vec<Backlog>> {
    diesel::sql_query(
        "SELECT queue, count(*) AS rows FROM (
             SELECT queue FROM outbox
             WHERE dispatched_at IS NULL AND run_at <= now()
             ORDER BY run_at LIMIT $1) AS due
         GROUP BY queue",
    )
    .bind::<sql_types::BigInt, _>(DUE_BACKLOG_CAP)
    .load(conn)
    .await
}

/// Delayed rows waiting for their time (bet settlements), per queue: a
/// count over all of them, so sampled rarely
/// (`OUTBOX_SCHEDULED_SAMPLE_SECS`).
pub async fn scheduled_backlog(conn: &mut AsyncPgConnection) -> QueryResult<Vec<Backlog>> {
    diesel::sql_query(
        "SELECT queue, count(*) AS rows FROM outbox
         WHERE dispatched_at IS NULL AND run_at > now() GROUP BY queue",
    )
    .load(conn)
    .await
}

/// A delayed row waiting for its time, as operators see it.
#[derive(Debug, Clone, QueryableByName)]
pub struct Delayed {
    #[diesel(sql_type = sql_types::Uuid)]
    pub id: Uuid,
    #[diesel(sql_type = sql_types::Text)]
    pub queue: String,
    #[diesel(sql_type = sql_types::Text)]
    pub job: String,
    #[diesel(sql_type = sql_types::Jsonb)]
    pub payload: serde_json::Value,
    #[diesel(sql_type = sql_types::Timestamptz)]
    pub run_at: DateTime<Utc>,
    /// Failed relay attempts (Redis unreachable), and the last one's error.
    #[diesel(sql_type = sql_types::Integer)]
    pub relay_attempts: i32,
    #[diesel(sql_type = sql_types::Nullable<sql_types::Text>)]
    pub last_error: Option<String>,
}

/// What operators look for among delayed rows: a queue, a job name, text
/// in the last error (case-insensitive).
#[derive(Debug, Clone, Copy, Default)]
pub struct DelayedFilter<'a> {
    pub queue: Option<Queue>,
    pub job: Option<&'a str>,
    pub error: Option<&'a str>,
}

/// Up to `limit` delayed rows matching `filter`, soonest first, after
/// `after` (the last row of the previous page: its time and id). Ties in
/// time go by id in bytewise order, the order a job id has everywhere the
/// operators' pages compare ids. A range of the partial index on
/// undispatched rows from the cursor on.
pub async fn delayed_page(
    conn: &mut AsyncPgConnection,
    filter: DelayedFilter<'_>,
    after: Option<(DateTime<Utc>, &str)>,
    limit: i64,
) -> QueryResult<Vec<Delayed>> {
    let (from, after_id) = match after {
        Some((at, id)) => (Some(at), id),
        None => (None, ""),
    };
    diesel::sql_query(
        "SELECT id, queue, job, payload, run_at, relay_attempts, last_error FROM outbox
         WHERE dispatched_at IS NULL AND run_at > now()
           AND ($1::timestamptz IS NULL OR run_at > $1
                OR (run_at = $1 AND id::text COLLATE \"C\" > $2))
           AND ($3::text IS NULL OR queue = $3)
           AND ($4::text IS NULL OR job = $4)
           AND ($5::text IS NULL OR strpos(lower(last_error), lower($5)) > 0)
         ORDER BY run_at, id LIMIT $6",
    )
    .bind::<sql_types::Nullable<sql_types::Timestamptz>, _>(from)
    .bind::<sql_types::Text, _>(after_id)
    .bind::<sql_types::Nullable<sql_types::Text>, _>(filter.queue.map(Queue::as_str))
    .bind::<sql_types::Nullable<sql_types::Text>, _>(filter.job)
    .bind::<sql_types::Nullable<sql_types::Text>, _>(filter.error)
    .bind::<sql_types::BigInt, _>(limit)
    .load(conn)
    .await
}

// The relay's side (see the worker's `relay` module): claim due rows, then
// mark them dispatched, hand them back, or set them aside.

/// A row claimed for relaying.
#[derive(Debug, Clone, QueryableByName)]
pub struct Claimed {
    #[diesel(sql_type = sql_types::Uuid)]
    pub id: Uuid,
    #[diesel(sql_type = sql_types::Text)]
    pub queue: String,
    #[diesel(sql_type = sql_types::Text)]
    pub job: String,
    #[diesel(sql_type = sql_types::SmallInt)]
    pub version: i16,
    #[diesel(sql_type = sql_types::Jsonb)]
    pub payload: serde_json::Value,
    #[diesel(sql_type = sql_types::Timestamptz)]
    pub run_at: DateTime<Utc>,
    #[diesel(sql_type = sql_types::Nullable<sql_types::Text>)]
    pub unique_key: Option<String>,
    #[diesel(sql_type = sql_types::Nullable<sql_types::Text>)]
    pub traceparent: Option<String>,
    #[diesel(sql_type = sql_types::Nullable<sql_types::Text>)]
    pub request_id: Option<String>,
}

/// Claims up to `batch_size` undispatched rows due within `lookahead`,
/// oldest first, for `claim_timeout`: a short claim stamped on the rows
/// instead of a transaction held open across the Redis push. Rows claimed
/// by another relay are skipped, not waited for; an expired claim (a relay
/// that died) is taken over.
///
/// Two shapes keep it an index lookup however many scheduled rows wait
/// (`bourse-bench outbox`, a million scheduled bets):
/// - the bound is `statement_timestamp()`, not `clock_timestamp()`: a
///   volatile function cannot bound an index scan, so with fewer due rows
///   than the batch the scan in `run_at` order read every scheduled row
///   behind them (2.5 s against 1.4 ms);
/// - `id = ANY(ARRAY(…))`, not `id IN (…)`: with `LIMIT $2` unknown, the
///   generic plan (`plan_cache_mode = force_generic_plan`) joined the
///   claimed ids to a sequential scan of the whole table (240 ms against
///   2.4 ms).
///
/// The other claims of this shape (reconcilers, purge) follow both rules.
pub async fn claim(
    conn: &mut AsyncPgConnection,
    claim_timeout: Duration,
    batch_size: i64,
    lookahead: Duration,
) -> QueryResult<Vec<Claimed>> {
    diesel::sql_query(
        "UPDATE outbox SET claimed_until = now() + make_interval(secs => $1),
                           relay_attempts = relay_attempts + 1
         WHERE id = ANY(ARRAY(
             SELECT id FROM outbox
             WHERE dispatched_at IS NULL
               AND run_at <= statement_timestamp() + make_interval(secs => $3)
               AND (claimed_until IS NULL OR claimed_until < now())
             ORDER BY run_at
             LIMIT $2
             FOR UPDATE SKIP LOCKED))
         RETURNING id, queue, job, version, payload, run_at, unique_key, traceparent, request_id",
    )
    .bind::<sql_types::Double, _>(claim_timeout.as_secs_f64())
    .bind::<sql_types::BigInt, _>(batch_size)
    .bind::<sql_types::Double, _>(lookahead.as_secs_f64())
    .load(conn)
    .await
}

#[derive(QueryableByName)]
struct NextDue {
    #[diesel(sql_type = sql_types::Nullable<sql_types::Double>)]
    secs: Option<f64>,
}

/// How long until the next undispatched, unclaimed row comes within
/// `lookahead` of its due time, by PostgreSQL's clock (so the clocks of
/// worker machines do not matter); `None` when no row waits. At most a day.
pub async fn until_next_due(
    conn: &mut AsyncPgConnection,
    lookahead: Duration,
) -> QueryResult<Option<Duration>> {
    let next: NextDue = diesel::sql_query(
        "SELECT extract(epoch FROM min(run_at) - clock_timestamp())::float8 - $1 AS secs
         FROM outbox
         WHERE dispatched_at IS NULL AND (claimed_until IS NULL OR claimed_until < now())",
    )
    .bind::<sql_types::Double, _>(lookahead.as_secs_f64())
    .get_result(conn)
    .await?;
    Ok(next
        .secs
        .map(|secs| Duration::from_secs_f64(secs.clamp(0.0, 86_400.0))))
}

/// Deletes rows pushed to Redis: from here Redis holds the job. A row
/// lives from its change's commit to its push and no longer, so the table
/// stays the size of the backlog (delayed jobs included) and a row costs
/// its insert, one claim (a HOT update, see the `outbox_storage`
/// migration) and this delete, instead of a second, index-changing update
/// and a purge a day later.
pub async fn remove_dispatched(conn: &mut AsyncPgConnection, ids: &[Uuid]) -> QueryResult<()> {
    diesel::delete(outbox::table.filter(outbox::id.eq_any(ids)))
        .execute(conn)
        .await
        .map(drop)
}

/// What [`forget`] found.
#[derive(Debug, Clone, PartialEq)]
pub enum Forget {
    /// The row was waiting and is gone: the job's name, payload and
    /// uniqueness key.
    Forgotten {
        job: String,
        payload: serde_json::Value,
        unique_key: Option<String>,
    },
    /// A relay is pushing it right now: try again once the claim ends.
    BeingRelayed,
    /// No such row of that queue (relayed already, or never written).
    Absent,
}

#[derive(QueryableByName)]
struct ForgottenRow {
    #[diesel(sql_type = sql_types::Text)]
    job: String,
    #[diesel(sql_type = sql_types::Jsonb)]
    payload: serde_json::Value,
    #[diesel(sql_type = sql_types::Nullable<sql_types::Text>)]
    unique_key: Option<String>,
}

/// Deletes job `id` of `queue` if it is still waiting in the outbox and no
/// relay holds a claim on it (an operator cancelling it). A row whose
/// claim expired may also be in Redis already (its relay died after
/// pushing): the caller cancels it there too.
pub async fn forget(conn: &mut AsyncPgConnection, queue: Queue, id: Uuid) -> QueryResult<Forget> {
    let gone: Option<ForgottenRow> = diesel::sql_query(
        "DELETE FROM outbox
         WHERE id = $1 AND queue = $2 AND dispatched_at IS NULL
           AND (claimed_until IS NULL OR claimed_until < now())
         RETURNING job, payload, unique_key",
    )
    .bind::<sql_types::Uuid, _>(id)
    .bind::<sql_types::Text, _>(queue.as_str())
    .get_result(conn)
    .await
    .optional()?;
    if let Some(row) = gone {
        return Ok(Forget::Forgotten {
            job: row.job,
            payload: row.payload,
            unique_key: row.unique_key,
        });
    }
    let claimed: bool = diesel::select(diesel::dsl::exists(
        outbox::table
            .filter(outbox::id.eq(id))
            .filter(outbox::queue.eq(queue.as_str()))
            .filter(outbox::dispatched_at.is_null()),
    ))
    .get_result(conn)
    .await?;
    Ok(if claimed {
        Forget::BeingRelayed
    } else {
        Forget::Absent
    })
}

/// Settles what a job cancelled by operator `by` stood for, so nothing
/// queues it again: a `send_email`'s email is marked failed (its reconciler
/// re-queues pending ones). Other cancellable jobs need nothing: cancelled
/// clearing work is meant to come back through the clearing sweep.
pub async fn settle_cancelled(
    conn: &mut AsyncPgConnection,
    job: &str,
    args: &serde_json::Value,
    by: &str,
) -> QueryResult<()> {
    if job == SendEmail::NAME
        && let Ok(email) = serde_json::from_value::<SendEmail>(args.clone())
    {
        crate::email::cancel(conn, email.email_id, by).await?;
    }
    Ok(())
}

/// Hands claimed rows back at once (their push failed), noting why.
pub async fn release(conn: &mut AsyncPgConnection, ids: &[Uuid], error: &str) -> QueryResult<()> {
    diesel::update(outbox::table.filter(outbox::id.eq_any(ids)))
        .set((
            outbox::claimed_until.eq(None::<DateTime<Utc>>),
            outbox::last_error.eq(Some(error)),
        ))
        .execute(conn)
        .await
        .map(drop)
}

/// Keeps rows claimed until `until`, noting `reason`: rows no relay can
/// deliver now (naming a queue this build does not know) wait instead of
/// spinning.
pub async fn set_aside(
    conn: &mut AsyncPgConnection,
    ids: &[Uuid],
    until: DateTime<Utc>,
    reason: &str,
) -> QueryResult<()> {
    diesel::update(outbox::table.filter(outbox::id.eq_any(ids)))
        .set((
            outbox::claimed_until.eq(until),
            outbox::last_error.eq(Some(reason)),
        ))
        .execute(conn)
        .await
        .map(drop)
}

/// Deletes up to `limit` rows marked dispatched (`dispatched_at`), which
/// only processes of releases before delete-on-dispatch write: during a
/// rolling upgrade, and what they left behind. Skips rows locked by others
/// (short locks, bounded WAL per statement). Returns how many went.
pub async fn purge_marked_dispatched(
    conn: &mut AsyncPgConnection,
    limit: i64,
) -> QueryResult<usize> {
    diesel::sql_query(
        "DELETE FROM outbox WHERE id = ANY(ARRAY(
             SELECT id FROM outbox WHERE dispatched_at IS NOT NULL LIMIT $1
             FOR UPDATE SKIP LOCKED))",
    )
    .bind::<sql_types::BigInt, _>(limit)
    .execute(conn)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_scope_notes_the_first_waking_push_and_nothing_leaks_out_of_it() {
        let ((), pushed) = noting_pushes(async {
            note_push(Queue::OrderClearing);
            note_push(Queue::Email);
        })
        .await;
        assert_eq!(pushed, Some(Queue::OrderClearing));
        let ((), none) = noting_pushes(async {}).await;
        assert_eq!(none, None);
        // Outside a scope a push notes nothing, and does not panic.
        note_push(Queue::Email);
    }
}

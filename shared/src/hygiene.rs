//! Housekeeping: rows past their use are deleted on a schedule (the
//! `PurgeExpired` job, `PURGE_CRON`), in small batches so no statement
//! holds locks for long or runs into `statement_timeout`:
//!
//! - idempotency keys older than 24 hours (their promise has lapsed);
//! - one-time codes that are spent or expired (nothing can use them);
//! - refresh tokens past their expiry (refreshing with them fails anyway);
//! - resend cool-downs older than a day;
//! - schedule tick claims older than a day (`crate::schedule`).

use std::time::Instant;

use diesel_async::{AsyncPgConnection, RunQueryDsl};

/// Rows deleted per statement.
const BATCH: i64 = 5000;

/// What one purge removed, per kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    pub idempotency_keys: usize,
    pub codes: usize,
    pub refresh_tokens: usize,
    pub cooldowns: usize,
    pub tick_claims: usize,
    /// Stopped at the deadline with rows left (a continuation finishes).
    pub unfinished: bool,
}

/// `(table, condition)` of each kind of expired row.
const KINDS: [(&str, &str); 5] = [
    (
        "idempotency_keys",
        "created_at < now() - interval '24 hours'",
    ),
    (
        "one_time_codes",
        "consumed_at IS NOT NULL OR expires_at < now()",
    ),
    ("refresh_tokens", "expires_at < now()"),
    ("code_cooldowns", "last_sent_at < now() - interval '1 day'"),
    ("schedule_ticks", "tick < now() - interval '1 day'"),
];

/// Deletes every expired row, batch by batch, until none is left or
/// `deadline` passes.
pub async fn purge(
    conn: &mut AsyncPgConnection,
    deadline: Option<Instant>,
) -> diesel::QueryResult<Purged> {
    let mut counts = [0usize; KINDS.len()];
    for (index, (table, condition)) in KINDS.iter().enumerate() {
        loop {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(purged(counts, true));
            }
            // By ctid: one index or sequential pass finds a batch, and the
            // delete touches exactly those rows.
            let deleted = diesel::sql_query(format!(
                "DELETE FROM {table} WHERE ctid = ANY (ARRAY(
                     SELECT ctid FROM {table} WHERE {condition} LIMIT {BATCH}))"
            ))
            .execute(conn)
            .await?;
            counts[index] += deleted;
            if i64::try_from(deleted).unwrap_or(0) < BATCH {
                break;
            }
        }
    }
    Ok(purged(counts, false))
}

fn purged(counts: [usize; KINDS.len()], unfinished: bool) -> Purged {
    Purged {
        idempotency_keys: counts[0],
        codes: counts[1],
        refresh_tokens: counts[2],
        cooldowns: counts[3],
        tick_claims: counts[4],
        unfinished,
    }
}

//! Deliveries: one per (endpoint, event), and every attempt at it.
//!
//! A `deliver_webhook` job takes its endpoint's turn and makes attempts
//! ([`next_due`], the POST, then [`record`]), oldest first. A failed attempt queues the next one through the outbox, in
//! the transaction that records it, after an exponential backoff
//! (`WEBHOOK_RETRY_BASE_SECS` doubling up to `WEBHOOK_RETRY_MAX_SECS`), for
//! `WEBHOOK_RETRY_FOR_SECS` after the event; the job system's own retries
//! (seconds apart, a few attempts) are for the worker's failures, not the
//! receiver's. An endpoint that has failed every attempt for
//! `WEBHOOK_DISABLE_AFTER_SECS` is disabled, its pending deliveries are
//! failed, and its owner is emailed, all in that same transaction.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use diesel::{prelude::*, sql_types};
use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::send::Answer;
use crate::{
    email::{self, WebhookDisabled},
    jobs::DeliverWebhook,
    outbox,
    schema::{webhook_attempts, webhook_deliveries, webhook_endpoints, webhook_events},
};

/// A delivery whose attempt is due: where it goes and what it sends.
#[derive(Debug, Clone)]
pub struct Due {
    pub delivery_id: Uuid,
    pub endpoint_id: Uuid,
    pub event_id: Uuid,
    pub url: String,
    pub secret: String,
    /// The JSON body `{id, type, created_at, data}`.
    pub body: Vec<u8>,
}

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = sql_types::Uuid)]
    delivery_id: Uuid,
    #[diesel(sql_type = sql_types::Text)]
    url: String,
    #[diesel(sql_type = sql_types::Text)]
    secret: String,
    #[diesel(sql_type = sql_types::Bool)]
    enabled: bool,
    #[diesel(sql_type = sql_types::Uuid)]
    event_id: Uuid,
    #[diesel(sql_type = sql_types::Text)]
    kind: String,
    #[diesel(sql_type = sql_types::Jsonb)]
    data: serde_json::Value,
    #[diesel(sql_type = sql_types::Timestamptz)]
    created_at: DateTime<Utc>,
}

/// The oldest delivery to `endpoint` due now (by the database's clock,
/// which also dates the outbox rows of retries), with what it sends. An
/// endpoint's turn sends them in this order. A disabled endpoint has none:
/// its pending deliveries are failed.
pub async fn next_due(conn: &mut AsyncPgConnection, endpoint: Uuid) -> QueryResult<Option<Due>> {
    // `= ANY(ARRAY[$1])` and the two-column order make the plan a range of
    // the partial index of pending deliveries: written plainly, the generic
    // plan walks the primary key from the oldest delivery, through every
    // one already sent (1.8 ms with 5,000 sent, growing with the table).
    let row: Option<Row> = diesel::sql_query(
        "SELECT d.id AS delivery_id, w.url, w.secret, w.enabled, e.id AS event_id,
                e.type AS kind, e.data, e.created_at
         FROM (SELECT id, event_id, endpoint_id FROM webhook_deliveries
               WHERE endpoint_id = ANY(ARRAY[$1]) AND status = 'pending'
                 AND (next_attempt_at IS NULL OR next_attempt_at <= now())
               ORDER BY endpoint_id, id
               LIMIT 1) d
         JOIN webhook_endpoints w ON w.id = d.endpoint_id
         JOIN webhook_events e ON e.id = d.event_id",
    )
    .bind::<sql_types::Uuid, _>(endpoint)
    .get_result(conn)
    .await
    .optional()?;
    let Some(row) = row else {
        return Ok(None);
    };
    if !row.enabled {
        fail_pending(conn, webhook_deliveries::endpoint_id.eq(endpoint)).await?;
        return Ok(None);
    }
    let body = serde_json::to_vec(&serde_json::json!({
        "id": row.event_id,
        "type": row.kind,
        "created_at": row.created_at.to_rfc3339_opts(SecondsFormat::Micros, true),
        "data": row.data,
    }))
    .map_err(|e| diesel::result::Error::SerializationError(e.into()))?;
    Ok(Some(Due {
        delivery_id: row.delivery_id,
        endpoint_id: endpoint,
        event_id: row.event_id,
        url: row.url,
        secret: row.secret,
        body,
    }))
}

/// Marks the pending deliveries `which` selects failed: given up, no
/// attempt due.
async fn fail_pending<P>(conn: &mut AsyncPgConnection, which: P) -> QueryResult<usize>
where
    P: diesel::BoxableExpression<
            webhook_deliveries::table,
            diesel::pg::Pg,
            SqlType = sql_types::Bool,
        > + diesel::expression::NonAggregate
        + diesel::query_builder::QueryId
        + Send
        + 'static,
{
    diesel::update(
        webhook_deliveries::table
            .filter(which)
            .filter(webhook_deliveries::status.eq("pending")),
    )
    .set((
        webhook_deliveries::status.eq("failed"),
        webhook_deliveries::next_attempt_at.eq(None::<DateTime<Utc>>),
    ))
    .execute(conn)
    .await
}

/// How failures are retried and when an endpoint is given up on.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub retry_base: Duration,
    pub retry_max: Duration,
    pub retry_for: Duration,
    pub disable_after: Duration,
}

impl Policy {
    /// The wait after the `attempts`-th failed attempt: the base doubled
    /// per earlier failure, at most `retry_max`, less up to a tenth at
    /// random so the deliveries of an endpoint back from an outage do not
    /// all come at once.
    pub fn backoff(&self, attempts: u32) -> Duration {
        let doubled = self
            .retry_base
            .saturating_mul(1u32 << attempts.saturating_sub(1).min(20));
        let wait = doubled.min(self.retry_max);
        wait.saturating_sub(wait.mul_f64(rand::random::<f64>() / 10.0))
    }
}

/// What an attempt led to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    Delivered,
    /// Another attempt is queued for then.
    Retrying(DateTime<Utc>),
    /// Failing for `retry_for`: given up.
    GaveUp,
    /// The endpoint failed for `disable_after` and is now disabled.
    EndpointDisabled,
}

/// Records the attempt at `due` made at `at` with `answer`, and what
/// follows from it, in one transaction.
pub async fn record(
    conn: &mut AsyncPgConnection,
    due: &Due,
    at: DateTime<Utc>,
    answer: &Answer,
    policy: &Policy,
) -> QueryResult<Recorded> {
    let duration_ms = i32::try_from(answer.duration.as_millis()).unwrap_or(i32::MAX);
    if answer.delivered() {
        // One statement, so one round trip, on the hot path.
        diesel::sql_query(
            "WITH attempt AS (
                 INSERT INTO webhook_attempts (id, delivery_id, attempted_at, duration_ms,
                                               status_code)
                 VALUES ($1, $2, $3, $4, $5)),
             delivered AS (
                 UPDATE webhook_deliveries
                 SET status = 'delivered', attempts = attempts + 1, delivered_at = $3,
                     next_attempt_at = NULL
                 WHERE id = $2 AND status = 'pending')
             UPDATE webhook_endpoints SET failing_since = NULL
             WHERE id = $6 AND failing_since IS NOT NULL",
        )
        .bind::<sql_types::Uuid, _>(Uuid::now_v7())
        .bind::<sql_types::Uuid, _>(due.delivery_id)
        .bind::<sql_types::Timestamptz, _>(at)
        .bind::<sql_types::Integer, _>(duration_ms)
        .bind::<sql_types::Nullable<sql_types::Integer>, _>(answer.status.map(i32::from))
        .bind::<sql_types::Uuid, _>(due.endpoint_id)
        .execute(conn)
        .await?;
        return Ok(Recorded::Delivered);
    }
    conn.transaction(async |conn| {
        diesel::insert_into(webhook_attempts::table)
            .values((
                webhook_attempts::id.eq(Uuid::now_v7()),
                webhook_attempts::delivery_id.eq(due.delivery_id),
                webhook_attempts::attempted_at.eq(at),
                webhook_attempts::duration_ms.eq(duration_ms),
                webhook_attempts::status_code.eq(answer.status.map(i32::from)),
                webhook_attempts::error.eq(answer.error.as_deref()),
            ))
            .execute(conn)
            .await?;
        let pending = webhook_deliveries::table
            .filter(webhook_deliveries::id.eq(due.delivery_id))
            .filter(webhook_deliveries::status.eq("pending"));
        let Some(Since { failing_since }) = diesel::sql_query(
            "UPDATE webhook_endpoints SET failing_since = COALESCE(failing_since, $2)
             WHERE id = $1 RETURNING failing_since",
        )
        .bind::<sql_types::Uuid, _>(due.endpoint_id)
        .bind::<sql_types::Timestamptz, _>(at)
        .get_result::<Since>(conn)
        .await
        .optional()?
        else {
            // Deleted meanwhile, with its deliveries.
            return Ok(Recorded::GaveUp);
        };
        if at - failing_since >= chrono_duration(policy.disable_after) {
            let error = answer.error.as_deref().unwrap_or("no answer");
            disable(conn, due, at - failing_since, error).await?;
            return Ok(Recorded::EndpointDisabled);
        }
        let (attempts, created_at): (i32, DateTime<Utc>) = diesel::update(pending)
            .set(webhook_deliveries::attempts.eq(webhook_deliveries::attempts + 1))
            .returning((webhook_deliveries::attempts, webhook_deliveries::created_at))
            .get_result(conn)
            .await?;
        let next = at + chrono_duration(policy.backoff(u32::try_from(attempts).unwrap_or(1)));
        if next - created_at > chrono_duration(policy.retry_for) {
            fail_pending(conn, webhook_deliveries::id.eq(due.delivery_id)).await?;
            return Ok(Recorded::GaveUp);
        }
        diesel::update(webhook_deliveries::table.find(due.delivery_id))
            .set(webhook_deliveries::next_attempt_at.eq(next))
            .execute(conn)
            .await?;
        let job = DeliverWebhook {
            delivery_id: due.delivery_id,
            endpoint_id: due.endpoint_id,
        };
        outbox::push(conn, &job, Some(next)).await?;
        Ok(Recorded::Retrying(next))
    })
    .await
}

#[derive(QueryableByName)]
struct Since {
    #[diesel(sql_type = sql_types::Timestamptz)]
    failing_since: DateTime<Utc>,
}

#[derive(QueryableByName)]
struct Owner {
    #[diesel(sql_type = sql_types::Uuid)]
    id: Uuid,
    #[diesel(sql_type = sql_types::Text)]
    username: String,
    #[diesel(sql_type = sql_types::Text)]
    email: String,
    #[diesel(sql_type = sql_types::Bool)]
    verified: bool,
    #[diesel(sql_type = sql_types::Text)]
    url: String,
}

/// Disables `due`'s endpoint (if it is still enabled: only one attempt
/// emails the owner), fails its pending deliveries and emails its owner.
async fn disable(
    conn: &mut AsyncPgConnection,
    due: &Due,
    failing_for: chrono::Duration,
    last_error: &str,
) -> QueryResult<()> {
    let words = in_words(failing_for);
    let owner: Option<Owner> = diesel::sql_query(
        "UPDATE webhook_endpoints w
         SET enabled = false, disabled_reason = $2
         FROM users u
         WHERE w.id = $1 AND w.enabled AND u.id = w.user_id
         RETURNING u.id, u.username, u.email,
                   u.email_verified_at IS NOT NULL AS verified, w.url",
    )
    .bind::<sql_types::Uuid, _>(due.endpoint_id)
    .bind::<sql_types::Text, _>(format!(
        "every delivery failed for {words}; the last: {last_error}"
    ))
    .get_result(conn)
    .await
    .optional()?;
    fail_pending(conn, webhook_deliveries::endpoint_id.eq(due.endpoint_id)).await?;
    if let Some(owner) = owner.filter(|o| o.verified) {
        let mail = WebhookDisabled {
            username: owner.username,
            url: owner.url,
            endpoint_id: due.endpoint_id.to_string(),
            failing_for: words,
            last_error: last_error.to_owned(),
        };
        email::enqueue(conn, Some(owner.id), &owner.email, &mail).await?;
    }
    Ok(())
}

fn chrono_duration(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// "1 day", "3 hours", "90 seconds": the largest whole unit.
fn in_words(d: chrono::Duration) -> String {
    let secs = d.num_seconds().max(0);
    let (n, unit) = if secs >= 86_400 {
        (secs / 86_400, "day")
    } else if secs >= 3600 {
        (secs / 3600, "hour")
    } else if secs >= 120 {
        (secs / 60, "minute")
    } else {
        (secs, "second")
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

/// One attempt, as its endpoint's owner sees it.
#[derive(Debug, Clone, Queryable)]
pub struct AttemptView {
    pub delivery_id: Uuid,
    pub attempted_at: DateTime<Utc>,
    pub status_code: Option<i32>,
    pub error: Option<String>,
    pub duration_ms: i32,
}

/// One delivery and its attempts, oldest attempt first.
#[derive(Debug, Clone)]
pub struct DeliveryView {
    pub id: Uuid,
    pub event_id: Uuid,
    pub event_type: String,
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub attempts: Vec<AttemptView>,
}

type DeliveryRow = (
    Uuid,
    Uuid,
    String,
    String,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
);

/// Whether endpoint `endpoint` is `user`'s.
pub async fn owns(conn: &mut AsyncPgConnection, user: Uuid, endpoint: Uuid) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        webhook_endpoints::table
            .filter(webhook_endpoints::id.eq(endpoint))
            .filter(webhook_endpoints::user_id.eq(user)),
    ))
    .get_result(conn)
    .await
}

/// Endpoint `endpoint`'s deliveries, newest first, after delivery `before`
/// (a page's last) if given, at most `limit`, each with every attempt.
/// The caller checks the endpoint is the user's ([`owns`]).
pub async fn list(
    conn: &mut AsyncPgConnection,
    endpoint: Uuid,
    before: Option<Uuid>,
    limit: i64,
) -> QueryResult<Vec<DeliveryView>> {
    // As in `next_due`: `= ANY` and the two-column order keep the plan on
    // the endpoint's range of its index, not on the primary key's walk
    // through every endpoint's deliveries.
    let mut query = webhook_deliveries::table
        .inner_join(webhook_events::table)
        .filter(webhook_deliveries::endpoint_id.eq_any([endpoint]))
        .into_boxed();
    if let Some(before) = before {
        query = query.filter(webhook_deliveries::id.lt(before));
    }
    let rows: Vec<DeliveryRow> = query
        .order((
            webhook_deliveries::endpoint_id.desc(),
            webhook_deliveries::id.desc(),
        ))
        .limit(limit)
        .select((
            webhook_deliveries::id,
            webhook_events::id,
            webhook_events::type_,
            webhook_deliveries::status,
            webhook_deliveries::created_at,
            webhook_deliveries::next_attempt_at,
            webhook_deliveries::delivered_at,
        ))
        .load(conn)
        .await?;
    let ids: Vec<Uuid> = rows.iter().map(|r| r.0).collect();
    let mut attempts: Vec<AttemptView> = webhook_attempts::table
        .filter(webhook_attempts::delivery_id.eq_any(&ids))
        .order(webhook_attempts::id)
        .select((
            webhook_attempts::delivery_id,
            webhook_attempts::attempted_at,
            webhook_attempts::status_code,
            webhook_attempts::error,
            webhook_attempts::duration_ms,
        ))
        .load(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let (mine, rest) = attempts.drain(..).partition(|a| a.delivery_id == r.0);
            attempts = rest;
            DeliveryView {
                id: r.0,
                event_id: r.1,
                event_type: r.2,
                status: r.3,
                created_at: r.4,
                next_attempt_at: r.5,
                delivered_at: r.6,
                attempts: mine,
            }
        })
        .collect())
}

/// What a resend found.
#[derive(Debug, PartialEq, Eq)]
pub enum Resend {
    /// Pending again, its attempt queued now.
    Queued,
    /// No such delivery of that endpoint.
    NotFound,
    /// The endpoint is disabled: register it again first.
    EndpointDisabled,
}

/// Sends delivery `delivery` of endpoint `endpoint` again, whatever its
/// status: the same event, with the same id. The caller checks the
/// endpoint is the user's ([`owns`]).
pub async fn resend(
    conn: &mut AsyncPgConnection,
    endpoint: Uuid,
    delivery: Uuid,
) -> QueryResult<Resend> {
    conn.transaction(async |conn| {
        let enabled: Option<bool> = webhook_deliveries::table
            .inner_join(webhook_endpoints::table)
            .filter(webhook_deliveries::id.eq(delivery))
            .filter(webhook_deliveries::endpoint_id.eq(endpoint))
            .select(webhook_endpoints::enabled)
            .first(conn)
            .await
            .optional()?;
        match enabled {
            None => return Ok(Resend::NotFound),
            Some(false) => return Ok(Resend::EndpointDisabled),
            Some(true) => {}
        }
        let now = Utc::now();
        diesel::update(webhook_deliveries::table.find(delivery))
            .set((
                webhook_deliveries::status.eq("pending"),
                webhook_deliveries::next_attempt_at.eq(now),
                webhook_deliveries::delivered_at.eq(None::<DateTime<Utc>>),
            ))
            .execute(conn)
            .await?;
        outbox::push(
            conn,
            &DeliverWebhook {
                delivery_id: delivery,
                endpoint_id: endpoint,
            },
            None,
        )
        .await?;
        Ok(Resend::Queued)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_ceiling_with_a_little_less_at_random() {
        let policy = Policy {
            retry_base: Duration::from_secs(10),
            retry_max: Duration::from_secs(3600),
            retry_for: Duration::from_secs(86_400),
            disable_after: Duration::from_secs(86_400),
        };
        for (attempts, full) in [(1, 10), (2, 20), (3, 40), (9, 2560), (10, 3600), (40, 3600)] {
            let wait = policy.backoff(attempts);
            let full = Duration::from_secs(full);
            assert!(
                wait <= full && wait >= full.mul_f64(0.9),
                "{attempts}: {wait:?}"
            );
        }
    }

    #[test]
    fn durations_read_in_their_largest_unit() {
        assert_eq!(in_words(chrono::Duration::seconds(86_400)), "1 day");
        assert_eq!(in_words(chrono::Duration::seconds(7200)), "2 hours");
        assert_eq!(in_words(chrono::Duration::seconds(150)), "2 minutes");
        assert_eq!(in_words(chrono::Duration::seconds(3)), "3 seconds");
    }
}

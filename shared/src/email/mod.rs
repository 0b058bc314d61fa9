//! Transactional email: queued as rows in `emails` (plus a `send_email` job
//! through the outbox, in the caller's transaction) and delivered by the
//! worker at most once per row.

mod mailer;
pub mod render;

use std::time::Duration;

use chrono::Utc;
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
pub use mailer::{Mailer, SendError};
pub use render::{
    BetSettled, EmailChanged, EmailTemplate, PasswordChanged, PasswordReset, PriceAlert, Rendered,
    VerifyEmail, WalletBlocked, WebhookDisabled,
};
use uuid::Uuid;

use crate::{db::DbPool, jobs::SendEmail, outbox, schema::emails};

#[derive(Insertable)]
#[diesel(table_name = emails)]
struct NewEmail<'a> {
    id: Uuid,
    user_id: Option<Uuid>,
    to_address: &'a str,
    template: &'static str,
    context: serde_json::Value,
}

/// Queues an email: inserts the row and its `send_email` job. Call inside the
/// transaction of the change that causes the email, so a rolled-back change
/// sends nothing.
pub async fn enqueue<T: EmailTemplate>(
    conn: &mut AsyncPgConnection,
    user_id: Option<Uuid>,
    to: &str,
    mail: &T,
) -> QueryResult<Uuid> {
    enqueue_on(conn, user_id, to, mail).await
}

/// [`enqueue`] on a shared connection: the row and its job are written in
/// one pipelined round trip, and can be pipelined with the caller's own
/// statements.
pub async fn enqueue_on<T: EmailTemplate>(
    conn: &AsyncPgConnection,
    user_id: Option<Uuid>,
    to: &str,
    mail: &T,
) -> QueryResult<Uuid> {
    insert(conn, user_id, to, mail, true).await
}

/// [`enqueue_on`] without waking the relays (see
/// [`outbox::push_quiet`]): for emails from hot background paths, such as
/// bet settlements, that may go out a poll interval later.
pub async fn enqueue_quiet_on<T: EmailTemplate>(
    conn: &AsyncPgConnection,
    user_id: Option<Uuid>,
    to: &str,
    mail: &T,
) -> QueryResult<Uuid> {
    insert(conn, user_id, to, mail, false).await
}

/// Queues many emails of one template in two statements (rows, then
/// their jobs, pipelined), without waking the relays (see
/// [`outbox::push_quiet`]). Each item: user, address, variables.
pub async fn enqueue_many_quiet_on<T: EmailTemplate>(
    conn: &AsyncPgConnection,
    mails: &[(Option<Uuid>, String, T)],
) -> QueryResult<Vec<Uuid>> {
    let ids: Vec<Uuid> = mails.iter().map(|_| Uuid::now_v7()).collect();
    let users: Vec<Option<Uuid>> = mails.iter().map(|(user, ..)| *user).collect();
    let addresses: Vec<&str> = mails.iter().map(|(_, to, _)| to.as_str()).collect();
    let contexts = mails
        .iter()
        .map(|(.., mail)| serde_json::to_value(mail))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| diesel::result::Error::SerializationError(e.into()))?;
    let rows = diesel::sql_query(
        "INSERT INTO emails (id, user_id, to_address, template, context)
         SELECT id, user_id, to_address, $5, context
         FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::jsonb[])
              AS m(id, user_id, to_address, context)",
    )
    .bind::<diesel::sql_types::Array<diesel::sql_types::Uuid>, _>(&ids)
    .bind::<diesel::sql_types::Array<diesel::sql_types::Nullable<diesel::sql_types::Uuid>>, _>(
        &users,
    )
    .bind::<diesel::sql_types::Array<diesel::sql_types::Text>, _>(&addresses)
    .bind::<diesel::sql_types::Array<diesel::sql_types::Jsonb>, _>(&contexts)
    .bind::<diesel::sql_types::Text, _>(T::NAME)
    .execute(&mut &*conn);
    let jobs: Vec<SendEmail> = ids.iter().map(|&email_id| SendEmail { email_id }).collect();
    let jobs = outbox::push_many_quiet(conn, &jobs);
    futures::try_join!(rows, jobs)?;
    Ok(ids)
}

async fn insert<T: EmailTemplate>(
    conn: &AsyncPgConnection,
    user_id: Option<Uuid>,
    to: &str,
    mail: &T,
    wake: bool,
) -> QueryResult<Uuid> {
    let context = serde_json::to_value(mail)
        .map_err(|e| diesel::result::Error::SerializationError(e.into()))?;
    let id = Uuid::now_v7();
    let row = diesel::insert_into(emails::table)
        .values(NewEmail {
            id,
            user_id,
            to_address: to,
            template: T::NAME,
            context,
        })
        .execute(&mut &*conn);
    let job = SendEmail { email_id: id };
    let job = async {
        if wake {
            outbox::push_on(conn, &job, None).await
        } else {
            outbox::push_quiet(conn, &job).await
        }
    };
    futures::try_join!(row, job)?;
    Ok(id)
}

/// What one delivery attempt did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    Sent,
    /// An earlier delivery of the same job already sent it.
    AlreadySent,
    /// Given up for good (bad address, 5xx, broken template, or interrupted
    /// mid-send); recorded on the row.
    Failed(String),
}

#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("no email with id {0}")]
    NotFound(Uuid),
    /// Another delivery claimed it and has not finished yet; look again
    /// later (it either completes or goes stale and is marked failed).
    #[error("email {0} is being sent by another delivery")]
    InProgress(Uuid),
    /// Try again later (the job system retries with backoff).
    #[error(transparent)]
    Transient(SendError),
    #[error("database unavailable: {0}")]
    Pool(String),
    #[error("database error: {0}")]
    Database(#[from] diesel::result::Error),
}

/// What one reconciler pass did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Reconciled {
    /// Emails whose job was lost, queued again.
    pub queued: usize,
    /// Claims that never finished, given up (marked failed).
    pub given_up: usize,
}

/// Why an email claimed by a delivery that never finished is failed.
const INTERRUPTED: &str = "interrupted while sending; not resent to avoid a duplicate";

/// One reconciler pass, in one transaction:
/// - queues a new job for emails still `pending` more than `after` after
///   they were queued (or last requeued), at most `limit`: their job was
///   lost, say with Redis's data, or sits in the dead set. Emails that used
///   up `max_attempts` claims are left to operators. A duplicate of a live
///   job is harmless: delivery claims the row first.
/// - marks failed, at most `limit`, the emails claimed for sending more
///   than `stale_after` ago whose delivery never recorded an outcome (its
///   process died mid-send): at most once, never resent.
pub async fn reconcile(
    conn: &mut AsyncPgConnection,
    after: Duration,
    stale_after: Duration,
    max_attempts: u32,
    limit: i64,
) -> QueryResult<Reconciled> {
    use diesel::sql_types;
    use diesel_async::AsyncConnection as _;
    #[derive(QueryableByName)]
    struct Lost {
        #[diesel(sql_type = sql_types::Uuid)]
        id: Uuid,
    }
    conn.transaction(async |conn| {
        let lost: Vec<Lost> = diesel::sql_query(
            "UPDATE emails SET requeued_at = clock_timestamp()
             WHERE id = ANY(ARRAY(
                 SELECT id FROM emails
                 WHERE status = 'pending'
                   AND attempts < $2
                   AND created_at < statement_timestamp() - make_interval(secs => $1)
                   AND (requeued_at IS NULL
                        OR requeued_at < statement_timestamp() - make_interval(secs => $1))
                 ORDER BY created_at
                 LIMIT $3
                 FOR UPDATE SKIP LOCKED))
             RETURNING id",
        )
        .bind::<sql_types::Double, _>(after.as_secs_f64())
        .bind::<sql_types::Integer, _>(i32::try_from(max_attempts).unwrap_or(i32::MAX))
        .bind::<sql_types::BigInt, _>(limit)
        .load(conn)
        .await?;
        for email in &lost {
            outbox::push(conn, &SendEmail { email_id: email.id }, None).await?;
        }
        let given_up = diesel::sql_query(
            "UPDATE emails SET status = 'failed', last_error = $2, context = '{}'
             WHERE id = ANY(ARRAY(
                 SELECT id FROM emails
                 WHERE status = 'sending'
                   AND claimed_at < statement_timestamp() - make_interval(secs => $1)
                 ORDER BY claimed_at
                 LIMIT $3
                 FOR UPDATE SKIP LOCKED))",
        )
        .bind::<sql_types::Double, _>(stale_after.as_secs_f64())
        .bind::<sql_types::Text, _>(INTERRUPTED)
        .bind::<sql_types::BigInt, _>(limit)
        .execute(conn)
        .await?;
        Ok(Reconciled {
            queued: lost.len(),
            given_up,
        })
    })
    .await
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = emails)]
struct ClaimedEmail {
    to_address: String,
    template: String,
    context: serde_json::Value,
}

/// Delivers email `id` at most once.
///
/// The row is claimed (`pending` → `sending`) in its own statement before any
/// SMTP traffic, so concurrent or repeated deliveries of the same job cannot
/// both send. A transient failure puts it back to `pending` for the retry. A
/// process that dies mid-send leaves it `sending`; after `stale_after` such a
/// row is marked failed rather than risk a second copy.
///
/// No database connection is held while SMTP is talked to: a slow mail
/// server must not drain the pool other jobs need.
pub async fn deliver(
    pool: &DbPool,
    mailer: &Mailer,
    id: Uuid,
    public_url: &str,
    stale_after: Duration,
    claimant: &str,
) -> Result<Delivery, DeliveryError> {
    let claimed = {
        let mut conn = pool
            .get()
            .await
            .map_err(|e| DeliveryError::Pool(e.to_string()))?;
        match claim(&mut conn, id, claimant).await? {
            Some(email) => email,
            None => return resolve_unclaimable(&mut conn, id, stale_after).await,
        }
    };
    let message = render::render(&claimed.template, &claimed.context, public_url)
        .map_err(|e| SendError::Permanent(e.to_string()))
        .and_then(|rendered| mailer.compose(&claimed.to_address, &rendered));
    let outcome = match message {
        Ok(message) => mailer.send(message).await,
        Err(error) => Err(error),
    };
    record_persistently(pool, id, outcome, stale_after / 2).await
}

/// [`record`]s what the send did, trying again for up to `within` while
/// PostgreSQL is unreachable or refuses connections: only this delivery
/// knows whether the message went out, and a row left `sending` is given
/// up (never resent), so an email sent while the database was saturated
/// would be reported failed and, if it was not sent, lost.
async fn record_persistently(
    pool: &DbPool,
    id: Uuid,
    outcome: Result<(), SendError>,
    within: Duration,
) -> Result<Delivery, DeliveryError> {
    let deadline = std::time::Instant::now() + within;
    let mut pause = Duration::from_millis(50);
    loop {
        let attempt = match pool.get().await {
            Ok(mut conn) => record(&mut conn, id, outcome.clone()).await,
            Err(error) => Err(DeliveryError::Pool(error.to_string())),
        };
        match attempt {
            Err(error @ (DeliveryError::Pool(_) | DeliveryError::Database(_)))
                if std::time::Instant::now() + pause < deadline =>
            {
                tracing::warn!(email.id = %id, %error, "cannot record the email's delivery yet; trying again");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(2));
            }
            done => return done,
        }
    }
}

async fn claim(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    claimant: &str,
) -> QueryResult<Option<ClaimedEmail>> {
    let now = Utc::now();
    diesel::update(emails::table.find(id))
        .filter(emails::status.eq("pending"))
        .set((
            emails::status.eq("sending"),
            emails::claimed_at.eq(now),
            emails::claimed_by.eq(claimant),
            emails::attempts.eq(emails::attempts + 1),
        ))
        .returning(ClaimedEmail::as_returning())
        .get_result(conn)
        .await
        .optional()
}

/// Stores what the send did. If this write fails after a successful send
/// the row stays `sending`: never sent twice, at worst marked failed later.
async fn record(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    outcome: Result<(), SendError>,
) -> Result<Delivery, DeliveryError> {
    match outcome {
        Ok(()) => {
            diesel::update(emails::table.find(id))
                .set((
                    emails::status.eq("sent"),
                    emails::sent_at.eq(Utc::now()),
                    emails::last_error.eq(None::<String>),
                    // The context can hold one-time codes: keep it no longer
                    // than needed.
                    emails::context.eq(serde_json::json!({})),
                ))
                .execute(conn)
                .await?;
            Ok(Delivery::Sent)
        }
        Err(SendError::Transient(reason)) => {
            diesel::update(emails::table.find(id))
                .set((
                    emails::status.eq("pending"),
                    emails::last_error.eq(Some(&reason)),
                ))
                .execute(conn)
                .await?;
            Err(DeliveryError::Transient(SendError::Transient(reason)))
        }
        Err(SendError::Permanent(reason)) => {
            diesel::update(emails::table.find(id))
                .set((
                    emails::status.eq("failed"),
                    emails::last_error.eq(Some(&reason)),
                    emails::context.eq(serde_json::json!({})),
                ))
                .execute(conn)
                .await?;
            Ok(Delivery::Failed(reason))
        }
    }
}

/// Marks a pending email cancelled by an operator (its job cancelled
/// before it ran): failed, never sent, its variables erased like any
/// failed email's, and out of the reconciler's reach. False when it is no
/// longer pending (being sent, sent or failed).
pub async fn cancel(conn: &mut AsyncPgConnection, id: Uuid, by: &str) -> QueryResult<bool> {
    let marked = diesel::update(emails::table.find(id))
        .filter(emails::status.eq("pending"))
        .set((
            emails::status.eq("failed"),
            emails::last_error.eq(Some(format!("cancelled by the operator {by}"))),
            emails::context.eq(serde_json::json!({})),
            emails::updated_at.eq(Utc::now()),
        ))
        .execute(conn)
        .await?;
    Ok(marked == 1)
}

async fn resolve_unclaimable(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    stale_after: Duration,
) -> Result<Delivery, DeliveryError> {
    let status: Option<String> = emails::table
        .find(id)
        .select(emails::status)
        .first(conn)
        .await
        .optional()?;
    match status.as_deref() {
        None => Err(DeliveryError::NotFound(id)),
        Some("sent") => Ok(Delivery::AlreadySent),
        Some("failed") => Ok(Delivery::Failed("already failed".into())),
        _ => {
            let stale_before =
                Utc::now() - chrono::Duration::from_std(stale_after).unwrap_or_default();
            let marked = diesel::update(emails::table.find(id))
                .filter(emails::status.eq("sending"))
                .filter(emails::claimed_at.lt(stale_before))
                .set((
                    emails::status.eq("failed"),
                    emails::last_error.eq(Some(INTERRUPTED)),
                ))
                .execute(conn)
                .await?;
            if marked == 1 {
                Ok(Delivery::Failed(INTERRUPTED.into()))
            } else {
                Err(DeliveryError::InProgress(id))
            }
        }
    }
}

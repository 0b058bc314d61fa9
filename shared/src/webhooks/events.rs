//! Emitting webhook events: in the transaction of the change that causes
//! them, like any job.
//!
//! An event is stored only for a user with an enabled endpoint subscribed
//! to its type, so the paths that emit (a settlement, an alert fan-out of a
//! million alerts) pay one indexed lookup when nobody listens. For each
//! endpoint it goes to, a delivery row and its first `deliver_webhook` job
//! are written in the same transaction: a rolled-back change sends
//! nothing, a committed one is delivered at least once.

use chrono::{DateTime, Utc};
use diesel::{prelude::*, sql_types};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;
use uuid::Uuid;

use super::EventType;
use crate::{jobs::DeliverWebhook, outbox};

#[derive(QueryableByName)]
struct Listener {
    #[diesel(sql_type = sql_types::Uuid)]
    user_id: Uuid,
    #[diesel(sql_type = sql_types::Uuid)]
    endpoint_id: Uuid,
}

/// Emits one event of `kind` for each `(user, data)`; returns how many
/// deliveries were queued. `data` is serialised only for users someone
/// listens for.
pub async fn emit<T: Serialize>(
    conn: &AsyncPgConnection,
    kind: EventType,
    events: &[(Uuid, T)],
) -> QueryResult<usize> {
    if events.is_empty() {
        return Ok(0);
    }
    let mut users: Vec<Uuid> = events.iter().map(|(user, _)| *user).collect();
    users.sort_unstable();
    users.dedup();
    let listeners: Vec<Listener> = diesel::sql_query(
        "SELECT user_id, id AS endpoint_id FROM webhook_endpoints
         WHERE user_id = ANY($1) AND enabled AND $2 = ANY(events)",
    )
    .bind::<sql_types::Array<sql_types::Uuid>, _>(&users)
    .bind::<sql_types::Text, _>(kind.as_str())
    .load(&mut &*conn)
    .await?;
    if listeners.is_empty() {
        return Ok(0);
    }
    let now = Utc::now();
    let mut stored = Stored::default();
    for (user, data) in events {
        let endpoints: Vec<Uuid> = listeners
            .iter()
            .filter(|l| l.user_id == *user)
            .map(|l| l.endpoint_id)
            .collect();
        if endpoints.is_empty() {
            continue;
        }
        let data = serde_json::to_value(data)
            .map_err(|e| diesel::result::Error::SerializationError(e.into()))?;
        let event = Uuid::now_v7();
        stored.events.push((event, *user, data));
        for endpoint in endpoints {
            stored.deliveries.push((Uuid::now_v7(), endpoint, event));
        }
    }
    stored.write(conn, kind, now).await
}

/// The rows one emit writes.
#[derive(Default)]
struct Stored {
    /// (event id, user, data)
    events: Vec<(Uuid, Uuid, serde_json::Value)>,
    /// (delivery id, endpoint, event id)
    deliveries: Vec<(Uuid, Uuid, Uuid)>,
}

impl Stored {
    async fn write(
        self,
        conn: &AsyncPgConnection,
        kind: EventType,
        now: DateTime<Utc>,
    ) -> QueryResult<usize> {
        let (ids, rest): (Vec<Uuid>, Vec<(Uuid, serde_json::Value)>) = self
            .events
            .into_iter()
            .map(|(id, user, data)| (id, (user, data)))
            .unzip();
        let (event_users, data): (Vec<Uuid>, Vec<serde_json::Value>) = rest.into_iter().unzip();
        diesel::sql_query(
            "INSERT INTO webhook_events (id, user_id, type, data, created_at)
             SELECT id, user_id, $4, data, $5
             FROM unnest($1::uuid[], $2::uuid[], $3::jsonb[]) AS e(id, user_id, data)",
        )
        .bind::<sql_types::Array<sql_types::Uuid>, _>(&ids)
        .bind::<sql_types::Array<sql_types::Uuid>, _>(&event_users)
        .bind::<sql_types::Array<sql_types::Jsonb>, _>(&data)
        .bind::<sql_types::Text, _>(kind.as_str())
        .bind::<sql_types::Timestamptz, _>(now)
        .execute(&mut &*conn)
        .await?;
        let delivery_ids: Vec<Uuid> = self.deliveries.iter().map(|d| d.0).collect();
        let endpoints: Vec<Uuid> = self.deliveries.iter().map(|d| d.1).collect();
        let events: Vec<Uuid> = self.deliveries.iter().map(|d| d.2).collect();
        diesel::sql_query(
            "INSERT INTO webhook_deliveries (id, endpoint_id, event_id, created_at)
             SELECT id, endpoint_id, event_id, $4
             FROM unnest($1::uuid[], $2::uuid[], $3::uuid[]) AS d(id, endpoint_id, event_id)",
        )
        .bind::<sql_types::Array<sql_types::Uuid>, _>(&delivery_ids)
        .bind::<sql_types::Array<sql_types::Uuid>, _>(&endpoints)
        .bind::<sql_types::Array<sql_types::Uuid>, _>(&events)
        .bind::<sql_types::Timestamptz, _>(now)
        .execute(&mut &*conn)
        .await?;
        let jobs: Vec<DeliverWebhook> = delivery_ids
            .iter()
            .zip(&endpoints)
            .map(|(&delivery_id, &endpoint_id)| DeliverWebhook {
                delivery_id,
                endpoint_id,
            })
            .collect();
        outbox::push_many(conn, &jobs).await?;
        Ok(jobs.len())
    }
}

//! Registering, listing and deleting a user's webhook endpoints.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::EventType;
use crate::schema::webhook_endpoints;

/// An endpoint as stored.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = webhook_endpoints)]
pub struct Endpoint {
    pub id: Uuid,
    pub user_id: Uuid,
    pub url: String,
    pub events: Vec<String>,
    pub secret: String,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// A new endpoint, its URL and events already checked.
#[derive(Debug, Clone)]
pub struct NewEndpoint {
    pub user_id: Uuid,
    pub url: String,
    pub events: Vec<EventType>,
}

#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error("{0}")]
    Limit(String),
    #[error(transparent)]
    Database(#[from] diesel::result::Error),
}

/// A fresh signing secret: `whsec_` and 32 random bytes in hex.
fn new_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    format!("whsec_{}", hex::encode(bytes))
}

/// Registers an endpoint with a new secret, refusing past `max_per_user`
/// endpoints.
pub async fn create(
    conn: &mut AsyncPgConnection,
    max_per_user: i64,
    new: NewEndpoint,
) -> Result<Endpoint, EndpointError> {
    conn.transaction::<Endpoint, EndpointError, _>(async |conn| {
        // One registration at a time per user, so two concurrent ones
        // cannot both pass the cap check.
        crate::db::lock_for_transaction(conn, &format!("webhooks:{}", new.user_id)).await?;
        let held: i64 = webhook_endpoints::table
            .filter(webhook_endpoints::user_id.eq(new.user_id))
            .count()
            .get_result(conn)
            .await?;
        if held >= max_per_user {
            return Err(EndpointError::Limit(format!(
                "you have {held} webhook endpoints, the most allowed; delete one first"
            )));
        }
        let events: Vec<String> = new.events.iter().map(|e| e.as_str().to_owned()).collect();
        Ok(diesel::insert_into(webhook_endpoints::table)
            .values((
                webhook_endpoints::id.eq(Uuid::now_v7()),
                webhook_endpoints::user_id.eq(new.user_id),
                webhook_endpoints::url.eq(&new.url),
                webhook_endpoints::events.eq(events),
                webhook_endpoints::secret.eq(new_secret()),
            ))
            .returning(Endpoint::as_returning())
            .get_result(conn)
            .await?)
    })
    .await
}

/// A user's endpoints, oldest first.
pub async fn list(conn: &mut AsyncPgConnection, user_id: Uuid) -> QueryResult<Vec<Endpoint>> {
    webhook_endpoints::table
        .filter(webhook_endpoints::user_id.eq(user_id))
        .order(webhook_endpoints::id)
        .select(Endpoint::as_select())
        .load(conn)
        .await
}

/// Deletes endpoint `id` of `user_id`; whether there was one.
pub async fn delete(conn: &mut AsyncPgConnection, user_id: Uuid, id: Uuid) -> QueryResult<bool> {
    let deleted = diesel::delete(
        webhook_endpoints::table
            .filter(webhook_endpoints::id.eq(id))
            .filter(webhook_endpoints::user_id.eq(user_id)),
    )
    .execute(conn)
    .await?;
    Ok(deleted > 0)
}

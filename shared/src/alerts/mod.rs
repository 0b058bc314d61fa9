//! Price alerts (PRODUCT.md §8): a user asks to be told when a price goes
//! above or below a target. Alerts are rows, not tasks: each new
//! observation finds the alerts it crosses with one indexed query
//! ([`evaluate`]), so millions of alerts cost nothing until they trigger.

mod evaluate;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
pub use evaluate::{Triggered, evaluate};
use rust_decimal::Decimal;
use uuid::Uuid;

use crate::{
    config::{AlertsConfig, RatesConfig},
    rates::{self, RateError},
    schema::alerts,
};

/// Which way the price must go to trigger the alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertDirection {
    /// Triggers when the price is at or above the target.
    Above,
    /// Triggers when the price is at or below the target.
    Below,
}

impl AlertDirection {
    pub const fn as_str(self) -> &'static str {
        match self {
            AlertDirection::Above => "above",
            AlertDirection::Below => "below",
        }
    }

    pub fn parse(raw: &str) -> Option<AlertDirection> {
        match raw {
            "above" => Some(AlertDirection::Above),
            "below" => Some(AlertDirection::Below),
            _ => None,
        }
    }

    /// The direction an alert gets when none is given: `above` when the
    /// target is above the current price, else `below`.
    pub fn default_for(target: Decimal, current: Decimal) -> AlertDirection {
        if target > current {
            AlertDirection::Above
        } else {
            AlertDirection::Below
        }
    }
}

/// The statuses an alert can have, for filters.

#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    #[error("{0}")]
    Limit(String),
    #[error(transparent)]
    Rate(#[from] RateError),
    #[error("database error: {0}")]
    Database(#[from] diesel::result::Error),
}

crate::text_enum! {
    pub enum AlertStatus {
        /// Waiting for its price.
        Created = "created",
        Triggered = "triggered",
        Deleted = "deleted",
    }
}

/// An alert as its owner sees it.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = alerts)]
pub struct Alert {
    pub id: Uuid,
    pub user_id: Uuid,
    pub symbol: String,
    pub target_price: Decimal,
    pub direction: String,
    pub status: AlertStatus,
    pub created_at: DateTime<Utc>,
    pub triggered_price: Option<Decimal>,
    pub observed_at: Option<DateTime<Utc>>,
    pub triggered_at: Option<DateTime<Utc>>,
    pub deleted_at: Option<DateTime<Utc>>,
}

/// An alert to create, validated for shape (see the API).
#[derive(Debug, Clone)]
pub struct NewAlert {
    pub user_id: Uuid,
    /// A priced currency (anything but USD, whose price is 1).
    pub symbol: String,
    pub target_price: Decimal,
    /// `None`: chosen from the current fresh price
    /// ([`AlertDirection::default_for`]).
    pub direction: Option<AlertDirection>,
}

/// Creates an alert, refusing it when the user already has `limits`'
/// maximum of active alerts. Without a direction the current price must be
/// fresh ([`RateError::Unavailable`] otherwise).
pub async fn create(
    conn: &mut AsyncPgConnection,
    rates_config: &RatesConfig,
    limits: &AlertsConfig,
    new: NewAlert,
) -> Result<Alert, AlertError> {
    conn.transaction::<Alert, AlertError, _>(async |conn| {
        // One create at a time per user, so two concurrent creates cannot
        // both pass the cap check.
        crate::db::lock_for_transaction(conn, &format!("alerts:{}", new.user_id)).await?;
        let active: i64 = alerts::table
            .filter(alerts::user_id.eq(new.user_id))
            .filter(alerts::status.eq(AlertStatus::Created))
            .count()
            .get_result(conn)
            .await?;
        if active >= limits.max_active_per_user {
            return Err(AlertError::Limit(format!(
                "you have {active} active alerts, the most allowed; delete one first"
            )));
        }
        let direction = match new.direction {
            Some(direction) => direction,
            None => {
                let current =
                    rates::fresh_price(conn, rates_config, &new.symbol, Utc::now()).await?;
                AlertDirection::default_for(new.target_price, current.price_usd)
            }
        };
        let alert = diesel::insert_into(alerts::table)
            .values((
                alerts::id.eq(Uuid::now_v7()),
                alerts::user_id.eq(new.user_id),
                alerts::symbol.eq(&new.symbol),
                alerts::target_price.eq(new.target_price),
                alerts::direction.eq(direction.as_str()),
            ))
            .returning(Alert::as_returning())
            .get_result(conn)
            .await?;
        Ok(alert)
    })
    .await
}

/// The user's alert `id`; `None` for someone else's.
pub async fn get(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    id: Uuid,
) -> QueryResult<Option<Alert>> {
    alerts::table
        .find(id)
        .filter(alerts::user_id.eq(user_id))
        .select(Alert::as_select())
        .first(conn)
        .await
        .optional()
}

/// The user's alerts, newest first (ids are UUIDv7: time-ordered), older
/// than `before`, optionally only those with `status`.
pub async fn list(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    status: Option<AlertStatus>,
    before: Option<Uuid>,
    limit: i64,
) -> QueryResult<Vec<Alert>> {
    let mut query = alerts::table
        .filter(alerts::user_id.eq(user_id))
        .select(Alert::as_select())
        .order(alerts::id.desc())
        .limit(limit)
        .into_boxed();
    if let Some(status) = status {
        query = query.filter(alerts::status.eq(status));
    }
    if let Some(before) = before {
        query = query.filter(alerts::id.lt(before));
    }
    query.load(conn).await
}

/// Deletes the user's alert `id` (its status becomes `deleted`; a deleted
/// alert never triggers). Deleting it again changes nothing. `None` for
/// someone else's.
pub async fn delete(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    id: Uuid,
) -> QueryResult<Option<Alert>> {
    // Waits for an evaluation holding the row: the alert is then either
    // triggered first (and deleted after) or deleted before it can trigger.
    let deleted = diesel::update(
        alerts::table
            .find(id)
            .filter(alerts::user_id.eq(user_id))
            .filter(alerts::status.ne(AlertStatus::Deleted)),
    )
    .set((
        alerts::status.eq(AlertStatus::Deleted),
        alerts::deleted_at.eq(Some(Utc::now())),
    ))
    .returning(Alert::as_returning())
    .get_result(conn)
    .await
    .optional()?;
    match deleted {
        Some(alert) => Ok(Some(alert)),
        None => get(conn, user_id, id).await,
    }
}

/// How long a user's cache generation counter lives after its last change:
/// far longer than any cached answer, so a counter that expires and
/// restarts from zero cannot meet an answer cached under its old values.
pub const CACHE_GENERATION_TTL_SECS: i64 = 7 * 24 * 3600;

/// The Redis key whose value is the generation of `user_id`'s cached
/// alert answers (under the deployment's key `prefix`). Every change to
/// the user's alerts increments it, so cached answers of older
/// generations are never read again.
pub fn cache_generation_key(prefix: &str, user_id: Uuid) -> String {
    format!("{prefix}:alerts:gen:{user_id}")
}

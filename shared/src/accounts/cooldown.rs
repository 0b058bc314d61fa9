//! The cool-down between two emailed codes to one address: keyed by the
//! address asked for (hashed, letter case ignored) whether or not an
//! account has it, so a request inside the cool-down answers the same
//! "too soon" for every address — nothing is silently dropped, and the
//! answer says nothing about which addresses have accounts.

use std::time::Duration;

use diesel::{prelude::*, sql_types};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use sha2::{Digest, Sha256};

use super::codes::Purpose;

fn address_hash(address: &str) -> String {
    hex::encode(Sha256::digest(address.trim().to_lowercase().as_bytes()))
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

#[derive(QueryableByName)]
struct Remaining {
    #[diesel(sql_type = sql_types::BigInt)]
    remaining_ms: i64,
}

/// Starts a cool-down for `address` unless one is running; then answers
/// how long it still runs. Race-free: the upsert locks the row, so of two
/// concurrent requests one starts the cool-down and the other waits.
pub(super) async fn claim(
    conn: &mut AsyncPgConnection,
    address: &str,
    purpose: Purpose,
    cooldown: Duration,
) -> QueryResult<Option<Duration>> {
    let hash = address_hash(address);
    let started = diesel::sql_query(
        "INSERT INTO code_cooldowns (address_hash, purpose, last_sent_at)
         VALUES ($1, $2, now())
         ON CONFLICT (address_hash, purpose) DO UPDATE SET last_sent_at = now()
         WHERE code_cooldowns.last_sent_at <= now() - $3 * interval '1 millisecond'",
    )
    .bind::<sql_types::Text, _>(&hash)
    .bind::<sql_types::Text, _>(purpose.as_str())
    .bind::<sql_types::BigInt, _>(millis(cooldown))
    .execute(conn)
    .await?;
    if started == 1 {
        return Ok(None);
    }
    let left: Remaining = diesel::sql_query(
        "SELECT greatest(0, $3 - (extract(epoch FROM now() - last_sent_at) * 1000)::bigint)
                AS remaining_ms
         FROM code_cooldowns WHERE address_hash = $1 AND purpose = $2",
    )
    .bind::<sql_types::Text, _>(&hash)
    .bind::<sql_types::Text, _>(purpose.as_str())
    .bind::<sql_types::BigInt, _>(millis(cooldown))
    .get_result(conn)
    .await?;
    Ok(Some(Duration::from_millis(
        u64::try_from(left.remaining_ms).unwrap_or(0),
    )))
}

/// Records that a code just went to `address` (registration, a new email
/// address), starting its cool-down.
pub(super) async fn record(
    conn: &mut AsyncPgConnection,
    address: &str,
    purpose: Purpose,
) -> QueryResult<()> {
    diesel::sql_query(
        "INSERT INTO code_cooldowns (address_hash, purpose, last_sent_at)
         VALUES ($1, $2, now())
         ON CONFLICT (address_hash, purpose) DO UPDATE SET last_sent_at = now()",
    )
    .bind::<sql_types::Text, _>(address_hash(address))
    .bind::<sql_types::Text, _>(purpose.as_str())
    .execute(conn)
    .await
    .map(|_| ())
}

//! Stored observations and the one way every money feature gets a price:
//! [`fresh_price`] (or [`convert`]), which refuses a price older than the
//! staleness limit.

use chrono::{DateTime, Utc};
use diesel::{prelude::*, sql_types};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use rust_decimal::{Decimal, RoundingStrategy};
use serde::Serialize;

use crate::{
    config::RatesConfig,
    currencies::{self, Kind},
    schema::price_history,
};

/// One observation: a USD price and when we received it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, QueryableByName, Queryable)]
pub struct Price {
    #[diesel(sql_type = sql_types::Text)]
    pub symbol: String,
    #[diesel(sql_type = sql_types::Numeric)]
    pub price_usd: Decimal,
    #[diesel(sql_type = sql_types::Text)]
    pub source: String,
    #[diesel(sql_type = sql_types::Timestamptz)]
    pub observed_at: DateTime<Utc>,
}

#[derive(Debug, thiserror::Error)]
pub enum RateError {
    #[error("unknown currency {0}")]
    UnknownSymbol(String),
    /// No price, or only one older than the staleness limit.
    #[error("no fresh price for {symbol}: {reason}")]
    Unavailable { symbol: String, reason: String },
    #[error("database error: {0}")]
    Database(#[from] diesel::result::Error),
}

/// The advisory lock that orders price writes against "the price in force
/// at T" reads (any fixed number; this one spells "prices").
const PRICE_LOCK: i64 = 0x7072_6963_6573;

#[derive(QueryableByName)]
struct Now {
    #[diesel(sql_type = sql_types::Timestamptz)]
    now: DateTime<Utc>,
}

/// Takes the price lock exclusively for the rest of the transaction and
/// returns the database's clock: the time to stamp the observations this
/// transaction inserts.
pub async fn lock_prices_for_writing(conn: &mut AsyncPgConnection) -> QueryResult<DateTime<Utc>> {
    diesel::sql_query(
        "SELECT clock_timestamp() AS now FROM (SELECT pg_advisory_xact_lock($1)) AS locked",
    )
    .bind::<sql_types::BigInt, _>(PRICE_LOCK)
    .get_result::<Now>(conn)
    .await
    .map(|n| n.now)
}

/// Takes the price lock in shared mode for the rest of the transaction and
/// returns the database's clock after it. Every observation stamped at or
/// before that time is committed and visible from here on (writers stamp
/// under the exclusive lock), so "the price in force at T" for any T up to
/// that time is final: a settlement reading it cannot miss an observation
/// that commits a moment late.
pub async fn lock_prices(conn: &mut AsyncPgConnection) -> QueryResult<DateTime<Utc>> {
    diesel::sql_query(
        "SELECT clock_timestamp() AS now FROM (SELECT pg_advisory_xact_lock_shared($1)) AS locked",
    )
    .bind::<sql_types::BigInt, _>(PRICE_LOCK)
    .get_result::<Now>(conn)
    .await
    .map(|n| n.now)
}

/// The latest observation of each of `symbols` (those that have one).
/// One index probe per symbol.
pub async fn latest(conn: &mut AsyncPgConnection, symbols: &[String]) -> QueryResult<Vec<Price>> {
    diesel::sql_query(
        "SELECT p.symbol, p.price_usd, p.source, p.observed_at
         FROM unnest($1::text[]) AS s(symbol)
         CROSS JOIN LATERAL (
             SELECT symbol, price_usd, source, observed_at FROM price_history h
             WHERE h.symbol = s.symbol ORDER BY observed_at DESC LIMIT 1) p
         ORDER BY p.symbol",
    )
    .bind::<sql_types::Array<sql_types::Text>, _>(symbols)
    .load(conn)
    .await
}

/// The last observation of `symbol` received at or before `at`.
pub async fn price_at(
    conn: &mut AsyncPgConnection,
    symbol: &str,
    at: DateTime<Utc>,
) -> QueryResult<Option<Price>> {
    price_history::table
        .filter(price_history::symbol.eq(symbol))
        .filter(price_history::observed_at.le(at))
        .order(price_history::observed_at.desc())
        .select((
            price_history::symbol,
            price_history::price_usd,
            price_history::source,
            price_history::observed_at,
        ))
        .first(conn)
        .await
        .optional()
}

/// How old a price of this kind may be and still move money.
pub fn max_age(config: &RatesConfig, kind: Kind) -> chrono::Duration {
    let age = match kind {
        Kind::Crypto => config.max_age,
        Kind::Fiat => config.fiat_max_age,
    };
    chrono::Duration::from_std(age).unwrap_or(chrono::Duration::MAX)
}

/// The latest price of `symbol` if it is fresh at `now`, else
/// [`RateError::Unavailable`]. Every trade, transfer and bet prices through
/// this (or [`convert`]).
pub async fn fresh_price(
    conn: &mut AsyncPgConnection,
    config: &RatesConfig,
    symbol: &str,
    now: DateTime<Utc>,
) -> Result<Price, RateError> {
    let currency = currencies::find(conn, symbol)
        .await?
        .ok_or_else(|| RateError::UnknownSymbol(symbol.to_owned()))?;
    let price = latest(conn, &[symbol.to_owned()])
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| RateError::Unavailable {
            symbol: symbol.to_owned(),
            reason: "no price yet".into(),
        })?;
    let age = now - price.observed_at;
    if age > max_age(config, currency.kind) {
        return Err(RateError::Unavailable {
            symbol: symbol.to_owned(),
            reason: format!("the latest price is {}s old", age.num_seconds()),
        });
    }
    Ok(price)
}

/// A conversion quote: what `amount` of `from` is worth in `to` at fresh
/// prices, rounded down to `to`'s decimal places (a conversion never
/// creates money).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Conversion {
    pub from: String,
    pub to: String,
    pub amount: Decimal,
    pub converted: Decimal,
    /// Units of `to` per unit of `from`.
    pub rate: Decimal,
    /// The older of the two prices' times.
    pub as_of: DateTime<Utc>,
    pub from_price_usd: Decimal,
    pub to_price_usd: Decimal,
}

/// Quotes `amount` of `from` in `to` at fresh prices.
pub async fn convert(
    conn: &mut AsyncPgConnection,
    config: &RatesConfig,
    from: &str,
    to: &str,
    amount: Decimal,
    now: DateTime<Utc>,
) -> Result<Conversion, RateError> {
    let target = currencies::find(conn, to)
        .await?
        .ok_or_else(|| RateError::UnknownSymbol(to.to_owned()))?;
    let from_price = fresh_price(conn, config, from, now).await?;
    let to_price = fresh_price(conn, config, to, now).await?;
    let rate = (from_price.price_usd / to_price.price_usd).round_dp(18);
    let converted = (amount * from_price.price_usd / to_price.price_usd)
        .round_dp_with_strategy(target.decimals, RoundingStrategy::ToZero);
    Ok(Conversion {
        from: from.to_owned(),
        to: to.to_owned(),
        amount,
        converted,
        rate: rate.normalize(),
        as_of: from_price.observed_at.min(to_price.observed_at),
        from_price_usd: from_price.price_usd,
        to_price_usd: to_price.price_usd,
    })
}

/// One page of a symbol's history, oldest first.
#[derive(Debug, Clone)]
pub struct HistoryPage {
    pub points: Vec<Price>,
    /// Where the next page starts, if there is one.
    pub next: Option<DateTime<Utc>>,
}

/// Observations of `symbol` in `[from, to)`, oldest first, at most `limit`,
/// starting after `after` (the cursor). With `bucket_secs`, one point per
/// bucket: the last observation in it (for charts over long ranges).
pub async fn history(
    conn: &mut AsyncPgConnection,
    symbol: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    after: Option<DateTime<Utc>>,
    limit: i64,
    bucket_secs: Option<i64>,
) -> QueryResult<HistoryPage> {
    let start = after.unwrap_or(from);
    let mut points: Vec<Price> = match bucket_secs {
        None => {
            diesel::sql_query(
                "SELECT symbol, price_usd, source, observed_at FROM price_history
                 WHERE symbol = $1 AND observed_at >= $2 AND observed_at < $3
                   AND ($4::timestamptz IS NULL OR observed_at > $4)
                 ORDER BY observed_at LIMIT $5",
            )
            .bind::<sql_types::Text, _>(symbol)
            .bind::<sql_types::Timestamptz, _>(from)
            .bind::<sql_types::Timestamptz, _>(to)
            .bind::<sql_types::Nullable<sql_types::Timestamptz>, _>(after)
            .bind::<sql_types::BigInt, _>(limit + 1)
            .load(conn)
            .await?
        }
        Some(bucket) => {
            diesel::sql_query(
                "SELECT DISTINCT ON (floor(extract(epoch FROM observed_at) / $5))
                        symbol, price_usd, source, observed_at
                 FROM price_history
                 WHERE symbol = $1 AND observed_at >= $2 AND observed_at < $3
                 ORDER BY floor(extract(epoch FROM observed_at) / $5), observed_at DESC
                 LIMIT $4",
            )
            .bind::<sql_types::Text, _>(symbol)
            .bind::<sql_types::Timestamptz, _>(start)
            .bind::<sql_types::Timestamptz, _>(to)
            .bind::<sql_types::BigInt, _>(limit + 1)
            .bind::<sql_types::Double, _>(bucket as f64)
            .load(conn)
            .await?
        }
    };
    let more = points.len() > usize::try_from(limit).unwrap_or(usize::MAX);
    points.truncate(usize::try_from(limit).unwrap_or(0));
    let next = if more {
        points.last().map(|p| match bucket_secs {
            // The next bucket starts after this point's bucket.
            Some(bucket) => {
                let secs = p.observed_at.timestamp();
                let bucket_end = (secs.div_euclid(bucket) + 1) * bucket;
                DateTime::from_timestamp(bucket_end, 0).unwrap_or(p.observed_at)
            }
            None => p.observed_at,
        })
    } else {
        None
    };
    Ok(HistoryPage { points, next })
}

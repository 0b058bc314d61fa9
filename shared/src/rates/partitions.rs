//! `price_history`'s monthly partitions (migration
//! `2026-12-12-100000_partition_price_history`, whose two SQL functions do
//! the work): the hourly purge makes the next months' partitions ahead of
//! time and drops the months wholly older than
//! `PRICE_HISTORY_RETENTION_DAYS`. Dropping a month is one catalog change,
//! not half a million deletes a day and the vacuuming after them.

use diesel::{prelude::*, sql_types};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

/// Months made ahead of now, so a row never waits for its partition (and
/// never lands in the default one).
const MONTHS_AHEAD: i32 = 2;

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Kept {
    pub made: i32,
    pub dropped: Vec<String>,
}

#[derive(QueryableByName)]
struct Made {
    #[diesel(sql_type = sql_types::Integer)]
    made: i32,
}

#[derive(QueryableByName)]
struct Dropped {
    #[diesel(sql_type = sql_types::Text)]
    name: String,
}

/// Makes the partitions of this month and the next [`MONTHS_AHEAD`], and
/// drops those whose month ended more than `retention_days` ago, in one
/// short transaction. Both take a brief exclusive lock on the table, so
/// they give up after 5 s behind a long reader rather than queue every
/// price lookup behind themselves; the next pass tries again.
pub async fn keep(conn: &mut AsyncPgConnection, retention_days: u32) -> QueryResult<Kept> {
    conn.transaction(async |conn| {
        diesel::sql_query("SET LOCAL lock_timeout = '5s'")
            .execute(conn)
            .await?;
        let made: Made = diesel::sql_query(
            "SELECT price_history_make_partitions(now(), now() + make_interval(months => $1)) AS made",
        )
        .bind::<sql_types::Integer, _>(MONTHS_AHEAD)
        .get_result(conn)
        .await?;
        let dropped: Vec<Dropped> = diesel::sql_query(
            "SELECT price_history_drop_partitions(now() - make_interval(days => $1)) AS name",
        )
        .bind::<sql_types::Integer, _>(i32::try_from(retention_days).unwrap_or(i32::MAX))
        .load(conn)
        .await?;
        Ok(Kept {
            made: made.made,
            dropped: dropped.into_iter().map(|d| d.name).collect(),
        })
    })
    .await
}

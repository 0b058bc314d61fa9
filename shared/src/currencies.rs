//! Currencies are data (the `currencies` table, seeded by migration).

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::schema::currencies;

crate::text_enum! {
    /// A currency's kind, and so its wallets' (`fiat` or `crypto`).
    pub enum Kind {
        Fiat = "fiat",
        Crypto = "crypto",
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Currency {
    pub code: String,
    pub name: String,
    pub kind: Kind,
    /// Decimal places of amounts in this currency.
    pub decimals: u32,
}

/// Every currency, ordered by code.
pub async fn all(conn: &mut AsyncPgConnection) -> QueryResult<Vec<Currency>> {
    let rows: Vec<(String, String, Kind, i16)> = currencies::table
        .select((
            currencies::code,
            currencies::name,
            currencies::kind,
            currencies::decimals,
        ))
        .order(currencies::code)
        .load(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(code, name, kind, decimals)| Currency {
            code,
            name,
            kind,
            decimals: u32::try_from(decimals).unwrap_or(0),
        })
        .collect())
}

/// The currency with `code` (exact, upper case), if any.
pub async fn find(conn: &mut AsyncPgConnection, code: &str) -> QueryResult<Option<Currency>> {
    Ok(all(conn).await?.into_iter().find(|c| c.code == code))
}

//! Cursor pagination (PRODUCT.md §2): `?limit=` (default 20, at most 100)
//! and `?cursor=`, answered with `next_cursor` (null on the last page). The
//! lists keyed by UUIDv7 ids (time-ordered) use the last id as the cursor,
//! a wallet's history its last entry number, the price history its last
//! point's time: all through one codec, [`Cursor`]. (The dead-job list's
//! cursor is different on purpose: readable `died_at_ms/queue/id` text
//! that operators can read and the OpenAPI document states as a pattern.)

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, SecondsFormat, Utc};
use uuid::Uuid;

use crate::error::ApiError;

/// The page size asked for, checked.
pub fn limit(raw: Option<i64>) -> Result<i64, ApiError> {
    let limit = raw.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::field("limit", "must be from 1 to 100"));
    }
    Ok(limit)
}

/// A page cursor: the value a page ends at (the last row's id, the last
/// entry's number, the last point's time), in base64url without padding.
/// Clients treat it as opaque; every endpoint's cursor is this one codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor<T>(pub T);

/// What a cursor can stand for, and its bytes inside the base64.
pub trait CursorValue: Sized {
    fn to_bytes(&self) -> Vec<u8>;
    fn from_bytes(bytes: &[u8]) -> Option<Self>;
}

impl CursorValue for Uuid {
    fn to_bytes(&self) -> Vec<u8> {
        self.as_bytes().to_vec()
    }

    fn from_bytes(bytes: &[u8]) -> Option<Self> {
        Uuid::from_slice(bytes).ok()
    }
}

/// A ledger entry number: 8 bytes big-endian.
impl CursorValue for i64 {
    fn to_bytes(&self) -> Vec<u8> {
        self.to_be_bytes().to_vec()
    }

    fn from_bytes(bytes: &[u8]) -> Option<Self> {
        <[u8; 8]>::try_from(bytes).ok().map(i64::from_be_bytes)
    }
}

/// A time: its RFC 3339 text to the microsecond.
impl CursorValue for DateTime<Utc> {
    fn to_bytes(&self) -> Vec<u8> {
        self.to_rfc3339_opts(SecondsFormat::Micros, true)
            .into_bytes()
    }

    fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(bytes).ok()?;
        DateTime::parse_from_rfc3339(text).ok().map(|t| t.to_utc())
    }
}

impl<T: CursorValue> Cursor<T> {
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0.to_bytes())
    }

    /// The `?cursor=` parameter, if given: 400 `validation_failed` on
    /// `cursor` for anything this codec did not write.
    pub fn decode(raw: Option<&str>) -> Result<Option<T>, ApiError> {
        raw.map(|raw| {
            URL_SAFE_NO_PAD
                .decode(raw.trim())
                .ok()
                .and_then(|bytes| T::from_bytes(&bytes))
                .ok_or_else(|| ApiError::field("cursor", "is not a cursor from this endpoint"))
        })
        .transpose()
    }
}

/// The id a UUID cursor stands for.
pub fn uuid_cursor(raw: Option<&str>) -> Result<Option<Uuid>, ApiError> {
    Cursor::<Uuid>::decode(raw)
}

/// Cuts `rows` (loaded with `limit + 1`) to one page and gives the cursor
/// of the next one (`key` of the last row kept), if there is more.
pub fn page<T, K: CursorValue>(
    mut rows: Vec<T>,
    limit: i64,
    key: impl Fn(&T) -> K,
) -> (Vec<T>, Option<String>) {
    let page = usize::try_from(limit).unwrap_or(0);
    let more = rows.len() > page;
    rows.truncate(page);
    let next = more
        .then(|| rows.last().map(|row| Cursor(key(row)).encode()))
        .flatten();
    (rows, next)
}

/// [`page`] for the lists keyed by UUIDv7 ids.
pub fn uuid_page<T>(rows: Vec<T>, limit: i64, id: impl Fn(&T) -> Uuid) -> (Vec<T>, Option<String>) {
    page(rows, limit, id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_keep_their_wire_form() {
        let id = Uuid::from_u128(0x0193_0000_0000_7000_8000_0000_0000_0001);
        assert_eq!(
            Cursor::<Uuid>::decode(Some(&Cursor(id).encode())).unwrap(),
            Some(id)
        );
        assert_eq!(Cursor(42i64).encode(), "AAAAAAAAACo");
        assert_eq!(
            Cursor::<i64>::decode(Some("AAAAAAAAACo")).unwrap(),
            Some(42)
        );
        let at: DateTime<Utc> = "2026-12-04T10:00:00.5Z".parse().unwrap();
        assert_eq!(Cursor(at).encode(), "MjAyNi0xMi0wNFQxMDowMDowMC41MDAwMDBa");
        assert_eq!(
            Cursor::<DateTime<Utc>>::decode(Some(&Cursor(at).encode())).unwrap(),
            Some(at)
        );
        assert!(Cursor::<i64>::decode(Some("AAAA")).is_err());
        assert!(Cursor::<Uuid>::decode(Some("not base64!")).is_err());
        assert_eq!(Cursor::<Uuid>::decode(None).unwrap(), None);
    }
}

//! Cursor pagination (PRODUCT.md §2): `?limit=` (default 20, at most 100)
//! and `?cursor=`, answered with `next_cursor` (null on the last page). The
//! lists keyed by UUIDv7 ids (time-ordered) use the last id as the cursor.

use base64::Engine as _;
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

/// The id a UUID cursor stands for.
pub fn uuid_cursor(raw: Option<&str>) -> Result<Option<Uuid>, ApiError> {
    raw.map(|raw| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(raw.trim())
            .ok()
            .and_then(|b| Uuid::from_slice(&b).ok())
            .ok_or_else(|| ApiError::field("cursor", "is not a cursor from this endpoint"))
    })
    .transpose()
}

/// Cuts `rows` (loaded with `limit + 1`) to one page and gives the cursor
/// of the next one, if there is more.
pub fn uuid_page<T>(
    mut rows: Vec<T>,
    limit: i64,
    id: impl Fn(&T) -> Uuid,
) -> (Vec<T>, Option<String>) {
    let page = usize::try_from(limit).unwrap_or(0);
    let more = rows.len() > page;
    rows.truncate(page);
    let next = more
        .then(|| {
            rows.last().map(|row| {
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id(row).as_bytes())
            })
        })
        .flatten();
    (rows, next)
}

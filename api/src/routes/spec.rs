//! Pieces of the OpenAPI document that many operations share: the error
//! answers most of them can give, and the schemas of the values many
//! requests carry (currency codes, amounts, cursors, `Idempotency-Key`).
//! Each schema states exactly what the handlers accept, so a client (or
//! the contract test's fuzzer, tests/tests/e2e/contract.rs) that follows the
//! document is never refused for the shape of its request.

use std::collections::BTreeMap;

use utoipa::{
    IntoParams, IntoResponses,
    openapi::{
        ContentBuilder, ObjectBuilder, OneOfBuilder, Ref, RefOr, Response, ResponseBuilder, Schema,
        Type, header::HeaderBuilder,
    },
};

use crate::error::PROBLEM_JSON;

/// A problem+json answer.
fn problem(description: &str) -> RefOr<Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            PROBLEM_JSON,
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build(),
        )
        .build()
        .into()
}

/// A named set of problem answers, listed in an operation's `responses(...)`
/// before the operation's own (which replace a shared one of the same
/// status with a more precise description).
macro_rules! problems {
    ($(#[$doc:meta])* $name:ident { $($status:literal => $description:literal),+ $(,)? }) => {
        $(#[$doc])*
        pub struct $name;

        impl IntoResponses for $name {
            fn responses() -> BTreeMap<String, RefOr<Response>> {
                [$(($status.to_owned(), problem($description))),+].into_iter().collect()
            }
        }
    };
}

problems!(
    /// Every operation: the database or Redis is out of reach, or the
    /// request ran past `REQUEST_TIMEOUT_SECS` (nothing was changed).
    Unavailable {
        "503" => "PostgreSQL or Redis unreachable, or the request timed out; nothing was changed (`unavailable`)",
    }
);

problems!(
    /// Operations with a JSON body (`extract::ApiJson`).
    JsonBody {
        "400" => "Malformed JSON, a wrong type, an unknown or invalid field (`validation_failed`, `errors` names the fields)",
        "413" => "Body over MAX_BODY_BYTES (`payload_too_large`)",
        "415" => "No JSON Content-Type (`unsupported_media_type`)",
    }
);

problems!(
    /// Operations that need a signed-in caller, read-only.
    SignedIn {
        "401" => "No access token, or an invalid, expired or revoked one (`unauthenticated`)",
    }
);

problems!(
    /// State-changing operations that need a signed-in caller: a cookie
    /// without the CSRF proof is refused.
    SignedInWrite {
        "401" => "No access token, or an invalid, expired or revoked one (`unauthenticated`)",
        "403" => "Signed in by cookie without X-CSRF-Token equal to the bourse_csrf cookie (`forbidden`)",
    }
);

problems!(
    /// Administrators' operations that only read.
    AdminRead {
        "401" => "No access token, or an invalid, expired or revoked one (`unauthenticated`)",
        "403" => "Not an administrator (`forbidden`)",
    }
);

problems!(
    /// Administrators' operations that change state.
    AdminWrite {
        "401" => "No access token, or an invalid, expired or revoked one (`unauthenticated`)",
        "403" => "Not an administrator, or signed in by cookie without the CSRF proof (`forbidden`)",
    }
);

/// 429 `rate_limited`, with `Retry-After`.
pub struct RateLimited;

impl IntoResponses for RateLimited {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        let retry_after = HeaderBuilder::new()
            .schema(Some(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(1)),
            ))
            .description(Some("Seconds to wait before trying again"))
            .build();
        let response = ResponseBuilder::new()
            .description("Too many requests (`rate_limited`); retry after `Retry-After` seconds")
            .header("Retry-After", retry_after)
            .content(
                PROBLEM_JSON,
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("Problem")))
                    .build(),
            )
            .build();
        [("429".to_owned(), response.into())].into_iter().collect()
    }
}

/// The currencies Bourse holds (the `currencies` table's seed, checked
/// against the database by the contract test).
pub const FIAT: [&str; 3] = ["USD", "EUR", "KZT"];
pub const CRYPTO: [&str; 3] = ["BTC", "ETH", "SOL"];

/// A pattern matching any of `codes` in any letter case, as the handlers
/// upper-case codes before looking them up.
fn any_case(codes: &[&str]) -> String {
    let alternatives: Vec<String> = codes
        .iter()
        .map(|code| {
            code.chars()
                .map(|c| format!("[{}{}]", c.to_ascii_uppercase(), c.to_ascii_lowercase()))
                .collect()
        })
        .collect();
    format!("^(?:{})$", alternatives.join("|"))
}

fn code_schema(codes: &[&str], what: &str) -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(any_case(codes)))
        .description(Some(format!(
            "{what}: {} (any letter case)",
            codes.join(", ")
        )))
        .examples([codes[0]])
        .build()
        .into()
}

/// Any currency.
pub fn currency() -> Schema {
    let all: Vec<&str> = FIAT.iter().chain(CRYPTO.iter()).copied().collect();
    code_schema(&all, "A currency")
}

/// A crypto currency (orders and bets; a fiat one is 422
/// `currency_not_supported`).
pub fn crypto() -> Schema {
    code_schema(&CRYPTO, "A crypto currency")
}

/// A currency with a USD price (alerts): any but USD; `null` stands for
/// the default.
pub fn priced_or_null() -> Schema {
    let priced: Vec<&str> = CRYPTO.iter().chain(FIAT[1..].iter()).copied().collect();
    OneOfBuilder::new()
        .item(code_schema(&priced, "A currency priced in USD"))
        .item(ObjectBuilder::new().schema_type(Type::Null))
        .build()
        .into()
}

/// The largest amount accepted (`shared::money::MAX_AMOUNT`).
const MAX_AMOUNT: f64 = 1e15;

/// A decimal string with at most `places` decimal places, greater than
/// zero and at most `MAX_AMOUNT` (`shared::money::parse_amount`).
///
/// The pattern allows leading zeros and a few trailing ones, as the parser
/// does; `whole` caps the digits before the point so that every string it
/// allows fits a decimal exactly (at most 28 digits in all).
fn decimal_string(places: u32, whole: u32) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(format!(
            r"^(?=[0-9.]*[1-9])(?:0+|0*[1-9][0-9]{{0,{}}})(?:\.[0-9]{{1,{places}}}0{{0,10}})?$",
            whole - 1
        )))
}

/// The smallest JSON number the schema offers. Numbers are read from their
/// text and exponent notation is refused (`shared::money::AmountInput`),
/// but JSON encoders write numbers below 1e-4 with an exponent (`1e-05`):
/// smaller amounts are sent as strings. (A small number written out in
/// full is still accepted.)
const MIN_NUMBER: f64 = 1e-4;

/// An amount with at most `places` decimal places: a decimal string, or a
/// JSON number read from its text (see `shared::money::AmountInput`).
fn amount(places: u32, whole: u32, example: &str) -> Schema {
    let step = 10f64.powi(-i32::try_from(places).unwrap_or(0));
    let number = ObjectBuilder::new()
        .schema_type(Type::Number)
        .minimum(Some(step.max(MIN_NUMBER)))
        .maximum(Some(MAX_AMOUNT))
        .multiple_of(Some(step));
    OneOfBuilder::new()
        .item(decimal_string(places, whole).examples([example]))
        .item(number)
        .description(Some(format!(
            "Greater than zero, at most {MAX_AMOUNT:.0}, with at most {places} decimal places: a decimal string, or a JSON number (read from its text: exponent notation such as 1e-05 is refused, so send amounts below 0.0001 as strings)"
        )))
        .build()
        .into()
}

/// An amount in a query string (`/rates/convert`): a decimal string of any
/// currency (two places for fiat, eight for crypto; the schema states the
/// larger).
pub fn amount_text() -> Schema {
    decimal_string(8, 15).examples(["100.00"]).build().into()
}

/// An amount of a fiat currency (two places).
pub fn fiat_amount() -> Schema {
    amount(2, 15, "100.00")
}

/// An amount of any currency: fiat has two places and crypto eight; the
/// schema states the larger.
pub fn any_amount() -> Schema {
    amount(8, 15, "25.00")
}

/// An amount of a crypto currency (eight places).
pub fn crypto_amount() -> Schema {
    amount(8, 15, "0.015")
}

/// A price in USD (alerts' targets: eighteen places, so at most ten
/// digits before the point).
pub fn price() -> Schema {
    amount(18, 10, "50000")
}

/// A whole number from `min` to `max`, as a JSON number or a string of
/// digits (`digits` matches exactly those strings).
pub fn whole_number(min: u32, max: u32, digits: &str, example: u32) -> Schema {
    OneOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(min))
                .maximum(Some(max))
                .examples([example]),
        )
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(digits)),
        )
        .description(Some(format!(
            "{min} to {max}: a whole JSON number or a string of digits"
        )))
        .build()
        .into()
}

pub fn leverage() -> Schema {
    whole_number(1, 100, "^0*(?:[1-9][0-9]?|100)$", 5)
}

pub fn duration_seconds() -> Schema {
    whole_number(
        10,
        86_400,
        "^0*(?:[1-9][0-9]{1,3}|[1-7][0-9]{4}|8[0-5][0-9]{3}|86[0-3][0-9]{2}|86400)$",
        60,
    )
}

fn cursor(pattern: &str) -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(pattern))
        .description(Some("`next_cursor` of the previous page"))
        .build()
        .into()
}

/// The cursor of lists keyed by UUIDs (`pagination::uuid_cursor`): 16
/// bytes, base64url without padding. Every such string is a cursor.
pub fn uuid_cursor() -> Schema {
    cursor("^[A-Za-z0-9_-]{21}[AQgw]$")
}

/// The cursor of transaction histories: 8 bytes, base64url without
/// padding. Every such string is a cursor.
pub fn entry_cursor() -> Schema {
    cursor("^[A-Za-z0-9_-]{10}[AEIMQUYcgkosw048]$")
}

/// A named stand-in for a schema built by a function, for where utoipa
/// takes a type rather than a function (query parameters: `value_type =
/// X, inline` keeps their description and `required`, `schema_with` drops
/// them).
macro_rules! schema_type {
    ($(#[$doc:meta])* $name:ident => $schema:expr) => {
        $(#[$doc])*
        pub struct $name;

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
                $schema.into()
            }
        }

        impl utoipa::ToSchema for $name {}
    };
}
pub(crate) use schema_type;

schema_type!(CurrencyCode => currency());
schema_type!(AmountText => amount_text());
schema_type!(UuidCursor => uuid_cursor());
schema_type!(EntryCursor => entry_cursor());

/// `Idempotency-Key` of the money-moving POSTs (`idempotency::IdempotencyKey`).
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[expect(dead_code, reason = "documents the header `IdempotencyKey` reads")]
pub struct IdempotencyHeader {
    /// 1 to 255 visible ASCII characters. The same key with the same
    /// request within 24 hours replays the first answer (with
    /// `Idempotent-Replayed: true`) without moving money again; with
    /// another request it is 409.
    #[param(
        rename = "Idempotency-Key",
        pattern = "^[!-~]{1,255}$",
        nullable = false,
        example = "5f0c1e9a-transfer-1"
    )]
    key: Option<String>,
}

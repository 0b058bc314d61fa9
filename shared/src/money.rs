//! Money amounts: decimals, never floats. Requests may send an amount as a
//! JSON string or number; either way it must be positive, within the
//! currency's decimal places and not absurdly large, and it is taken
//! exactly as written or refused: never rounded, never read through a
//! float.

use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The largest amount accepted in any request.
pub const MAX_AMOUNT: i64 = 1_000_000_000_000_000;

/// The most one wallet may hold, in its currency's units: a deposit,
/// transfer or trade that would take a wallet past it is refused (422
/// `limit_exceeded`) and moves nothing. Bet payouts are exempt (the house
/// owes them), and the balance column holds up to 10^20, far past any
/// payout the stake limits allow. Enforced by `ledger_post` (migration
/// `2026-12-02-100000_security_hardening`), which uses the same number.
pub const WALLET_BALANCE_CAP: i64 = 1_000_000_000_000_000;

/// The most decimal places any amount may be written with: what a decimal
/// holds exactly.
pub const MAX_WRITTEN_DECIMALS: usize = 28;

const NOT_A_NUMBER: &str = "must be a positive decimal number such as 12.50";

/// Parses an amount for a currency with `decimals` places.
///
/// The text is checked before it becomes a decimal, because the decimal
/// type rounds what it cannot hold: more than 28 decimal places, or more
/// significant digits than it has, would silently become another amount.
pub fn parse_amount(raw: &str, decimals: u32) -> Result<Decimal, String> {
    let text = raw.trim();
    if text.is_empty()
        || !text.chars().all(|c| c.is_ascii_digit() || c == '.')
        || text.starts_with('.')
        || text.ends_with('.')
        || text.matches('.').count() > 1
    {
        return Err(NOT_A_NUMBER.into());
    }
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let whole = whole.trim_start_matches('0');
    let significant_fraction = fraction.trim_end_matches('0');
    if fraction.len() > MAX_WRITTEN_DECIMALS {
        return Err(format!(
            "has more than {MAX_WRITTEN_DECIMALS} decimal places"
        ));
    }
    if significant_fraction.len() > decimals as usize {
        return Err(format!("has more than {decimals} decimal places"));
    }
    // Longer than MAX_AMOUNT's digits: too large, whatever follows.
    if whole.len() > MAX_AMOUNT.to_string().len() {
        return Err(format!("must be at most {MAX_AMOUNT}"));
    }
    let amount = Decimal::from_str(text).map_err(|_| NOT_A_NUMBER.to_owned())?;
    // The decimal must say exactly what was written (no digit rounded off).
    let written = if significant_fraction.is_empty() {
        if whole.is_empty() { "0" } else { whole }.to_owned()
    } else {
        format!(
            "{}.{significant_fraction}",
            if whole.is_empty() { "0" } else { whole }
        )
    };
    if amount.normalize().to_string() != written {
        return Err("has more significant digits than an amount can hold exactly".into());
    }
    if amount <= Decimal::ZERO {
        return Err("must be greater than zero".into());
    }
    if amount > Decimal::from(MAX_AMOUNT) {
        return Err(format!("must be at most {MAX_AMOUNT}"));
    }
    Ok(amount)
}

/// An amount field of a request body exactly as the client wrote it: a
/// JSON string, or a JSON number kept as its text (never through a float,
/// which would turn `0.1000000000000000055511151231257827` into `0.1`).
#[derive(Debug, Clone)]
pub struct AmountInput(Box<serde_json::value::RawValue>);

impl<'de> Deserialize<'de> for AmountInput {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Box::<serde_json::value::RawValue>::deserialize(deserializer).map(AmountInput)
    }
}

impl Serialize for AmountInput {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl AmountInput {
    /// The raw JSON text (tests).
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::value::RawValue::from_string(text.to_owned()).map(AmountInput)
    }

    /// Parses it for a currency with `decimals` places.
    pub fn parse(&self, decimals: u32) -> Result<Decimal, String> {
        let text = self.0.get().trim();
        match text.as_bytes().first() {
            Some(b'"') => serde_json::from_str::<String>(text)
                .map_err(|_| NOT_A_NUMBER.to_owned())
                .and_then(|s| parse_amount(&s, decimals)),
            Some(b'0'..=b'9') => parse_amount(text, decimals),
            Some(b'-') => Err("must be greater than zero".into()),
            _ => Err("must be a string or a number".into()),
        }
    }
}

/// Parses an amount given as a JSON string or number. Numbers are read from
/// their text, so `0.1` is exactly one tenth.
pub fn parse_json_amount(value: &AmountInput, decimals: u32) -> Result<Decimal, String> {
    value.parse(decimals)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts() {
        assert_eq!(parse_amount("12.50", 2).unwrap().to_string(), "12.50");
        let json = |text: &str| parse_json_amount(&AmountInput::from_json(text).unwrap(), 2);
        assert_eq!(json("0.1").unwrap().to_string(), "0.1");
        assert_eq!(json("\"12.50\"").unwrap().to_string(), "12.50");
        assert_eq!(json("12.500").unwrap().to_string(), "12.500");
        // A number with more digits than a float keeps is refused, not
        // read as 0.1; so is one past 28 decimals, or past 2 here.
        assert!(json("0.1000000000000000055511151231257827").is_err());
        assert!(json("-1").is_err());
        assert!(json("1e3").is_err());
        assert!(json("true").is_err());
        assert!(json("null").is_err());
        assert_eq!(
            parse_amount("0.00000001", 8).unwrap().to_string(),
            "0.00000001"
        );
        for bad in [
            "0",
            "-1",
            "1.005",
            "abc",
            "",
            "1e3",
            " .5",
            "1.",
            "1000000000000000001",
            "NaN",
            "1.2.3",
            "1.00000000000000000000000000001",
        ] {
            assert!(parse_amount(bad, 2).is_err(), "{bad:?}");
        }
        // Rounding would make these other amounts; refused instead.
        assert!(parse_amount("1.00000000000000000000000000001", 28).is_err());
        assert!(parse_amount("1.0000000000000000000000000000000", 8).is_err());
        assert!(parse_amount("123456789012345678.123456789012345678", 18).is_err());
        // Exact ones of any size within the limits pass, leading zeros too.
        assert_eq!(
            parse_amount("100000000000001", 0).unwrap().to_string(),
            "100000000000001"
        );
        assert_eq!(parse_amount("0012.50", 2).unwrap().to_string(), "12.50");
        assert_eq!(
            parse_amount("0.000000000000000001", 18)
                .unwrap()
                .to_string(),
            "0.000000000000000001"
        );
    }
}

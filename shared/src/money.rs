//! Money amounts: decimals, never floats. Requests may send an amount as a
//! JSON string or number; either way it must be positive, within the
//! currency's decimal places and not absurdly large.

use std::str::FromStr;

use rust_decimal::Decimal;

/// The largest amount accepted in any request.
pub const MAX_AMOUNT: i64 = 1_000_000_000_000_000;

/// Parses an amount for a currency with `decimals` places.
pub fn parse_amount(raw: &str, decimals: u32) -> Result<Decimal, String> {
    let text = raw.trim();
    if text.is_empty()
        || !text.chars().all(|c| c.is_ascii_digit() || c == '.')
        || text.starts_with('.')
        || text.ends_with('.')
    {
        return Err("must be a positive decimal number such as 12.50".into());
    }
    let amount = Decimal::from_str(text)
        .map_err(|_| "must be a positive decimal number such as 12.50".to_owned())?;
    if amount <= Decimal::ZERO {
        return Err("must be greater than zero".into());
    }
    if amount > Decimal::from(MAX_AMOUNT) {
        return Err(format!("must be at most {MAX_AMOUNT}"));
    }
    if amount.normalize().scale() > decimals {
        return Err(format!("has more than {decimals} decimal places"));
    }
    Ok(amount)
}

/// Parses an amount given as a JSON string or number. Numbers are read from
/// their text, so `0.1` is exactly one tenth.
pub fn parse_json_amount(value: &serde_json::Value, decimals: u32) -> Result<Decimal, String> {
    match value {
        serde_json::Value::String(s) => parse_amount(s, decimals),
        serde_json::Value::Number(n) => parse_amount(&n.to_string(), decimals),
        _ => Err("must be a string or a number".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts() {
        assert_eq!(parse_amount("12.50", 2).unwrap().to_string(), "12.50");
        assert_eq!(
            parse_json_amount(&serde_json::json!(0.1), 2)
                .unwrap()
                .to_string(),
            "0.1"
        );
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
        ] {
            assert!(parse_amount(bad, 2).is_err(), "{bad:?}");
        }
        assert!(parse_json_amount(&serde_json::json!(true), 2).is_err());
    }
}

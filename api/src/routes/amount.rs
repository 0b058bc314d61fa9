//! How the API writes amounts: every answer that shows money (wallets,
//! movements, orders, bets) goes through [`money`], so an amount reads the
//! same everywhere.

/// An amount as a string with exactly the currency's decimal places
/// (`"12.50"`). Wallets only ever hold amounts within those places.
pub(crate) fn money(amount: rust_decimal::Decimal, decimals: i16) -> String {
    let places = u32::try_from(decimals).unwrap_or(2);
    let mut shown = amount.round_dp_with_strategy(places, rust_decimal::RoundingStrategy::ToZero);
    shown.rescale(places);
    shown.to_string()
}

#[cfg(test)]
mod tests {
    use rust_decimal::Decimal;

    use super::money;

    #[test]
    fn amounts_show_exactly_the_currency_places_rounded_down() {
        assert_eq!(money(Decimal::new(125, 1), 2), "12.50");
        assert_eq!(money(Decimal::new(129_999, 4), 2), "12.99");
        assert_eq!(money(Decimal::new(1, 8), 8), "0.00000001");
        assert_eq!(money(Decimal::from(7), 0), "7");
    }
}

use chrono::{DateTime, Utc};
use diesel_async::AsyncPgConnection;
use rust_decimal::{Decimal, RoundingStrategy};
use uuid::Uuid;

use super::{Wallet, WalletError};
use crate::{
    config::RatesConfig,
    ledger::{self, Movement, Posted, SystemAccount, TxKind},
    rates,
    webhooks::{self, EventType, payloads::TransferReceived},
};

/// What a movement did, for the response.
#[derive(Debug, Clone)]
pub struct Receipt {
    pub transaction_id: Uuid,
    pub wallet: Wallet,
    /// For transfers: what the payee received, in its currency, and the
    /// rate used (units of the payee's currency per unit of the payer's).
    pub credited: Option<(Decimal, String)>,
    /// Decimal places of the credited currency.
    pub credited_decimals: i16,
    pub rate: Option<Decimal>,
    pub counterparty_number: Option<String>,
    pub created_at: DateTime<Utc>,
}

fn fiat_only(wallet: &Wallet) -> Result<(), WalletError> {
    if wallet.is_fiat() {
        Ok(())
    } else {
        Err(WalletError::CurrencyNotSupported(wallet.currency.clone()))
    }
}

/// The receipt of a posted movement, with `wallet` at its new balance.
fn receipt(mut wallet: Wallet, posted: &Posted) -> Receipt {
    if let Some(balance) = posted.balances.get(&wallet.id) {
        wallet.balance = *balance;
    }
    Receipt {
        transaction_id: posted.id,
        wallet,
        credited: None,
        credited_decimals: 0,
        rate: None,
        counterparty_number: None,
        created_at: posted.created_at,
    }
}

/// Adds money from outside (a card top-up) to `wallet` (fiat only), on
/// behalf of its owner `user_id`. `wallet` is the owner's wallet as just
/// read: its balance and status are read again under lock.
pub async fn deposit(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    wallet: Wallet,
    amount: Decimal,
) -> Result<Receipt, WalletError> {
    fiat_only(&wallet)?;
    let outside = ledger::system_account(conn, SystemAccount::Outside, &wallet.currency).await?;
    let mut movement = Movement::new(TxKind::Deposit)
        .posting(outside, &wallet.currency, -amount)
        .posting(wallet.id, &wallet.currency, amount);
    movement.to_wallet = Some(wallet.id);
    movement.to_amount = Some(amount);
    movement.to_currency = Some(wallet.currency.clone());
    movement.created_by = Some(user_id);
    let posted = ledger::post(conn, movement).await?;
    Ok(receipt(wallet, &posted))
}

/// Pays money out of `wallet` (fiat only; a card payout). A blocked wallet
/// cannot.
pub async fn withdraw(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    wallet: Wallet,
    amount: Decimal,
) -> Result<Receipt, WalletError> {
    fiat_only(&wallet)?;
    let outside = ledger::system_account(conn, SystemAccount::Outside, &wallet.currency).await?;
    let mut movement = Movement::new(TxKind::Withdrawal)
        .posting(wallet.id, &wallet.currency, -amount)
        .posting(outside, &wallet.currency, amount);
    movement.from_wallet = Some(wallet.id);
    movement.from_amount = Some(amount);
    movement.from_currency = Some(wallet.currency.clone());
    movement.created_by = Some(user_id);
    let posted = ledger::post(conn, movement).await?;
    Ok(receipt(wallet, &posted))
}

/// Pays `amount` from the user's wallet `from` to the wallet `to`
/// (anyone's), both as just read: balances and statuses are read again
/// under lock. Across currencies the payee receives the amount
/// converted at fresh prices and rounded down to its currency's places; the
/// exchange account takes the payer's currency and pays the payee's, and
/// the rounding remainder goes to the house, so every currency balances
/// exactly. The rate used is stored with the transaction.
pub async fn transfer(
    conn: &mut AsyncPgConnection,
    rates_config: &RatesConfig,
    user_id: Uuid,
    from: Wallet,
    to: Wallet,
    amount: Decimal,
    now: DateTime<Utc>,
) -> Result<Receipt, WalletError> {
    if from.id == to.id {
        return Err(WalletError::SameWallet);
    }
    let mut movement = Movement::new(TxKind::Transfer);
    let (credited, rate) = if from.currency == to.currency {
        movement =
            movement
                .posting(from.id, &from.currency, -amount)
                .posting(to.id, &to.currency, amount);
        (amount, None)
    } else {
        let quote = rates::convert(
            conn,
            rates_config,
            &from.currency,
            &to.currency,
            amount,
            now,
        )
        .await?;
        // The exact value, to the ledger's 18 places; the payee gets it
        // rounded down to the currency's places, the house the rest.
        let exact = (amount * quote.from_price_usd / quote.to_price_usd)
            .round_dp_with_strategy(18, RoundingStrategy::ToZero);
        let credited = quote.converted;
        let remainder = exact - credited;
        if credited.is_zero() {
            return Err(WalletError::InvalidAmount(format!(
                "{amount} {} is worth less than the smallest {} amount",
                from.currency, to.currency
            )));
        }
        let exchange_from =
            ledger::system_account(conn, SystemAccount::Exchange, &from.currency).await?;
        let exchange_to =
            ledger::system_account(conn, SystemAccount::Exchange, &to.currency).await?;
        movement = movement
            .posting(from.id, &from.currency, -amount)
            .posting(exchange_from, &from.currency, amount)
            .posting(exchange_to, &to.currency, -exact)
            .posting(to.id, &to.currency, credited);
        if !remainder.is_zero() {
            let house = ledger::system_account(conn, SystemAccount::House, &to.currency).await?;
            movement = movement.posting(house, &to.currency, remainder);
        }
        (credited, Some(quote.rate))
    };
    movement.from_wallet = Some(from.id);
    movement.to_wallet = Some(to.id);
    let to_number = to.wallet_number.clone();
    let to_decimals = to.decimals;
    let payee = (to.user_id, to.id, from.wallet_number.clone());
    movement.from_amount = Some(amount);
    movement.from_currency = Some(from.currency.clone());
    movement.to_amount = Some(credited);
    movement.to_currency = Some(to.currency.clone());
    movement.rate = rate;
    movement.created_by = Some(user_id);
    let posted = ledger::post(conn, movement).await?;
    // The payee hears of it (not the payer, between their own wallets).
    if payee.0 != user_id {
        let event = TransferReceived {
            wallet_id: payee.1,
            transaction_id: posted.id,
            amount: credited
                .round_dp(u32::try_from(to_decimals).unwrap_or(0))
                .to_string(),
            currency: to.currency.clone(),
            from_wallet_number: payee.2,
        };
        webhooks::events::emit(conn, EventType::TransferReceived, &[(payee.0, event)]).await?;
    }
    let mut done = receipt(from, &posted);
    done.credited = Some((credited, to.currency));
    done.credited_decimals = to_decimals;
    done.rate = rate;
    done.counterparty_number = Some(to_number);
    Ok(done)
}

//! A property test: random sequences of deposits, withdrawals and transfers
//! (same currency and converted) run against the real ledger and against a
//! tiny in-memory model must agree on every outcome and final balance, and
//! the ledger check must stay green.

use chrono::Utc;
use diesel_async::RunQueryDsl;
use harness::TestDb;
use proptest::{
    prelude::*,
    test_runner::{Config as ProptestConfig, TestRunner},
};
use rust_decimal::Decimal;
use shared::{
    config::Config,
    db::DbPool,
    wallets::{self, WalletError},
};
use uuid::Uuid;

#[derive(Debug, Clone)]
enum Op {
    Deposit(usize, i64),
    Withdraw(usize, i64),
    Transfer(usize, usize, i64),
}

/// Wallets 0 and 1 belong to one user (USD, EUR), 2 and 3 to another.
const CURRENCIES: [&str; 4] = ["USD", "EUR", "USD", "EUR"];

fn op() -> impl Strategy<Value = Op> {
    let cents = 1i64..=40_000;
    prop_oneof![
        (0usize..4, cents.clone()).prop_map(|(w, c)| Op::Deposit(w, c)),
        (0usize..4, cents.clone()).prop_map(|(w, c)| Op::Withdraw(w, c)),
        (0usize..4, 0usize..4, cents).prop_map(|(a, b, c)| Op::Transfer(a, b, c)),
    ]
}

#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Done,
    Insufficient,
    Same,
}

/// The model: balances in cents. USD = 1, EUR = 1.25 USD; a conversion
/// credits the value rounded down to the cent.
struct Model {
    cents: [i64; 4],
}

impl Model {
    fn apply(&mut self, op: &Op) -> Outcome {
        match *op {
            Op::Deposit(w, c) => {
                self.cents[w] += c;
                Outcome::Done
            }
            Op::Withdraw(w, c) => {
                if self.cents[w] < c {
                    return Outcome::Insufficient;
                }
                self.cents[w] -= c;
                Outcome::Done
            }
            Op::Transfer(from, to, c) => {
                if from == to {
                    return Outcome::Same;
                }
                if self.cents[from] < c {
                    return Outcome::Insufficient;
                }
                let credited = match (CURRENCIES[from], CURRENCIES[to]) {
                    (a, b) if a == b => c,
                    ("USD", "EUR") => c * 4 / 5,
                    _ => c * 5 / 4,
                };
                if credited == 0 {
                    // Too small to convert: refused before moving anything.
                    return Outcome::Same;
                }
                self.cents[from] -= c;
                self.cents[to] += credited;
                Outcome::Done
            }
        }
    }
}

async fn user(pool: &DbPool) -> Uuid {
    let id = Uuid::new_v4();
    let mut conn = pool.get().await.unwrap();
    diesel::sql_query(format!(
        "INSERT INTO users (id, username, email, password_hash, email_verified_at)
         VALUES ('{id}', 'u{}', 'u{}@example.com', 'x', now())",
        &id.simple().to_string()[..12],
        id.simple()
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    id
}

fn cents(amount: i64) -> Decimal {
    Decimal::new(amount, 2)
}

#[test]
fn random_operations_agree_with_a_simple_model() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (db, pool, config) = runtime.block_on(async {
        let db = TestDb::new().await;
        let config =
            Config::from_map([("DATABASE_URL".to_owned(), db.url.clone())].into()).unwrap();
        let pool = shared::db::pool(&config.database, "ledger-model").unwrap();
        (db, pool, config)
    });
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 24,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let result = runner.run(&proptest::collection::vec(op(), 1..40), |ops| {
        runtime.block_on(async {
            let mut conn = pool.get().await.unwrap();
            diesel::sql_query(
                "INSERT INTO price_history (symbol, price_usd, source, observed_at)
                 VALUES ('USD', 1, 'test', now()), ('EUR', 1.25, 'test', now())",
            )
            .execute(&mut conn)
            .await
            .unwrap();
            let owners = [user(&pool).await, user(&pool).await];
            let mut ids = Vec::new();
            for (i, currency) in CURRENCIES.iter().enumerate() {
                let wallet = wallets::create(&mut conn, owners[i / 2], currency, None)
                    .await
                    .unwrap();
                ids.push(wallet);
            }
            let mut model = Model { cents: [0; 4] };
            for op in &ops {
                let expected = model.apply(op);
                let result = match *op {
                    Op::Deposit(w, c) => {
                        wallets::deposit(&mut conn, owners[w / 2], ids[w].clone(), cents(c)).await
                    }
                    Op::Withdraw(w, c) => {
                        wallets::withdraw(&mut conn, owners[w / 2], ids[w].clone(), cents(c)).await
                    }
                    Op::Transfer(a, b, c) => {
                        wallets::transfer(
                            &mut conn,
                            &config.rates,
                            owners[a / 2],
                            ids[a].clone(),
                            ids[b].clone(),
                            cents(c),
                            Utc::now(),
                        )
                        .await
                    }
                };
                let got = match result {
                    Ok(_) => Outcome::Done,
                    Err(WalletError::InsufficientFunds) => Outcome::Insufficient,
                    Err(WalletError::SameWallet | WalletError::InvalidAmount(_)) => Outcome::Same,
                    Err(other) => panic!("{op:?}: unexpected {other}"),
                };
                prop_assert_eq!(got, expected, "{:?}", op);
            }
            for (i, wallet) in ids.iter().enumerate() {
                let now = wallets::get(&mut conn, owners[i / 2], wallet.id)
                    .await
                    .unwrap()
                    .unwrap();
                prop_assert_eq!(now.balance, cents(model.cents[i]), "wallet {}", i);
            }
            let report = shared::ledger::check(&mut conn).await.unwrap();
            prop_assert!(report.ok, "{:?}", report);
            Ok(())
        })
    });
    drop(pool);
    drop(db);
    if let Err(failure) = result {
        panic!("{failure}");
    }
}

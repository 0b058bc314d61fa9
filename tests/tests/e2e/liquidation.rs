//! Liquidation (PRODUCT.md §7, ISSUE 22): the liquidation price fixed at
//! placement; an observation reaching it closes the bet at a total loss,
//! up and down, exactly at the price too; never a bet that was already due;
//! a liquidation racing the expiry settlement ends the bet once; the email;
//! the ledger.

use diesel::{prelude::*, sql_types};
use diesel_async::RunQueryDsl;
use harness::eventually;
use serde_json::{Value, json};
use uuid::Uuid;

use super::bets::{
    WAIT, bet, bettor, builder, ledger_ok, payouts, post, usd, wait_due, wait_settled,
};

fn placed(symbol: &str, direction: &str, leverage: u32, seconds: u32) -> Value {
    json!({ "symbol": symbol, "direction": direction, "stake": "10.00", "leverage": leverage, "duration_seconds": seconds })
}

async fn place(app: &harness::TestApp, session: &harness::session::Session, body: Value) -> Value {
    let reply = post(app, session, "/api/v1/bets", body).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    reply.body
}

fn id(bet: &Value) -> String {
    bet["id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_observation_reaching_the_liquidation_price_closes_the_bet_at_a_total_loss() {
    let app = builder().start().await;
    app.set_prices(&[("BTC", "100")]).await;
    let ada = bettor(&app, "ada").await;

    let up10 = place(&app, &ada, placed("BTC", "up", 10, 3600)).await;
    let down10 = place(&app, &ada, placed("BTC", "down", 10, 3600)).await;
    let up4 = place(&app, &ada, placed("BTC", "up", 4, 3600)).await;
    let up1 = place(&app, &ada, placed("BTC", "up", 1, 3600)).await;
    // Fixed at placement: start × (1 ∓ 1/leverage).
    assert_eq!(up10["liquidation_price"], "90");
    assert_eq!(down10["liquidation_price"], "110");
    assert_eq!(up4["liquidation_price"], "75");
    assert_eq!(up1["liquidation_price"], "0");
    assert_eq!(up10["liquidated"], false);
    assert_eq!(bet(&app, &ada, &id(&up10)).await["liquidation_price"], "90");
    assert_eq!(usd(&app, &ada).await, "960.00");

    // Exactly at `up`'s liquidation price: it closes there; the others
    // stay open.
    let at = app.observe(&[("BTC", "90")], true).await;
    let closed = wait_settled(&app, &ada, &id(&up10)).await;
    assert_eq!(closed["status"], "settled");
    assert_eq!(closed["result"], "L");
    assert_eq!(closed["liquidated"], true);
    assert_eq!(closed["end_price"], "90");
    assert_eq!(closed["payout"], "0.00");
    assert_eq!(closed["profit"], "-10.00");
    let settled_at: chrono::DateTime<chrono::Utc> =
        closed["settled_at"].as_str().unwrap().parse().unwrap();
    assert!(settled_at >= at);
    for open in [&down10, &up4, &up1] {
        assert_eq!(bet(&app, &ada, &id(open)).await["status"], "open");
    }
    let mail = eventually("the liquidation email", WAIT, || async {
        app.smtp
            .mails_to("ada@example.com")
            .into_iter()
            .find(|m| m.subject().contains("liquidated"))
    })
    .await;
    assert_eq!(
        mail.subject(),
        "Your BTC bet was liquidated at 90 USD: -10.00 USD"
    );
    assert!(mail.decoded().contains("liquidation price of 90 USD"));

    // Past `down`'s: it closes at the observed price.
    app.observe(&[("BTC", "110.5")], true).await;
    let closed = wait_settled(&app, &ada, &id(&down10)).await;
    assert_eq!(closed["liquidated"], true);
    assert_eq!(closed["end_price"], "110.5");
    assert_eq!(closed["payout"], "0.00");
    // Nothing moves money but the stakes, which went to the house; the
    // bets not reached stay open.
    assert_eq!(bet(&app, &ada, &id(&up4)).await["status"], "open");
    assert_eq!(bet(&app, &ada, &id(&up1)).await["status"], "open");
    assert_eq!(usd(&app, &ada).await, "960.00");
    assert_eq!(payouts(&app, &id(&up10)).await, 2);

    // The same observation again (a duplicate job) closes nothing more.
    let mut conn = app.conn().await;
    let again = shared::bets::liquidate(&mut conn, at, &["BTC".to_owned()], 100)
        .await
        .unwrap();
    assert!(again.bets.is_empty(), "{again:?}");
    assert_eq!(payouts(&app, &id(&up10)).await, 2);
    ledger_ok(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bet_already_due_is_not_liquidated_by_a_later_observation() {
    let mut app = builder().start().await;
    app.set_prices(&[("BTC", "100")]).await;
    let ada = bettor(&app, "ada").await;
    app.stop_workers().await;
    let due = place(&app, &ada, placed("BTC", "up", 10, 10)).await;
    wait_due(&app, &id(&due)).await;
    // Observed after `settles_at`, announced, with no worker running.
    let late = app.observe(&[("BTC", "50")], true).await;
    let mut conn = app.conn().await;
    let found = shared::bets::liquidate(&mut conn, late, &["BTC".to_owned()], 100)
        .await
        .unwrap();
    assert!(found.bets.is_empty(), "{found:?}");
    app.start_worker().await;
    // Settled at the price in force at `settles_at`: no move, a draw.
    let settled = wait_settled(&app, &ada, &id(&due)).await;
    assert_eq!(settled["liquidated"], false);
    assert_eq!(settled["result"], "D");
    assert_eq!(settled["end_price"], "100");
    assert_eq!(usd(&app, &ada).await, "1000.00");
    ledger_ok(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn liquidation_racing_the_expiry_settlement_ends_the_bet_once() {
    let mut app = builder().start().await;
    app.set_prices(&[("BTC", "100")]).await;
    let ada = bettor(&app, "ada").await;
    app.stop_workers().await;
    let racing = place(&app, &ada, placed("BTC", "down", 20, 10)).await;
    let missed = place(&app, &ada, placed("BTC", "up", 20, 10)).await;
    // Reached (≥ 105) before `settles_at`, but its job has not run: the
    // observation is not announced. Then the price comes back.
    let crossed = app.observe(&[("BTC", "106")], false).await;
    app.set_prices(&[("BTC", "100")]).await;
    wait_due(&app, &id(&racing)).await;
    let bet_id = Uuid::parse_str(&id(&racing)).unwrap();

    // The expiry settlement and the liquidation, at once, on two
    // connections: whichever locks the bet first ends it, at the crossing.
    let rates = app.config.rates.clone();
    let (mut a, mut b) = (app.conn().await, app.conn().await);
    let btc = ["BTC".to_owned()];
    let (settled, liquidated) = tokio::join!(
        shared::bets::settle(&mut a, &rates, bet_id),
        shared::bets::liquidate(&mut b, crossed, &btc, 100),
    );
    settled.unwrap();
    liquidated.unwrap();
    // Whatever the order, a settlement job finds it ended.
    let again = shared::bets::settle(&mut a, &rates, bet_id).await.unwrap();
    assert_eq!(again, shared::bets::Settled::AlreadySettled);

    let ended = bet(&app, &ada, &id(&racing)).await;
    assert_eq!(ended["status"], "settled");
    assert_eq!(ended["liquidated"], true);
    assert_eq!(ended["end_price"], "106");
    assert_eq!(ended["payout"], "0.00");
    // One payout transaction per bet of ada's: this one and none other yet.
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = sql_types::BigInt)]
        n: i64,
    }
    let count: Count = diesel::sql_query(
        "SELECT count(*) AS n FROM ledger_transactions t JOIN bets b ON b.payout_transaction_id = t.id
         WHERE b.id = $1",
    )
    .bind::<sql_types::Uuid, _>(bet_id)
    .get_result(&mut a)
    .await
    .unwrap();
    assert_eq!(count.n, 1);
    assert_eq!(payouts(&app, &id(&racing)).await, 1);

    // The `up` bet was not reached and settles at expiry as usual.
    app.start_worker().await;
    let other = wait_settled(&app, &ada, &id(&missed)).await;
    assert_eq!(other["liquidated"], false);
    assert_eq!(other["result"], "D");
    ledger_ok(&app).await;
}

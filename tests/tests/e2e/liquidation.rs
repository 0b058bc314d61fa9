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

/// Places `count` bets of 1 USD on BTC `up` for ada through the shared
/// code (the API would take a request each).
async fn place_many(app: &harness::TestApp, count: usize, leverage: u32) {
    #[derive(QueryableByName)]
    struct Id {
        #[diesel(sql_type = sql_types::Uuid)]
        id: Uuid,
    }
    let mut conn = app.conn().await;
    let ada: Id = diesel::sql_query("SELECT id FROM users WHERE username = 'ada'")
        .get_result(&mut conn)
        .await
        .unwrap();
    for _ in 0..count {
        shared::bets::place(
            &mut conn,
            &app.config.rates,
            &app.config.bets,
            shared::bets::PlaceBet {
                user_id: ada.id,
                symbol: "BTC".into(),
                direction: shared::bets::Direction::Up,
                stake: rust_decimal::Decimal::ONE,
                leverage,
                duration_seconds: 3600,
            },
        )
        .await
        .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crossing_larger_than_a_batch_liquidates_every_bet_once() {
    let app = builder()
        .env("BET_LIQUIDATION_BATCH_SIZE", 40)
        .env("BET_MAX_OPEN_BETS", 1000)
        .env("JOB_TIMEOUT_SECS", 1)
        .start()
        .await;
    app.set_prices(&[("BTC", "100")]).await;
    let _ada = bettor(&app, "ada").await;
    // 300 bets liquidated at 90 (×10) and 100 at 50 (×2).
    place_many(&app, 300, 10).await;
    place_many(&app, 100, 2).await;
    // A crash to 85: 300 bets in batches of 40, in continuation jobs.
    let crash = app.observe(&[("BTC", "85")], true).await;
    eventually("every reached bet liquidated", WAIT, || async {
        (app.count("SELECT count(*) AS n FROM bets WHERE liquidated")
            .await
            == 300)
            .then_some(())
    })
    .await;
    eventually("one email per liquidated bet", WAIT, || async {
        // (nothing else settles here; a sent email's variables are erased)
        (app.count("SELECT count(*) AS n FROM emails WHERE template = 'bet_settled'")
            .await
            == 300)
            .then_some(())
    })
    .await;
    let queues = app.queues();
    eventually("the observation's jobs done", WAIT, || async {
        let counts = queues.counts(shared::jobs::Queue::PriceAlert).await.ok()?;
        (counts.pending + counts.running == 0 && counts.dead == 0).then_some(())
    })
    .await;
    assert_eq!(
        app.count("SELECT count(*) AS n FROM bets WHERE status = 'open' AND leverage = 2")
            .await,
        100
    );
    // Each transaction liquidated at most a batch.
    let largest = app
        .count(
            "SELECT coalesce(max(n), 0) AS n FROM (
                 SELECT count(*) AS n FROM bets WHERE liquidated
                 GROUP BY xmin::text::bigint) t",
        )
        .await;
    assert!(largest <= 40, "one transaction liquidated {largest}");
    // The observation is evaluated: off the list the settlements search.
    assert_eq!(pending(&app, crash).await, 0);
    // The house's open notional is what the open bets hold: 100 × 1 × 2.
    assert_eq!(
        app.count(
            "SELECT open_notional::bigint AS n FROM bet_exposure
             WHERE symbol = 'BTC' AND direction = 'up'"
        )
        .await,
        200
    );
    ledger_ok(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_liquidation_waits_for_a_settlement_holding_the_bet_that_then_rolls_back() {
    let mut app = builder().start().await;
    app.set_prices(&[("BTC", "100")]).await;
    let ada = bettor(&app, "ada").await;
    app.stop_workers().await;
    let held = place(&app, &ada, placed("BTC", "up", 10, 3600)).await;
    let bet_id = Uuid::parse_str(&id(&held)).unwrap();
    let crash = app.observe(&[("BTC", "80")], false).await;
    assert_eq!(pending(&app, crash).await, 1);

    // A settlement's transaction holds the bet (as one that is about to
    // crash would); the liquidation must wait for it, not pass it over:
    // once the liquidation is done, no settlement searches this
    // observation again.
    let mut holder = app.conn().await;
    diesel::sql_query("BEGIN")
        .execute(&mut holder)
        .await
        .unwrap();
    diesel::sql_query("SELECT id FROM bets WHERE id = $1 FOR UPDATE")
        .bind::<sql_types::Uuid, _>(bet_id)
        .execute(&mut holder)
        .await
        .unwrap();
    let mut conn = app.conn().await;
    let btc = ["BTC".to_owned()];
    let liquidation = tokio::spawn(async move {
        shared::bets::liquidate(&mut conn, crash, &btc, 100)
            .await
            .map(|l| l.bets.len())
    });
    eventually(
        "the liquidation waiting for the bet's lock",
        WAIT,
        || async {
            (app.count(
            "SELECT count(*) AS n FROM pg_locks WHERE locktype = 'transactionid' AND NOT granted",
        )
        .await
            > 0)
        .then_some(())
        },
    )
    .await;
    diesel::sql_query("ROLLBACK")
        .execute(&mut holder)
        .await
        .unwrap();
    assert_eq!(liquidation.await.unwrap().unwrap(), 1);
    let ended = bet(&app, &ada, &id(&held)).await;
    assert_eq!(ended["liquidated"], true);
    assert_eq!(ended["end_price"], "80");
    assert_eq!(pending(&app, crash).await, 0);
    ledger_ok(&app).await;
}

/// How many of `at`'s observations still wait for their liquidation job.
async fn pending(app: &harness::TestApp, at: chrono::DateTime<chrono::Utc>) -> i64 {
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = sql_types::BigInt)]
        n: i64,
    }
    let mut conn = app.conn().await;
    let pending: Count =
        diesel::sql_query("SELECT count(*) AS n FROM liquidation_pending WHERE observed_at = $1")
            .bind::<sql_types::Timestamptz, _>(at)
            .get_result(&mut conn)
            .await
            .unwrap();
    pending.n
}

//! Bet limits (PRODUCT.md §7, ISSUE 22): open bets and open stake per user,
//! and the house's open notional (stake × leverage) per symbol and
//! direction; beyond them 422 `limit_exceeded`, with no money moved. They
//! hold under concurrent placements, and a bet that ends frees its share.

use diesel::{prelude::*, sql_types};
use diesel_async::RunQueryDsl;
use serde_json::{Value, json};

use super::bets::{bet, bettor, builder, ledger_ok, post, usd, wait_settled};

fn body(direction: &str, stake: &str, leverage: u32) -> Value {
    json!({ "symbol": "BTC", "direction": direction, "stake": stake, "leverage": leverage, "duration_seconds": 3600 })
}

/// `bet_exposure` agrees with the open bets it counts.
pub(crate) async fn exposure_matches_open_bets(app: &harness::TestApp) {
    #[derive(QueryableByName, Debug)]
    struct Mismatch {
        #[diesel(sql_type = sql_types::Text)]
        symbol: String,
    }
    let mut conn = app.conn().await;
    let wrong: Vec<Mismatch> = diesel::sql_query(
        "SELECT coalesce(e.symbol, o.symbol) AS symbol
         FROM bet_exposure e
         FULL JOIN (SELECT symbol, direction, sum(stake * leverage) AS n FROM bets
                    WHERE status = 'open' GROUP BY 1, 2) o
           ON o.symbol = e.symbol AND o.direction = e.direction
         WHERE coalesce(e.open_notional, 0) <> coalesce(o.n, 0)",
    )
    .load(&mut conn)
    .await
    .unwrap();
    let symbols: Vec<&str> = wrong.iter().map(|m| m.symbol.as_str()).collect();
    assert!(
        symbols.is_empty(),
        "bet_exposure disagrees with the open bets on {symbols:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_bets_and_open_stake_per_user_are_limited() {
    let app = builder()
        .env("BET_MAX_OPEN_BETS", 3)
        .env("BET_MAX_OPEN_STAKE", "45")
        .start()
        .await;
    app.set_prices(&[("BTC", "100")]).await;
    let ada = bettor(&app, "ada").await;
    let bob = bettor(&app, "bob").await;

    // Open stake: 20 + 20 is fine, a third 20 would make 60 > 45.
    for _ in 0..2 {
        assert_eq!(
            post(&app, &ada, "/api/v1/bets", body("up", "20.00", 10))
                .await
                .status,
            201
        );
    }
    let refused = post(&app, &ada, "/api/v1/bets", body("up", "20.00", 10)).await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert_eq!(refused.body["code"], "limit_exceeded");
    assert!(
        refused.body["detail"].as_str().unwrap().contains("45"),
        "{}",
        refused.body
    );
    assert_eq!(usd(&app, &ada).await, "960.00");
    // 5 more fits: a third bet.
    assert_eq!(
        post(&app, &ada, "/api/v1/bets", body("up", "5.00", 10))
            .await
            .status,
        201
    );
    // Open bets: a fourth is refused, whatever its size.
    let refused = post(&app, &ada, "/api/v1/bets", body("down", "1.00", 1)).await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert_eq!(refused.body["code"], "limit_exceeded");
    assert_eq!(usd(&app, &ada).await, "955.00");

    // Bob's limits are his own; placed all at once, exactly three of ten
    // get in (the limit holds under concurrent placements).
    let attempts = (0..10).map(|_| post(&app, &bob, "/api/v1/bets", body("down", "1.00", 2)));
    let replies = futures::future::join_all(attempts).await;
    let placed = replies.iter().filter(|r| r.status == 201).count();
    assert_eq!(
        placed,
        3,
        "{:?}",
        replies.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert!(
        replies
            .iter()
            .all(|r| r.status == 201 || r.body["code"] == "limit_exceeded")
    );
    assert_eq!(usd(&app, &bob).await, "997.00");

    // A liquidated bet frees its place: BTC at 90 liquidates ada's ×10 ups.
    app.observe(&[("BTC", "90")], true).await;
    let list = app.get_as("/api/v1/bets?status=open", &ada.access).await;
    let first = list.body["items"][0]["id"].as_str().unwrap().to_owned();
    wait_settled(&app, &ada, &first).await;
    assert_eq!(bet(&app, &ada, &first).await["liquidated"], true);
    assert_eq!(
        post(&app, &ada, "/api/v1/bets", body("up", "20.00", 1))
            .await
            .status,
        201
    );
    exposure_matches_open_bets(&app).await;
    ledger_ok(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_house_open_notional_per_symbol_and_direction_is_limited() {
    let app = builder().env("BET_MAX_HOUSE_NOTIONAL", "250").start().await;
    app.set_prices(&[("BTC", "100")]).await;
    let ada = bettor(&app, "ada").await;
    let bob = bettor(&app, "bob").await;

    // 10 × 10 = 100 each: two fit under 250, from two users.
    assert_eq!(
        post(&app, &ada, "/api/v1/bets", body("up", "10.00", 10))
            .await
            .status,
        201
    );
    assert_eq!(
        post(&app, &bob, "/api/v1/bets", body("up", "10.00", 10))
            .await
            .status,
        201
    );
    let refused = post(&app, &bob, "/api/v1/bets", body("up", "10.00", 10)).await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert_eq!(refused.body["code"], "limit_exceeded");
    assert_eq!(usd(&app, &bob).await, "990.00");
    // 50 more fits; the other direction has its own limit.
    assert_eq!(
        post(&app, &bob, "/api/v1/bets", body("up", "5.00", 10))
            .await
            .status,
        201
    );
    assert_eq!(
        post(&app, &bob, "/api/v1/bets", body("down", "25.00", 10))
            .await
            .status,
        201
    );
    exposure_matches_open_bets(&app).await;

    // The `up` bets liquidated at 90 free the `up` limit.
    app.observe(&[("BTC", "90")], true).await;
    harness::eventually(
        "the up bets to be liquidated",
        super::bets::WAIT,
        || async {
            let open = app.get_as("/api/v1/bets?status=open", &bob.access).await;
            (open.body["items"].as_array().unwrap().len() == 1).then_some(())
        },
    )
    .await;
    assert_eq!(
        post(&app, &ada, "/api/v1/bets", body("up", "20.00", 10))
            .await
            .status,
        201
    );
    exposure_matches_open_bets(&app).await;
    ledger_ok(&app).await;
}

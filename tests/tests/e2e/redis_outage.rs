//! A minute without Redis while bets fall due (PRODUCT.md §10: "a Redis
//! failover or outage of a minute stops no price refresh and voids no
//! bet"). Two real worker processes and the API run on a private Redis;
//! bets are placed, Redis is killed for 60 s and every bet falls due in the
//! gap. The tick election and the price refresh live in PostgreSQL, so
//! prices keep coming; the settlements wait in the outbox and run once
//! Redis is back (empty, as after a restart without persistence), at the
//! prices recorded during the outage. No bet is void and each one is paid
//! exactly once.

use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::{prelude::*, sql_types};
use diesel_async::RunQueryDsl;
use harness::{TestApp, TestAppBuilder, eventually, failover};

/// How long Redis stays down.
const OUTAGE: Duration = Duration::from_secs(60);
/// Deadline of each wait outside the outage.
const WAIT: Duration = Duration::from_secs(120);
/// Bet durations: each falls due well inside the outage.
const DURATIONS: [u32; 3] = [10, 25, 40];
const USERS: usize = 3;

#[derive(QueryableByName, Debug)]
struct BetRow {
    #[diesel(sql_type = sql_types::Uuid)]
    id: uuid::Uuid,
    #[diesel(sql_type = sql_types::Text)]
    status: String,
    #[diesel(sql_type = sql_types::Timestamptz)]
    settles_at: DateTime<Utc>,
    #[diesel(sql_type = sql_types::Nullable<sql_types::Timestamptz>)]
    end_observed_at: Option<DateTime<Utc>>,
}

async fn bets(app: &TestApp) -> Vec<BetRow> {
    let mut conn = app.conn().await;
    diesel::sql_query(
        "SELECT b.id, b.status, b.settles_at, b.end_observed_at
         FROM bets b ORDER BY b.settles_at",
    )
    .load(&mut conn)
    .await
    .unwrap()
}

#[derive(QueryableByName)]
struct Stamp {
    #[diesel(sql_type = sql_types::Timestamptz)]
    at: DateTime<Utc>,
}

/// Now, by the database's clock (the clock bets and prices are stamped by).
async fn db_now(app: &TestApp) -> DateTime<Utc> {
    let mut conn = app.conn().await;
    diesel::sql_query("SELECT clock_timestamp() AS at")
        .get_result::<Stamp>(&mut conn)
        .await
        .unwrap()
        .at
}

/// BTC observations stored by the price refresh at or after `from`, by
/// observation time.
async fn refreshed_since(app: &TestApp, from: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    let mut conn = app.conn().await;
    diesel::sql_query(
        "SELECT h.observed_at AS at FROM price_history h
         JOIN rate_refreshes r ON r.tick = h.tick
         WHERE h.symbol = 'BTC' AND h.observed_at >= $1
         ORDER BY h.observed_at",
    )
    .bind::<sql_types::Timestamptz, _>(from)
    .load::<Stamp>(&mut conn)
    .await
    .unwrap()
    .into_iter()
    .map(|s| s.at)
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minute_without_redis_stops_no_refresh_and_voids_no_bet() {
    let (mut app, mut workers) = failover::start(
        TestAppBuilder::new().private_redis(),
        &[
            // A price older than 5 s is no price: without refreshes during
            // the outage, every bet due in it would be void.
            ("RATE_MAX_AGE_SECS", "5"),
            ("SIMULATED_SEED", "19"),
            // Redis comes back empty: a settlement that was in it is
            // queued again by the reconciler, soon.
            ("BET_RECONCILE_CRON", "* * * * * *"),
            ("BET_RECONCILE_AFTER_SECS", "3"),
        ],
    )
    .await;
    let mut bettors = Vec::new();
    for i in 0..USERS {
        bettors.push(failover::bettor(&app, &format!("outage{i}"), &[]).await);
    }

    // Every bet is placed, then Redis dies at once: each bet falls due in
    // the gap (its settlement waits in the outbox, not yet due).
    for bettor in &mut bettors {
        failover::place_bets(&app, bettor, &DURATIONS).await;
    }
    let outage_started = tokio::time::Instant::now();
    app.redis_server.as_mut().unwrap().stop().await;
    let down_at = db_now(&app).await;
    let placed = bets(&app).await;
    assert_eq!(placed.len(), USERS * DURATIONS.len());
    let last_due = placed.iter().map(|b| b.settles_at).max().unwrap();
    for bet in &placed {
        assert!(
            bet.settles_at > down_at,
            "bet {} fell due before the outage: {bet:?}",
            bet.id
        );
    }

    // Redis is down; prices keep coming from the tick winners. Waiting for
    // a refresh after the last bet fell due bounds the check; the outage
    // then lasts its full minute whatever that took.
    eventually(
        "a price refresh after the last bet fell due, with Redis down",
        OUTAGE,
        || async { (!refreshed_since(&app, last_due).await.is_empty()).then_some(()) },
    )
    .await;
    tokio::time::sleep_until(outage_started + OUTAGE).await;
    let up_at = db_now(&app).await;
    assert!(
        last_due < up_at,
        "the last bet ({last_due}) fell due after the outage ended ({up_at})"
    );
    assert!(
        bets(&app).await.iter().all(|b| b.status == "open"),
        "a bet settled while Redis was down?"
    );
    app.redis_server.as_mut().unwrap().start_again().await;

    // Once Redis answers again the settlements go out: every bet is settled
    // at a price recorded during the outage, none void, each paid once.
    let settled = eventually("every bet settled after the outage", WAIT, || async {
        let all = bets(&app).await;
        all.iter().all(|b| b.status != "open").then_some(all)
    })
    .await;
    for bet in &settled {
        assert_eq!(bet.status, "settled", "bet voided: {bet:?}");
        let end = bet.end_observed_at.unwrap();
        assert!(
            end > down_at && end <= bet.settles_at,
            "end price observed at {end}, not during the outage before {}: {bet:?}",
            bet.settles_at
        );
    }
    assert_eq!(
        app.count("SELECT count(*) AS n FROM ledger_transactions WHERE kind = 'bet_payout'")
            .await,
        settled.len() as i64,
        "exactly one payout per bet"
    );
    // The schedules' jobs queued during the outage went out too.
    eventually("the outbox relayed to the new Redis", WAIT, || async {
        (app.count(
            "SELECT count(*) AS n FROM outbox WHERE dispatched_at IS NULL AND run_at <= now() - interval '5 seconds'",
        )
        .await
            == 0)
            .then_some(())
    })
    .await;
    assert!(
        app.count(&format!(
            "SELECT count(*) AS n FROM schedule_ticks
             WHERE schedule = 'bet_reconcile' AND tick > '{}' AND tick < '{}'",
            down_at.to_rfc3339(),
            up_at.to_rfc3339()
        ))
        .await
            > 0,
        "the reconciler's ticks were claimed during the outage"
    );
    // Each paid once, one email each, none dead, a balanced ledger.
    failover::assert_settled_once(&app, &mut workers, &bettors).await;
}

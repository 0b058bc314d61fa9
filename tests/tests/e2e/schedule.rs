//! The cluster-wide schedule. The election itself: of two processes
//! claiming one tick in PostgreSQL at once, one wins, and only the winner's
//! job reaches the outbox. Then real worker processes: three carry the
//! every-second rate refresh for a minute; one is killed, two are frozen
//! and thawed. Every tick runs exactly once while any worker lives, ticks
//! missed during a full outage are not replayed, and a worker that wakes
//! late does not fire a tick.

use std::{collections::BTreeMap, time::Duration};

use chrono::{DateTime, Utc};
use diesel::{prelude::*, sql_types};
use diesel_async::RunQueryDsl;
use harness::{TestApp, TestAppBuilder, TestDb, process::WorkerProcess};
use shared::{
    jobs::ReconcileBets,
    schedule::{self, TickJob},
};

#[derive(QueryableByName, Debug)]
struct TickRow {
    #[diesel(sql_type = sql_types::Timestamptz)]
    tick: DateTime<Utc>,
    #[diesel(sql_type = sql_types::BigInt)]
    observations: i64,
}

/// Observations stored per tick.
async fn per_tick(app: &TestApp) -> BTreeMap<i64, i64> {
    let mut conn = app.conn().await;
    let rows: Vec<TickRow> = diesel::sql_query(
        "SELECT r.tick, (SELECT count(*) FROM price_history h WHERE h.tick = r.tick) AS observations
         FROM rate_refreshes r ORDER BY r.tick",
    )
    .load(&mut conn)
    .await
    .unwrap();
    rows.into_iter()
        .map(|r| (r.tick.timestamp(), r.observations))
        .collect()
}

async fn metric(url: &str, name: &str) -> f64 {
    let metrics_url = url.replace("/healthz", "/metrics");
    let text = reqwest::get(&metrics_url)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[derive(QueryableByName, Debug, PartialEq)]
struct Claim {
    #[diesel(sql_type = sql_types::Text)]
    schedule: String,
    #[diesel(sql_type = sql_types::Text)]
    claimed_by: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_claimants_of_a_tick_one_wins_and_only_its_job_is_queued() {
    let db = TestDb::new().await;
    let (mut a, mut b) = (db.conn().await, db.conn().await);
    let tick = DateTime::<Utc>::from_timestamp(Utc::now().timestamp(), 0).unwrap();

    // Both at once, on their own connections, as two processes would.
    let job = TickJob::of(&ReconcileBets { tick });
    let (won_a, won_b) = tokio::join!(
        schedule::claim_tick_and_queue(&mut a, "bet_reconcile", tick, "a", &job),
        schedule::claim_tick_and_queue(&mut b, "bet_reconcile", tick, "b", &job),
    );
    let (won_a, won_b) = (won_a.unwrap(), won_b.unwrap());
    assert!(won_a != won_b, "exactly one winner: a {won_a}, b {won_b}");
    let winner = if won_a { "a" } else { "b" };
    let queued = diesel::sql_query(
        "SELECT count(*) AS n FROM outbox WHERE job = 'reconcile_bets' AND queue = 'bet_settlement'",
    )
    .get_result::<Count>(&mut a)
    .await
    .unwrap();
    assert_eq!(queued.n, 1, "only the winner's job is queued");

    // Later claims of the same tick lose, whoever makes them; the next tick
    // and another schedule's same tick are separate elections.
    assert!(
        !schedule::claim_tick(&mut a, "bet_reconcile", tick, "a")
            .await
            .unwrap()
    );
    assert!(
        !schedule::claim_tick(&mut b, "bet_reconcile", tick, "c")
            .await
            .unwrap()
    );
    let next = tick + chrono::Duration::seconds(1);
    assert!(
        schedule::claim_tick(&mut b, "bet_reconcile", next, "b")
            .await
            .unwrap()
    );
    assert!(
        schedule::claim_tick(&mut a, "rate_refresh", tick, "a")
            .await
            .unwrap()
    );
    let claims: Vec<Claim> = diesel::sql_query(
        "SELECT schedule, claimed_by FROM schedule_ticks WHERE tick = $1 ORDER BY schedule",
    )
    .bind::<sql_types::Timestamptz, _>(tick)
    .load(&mut a)
    .await
    .unwrap();
    assert_eq!(
        claims,
        [
            Claim {
                schedule: "bet_reconcile".into(),
                claimed_by: winner.into()
            },
            Claim {
                schedule: "rate_refresh".into(),
                claimed_by: "a".into()
            },
        ]
    );
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = sql_types::BigInt)]
    n: i64,
}

async fn sleep_until_second(target: i64) {
    let now = Utc::now().timestamp_millis();
    let wait = (target * 1000 - now).max(0);
    tokio::time::sleep(Duration::from_millis(u64::try_from(wait).unwrap())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_refresh_once_per_tick_through_a_kill_a_freeze_and_an_outage() {
    let app = TestAppBuilder::new().without_worker().start().await;
    let args = ["--queues", "rate_refresh,price_alert", "--concurrency", "4"];
    let mut a = WorkerProcess::spawn(&app.settings, "sched-a", &args);
    let b = WorkerProcess::spawn(&app.settings, "sched-b", &args);
    let c = WorkerProcess::spawn(&app.settings, "sched-c", &args);
    for worker in [&a, &b, &c] {
        harness::poll::healthy(
            "the workers healthy",
            &worker.health_url,
            Duration::from_secs(30),
        )
        .await;
    }
    let start = Utc::now().timestamp() + 1;

    // 0–15 s: three workers.  15 s: kill A.  15–30 s: two workers.
    sleep_until_second(start + 15).await;
    a.kill().await;
    // 30 s: freeze B and C (a total outage) for 6 s, then thaw them.
    sleep_until_second(start + 30).await;
    b.pause().await;
    c.pause().await;
    sleep_until_second(start + 36).await;
    b.resume().await;
    c.resume().await;
    // Until 60 s: two workers again.
    sleep_until_second(start + 60).await;

    let ticks = per_tick(&app).await;
    let span = |from: i64, to: i64| {
        (from..to)
            .map(|t| (t, ticks.get(&t).copied()))
            .collect::<Vec<_>>()
    };
    // Every tick while a worker was alive ran, once, storing all six prices
    // — across the kill at 15 s. The tick of the kill itself may be lost:
    // its winner refreshes in its own process, and a winner killed in the
    // middle takes that tick with it (the refresh is one transaction, so
    // all or nothing; the next tick refreshes a second later).
    for (tick, observations) in span(start + 1, start + 29) {
        if tick == start + 15 && observations.is_none() {
            continue;
        }
        assert_eq!(
            observations,
            Some(6),
            "tick {} (+{}s): {ticks:?}",
            tick,
            tick - start
        );
    }
    // Frozen for 6 s: the ticks of the outage are not replayed afterwards.
    for (tick, observations) in span(start + 32, start + 36) {
        assert_eq!(
            observations,
            None,
            "tick +{}s ran although every worker was frozen",
            tick - start
        );
    }
    // Ticks resume once the workers thaw.
    for (tick, observations) in span(start + 40, start + 59) {
        assert_eq!(
            observations,
            Some(6),
            "tick +{}s after the thaw: {ticks:?}",
            tick - start
        );
    }
    // The thawed workers found a tick due while they slept and skipped it.
    let late = metric(
        &b.health_url,
        "bourse_schedule_ticks_total{schedule=\"rate_refresh\",outcome=\"late\"}",
    )
    .await
        + metric(
            &c.health_url,
            "bourse_schedule_ticks_total{schedule=\"rate_refresh\",outcome=\"late\"}",
        )
        .await;
    assert!(late >= 1.0, "a woken worker fired a stale tick");
    // Both live workers took part: no single scheduler.
    for worker in [&b, &c] {
        let claimed = metric(
            &worker.health_url,
            "bourse_schedule_ticks_total{schedule=\"rate_refresh\",outcome=\"claimed\"}",
        )
        .await;
        let taken = metric(
            &worker.health_url,
            "bourse_schedule_ticks_total{schedule=\"rate_refresh\",outcome=\"taken\"}",
        )
        .await;
        assert!(
            claimed + taken >= 40.0,
            "{} saw {claimed} claimed + {taken} taken ticks",
            worker.name
        );
    }
}

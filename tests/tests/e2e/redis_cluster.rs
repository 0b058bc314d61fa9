//! Bourse on a real Redis Cluster (PRODUCT.md §10, `REDIS_CLUSTER_NODES`):
//! three masters started by the test, the API in the test process and two
//! real worker processes. Every queue's keys carry a hash tag, so each
//! multi-key script stays in one slot, and the queues spread over the
//! masters. The first test runs the whole pipeline (registration emails,
//! deposits, scheduled price refreshes and the price cache, login rate
//! limits, delayed bet settlements, their emails, the operators' counts); the second kills the master holding the
//! settlement queue while bets fall due and starts it again, empty: every
//! bet is still settled and paid exactly once.

use std::time::Duration;

use harness::{
    TestAppBuilder, eventually,
    failover::{WAIT, assert_settled_once, bets, bettor, start},
};
use shared::jobs::Queue;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_schedules_and_settlements_run_on_a_three_master_cluster() {
    let (app, mut workers) = start(
        TestAppBuilder::new().redis_cluster(),
        &[("RATE_LIMIT_LOGIN_PER_ACCOUNT", "3/900")],
    )
    .await;
    // Registration (its verification email goes through the email queue),
    // a deposit and bets.
    let bettors = vec![bettor(&app, "cluster", &[10, 11, 12]).await];

    // The rate limiter counts on the cluster: the fourth wrong password in
    // a row is refused before it is checked.
    for _ in 0..3 {
        let reply = app.try_login("cluster", "wrong password").await;
        assert_eq!(reply.status, 401, "{}", reply.body);
    }
    let reply = app.try_login("cluster", "wrong password").await;
    assert_eq!(reply.status, 429, "{}", reply.body);

    // The queues are spread: more than one master holds keys.
    let cluster = app.redis_cluster.as_ref().unwrap();
    let mut holding = 0;
    for port in &cluster.ports {
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let keys: u64 = redis::cmd("DBSIZE").query_async(&mut conn).await.unwrap();
        if keys > 0 {
            holding += 1;
        }
    }
    assert!(holding >= 2, "only {holding} of 3 masters hold keys");

    // The operators' counts read the cluster too.
    let queues = app.queues();
    eventually("the settlements counted as succeeded", WAIT, || async {
        let counts = queues.counts(Queue::BetSettlement).await.ok()?;
        (counts.succeeded >= 3 && counts.workers >= 2).then_some(())
    })
    .await;
    assert_settled_once(&app, &mut workers, &bettors).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_killed_and_restarted_while_bets_fall_due_settles_each_once() {
    let (mut app, mut workers) = start(
        TestAppBuilder::new().redis_cluster(),
        &[
            // The restarted master comes back empty: a settlement that was
            // on it is queued again by the reconciler, soon.
            ("BET_RECONCILE_CRON", "* * * * * *"),
            ("BET_RECONCILE_AFTER_SECS", "3"),
        ],
    )
    .await;
    let mut bettors = Vec::new();
    for i in 0..2 {
        bettors.push(bettor(&app, &format!("clusterchaos{i}"), &[10, 15, 20]).await);
    }
    let settlement_key = app.queues().keys(Queue::BetSettlement).active();
    let cluster = app.redis_cluster.as_mut().unwrap();
    let node = cluster.node_of(&settlement_key).await;
    cluster.kill(node).await;
    // The master stays down while every bet falls due: its settlements
    // (queued there, or waiting in the outbox) cannot run meanwhile.
    tokio::time::sleep(Duration::from_secs(25)).await;
    assert!(
        bets(&app).await.iter().all(|b| b.status == "open"),
        "a bet settled while its queue's master was down?"
    );
    app.redis_cluster.as_mut().unwrap().restart(node).await;
    assert_settled_once(&app, &mut workers, &bettors).await;
}

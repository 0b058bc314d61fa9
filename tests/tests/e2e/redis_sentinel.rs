//! Bourse behind Sentinel (PRODUCT.md §10, `REDIS_SENTINEL_NODES` and
//! `REDIS_SENTINEL_MASTER`): a real primary, a replica and three sentinels
//! started by the test, the API in the test process and two real worker
//! processes. The primary is killed while bets fall due and emails are
//! queued; the sentinels promote the replica, the API and the workers
//! follow it, and every bet and email caught in the failover ends exactly
//! once.

use std::time::Duration;

use harness::{
    TestAppBuilder, eventually,
    failover::{WAIT, assert_settled_once, bets, bettor, start},
};

/// How soon after the promotion the API and the workers must be on the
/// new primary (the bound).
const FOLLOW: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_and_workers_follow_the_promoted_replica_and_each_bet_ends_once() {
    let (mut app, mut workers) = start(
        TestAppBuilder::new().redis_sentinel(),
        &[
            // Writes acknowledged by the old primary but not yet copied to
            // the replica are lost in a failover; the reconciler queues
            // such a settlement again, soon.
            ("BET_RECONCILE_CRON", "* * * * * *"),
            ("BET_RECONCILE_AFTER_SECS", "3"),
        ],
    )
    .await;
    let mut bettors = Vec::new();
    for i in 0..2 {
        bettors.push(bettor(&app, &format!("sentinel{i}"), &[10, 12, 14, 16]).await);
    }
    // The primary dies while settlements are running: the first has
    // settled, the others are queued in Redis, in flight or still in the
    // outbox.
    eventually("the first bet settled", WAIT, || async {
        bets(&app)
            .await
            .iter()
            .any(|b| b.status != "open")
            .then_some(())
    })
    .await;
    let sentinel = app.redis_sentinel.as_mut().unwrap();
    let replica = sentinel.replica_port;
    sentinel.kill_primary().await;
    let sentinel = app.redis_sentinel.as_ref().unwrap();
    eventually("the sentinels to promote the replica", WAIT, || async {
        (sentinel.current_primary().await == Some(replica)).then_some(())
    })
    .await;

    // Within FOLLOW of the promotion both sides are on the new primary: a
    // registration (the API writes, the rate limiter counts in Redis, a
    // worker relays and sends the verification email) completes.
    tokio::time::timeout(
        FOLLOW,
        app.register_verified(
            "aftersentinel",
            "aftersentinel@example.com",
            "correct horse 1",
        ),
    )
    .await
    .expect("a registration completed within 30 s of the promotion");

    assert_settled_once(&app, &mut workers, &bettors).await;
    assert_eq!(
        app.smtp.mails_to("aftersentinel@example.com").len(),
        1,
        "one verification email"
    );
    for bettor in &bettors {
        let verification = app
            .smtp
            .mails_to(&bettor.email)
            .iter()
            .filter(|m| !m.subject().contains("BTC bet"))
            .count();
        assert_eq!(verification, 1, "{}: one verification email", bettor.email);
    }
}

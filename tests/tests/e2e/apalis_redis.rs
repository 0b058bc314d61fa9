//! Regression tests of our patches to apalis-redis (vendor/apalis-redis,
//! listed in its PATCHES.md). Each drives apalis-redis through its public
//! API against the real Redis, under a queue name of its own, and fails on
//! upstream's 1.0.0.

use std::time::Duration;

use apalis::prelude::*;
use apalis_core::{
    backend::Metrics,
    error::{AbortError, BoxDynError},
};
use apalis_redis::{Config, ConnectionManager, RedisStorage};
use harness::{app::REDIS_ADDR, eventually, random_suffix};
use redis::AsyncCommands;

async fn connection() -> ConnectionManager {
    apalis_redis::connect(format!("redis://{REDIS_ADDR}/0"))
        .await
        .expect("the shared Redis at 127.0.0.1:6379")
}

fn config() -> Config {
    Config::default()
        .queue(format!("apalis-patch-{}", random_suffix()))
        .heartbeat_interval(Duration::from_secs(1))
        .emit_events(false)
}

/// PATCHES.md 1: a worker that stops leaves the workers set. Upstream's
/// `poll_close` removed the in-flight set's key name, never a member.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_worker_leaves_the_workers_set() {
    let mut conn = connection().await;
    let config = config();
    let mut storage: RedisStorage<u32> =
        RedisStorage::new(conn.clone()).with_config(config.clone());
    storage.push(1).await.unwrap();
    let name = format!("patch-worker-{}", random_suffix());
    let worker = WorkerBuilder::new(name.as_str()).backend(storage).build(
        |_job: u32, worker: WorkerContext| async move {
            worker.stop().unwrap();
        },
    );
    tokio::time::timeout(Duration::from_secs(60), worker.run())
        .await
        .expect("the worker stops within a minute")
        .unwrap();
    let workers_set = config.workers_set();
    let members: Vec<String> = conn.zrange(&workers_set, 0, -1).await.unwrap();
    assert!(
        !members.contains(&name),
        "{name} is still in {workers_set} after stopping: {members:?}"
    );
    let _: () = conn.del(&workers_set).await.unwrap();
}

/// Runs a worker on `storage` in the background, handling each task with
/// [`even_succeed`], until the returned sender is fired or dropped.
fn run_worker(storage: RedisStorage<u32>) -> tokio::sync::oneshot::Sender<()> {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = WorkerBuilder::new(format!("patch-worker-{}", random_suffix()).as_str())
        .backend(storage)
        .build(even_succeed);
    tokio::spawn(worker.run_until(until(stopped)));
    stop
}

/// The signal `run_until` stops a worker on: `stopped` fired or dropped.
async fn until(stopped: tokio::sync::oneshot::Receiver<()>) -> Result<(), std::io::Error> {
    let _ = stopped.await;
    Ok(())
}

/// Even jobs succeed; odd ones fail for good (`AbortError`): dead at once.
async fn even_succeed(job: u32) -> Result<(), BoxDynError> {
    if job.is_multiple_of(2) {
        Ok(())
    } else {
        Err(Box::new(AbortError::new(format!("job {job} refused"))))
    }
}

async fn zcard(conn: &mut ConnectionManager, key: &str) -> u64 {
    conn.zcard(key).await.unwrap()
}

async fn server_ms(conn: &mut ConnectionManager) -> u64 {
    let (secs, micros): (u64, u64) = redis::cmd("TIME").query_async(conn).await.unwrap();
    secs * 1000 + micros / 1000
}

/// Pushes `jobs` to a storage on `config`, runs a worker on them (see
/// [`even_succeed`]) until `settled(done, dead, dropped)` holds, and stops
/// it. Returns the storage.
async fn process(
    config: &Config,
    jobs: impl IntoIterator<Item = u32>,
    what: &str,
    settled: impl Fn(u64, u64, u64) -> bool,
) -> RedisStorage<u32> {
    let conn = connection().await;
    let mut storage: RedisStorage<u32> =
        RedisStorage::new(conn.clone()).with_config(config.clone());
    for job in jobs {
        storage.push(job).await.unwrap();
    }
    let stop = run_worker(storage.clone());
    eventually(what, Duration::from_secs(60), || {
        let mut conn = conn.clone();
        let settled = &settled;
        async move {
            let done = zcard(&mut conn, &config.done_jobs_set()).await;
            let dead = apalis_redis::dead::count(&mut conn, config).await.unwrap();
            let dropped = apalis_redis::dead::dropped(&mut conn, config)
                .await
                .unwrap();
            settled(done, dead, dropped).then_some(())
        }
    })
    .await;
    let _ = stop.send(());
    storage
}

/// PATCHES.md 2: done and dead tasks go into sorted sets scored by the
/// Redis server's time in milliseconds — what the stats scripts read.
/// Upstream `SADD`ed them, so `Metrics::fetch_by_queue` failed (WRONGTYPE,
/// and a missing time argument).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn done_and_dead_tasks_are_time_scored_and_the_queue_stats_count_them() {
    let mut conn = connection().await;
    let config = config();
    let before = server_ms(&mut conn).await;
    let storage = process(&config, 0..5, "3 done and 2 dead", |done, dead, _| {
        done == 3 && dead == 2
    })
    .await;
    let after = server_ms(&mut conn).await;

    let dead = apalis_redis::dead::page(&mut conn, &config, None, 10)
        .await
        .unwrap();
    assert_eq!(dead.len(), 2, "{dead:?}");
    for task in &dead {
        assert!(
            (before..=after).contains(&task.died_at_ms),
            "died at {} ms, outside {before}..={after}",
            task.died_at_ms
        );
        assert!(
            task.result
                .as_deref()
                .unwrap_or_default()
                .contains("refused"),
            "{task:?}"
        );
        assert!(task.data.is_some(), "{task:?}");
    }

    let stats = storage.fetch_by_queue().await.unwrap();
    let stat = |title: &str| {
        stats
            .iter()
            .find(|s| s.title == title)
            .map(|s| s.value.clone())
            .unwrap_or_else(|| panic!("no {title} in {stats:?}"))
    };
    assert_eq!(stat("DONE_JOBS"), "3");
    assert_eq!(stat("FAILED_JOBS"), "2");
    assert_eq!(stat("JOBS_PAST_HOUR"), "5");
}

/// PATCHES.md 3: the dead set is bounded by count (the oldest go first,
/// with their data, and are counted) and by age.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dead_set_keeps_its_bounds_and_counts_what_it_drops() {
    let mut conn = connection().await;
    let config = config()
        .max_dead_tasks(Some(3))
        .dead_task_ttl(Some(Duration::from_secs(2)));
    // All odd: all die.
    process(
        &config,
        [1, 3, 5, 7, 9],
        "five deaths, three kept",
        |_, dead, dropped| dead == 3 && dropped == 2,
    )
    .await;
    // The dropped ones' data went with them.
    let stored: u64 = conn.hlen(config.job_data_hash()).await.unwrap();
    assert_eq!(stored, 3, "task data left behind by dropped dead tasks");

    // Past the age bound, trim drops the rest (nobody else dies meanwhile).
    let trimmed = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    eventually("the rest aged out", Duration::from_secs(30), || {
        let mut conn = conn.clone();
        let config = config.clone();
        let trimmed = trimmed.clone();
        async move {
            let now = apalis_redis::dead::trim(&mut conn, &config, 1000)
                .await
                .unwrap();
            let total = trimmed.fetch_add(now, std::sync::atomic::Ordering::Relaxed) + now;
            (total == 3).then_some(())
        }
    })
    .await;
    assert_eq!(
        apalis_redis::dead::count(&mut conn, &config).await.unwrap(),
        0
    );
    assert_eq!(
        apalis_redis::dead::dropped(&mut conn, &config)
            .await
            .unwrap(),
        5
    );
}

/// PATCHES.md 3: pages run newest first without repeats or gaps, also
/// through tasks that died in the same millisecond (one acknowledgement
/// batch), and retry/discard act on the given ids only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_pages_run_newest_first_through_ties_and_retry_and_discard_act_on_ids() {
    let mut conn = connection().await;
    let config = config().batch_size(4);
    process(
        &config,
        (0..9).map(|n| n * 2 + 1),
        "all dead",
        |_, dead, _| dead == 9,
    )
    .await;

    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = apalis_redis::dead::page(&mut conn, &config, cursor.as_ref(), 2)
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        cursor = page.last().map(apalis_redis::dead::DeadCursor::after);
        seen.extend(page);
        assert!(seen.len() <= 9, "pages repeat: {seen:?}");
    }
    let ids: std::collections::BTreeSet<&str> = seen.iter().map(|t| t.task_id.as_str()).collect();
    assert_eq!(ids.len(), 9, "pages missed or repeated tasks: {seen:?}");
    for pair in seen.windows(2) {
        let order = (pair[0].died_at_ms, &pair[0].task_id);
        let next = (pair[1].died_at_ms, &pair[1].task_id);
        assert!(order > next, "not newest first: {order:?} then {next:?}");
    }

    let retried = vec![seen[0].task_id.clone(), "no-such-task".to_owned()];
    assert_eq!(
        apalis_redis::dead::retry(&mut conn, &config, &retried)
            .await
            .unwrap(),
        1
    );
    let queued: Vec<String> = conn.lrange(config.active_jobs_list(), 0, -1).await.unwrap();
    assert_eq!(queued, vec![seen[0].task_id.clone()]);
    let discarded = vec![seen[1].task_id.clone()];
    assert_eq!(
        apalis_redis::dead::discard(&mut conn, &config, &discarded)
            .await
            .unwrap(),
        1
    );
    let data: Option<Vec<u8>> = conn
        .hget(config.job_data_hash(), &seen[1].task_id)
        .await
        .unwrap();
    assert!(data.is_none(), "a discarded task's data stayed");
    assert_eq!(
        apalis_redis::dead::count(&mut conn, &config).await.unwrap(),
        7
    );
    assert!(
        apalis_redis::dead::died_at(&mut conn, &config, &seen[2].task_id)
            .await
            .unwrap()
            .is_some()
    );
}

/// PATCHES.md 4: done tasks are vacuumed oldest first in bounded chunks
/// (upstream's `vacuum` reads the whole data hash in one script call).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn done_tasks_are_vacuumed_in_bounded_chunks() {
    let mut conn = connection().await;
    let config = config();
    process(&config, (0..5).map(|n| n * 2), "all done", |done, _, _| {
        done == 5
    })
    .await;
    let mut chunks = Vec::new();
    loop {
        let n = apalis_redis::vacuum_done(&mut conn, &config, 2)
            .await
            .unwrap();
        chunks.push(n);
        if n == 0 {
            break;
        }
    }
    assert_eq!(chunks, [2, 2, 1, 0]);
    let stored: u64 = conn.hlen(config.job_data_hash()).await.unwrap();
    assert_eq!(stored, 0, "vacuumed tasks left their data");
}

/// PATCHES.md 2: sets written by 1.0.0 (plain sets) are converted in place,
/// each member scored by its `done_at`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sets_written_by_upstream_are_converted_to_sorted_sets() {
    let mut conn = connection().await;
    let config = config();
    // What 1.0.0's handle_results.lua left: plain sets, and meta with done_at.
    let _: () = conn
        .sadd(config.dead_jobs_set(), &["a", "b"])
        .await
        .unwrap();
    let _: () = conn.sadd(config.done_jobs_set(), "c").await.unwrap();
    for (id, done_at) in [
        ("a", 1_700_000_000u64),
        ("b", 1_700_000_005),
        ("c", 1_700_000_009),
    ] {
        let _: () = conn
            .hset(
                format!("{}:{id}", config.job_meta_hash()),
                "done_at",
                done_at,
            )
            .await
            .unwrap();
    }
    assert_eq!(
        apalis_redis::upgrade_sets(&mut conn, &config, 1)
            .await
            .unwrap(),
        3
    );
    assert_eq!(
        apalis_redis::upgrade_sets(&mut conn, &config, 1)
            .await
            .unwrap(),
        0
    );
    let dead = apalis_redis::dead::page(&mut conn, &config, None, 10)
        .await
        .unwrap();
    let order: Vec<(&str, u64)> = dead
        .iter()
        .map(|t| (t.task_id.as_str(), t.died_at_ms))
        .collect();
    assert_eq!(
        order,
        vec![("b", 1_700_000_005_000), ("a", 1_700_000_000_000)]
    );
    let done: Option<f64> = conn.zscore(config.done_jobs_set(), "c").await.unwrap();
    assert_eq!(done, Some(1_700_000_009_000.0));
}

/// PATCHES.md 7: after a fetch that found nothing, the next fetch waits for
/// the caller's idle wait; upstream fetched again on every wake-up of the
/// worker's task and at each heartbeat. Here the wait holds until the test
/// lets it go, so a task pushed meanwhile stays queued through four
/// heartbeats, and runs once the wait ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_worker_fetches_only_when_its_idle_wait_ends() {
    use std::sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    };

    use futures::FutureExt as _;

    let mut conn = connection().await;
    let config = config().heartbeat_interval(Duration::from_millis(500));
    let go = Arc::new(tokio::sync::Notify::new());
    let waits = Arc::new(AtomicUsize::new(0));
    let (wait_go, wait_count) = (go.clone(), waits.clone());
    let mut storage: RedisStorage<u32> = RedisStorage::new(conn.clone())
        .with_config(config.clone())
        .with_idle_wait(move || {
            wait_count.fetch_add(1, Ordering::SeqCst);
            let go = wait_go.clone();
            async move { go.notified().await }.boxed()
        });
    let stop = run_worker(storage.clone());
    eventually(
        "the first empty fetch, then a wait",
        Duration::from_secs(30),
        || {
            let waits = waits.clone();
            async move { (waits.load(Ordering::SeqCst) >= 1).then_some(()) }
        },
    )
    .await;

    // The push queues the task (upstream: in the scheduled set, ours: on
    // the active list); a fetch would move it to the in-flight set.
    storage.push(2).await.unwrap();
    let (active, scheduled) = (config.active_jobs_list(), config.scheduled_jobs_set());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while tokio::time::Instant::now() < deadline {
        let queued: u64 = conn.llen(&active).await.unwrap();
        let waiting = zcard(&mut conn, &scheduled).await;
        assert_eq!(
            queued + waiting,
            1,
            "the task was fetched while the idle wait held"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    go.notify_one();
    eventually(
        "the task done once the wait ends",
        Duration::from_secs(30),
        || {
            let mut conn = conn.clone();
            let done = config.done_jobs_set();
            async move { (zcard(&mut conn, &done).await == 1).then_some(()) }
        },
    )
    .await;
    let _ = stop.send(());
}

/// PATCHES.md 8: on Redis Cluster a worker registers, runs its tasks, and
/// its queue is listed with its statistics. Upstream's
/// `register_worker.lua` also wrote the global `core:apalis:queues:list`
/// in the same script as the queue's keys, which a cluster refuses
/// (CROSSSLOT), so every worker failed at its first heartbeat; the queue
/// list and the global statistics read every queue's keys in one script.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_runs_and_its_queue_is_listed_on_a_redis_cluster() {
    use apalis_core::backend::ListQueues;
    use redis::cluster_async::ClusterConnection;

    let cluster = harness::redis_cluster::RedisCluster::start().await;
    let nodes: Vec<String> = cluster
        .ports
        .iter()
        .map(|p| format!("redis://127.0.0.1:{p}/"))
        .collect();
    let mut conn = redis::cluster::ClusterClient::new(nodes)
        .unwrap()
        .get_async_connection()
        .await
        .unwrap();
    // A hash tag keeps every key of the queue in one slot.
    let queue = format!("{{apalis-patch-{}}}", random_suffix());
    let config = Config::default()
        .queue(queue.clone())
        .heartbeat_interval(Duration::from_secs(1))
        .emit_events(false);
    let mut storage: RedisStorage<u32, ClusterConnection> =
        RedisStorage::new(conn.clone()).with_config(config.clone());
    for job in [2, 4, 6] {
        storage.push(job).await.unwrap();
    }
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = WorkerBuilder::new(format!("patch-worker-{}", random_suffix()).as_str())
        .backend(storage.clone())
        .build(even_succeed);
    let running = tokio::spawn(worker.run_until(until(stopped)));
    eventually(
        "three tasks done on the cluster",
        Duration::from_secs(60),
        || {
            let mut conn = conn.clone();
            let done = config.done_jobs_set();
            async move {
                let n: u64 = conn.zcard(done).await.ok()?;
                (n == 3).then_some(())
            }
        },
    )
    .await;
    let queues = storage.list_queues().await.unwrap();
    let listed = queues
        .iter()
        .find(|q| q.name == queue)
        .unwrap_or_else(|| panic!("{queue} not listed: {queues:?}"));
    assert_eq!(listed.workers.len(), 1, "{listed:?}");
    let done = |stats: &[apalis_core::backend::Statistic]| {
        stats
            .iter()
            .find(|s| s.title == "DONE_JOBS")
            .map(|s| s.value.clone())
    };
    assert_eq!(done(&listed.stats).as_deref(), Some("3"), "{listed:?}");
    assert_eq!(
        done(&storage.global().await.unwrap()).as_deref(),
        Some("3"),
        "the only queue's tasks are all the cluster's"
    );
    let _ = stop.send(());
    let stopped = tokio::time::timeout(Duration::from_secs(30), running)
        .await
        .expect("the worker stops");
    assert!(
        matches!(stopped, Ok(Ok(()))),
        "the worker failed: {stopped:?}"
    );
    let _: () = conn.del(config.workers_set()).await.unwrap();
}

/// PATCHES.md 9: a task due now goes straight to the active list (upstream
/// put every task in the scheduled set, scored in seconds, and each fetch
/// promoted every due one with one `unpack`); a delayed one waits in the
/// scheduled set scored in milliseconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn due_tasks_go_straight_to_the_active_list_and_delayed_ones_are_scored_in_ms() {
    use apalis_core::task::builder::TaskBuilder;

    let mut conn = connection().await;
    let config = config();
    let now_secs = server_ms(&mut conn).await / 1000;
    let due = TaskBuilder::new(b"1".to_vec())
        .task_id(TaskId::from("due".to_owned()))
        .build();
    let later = TaskBuilder::new(b"2".to_vec())
        .task_id(TaskId::from("later".to_owned()))
        .run_at_timestamp(now_secs + 3600)
        .build();
    let (enqueued, scheduled) =
        apalis_redis::queries::push_tasks(&mut conn, &config, &[due, later])
            .await
            .unwrap();
    assert_eq!((enqueued, scheduled), (1, 1));
    let active: Vec<String> = conn.lrange(config.active_jobs_list(), 0, -1).await.unwrap();
    assert_eq!(active, ["due"]);
    let score: Option<f64> = conn
        .zscore(config.scheduled_jobs_set(), "later")
        .await
        .unwrap();
    assert_eq!(score, Some(((now_secs + 3600) * 1000) as f64));
}

/// PATCHES.md 9: due scheduled tasks are promoted in bounded chunks, so a
/// backlog larger than Lua's `unpack` limit (about 8,000) drains; upstream
/// failed every fetch with "too many results to unpack" and the queue was
/// wedged. Scores written by 1.0.0 (seconds) are rescored to milliseconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_of_due_tasks_is_promoted_in_chunks_and_runs() {
    let mut conn = connection().await;
    let config = config();
    let storage: RedisStorage<u32> = RedisStorage::new(conn.clone()).with_config(config.clone());
    // 10,000 due tasks as the scheduled set holds them: data, metadata and
    // a score in the past (written here directly, as a fixture).
    let past = server_ms(&mut conn).await - 1000;
    let mut pipe = redis::pipe();
    for i in 0..10_000u32 {
        let id = format!("t{i}");
        pipe.hset(
            config.job_data_hash(),
            &id,
            serde_json::to_vec(&(2 * i)).unwrap(),
        )
        .ignore()
        .hset_multiple(
            format!("{}:{id}", config.job_meta_hash()),
            &[
                ("attempts", "0"),
                ("max_attempts", "3"),
                ("status", "Pending"),
            ],
        )
        .ignore()
        .zadd(config.scheduled_jobs_set(), &id, past)
        .ignore();
    }
    // One task scheduled by 1.0.0: due in an hour, scored in seconds.
    pipe.zadd(config.scheduled_jobs_set(), "old", past / 1000 + 3600)
        .ignore();
    pipe.query_async::<()>(&mut conn).await.unwrap();
    apalis_redis::upgrade_sets(&mut conn, &config, 1000)
        .await
        .unwrap();
    let old: Option<f64> = conn
        .zscore(config.scheduled_jobs_set(), "old")
        .await
        .unwrap();
    assert_eq!(old, Some(((past / 1000 + 3600) * 1000) as f64));
    let _: () = conn.zrem(config.scheduled_jobs_set(), "old").await.unwrap();

    // One explicit promotion moves one chunk and says more is due.
    let promoted = apalis_redis::promote_due(&mut conn, &config, 1000)
        .await
        .unwrap();
    assert_eq!(promoted.moved, 1000);
    assert_eq!(promoted.next_due_in, Some(Duration::ZERO));

    // A worker's fetches promote the rest, a chunk at a time.
    let stop = run_worker(storage);
    eventually("every task done", Duration::from_secs(120), || {
        let mut conn = conn.clone();
        let done = config.done_jobs_set();
        async move { (zcard(&mut conn, &done).await == 10_000).then_some(()) }
    })
    .await;
    let _ = stop.send(());
    assert_eq!(zcard(&mut conn, &config.scheduled_jobs_set()).await, 0);
}

/// PATCHES.md 10: a failed task runs again after the configured backoff
/// until it has run its `max_attempts` times, then goes to the dead set.
/// Upstream ignored `max_attempts` (a hard-coded 25) and waited `attempt`
/// seconds between attempts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_task_runs_max_attempts_times_with_backoff_then_dies() {
    use std::sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    };

    use apalis_core::task::builder::TaskBuilder;

    let mut conn = connection().await;
    let backoff = apalis_redis::Backoff {
        base: Duration::from_millis(40),
        max: Duration::from_millis(80),
    };
    let config = config().retry_backoff(backoff);
    let task = TaskBuilder::new(serde_json::to_vec(&7u32).unwrap())
        .task_id(TaskId::from("flaky".to_owned()))
        .max_attempts(3)
        .build();
    apalis_redis::queries::push_tasks(&mut conn, &config, &[task])
        .await
        .unwrap();
    let runs = Arc::new(AtomicUsize::new(0));
    let counted = runs.clone();
    let storage: RedisStorage<u32> = RedisStorage::new(conn.clone()).with_config(config.clone());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = WorkerBuilder::new(format!("patch-worker-{}", random_suffix()).as_str())
        .backend(storage)
        .data(counted)
        .build(always_fail);
    tokio::spawn(worker.run_until(until(stopped)));
    eventually("the task dead", Duration::from_secs(60), || {
        let mut conn = conn.clone();
        let dead = config.dead_jobs_set();
        async move { (zcard(&mut conn, &dead).await == 1).then_some(()) }
    })
    .await;
    let _ = stop.send(());
    assert_eq!(
        runs.load(Ordering::SeqCst),
        3,
        "one run per allowed attempt"
    );
    let attempts: Option<String> = conn
        .hget(format!("{}:flaky", config.job_meta_hash()), "attempts")
        .await
        .unwrap();
    assert_eq!(attempts.as_deref(), Some("3"));
}

/// Counts its runs and fails (to be retried).
async fn always_fail(
    _job: u32,
    runs: Data<std::sync::Arc<std::sync::atomic::AtomicUsize>>,
) -> Result<(), BoxDynError> {
    runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    Err("always fails".into())
}

/// Succeeds after a while: heartbeats and empty fetches happen meanwhile.
async fn slow_success(_job: u32) -> Result<(), BoxDynError> {
    tokio::time::sleep(Duration::from_millis(1500)).await;
    Ok(())
}

/// PATCHES.md 10: the backoff doubles per attempt up to its cap, and each
/// delay is a point in the upper half of its step, the same for the same
/// task and attempt and spread over tasks.
#[test]
fn the_backoff_doubles_is_capped_and_jitters_within_the_upper_half() {
    let backoff = apalis_redis::Backoff {
        base: Duration::from_millis(100),
        max: Duration::from_secs(2),
    };
    assert_eq!(backoff.step(1), Duration::from_millis(100));
    assert_eq!(backoff.step(2), Duration::from_millis(200));
    assert_eq!(backoff.step(5), Duration::from_millis(1600));
    assert_eq!(backoff.step(6), Duration::from_secs(2));
    assert_eq!(backoff.step(99), Duration::from_secs(2));
    let mut seen = std::collections::HashSet::new();
    for i in 0..200 {
        let id = format!("task-{i}");
        let delay = backoff.delay(&id, 3);
        assert!(
            delay >= Duration::from_millis(200) && delay <= Duration::from_millis(400),
            "{delay:?}"
        );
        assert_eq!(
            delay,
            backoff.delay(&id, 3),
            "the same task, the same delay"
        );
        seen.insert(delay);
    }
    assert!(seen.len() > 50, "delays spread over tasks: {}", seen.len());
}

/// PATCHES.md 7 (amended): the idle wait does not hold back the
/// acknowledgements of tasks that finish while it would: a task that takes
/// a while is acknowledged when it ends, though the wait never ends. With
/// the wait applied to every fetch after an empty one, a fetch started by a
/// heartbeat during the task held its acknowledgement until the wait ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_finishing_during_an_idle_wait_is_acknowledged() {
    use futures::FutureExt as _;

    let mut conn = connection().await;
    let config = config().heartbeat_interval(Duration::from_millis(100));
    let mut storage: RedisStorage<u32> = RedisStorage::new(conn.clone())
        .with_config(config.clone())
        .with_idle_wait(|| futures::future::pending::<()>().boxed());
    storage.push(2).await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = WorkerBuilder::new(format!("patch-worker-{}", random_suffix()).as_str())
        .backend(storage)
        .build(slow_success);
    tokio::spawn(worker.run_until(until(stopped)));
    eventually("the task acknowledged", Duration::from_secs(20), || {
        let mut conn = conn.clone();
        let done = config.done_jobs_set();
        async move { (zcard(&mut conn, &done).await == 1).then_some(()) }
    })
    .await;
    let _ = stop.send(());
    let inflight: Vec<String> = conn
        .keys(format!("{}:*", config.inflight_jobs_set()))
        .await
        .unwrap();
    for key in inflight {
        let n: u64 = conn.scard(&key).await.unwrap();
        assert_eq!(n, 0, "{key} still holds the task");
    }
}

/// PATCHES.md 11: a waiting task (on the active list, or in the scheduled
/// set) can be cancelled, data and metadata gone; one a worker has fetched
/// cannot, and runs to its end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_task_can_be_cancelled_and_a_running_one_cannot() {
    use apalis_core::task::builder::TaskBuilder;
    use apalis_redis::waiting::{Cancel, Waited, cancel};

    let mut conn = connection().await;
    let config = config();
    let now_secs = server_ms(&mut conn).await / 1000;
    let task = |id: &str, data: &[u8]| {
        TaskBuilder::new(data.to_vec())
            .task_id(TaskId::from(id.to_owned()))
            .build()
    };
    let later = TaskBuilder::new(b"2".to_vec())
        .task_id(TaskId::from("later".to_owned()))
        .run_at_timestamp(now_secs + 3600)
        .build();
    apalis_redis::queries::push_tasks(&mut conn, &config, &[task("due", b"1"), later])
        .await
        .unwrap();

    assert_eq!(
        cancel(&mut conn, &config, "due").await.unwrap(),
        Cancel::Cancelled {
            waited: Waited::Pending,
            data: b"1".to_vec()
        }
    );
    assert_eq!(
        cancel(&mut conn, &config, "later").await.unwrap(),
        Cancel::Cancelled {
            waited: Waited::Scheduled,
            data: b"2".to_vec()
        }
    );
    // Gone for good: not waiting any more, no data, no metadata.
    assert_eq!(
        cancel(&mut conn, &config, "due").await.unwrap(),
        Cancel::Unknown
    );
    assert_eq!(
        cancel(&mut conn, &config, "unknown").await.unwrap(),
        Cancel::Unknown
    );
    assert_eq!(
        conn.llen::<_, u64>(config.active_jobs_list())
            .await
            .unwrap(),
        0
    );
    assert_eq!(zcard(&mut conn, &config.scheduled_jobs_set()).await, 0);
    let data: Option<Vec<u8>> = conn.hget(config.job_data_hash(), "due").await.unwrap();
    assert_eq!(data, None);
    let meta: bool = conn
        .exists(format!("{}:due", config.job_meta_hash()))
        .await
        .unwrap();
    assert!(!meta);

    // A task a worker has fetched is not waiting: it runs to its end.
    let mut storage: RedisStorage<u32> =
        RedisStorage::new(conn.clone()).with_config(config.clone());
    storage.push(7).await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let name = format!("patch-worker-{}", random_suffix());
    let worker = WorkerBuilder::new(name.as_str())
        .backend(storage)
        .build(slow_success);
    let running = tokio::spawn(worker.run_until(until(stopped)));
    let fetched: String = eventually("the task fetched", Duration::from_secs(30), || {
        let mut conn = conn.clone();
        let config = config.clone();
        async move {
            let ids: Vec<String> = conn.hkeys(config.job_data_hash()).await.ok()?;
            let active: u64 = conn.llen(config.active_jobs_list()).await.ok()?;
            (ids.len() == 1 && active == 0).then(|| ids[0].clone())
        }
    })
    .await;
    assert_eq!(
        cancel(&mut conn, &config, &fetched).await.unwrap(),
        Cancel::NotWaiting
    );
    eventually("the task done", Duration::from_secs(30), || {
        let mut conn = conn.clone();
        let config = config.clone();
        async move { (zcard(&mut conn, &config.done_jobs_set()).await == 1).then_some(()) }
    })
    .await;
    let _ = stop.send(());
    let _ = running.await;
}

/// PATCHES.md 12: the scheduled set is read a page at a time, soonest due
/// first, through ties in the same millisecond, and a retry waiting out
/// its backoff shows its attempts and last error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduled_set_is_listed_a_page_at_a_time_with_each_retrys_last_error() {
    use std::sync::{Arc, atomic::AtomicUsize};

    use apalis_core::task::builder::TaskBuilder;
    use apalis_redis::waiting::{ScheduledCursor, scheduled_page};

    let mut conn = connection().await;
    // A long backoff: the failed task stays scheduled while it is read.
    let config = config().retry_backoff(apalis_redis::Backoff {
        base: Duration::from_secs(3600),
        max: Duration::from_secs(3600),
    });
    let now_secs = server_ms(&mut conn).await / 1000;
    // Five tasks due in the same second (one score, ordered by id) and one
    // due later.
    let mut tasks: Vec<_> = ["t3", "t1", "t5", "t2", "t4"]
        .into_iter()
        .map(|id| {
            TaskBuilder::new(serde_json::to_vec(&1u32).unwrap())
                .task_id(TaskId::from(id.to_owned()))
                .run_at_timestamp(now_secs + 600)
                .build()
        })
        .collect();
    tasks.push(
        TaskBuilder::new(serde_json::to_vec(&2u32).unwrap())
            .task_id(TaskId::from("t0".to_owned()))
            .run_at_timestamp(now_secs + 1200)
            .build(),
    );
    apalis_redis::queries::push_tasks(&mut conn, &config, &tasks)
        .await
        .unwrap();

    let mut seen = Vec::new();
    let mut cursor: Option<ScheduledCursor> = None;
    loop {
        let page = scheduled_page(&mut conn, &config, cursor.as_ref(), 2)
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 2);
        let last = page.last().unwrap();
        cursor = Some(ScheduledCursor {
            due_at_ms: last.due_at_ms,
            task_id: last.task_id.clone(),
        });
        seen.extend(page);
    }
    let ids: Vec<&str> = seen.iter().map(|t| t.task_id.as_str()).collect();
    assert_eq!(ids, ["t1", "t2", "t3", "t4", "t5", "t0"]);
    assert_eq!(seen[0].due_at_ms, (now_secs + 600) * 1000);
    assert_eq!(seen[5].due_at_ms, (now_secs + 1200) * 1000);
    assert_eq!(seen[5].data.as_deref(), Some(&b"2"[..]));
    assert_eq!(seen[0].result, None, "a delayed task has not run");

    // A task that failed once waits out its backoff in the same set, with
    // its attempt and error.
    let failing = TaskBuilder::new(serde_json::to_vec(&3u32).unwrap())
        .task_id(TaskId::from("flaky".to_owned()))
        .max_attempts(3)
        .build();
    apalis_redis::queries::push_tasks(&mut conn, &config, &[failing])
        .await
        .unwrap();
    let storage: RedisStorage<u32> = RedisStorage::new(conn.clone()).with_config(config.clone());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = WorkerBuilder::new(format!("patch-worker-{}", random_suffix()).as_str())
        .backend(storage)
        .data(Arc::new(AtomicUsize::new(0)))
        .build(always_fail);
    let running = tokio::spawn(worker.run_until(until(stopped)));
    let retry = eventually("the failed task scheduled", Duration::from_secs(30), || {
        let mut conn = conn.clone();
        let config = config.clone();
        async move {
            let page = scheduled_page(&mut conn, &config, None, 10).await.ok()?;
            page.into_iter().find(|t| t.task_id == "flaky")
        }
    })
    .await;
    let _ = stop.send(());
    let _ = running.await;
    assert_eq!(retry.attempts.as_deref(), Some("1"));
    assert!(
        retry
            .result
            .as_deref()
            .is_some_and(|r| r.contains("always fails")),
        "{:?}",
        retry.result
    );
    assert!(retry.due_at_ms >= server_ms(&mut conn).await + 3000 * 1000);
    // Soonest first: the retry (due in an hour) after the six (ten and
    // twenty minutes).
    let all = scheduled_page(&mut conn, &config, None, 10).await.unwrap();
    assert_eq!(all.len(), 7);
    assert_eq!(all[6].task_id, "flaky");
    assert!(
        scheduled_page(&mut conn, &config, None, 0)
            .await
            .unwrap()
            .is_empty()
    );
}

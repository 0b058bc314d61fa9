//! Instant wake-ups, the subscribing side: every push publishes its
//! queue's name on one channel (`{prefix}:wake`, see [`JobQueues::push`](crate::JobQueues::push)
//! and [`JobQueues::wake_channel`](crate::JobQueues::wake_channel)); this
//! listener turns each message into a [`Wake`] for the worker process,
//! which then fetches at once instead of at its next idle poll.
//!
//! The outbox relays are woken the same way, on a channel of their own
//! (`{prefix}:outbox`): [`wake_relays`] after a commit that queued a job
//! due now, and [`listen`] on the relay's side.

use std::time::Duration;

use futures::StreamExt as _;
use redis::AsyncCommands as _;
use shared::jobs::Queue;
use tokio::sync::watch;

/// Which queues to look at now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// A job was pushed on this queue.
    Queue(Queue),
    /// The listener (re)connected: jobs pushed while it was away went
    /// unannounced, so every queue should look (and the paused set be
    /// read again).
    All,
    /// An operator paused or resumed a queue (see `pause`).
    Paused,
}

/// Tells the outbox relays, on every process, that a job due now was
/// committed to the outbox for `queue`. Fire and forget: a lost wake-up
/// only delays the job to the relays' next poll (`OUTBOX_POLL_MS`), so a
/// failure is logged at debug level, never returned.
pub async fn wake_relays(conn: &crate::Conn, prefix: &str, queue: Queue) {
    let woken: Result<(), _> = conn
        .clone()
        .publish(crate::keys::relay_wake_channel(prefix), queue.as_str())
        .await;
    if let Err(error) = woken {
        tracing::debug!(%error, queue = %queue, "cannot wake the outbox relays; they poll");
    }
}

/// Listens on `channel` until shutdown, reconnecting after errors. Missed
/// messages only cost latency: workers also poll on an interval.
pub async fn listen(
    subscriber: crate::Subscriber,
    channel: String,
    mut wake: impl FnMut(Wake),
    mut shutdown: watch::Receiver<bool>,
) {
    let mut failures = 0u32;
    while !*shutdown.borrow() {
        match subscriber.pubsub().await {
            Ok(mut pubsub) => match pubsub.subscribe(&channel).await {
                Ok(()) => {
                    if failures > 0 {
                        tracing::info!("wake-up channel reconnected");
                    }
                    failures = 0;
                    wake(Wake::All);
                    let mut messages = pubsub.on_message();
                    loop {
                        tokio::select! {
                            message = messages.next() => match message {
                                Some(message) => {
                                    let payload: String = message.get_payload().unwrap_or_default();
                                    if let Some(queue) = Queue::parse(&payload) {
                                        wake(Wake::Queue(queue));
                                    } else if payload == crate::pause::PAUSE_MESSAGE {
                                        wake(Wake::Paused);
                                    }
                                }
                                None => break,
                            },
                            _ = shutdown.changed() => return,
                        }
                    }
                }
                Err(error) => note_failure(&mut failures, &error),
            },
            Err(error) => note_failure(&mut failures, &error),
        }
        let pause = Duration::from_millis(200 * u64::from(failures.clamp(1, 10)));
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            _ = shutdown.changed() => return,
        }
    }
}

fn note_failure(failures: &mut u32, error: &redis::RedisError) {
    if *failures == 0 {
        tracing::warn!(%error, "wake-up channel unavailable; workers fall back to polling");
    }
    *failures = failures.saturating_add(1);
}

/// Wakes the outbox relays of every process after a commit that queued a
/// job due now ([`wake_relays`]), in the background: the caller
/// never waits on Redis, and a lost wake-up costs a relay poll interval.
#[derive(Clone)]
pub struct RelayWaker {
    pub redis: crate::Conn,
    pub prefix: String,
}

impl RelayWaker {
    pub fn wake(&self, queue: Queue) {
        let waker = self.clone();
        tokio::spawn(async move {
            wake_relays(&waker.redis, &waker.prefix, queue).await;
        });
    }
}

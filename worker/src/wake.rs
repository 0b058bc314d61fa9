//! Instant wake-ups: every push publishes the queue name on one channel;
//! this listener turns messages into a nudge for that queue's worker, which
//! then fetches at once instead of at its next idle poll.

use std::{
    collections::HashMap,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::Duration,
};

use futures::{Stream, StreamExt, channel::mpsc};
use shared::jobs::Queue;
use tokio::sync::watch;

/// Where wake-ups go: one slot per queue, refilled each time that queue's
/// worker (re)starts.
#[derive(Clone, Default)]
pub struct Wakers {
    slots: Arc<Mutex<HashMap<Queue, mpsc::Sender<()>>>>,
}

/// The stream an apalis poll strategy waits on. Wake-ups coalesce: the
/// channel holds one, and a worker that is busy fetches anyway.
pub struct WakeStream(mpsc::Receiver<()>);

impl Stream for WakeStream {
    type Item = ();
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<()>> {
        self.0.poll_next_unpin(cx)
    }
}

impl Wakers {
    /// A fresh stream for `queue`'s worker; replaces the previous one.
    pub fn subscribe(&self, queue: Queue) -> WakeStream {
        let (tx, rx) = mpsc::channel(1);
        self.slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(queue, tx);
        WakeStream(rx)
    }

    pub fn wake(&self, queue: Queue) {
        if let Some(tx) = self
            .slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get_mut(&queue)
        {
            // Full means a wake-up is already pending: nothing to add.
            let _ = tx.try_send(());
        }
    }

    pub fn wake_all(&self) {
        let queues: Vec<Queue> = self
            .slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .keys()
            .copied()
            .collect();
        for queue in queues {
            self.wake(queue);
        }
    }
}

/// Listens on `channel` until shutdown, reconnecting after errors. Missed
/// messages only cost latency: workers also poll on an interval.
pub async fn listen(
    client: redis::Client,
    channel: String,
    wakers: Wakers,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut failures = 0u32;
    while !*shutdown.borrow() {
        match client.get_async_pubsub().await {
            Ok(mut pubsub) => match pubsub.subscribe(&channel).await {
                Ok(()) => {
                    if failures > 0 {
                        tracing::info!("wake-up channel reconnected");
                    }
                    failures = 0;
                    // Jobs pushed while we were away: look now.
                    wakers.wake_all();
                    let mut messages = pubsub.on_message();
                    loop {
                        tokio::select! {
                            message = messages.next() => match message {
                                Some(message) => {
                                    let payload: String = message.get_payload().unwrap_or_default();
                                    if let Some(queue) = Queue::parse(&payload) {
                                        wakers.wake(queue);
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

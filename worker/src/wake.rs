//! Instant wake-ups: every push publishes the queue name on one channel;
//! `queue::wake::listen` turns messages into a [`Wake`], and [`Wakers`]
//! into a nudge for that queue's worker, which then fetches at once.
//!
//! An idle worker does not poll. After a fetch that found nothing, its next
//! fetch waits (apalis-redis's idle wait, our patch 7) for a wake-up, or for
//! one heartbeat (`WORKER_HEARTBEAT_SECS`) as the fallback that also covers
//! a lost wake-up channel. Each wake-up reaches the worker twice: as a
//! permit the waiting fetch takes (kept if it arrives while a fetch is in
//! flight, so no push is missed), and as an item of the stream apalis's
//! poll strategy watches (which wakes a worker parked after an empty fetch).

use std::{
    collections::HashMap,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::Duration,
};

use futures::{FutureExt as _, Stream, StreamExt, channel::mpsc, future::BoxFuture};
use queue::wake::Wake;
use shared::jobs::Queue;

/// Where wake-ups go: one slot per queue, refilled each time that queue's
/// worker (re)starts.
#[derive(Clone, Default)]
pub struct Wakers {
    slots: Arc<Mutex<HashMap<Queue, Slot>>>,
}

struct Slot {
    stream: mpsc::Sender<()>,
    permits: Arc<tokio::sync::Notify>,
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
    /// A fresh stream and idle wait for `queue`'s worker (replacing the
    /// previous ones): the idle wait ends at the next wake-up, or after
    /// `fallback`.
    pub fn subscribe(
        &self,
        queue: Queue,
        fallback: Duration,
    ) -> (
        WakeStream,
        impl Fn() -> BoxFuture<'static, ()> + Send + Sync + 'static,
    ) {
        let (tx, rx) = mpsc::channel(1);
        let permits = Arc::new(tokio::sync::Notify::new());
        self.slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(
                queue,
                Slot {
                    stream: tx,
                    permits: permits.clone(),
                },
            );
        let idle_wait = move || {
            let permits = permits.clone();
            async move {
                let _ = tokio::time::timeout(fallback, permits.notified()).await;
            }
            .boxed()
        };
        (WakeStream(rx), idle_wait)
    }

    pub fn wake(&self, queue: Queue) {
        if let Some(slot) = self
            .slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get_mut(&queue)
        {
            // One permit at most is kept, and a full channel means a
            // wake-up is already pending: nothing to add either way.
            slot.permits.notify_one();
            let _ = slot.stream.try_send(());
        }
    }

    /// Passes on a wake-up from the channel.
    pub fn apply(&self, wake: Wake) {
        match wake {
            Wake::Queue(queue) => self.wake(queue),
            Wake::All => self.wake_all(),
            // For `Pauses`, not a fetch.
            Wake::Paused => {}
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

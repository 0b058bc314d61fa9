//! Instant wake-ups: every push publishes the queue name on one channel;
//! `queue::wake::listen` turns messages into a [`Wake`], and [`Wakers`]
//! into a nudge for that queue's worker, which then fetches at once instead
//! of at its next idle poll.

use std::{
    collections::HashMap,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
};

use futures::{Stream, StreamExt, channel::mpsc};
use queue::wake::Wake;
use shared::jobs::Queue;

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

    /// Passes on a wake-up from the channel.
    pub fn apply(&self, wake: Wake) {
        match wake {
            Wake::Queue(queue) => self.wake(queue),
            Wake::All => self.wake_all(),
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

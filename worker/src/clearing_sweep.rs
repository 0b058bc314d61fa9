//! Re-queues clearing work a lost job would leave behind (see
//! `shared::trading::clearing::resubmit_stale`): run by every worker that
//! serves `order_clearing`; the claim in the database makes several
//! sweepers queue each stale batch once.

use std::time::Duration;

use shared::{db::DbPool, trading::clearing};
use tokio::sync::watch;

pub struct ClearingSweep {
    pub db: DbPool,
    /// How long a batch or order may wait before it is queued again.
    pub after: Duration,
}

impl ClearingSweep {
    /// Sweeps a few times per `after` (at most once a minute, at least
    /// once a second).
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let every = (self.after / 4).clamp(Duration::from_secs(1), Duration::from_secs(60));
        loop {
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                _ = shutdown.changed() => return,
            }
            let swept = match self.db.get().await {
                Ok(mut conn) => clearing::resubmit_stale(&mut conn, self.after, chrono::Utc::now())
                    .await
                    .map_err(|e| e.to_string()),
                Err(error) => Err(error.to_string()),
            };
            match swept {
                Ok(0) => {}
                Ok(queued) => tracing::warn!(queued, "re-queued stale clearing work"),
                Err(error) => tracing::warn!(%error, "clearing sweep failed; will retry"),
            }
        }
    }
}

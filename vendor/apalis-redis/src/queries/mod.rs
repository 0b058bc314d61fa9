use std::time::{SystemTime, UNIX_EPOCH};

mod fetch_by_id;
mod fetch_next;
mod handle_results;
mod keep_alive;
mod list_queues;
mod list_tasks;
mod list_workers;
mod metrics;
mod push_tasks;
mod reenqueue;
mod register_worker;
mod registry;
mod task_lease;
mod vacuum;
mod wait_for;

fn current_timestamp() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// This machine's time in milliseconds since the epoch.
fn current_millis() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis(),
    )
    .unwrap_or(u64::MAX)
}

/// A duration in whole milliseconds, for scripts that compare it with the
/// Redis server's clock.
fn millis(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

pub use fetch_next::CompactTask;
pub use fetch_next::deserialize_with_meta;
pub use fetch_next::fetch_next;
pub(crate) use handle_results::handle_results;
pub use keep_alive::heartbeat;
pub(crate) use keep_alive::keep_alive;
pub use push_tasks::push_tasks;
pub(crate) use reenqueue::reenqueue_orphaned;
pub(crate) use register_worker::register_worker;
pub(crate) use task_lease::{acquire_leases, release_leases, renew_leases};

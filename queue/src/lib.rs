//! Everything Bourse keeps in Redis, for the API and the workers alike:
//! the connection ([`connect`]), the job queues and their key layout
//! ([`JobQueues`], [`QueueKeys`]), dead-set operations ([`dead`]), the
//! worker registry ([`WorkerProcess`]), wake-ups ([`wake`]), the
//! latest-price cache ([`rates`]), paused queues ([`pause`]), cluster-wide
//! rate limits ([`limit`]), unique jobs ([`waiting`]), cancelling a waiting
//! job ([`cancel`]), browsing scheduled and dead jobs ([`browse`]), the
//! throughput history ([`history`]), readiness pings ([`ping`]), leases
//! ([`lease`]: the upkeep lease, a webhook endpoint's turn) and the
//! start-up check of Redis's eviction policy ([`check_eviction_policy`]).
//!
//! Dependencies point one way: this crate uses `shared` (configuration, job
//! payloads, prices); `api` and `worker` use both; `shared` knows nothing
//! of Redis. A key or channel that two processes must agree on is spelled
//! here once.

pub mod browse;
pub mod cancel;
mod connect;
pub mod dead;
mod eviction;
pub mod history;
pub mod keys;
pub mod lease;
pub mod limit;
pub mod pause;
mod processes;
mod queues;
pub mod rates;
mod readiness;
mod rename;
mod upkeep;
pub mod waiting;
pub mod wake;

pub use apalis_redis::dead::DeadCursor;
pub use connect::{Conn, Subscriber, client, connect};
pub use eviction::check_eviction_policy;
pub use keys::{QueueKeys, patterns as key_patterns};
pub use processes::{SeenProcess, WorkerProcess};
pub use queues::{CHUNK, DeadBounds, DeadJob, JobQueues, PushError, QueueCounts, ReadyJob};
pub use readiness::{ping, wait_until_reachable};
// The client library, so callers name its types (`queue::redis::RedisError`)
// at the version this crate was built against.
pub use redis;

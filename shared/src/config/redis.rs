//! Redis: one server, a Redis Cluster, or a primary found through Sentinel.
//! Reads `REDIS_URL`, `REDIS_CLUSTER_NODES`, `REDIS_SENTINEL_NODES`,
//! `REDIS_SENTINEL_MASTER`, `REDIS_PREFIX`, `REDIS_TIMEOUT_MS`,
//! `REDIS_CA_FILE`.

use std::{path::PathBuf, time::Duration};

use secrecy::{ExposeSecret as _, SecretString};

use super::env::{EnvReader, millis};

const LOCAL_REDIS_URL: &str = "redis://127.0.0.1:6379/0";

#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// The one server of `Single` mode (`REDIS_URL`); unused otherwise.
    pub url: SecretString,
    /// One server, a Redis Cluster, or a primary found through Sentinel.
    pub topology: RedisTopology,
    /// Every key and channel we create starts with `{prefix}:`; tests give
    /// each test its own prefix, operators can share one Redis between
    /// deployments.
    pub prefix: String,
    /// Connect and response timeout of every Redis call.
    pub timeout: Duration,
    /// PEM certificates that sign a `rediss://` server's certificate (a
    /// private CA); else the system's roots.
    pub ca_file: Option<PathBuf>,
}

/// How the processes find Redis.
#[derive(Debug, Clone)]
pub enum RedisTopology {
    /// `REDIS_URL`.
    Single,
    /// `REDIS_CLUSTER_NODES`: some of the cluster's nodes (any will do;
    /// the client learns the rest from them).
    Cluster { nodes: Vec<SecretString> },
    /// `REDIS_SENTINEL_NODES` and `REDIS_SENTINEL_MASTER`: the sentinels
    /// and the name they know the primary by. `REDIS_URL`'s credentials,
    /// database and TLS apply to the primary.
    Sentinel {
        nodes: Vec<SecretString>,
        master: String,
    },
}

impl RedisConfig {
    pub(super) fn read(env: &mut EnvReader) -> Self {
        let prefix = env.string_or("REDIS_PREFIX", "bourse");
        if !prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'))
        {
            env.problem(
                "REDIS_PREFIX",
                format!("invalid value {prefix:?} (letters, digits, _ - . : only)"),
            );
        }
        let topology = RedisTopology::read(env);
        Self {
            url: match topology {
                RedisTopology::Single => env.secret("REDIS_URL", LOCAL_REDIS_URL),
                _ => env
                    .optional_secret("REDIS_URL")
                    .unwrap_or_else(|| SecretString::from(LOCAL_REDIS_URL.to_owned())),
            },
            topology,
            prefix,
            timeout: millis(env.range_or("REDIS_TIMEOUT_MS", 5000, 10, 600_000)),
            ca_file: env.optional("REDIS_CA_FILE").map(PathBuf::from),
        }
    }
}

impl RedisTopology {
    /// `REDIS_CLUSTER_NODES` or `REDIS_SENTINEL_NODES` +
    /// `REDIS_SENTINEL_MASTER` (comma-separated `redis://` or `rediss://`
    /// addresses); neither means one server at `REDIS_URL`.
    fn read(env: &mut EnvReader) -> Self {
        fn nodes(raw: Option<SecretString>) -> Option<Vec<SecretString>> {
            let raw = raw?;
            Some(
                raw.expose_secret()
                    .split(',')
                    .map(str::trim)
                    .filter(|node| !node.is_empty())
                    .map(|node| SecretString::from(node.to_owned()))
                    .collect(),
            )
        }
        let cluster = nodes(env.optional_secret("REDIS_CLUSTER_NODES"));
        let sentinel = nodes(env.optional_secret("REDIS_SENTINEL_NODES"));
        let master = env.optional("REDIS_SENTINEL_MASTER");
        match (cluster, sentinel, master) {
            (None, None, None) => Self::Single,
            (Some(_), Some(_), _) | (Some(_), None, Some(_)) => {
                env.problem(
                    "REDIS_CLUSTER_NODES",
                    "set either REDIS_CLUSTER_NODES or REDIS_SENTINEL_NODES, not both",
                );
                Self::Single
            }
            (Some(nodes), None, None) if nodes.is_empty() => {
                env.problem("REDIS_CLUSTER_NODES", "lists no address");
                Self::Single
            }
            (Some(nodes), None, None) => Self::Cluster { nodes },
            (None, Some(nodes), Some(master)) if !nodes.is_empty() && !master.is_empty() => {
                Self::Sentinel { nodes, master }
            }
            (None, Some(_), Some(_)) => {
                env.problem(
                    "REDIS_SENTINEL_NODES",
                    "needs at least one address and a REDIS_SENTINEL_MASTER name",
                );
                Self::Single
            }
            (None, Some(_), None) => {
                env.problem(
                    "REDIS_SENTINEL_MASTER",
                    "not set (REDIS_SENTINEL_NODES needs it)",
                );
                Self::Single
            }
            (None, None, Some(_)) => {
                env.problem(
                    "REDIS_SENTINEL_NODES",
                    "not set (REDIS_SENTINEL_MASTER needs it)",
                );
                Self::Single
            }
        }
    }
}

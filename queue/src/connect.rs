//! The one way the API and the workers reach Redis: one server
//! (`REDIS_URL`), a Redis Cluster (`REDIS_CLUSTER_NODES`) or the primary
//! that Sentinel names (`REDIS_SENTINEL_NODES`, `REDIS_SENTINEL_MASTER`),
//! behind one connection type ([`Conn`]) that apalis-redis and our own
//! calls share.
//!
//! On a cluster every multi-key script and pipeline we send touches one
//! hash slot (each queue's keys share a hash tag, see `keys`); pub/sub is
//! cluster-wide in Redis Cluster (a message published on any node reaches
//! subscribers on every node), so a subscription may use any node.

use std::{
    path::Path,
    sync::{Arc, Mutex, PoisonError},
};

use redis::{
    Cmd, Pipeline, RedisFuture, Value,
    aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig, PubSub},
    cluster::{ClusterClientBuilder, ClusterConfig},
    cluster_async::ClusterConnection,
    sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType},
};
use secrecy::{ExposeSecret as _, SecretString};
use shared::config::{RedisConfig, RedisTopology};

/// A connection to whichever Redis is configured. Cheap to clone: clones
/// share the underlying multiplexed connections.
#[derive(Clone)]
pub enum Conn {
    /// One server, reconnecting after failures.
    Single(ConnectionManager),
    /// A cluster: commands go to the node owning their keys' slot, and the
    /// slot map is refreshed when the cluster moves slots or fails over.
    Cluster(ClusterConnection),
    /// The primary the sentinels name, asked again after a failure.
    Sentinel(SentinelConn),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(conn) => conn.req_packed_command(cmd),
            Self::Cluster(conn) => conn.req_packed_command(cmd),
            Self::Sentinel(conn) => {
                let conn = conn.clone();
                Box::pin(async move {
                    let (generation, mut primary) = conn.primary().await?;
                    let reply = primary.req_packed_command(cmd).await;
                    conn.note(generation, reply.as_ref().err());
                    reply
                })
            }
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(conn) => conn.req_packed_commands(pipeline, offset, count),
            Self::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
            Self::Sentinel(conn) => {
                let conn = conn.clone();
                Box::pin(async move {
                    let (generation, mut primary) = conn.primary().await?;
                    let reply = primary.req_packed_commands(pipeline, offset, count).await;
                    conn.note(generation, reply.as_ref().err());
                    reply
                })
            }
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(conn) => conn.get_db(),
            Self::Cluster(conn) => conn.get_db(),
            Self::Sentinel(conn) => conn.0.db,
        }
    }
}

/// A connection to the primary of a Sentinel-monitored group. The primary
/// is looked up on first use and again after a call fails in a way that a
/// failover explains (the old primary unreachable, or demoted and refusing
/// writes with `READONLY`), so processes follow a promoted replica within
/// the sentinels' failover time plus one failed call.
#[derive(Clone)]
pub struct SentinelConn(Arc<SentinelState>);

struct SentinelState {
    sentinels: tokio::sync::Mutex<SentinelClient>,
    /// The primary's connection, and a generation that tells a failure on
    /// a connection already replaced from one on the current connection.
    current: Mutex<(u64, Option<ConnectionManager>)>,
    manager_config: ConnectionManagerConfig,
    db: i64,
}

impl SentinelConn {
    async fn primary(&self) -> Result<(u64, ConnectionManager), redis::RedisError> {
        if let (generation, Some(conn)) = &*self.current() {
            return Ok((*generation, conn.clone()));
        }
        // One lookup at a time; whoever waited finds the new connection.
        let mut sentinels = self.0.sentinels.lock().await;
        if let (generation, Some(conn)) = &*self.current() {
            return Ok((*generation, conn.clone()));
        }
        let client = sentinels.async_get_client().await?;
        let conn = ConnectionManager::new_lazy_with_config(client, self.0.manager_config.clone())?;
        let mut current = self.current();
        current.0 += 1;
        current.1 = Some(conn.clone());
        Ok((current.0, conn))
    }

    /// After a call on the connection of `generation`: a failure that a
    /// failover explains makes the next call ask the sentinels again.
    fn note(&self, generation: u64, error: Option<&redis::RedisError>) {
        let Some(error) = error else { return };
        let failover = error.is_io_error()
            || error.is_connection_refusal()
            || error.is_connection_dropped()
            || error.is_timeout()
            || matches!(
                error.kind(),
                redis::ErrorKind::Server(
                    redis::ServerErrorKind::ReadOnly | redis::ServerErrorKind::MasterDown
                )
            );
        if failover {
            let mut current = self.current();
            if current.0 == generation && current.1.is_some() {
                tracing::warn!(%error, "Redis primary failed; asking the sentinels again");
                current.1 = None;
            }
        }
    }

    fn current(&self) -> std::sync::MutexGuard<'_, (u64, Option<ConnectionManager>)> {
        self.0
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// A client for the current primary (subscriptions).
    async fn client(&self) -> Result<redis::Client, redis::RedisError> {
        self.0.sentinels.lock().await.async_get_client().await
    }
}

/// Where subscriptions connect (a subscribed connection can do nothing
/// else, so each subscription opens its own).
#[derive(Clone)]
pub enum Subscriber {
    Single(Box<redis::Client>),
    /// Every configured cluster node, tried in turn: the first that answers
    /// carries the subscription, and after it fails the caller's reconnect
    /// lands on the next one that answers.
    Cluster(Vec<redis::Client>),
    /// The current primary (replicas relay what is published on it too,
    /// but the primary is the one node every process agrees on).
    Sentinel(SentinelConn),
}

impl Subscriber {
    /// A fresh pub/sub connection.
    pub async fn pubsub(&self) -> Result<PubSub, redis::RedisError> {
        match self {
            Self::Single(client) => client.get_async_pubsub().await,
            Self::Cluster(nodes) => {
                let mut last = None;
                for node in nodes {
                    match node.get_async_pubsub().await {
                        Ok(pubsub) => return Ok(pubsub),
                        Err(error) => last = Some(error),
                    }
                }
                Err(last.unwrap_or_else(|| {
                    redis::RedisError::from((redis::ErrorKind::Client, "no cluster node listed"))
                }))
            }
            Self::Sentinel(conn) => conn.client().await?.get_async_pubsub().await,
        }
    }
}

/// A client for one address: `rediss://` speaks TLS (rustls), verifying
/// the server against `ca_file` when given, else the system's roots.
fn client_for(url: &str, ca_file: Option<&Path>, variable: &str) -> Result<redis::Client, String> {
    shared::tls::install_crypto_provider();
    let built = match ca_file {
        Some(path) => redis::Client::build_with_tls(url, certificates(path)?),
        None => redis::Client::open(url),
    };
    built.map_err(|e| format!("{variable}: {e}"))
}

fn certificates(path: &Path) -> Result<redis::TlsCertificates, String> {
    let (pem, _) = shared::tls::read_ca_file(path).map_err(|e| format!("REDIS_CA_FILE: {e}"))?;
    Ok(redis::TlsCertificates {
        client_tls: None,
        root_cert: Some(pem),
    })
}

/// The client for `REDIS_URL` (one server).
pub fn client(config: &RedisConfig) -> Result<redis::Client, String> {
    client_for(
        config.url.expose_secret(),
        config.ca_file.as_deref(),
        "REDIS_URL",
    )
}

fn exposed(nodes: &[SecretString]) -> Vec<&str> {
    nodes.iter().map(|node| node.expose_secret()).collect()
}

/// A subscriber and a lazily connecting, self-healing connection for
/// everything else: a process starts even while Redis is down. Every call
/// times out after `REDIS_TIMEOUT_MS`; a failed call is retried `retries`
/// times (the API retries less than the workers, so a request waits less
/// while Redis is away).
pub fn connect(config: &RedisConfig, retries: usize) -> Result<(Subscriber, Conn), String> {
    match &config.topology {
        RedisTopology::Single => {
            let client = client(config)?;
            let manager = ConnectionManager::new_lazy_with_config(
                client.clone(),
                manager_config(config, retries),
            )
            .map_err(|e| format!("cannot set up the Redis connection: {e}"))?;
            Ok((Subscriber::Single(Box::new(client)), Conn::Single(manager)))
        }
        RedisTopology::Cluster { nodes } => {
            let urls = exposed(nodes);
            let subscribers = urls
                .iter()
                .map(|url| client_for(url, config.ca_file.as_deref(), "REDIS_CLUSTER_NODES"))
                .collect::<Result<Vec<_>, _>>()?;
            let mut builder = ClusterClientBuilder::new(urls)
                .retries(u32::try_from(retries).unwrap_or(u32::MAX))
                .connection_timeout(config.timeout)
                .response_timeout(config.timeout);
            if let Some(path) = &config.ca_file {
                builder = builder.certs(certificates(path)?);
            }
            let cluster = builder
                .build()
                .map_err(|e| format!("REDIS_CLUSTER_NODES: {e}"))?;
            // Pending: the nodes are reached in the background, so a process
            // starts while the cluster is down, like the one-server case.
            let conn = cluster.get_pending_async_connection_with_config(
                ClusterConfig::new()
                    .set_connection_timeout(config.timeout)
                    .set_response_timeout(config.timeout),
            );
            Ok((Subscriber::Cluster(subscribers), Conn::Cluster(conn)))
        }
        RedisTopology::Sentinel { nodes, master } => {
            shared::tls::install_crypto_provider();
            // REDIS_URL carries what applies to the primary: credentials,
            // database, and TLS (`rediss://`).
            let primary = client(config)?;
            let info = primary.get_connection_info();
            let mut node = SentinelNodeConnectionInfo::default()
                .set_redis_connection_info(info.redis_settings().clone());
            if let redis::ConnectionAddr::TcpTls { insecure, .. } = info.addr() {
                node = node.set_tls_mode(if *insecure {
                    redis::TlsMode::Insecure
                } else {
                    redis::TlsMode::Secure
                });
            }
            let sentinels = SentinelClient::build(
                exposed(nodes),
                master,
                Some(node),
                SentinelServerType::Master,
            )
            .map_err(|e| format!("REDIS_SENTINEL_NODES: {e}"))?;
            let conn = SentinelConn(Arc::new(SentinelState {
                sentinels: tokio::sync::Mutex::new(sentinels),
                current: Mutex::new((0, None)),
                manager_config: manager_config(config, retries),
                db: info.redis_settings().db(),
            }));
            Ok((Subscriber::Sentinel(conn.clone()), Conn::Sentinel(conn)))
        }
    }
}

fn manager_config(config: &RedisConfig, retries: usize) -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(config.timeout))
        .set_response_timeout(Some(config.timeout))
        .set_number_of_retries(retries)
}

//! A private three-master Redis Cluster for one test: three
//! `redis-server --cluster-enabled yes` processes on free ports, joined by
//! `redis-cli --cluster create`, each keeping nothing on disk but its
//! cluster configuration (so a master the test kills and starts again
//! rejoins with its slots, empty, as a master restarted without
//! persistence would).

use std::{path::PathBuf, process::Stdio, time::Duration};

use tokio::process::{Child, Command};

pub struct RedisCluster {
    pub ports: Vec<u16>,
    dir: PathBuf,
    children: Vec<Option<Child>>,
}

const MASTERS: usize = 3;
const WAIT: Duration = Duration::from_secs(30);

use crate::free_port;

impl RedisCluster {
    /// Starts the nodes, creates the cluster and waits until every node
    /// reports it healthy.
    pub async fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("bourse-cluster-{}", crate::random_suffix()));
        std::fs::create_dir_all(&dir).expect("cluster directory");
        // Cluster bus ports are the port + 10000: pick ports that leave
        // those free too.
        let mut ports = Vec::new();
        while ports.len() < MASTERS {
            let port = free_port();
            if port < 55_000 && !ports.contains(&port) {
                ports.push(port);
            }
        }
        let mut cluster = Self {
            ports,
            dir,
            children: (0..MASTERS).map(|_| None).collect(),
        };
        for node in 0..MASTERS {
            cluster.start_node(node).await;
        }
        let nodes: Vec<String> = cluster
            .ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        let created = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&nodes)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .await
            .expect("run redis-cli --cluster create (is redis-tools installed?)");
        assert!(
            created.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&created.stdout),
            String::from_utf8_lossy(&created.stderr)
        );
        cluster.wait_until_healthy().await;
        cluster
    }

    /// `REDIS_CLUSTER_NODES` for the processes under test.
    pub fn nodes_setting(&self) -> String {
        self.ports
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    async fn start_node(&mut self, node: usize) {
        assert!(self.children[node].is_none(), "node {node} already running");
        let port = self.ports[node].to_string();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port,
                "--bind",
                "127.0.0.1",
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                &format!("nodes-{port}.conf"),
                "--cluster-node-timeout",
                "2000",
                // A dead master stops only its own slots: the other queues
                // carry on (production runs replicas that take over).
                "--cluster-require-full-coverage",
                "no",
                "--save",
                "",
                "--appendonly",
                "no",
                "--maxmemory-policy",
                "noeviction",
            ])
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start redis-server (is it installed?)");
        self.children[node] = Some(child);
        let url = format!("redis://127.0.0.1:{port}/");
        crate::eventually("a cluster node to answer", WAIT, || {
            let url = url.clone();
            async move {
                let client = redis::Client::open(url).ok()?;
                let mut conn = client.get_multiplexed_async_connection().await.ok()?;
                redis::cmd("PING")
                    .query_async::<String>(&mut conn)
                    .await
                    .ok()
            }
        })
        .await;
    }

    /// Waits until every node says `cluster_state:ok` (all slots served).
    pub async fn wait_until_healthy(&self) {
        for port in &self.ports {
            let url = format!("redis://127.0.0.1:{port}/");
            crate::eventually("the cluster to report ok", WAIT, || {
                let url = url.clone();
                async move {
                    let client = redis::Client::open(url).ok()?;
                    let mut conn = client.get_multiplexed_async_connection().await.ok()?;
                    let info: String = redis::cmd("CLUSTER")
                        .arg("INFO")
                        .query_async(&mut conn)
                        .await
                        .ok()?;
                    info.contains("cluster_state:ok").then_some(())
                }
            })
            .await;
        }
    }

    /// The node (index into `ports`) serving the slot of `key`.
    pub async fn node_of(&self, key: &str) -> usize {
        let client =
            redis::Client::open(format!("redis://127.0.0.1:{}/", self.ports[0])).expect("client");
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .expect("connect to a cluster node");
        let slot: u16 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query_async(&mut conn)
            .await
            .expect("CLUSTER KEYSLOT");
        let shards: Vec<redis::Value> = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query_async(&mut conn)
            .await
            .expect("CLUSTER SLOTS");
        for shard in shards {
            let redis::Value::Array(parts) = shard else {
                continue;
            };
            let (Some(redis::Value::Int(from)), Some(redis::Value::Int(to))) =
                (parts.first(), parts.get(1))
            else {
                continue;
            };
            if (*from..=*to).contains(&i64::from(slot))
                && let Some(redis::Value::Array(master)) = parts.get(2)
                && let Some(redis::Value::Int(port)) = master.get(1)
                && let Some(node) = self.ports.iter().position(|p| i64::from(*p) == *port)
            {
                return node;
            }
        }
        panic!("no node serves slot {slot} of {key}");
    }

    /// Kills a master's process: its keys are gone and its slots unserved
    /// until it comes back.
    pub async fn kill(&mut self, node: usize) {
        if let Some(mut child) = self.children[node].take() {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
    }

    /// Starts a killed master again (empty, with its slots) and waits for
    /// the cluster to be whole.
    pub async fn restart(&mut self, node: usize) {
        self.start_node(node).await;
        self.wait_until_healthy().await;
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for child in self.children.iter_mut().flatten() {
            let _ = child.start_kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

//! A private Sentinel-monitored Redis for one test: a primary, one replica
//! and three sentinels (`redis-server --sentinel`), on free ports. The
//! test kills the primary; the sentinels promote the replica.

use std::{path::PathBuf, process::Stdio, time::Duration};

use tokio::process::{Child, Command};

/// The name the sentinels know the group by (`REDIS_SENTINEL_MASTER`).
pub const MASTER_NAME: &str = "bourse-test";

const SENTINELS: usize = 3;
const WAIT: Duration = Duration::from_secs(30);

pub struct RedisSentinel {
    pub primary_port: u16,
    pub replica_port: u16,
    pub sentinel_ports: Vec<u16>,
    dir: PathBuf,
    children: Vec<Child>,
    primary: Option<Child>,
}

use crate::free_port;

fn spawn(dir: &PathBuf, args: &[String]) -> Child {
    Command::new("redis-server")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start redis-server (is it installed?)")
}

fn server_args(port: u16) -> Vec<String> {
    [
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

async fn query(port: u16, command: &redis::Cmd) -> Option<redis::Value> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).ok()?;
    let mut conn = client.get_multiplexed_async_connection().await.ok()?;
    command.query_async(&mut conn).await.ok()
}

impl RedisSentinel {
    /// Starts the primary, the replica (in sync) and the sentinels (each
    /// aware of the others and of the replica).
    pub async fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("bourse-sentinel-{}", crate::random_suffix()));
        std::fs::create_dir_all(&dir).expect("sentinel directory");
        let primary_port = free_port();
        let replica_port = free_port();
        let primary = spawn(&dir, &server_args(primary_port));
        let mut replica_args = server_args(replica_port);
        replica_args.extend([
            "--replicaof".to_owned(),
            "127.0.0.1".to_owned(),
            primary_port.to_string(),
        ]);
        let mut children = vec![spawn(&dir, &replica_args)];
        crate::eventually("the replica in sync with the primary", WAIT, || async {
            let info = query(replica_port, redis::cmd("INFO").arg("replication")).await?;
            let redis::Value::BulkString(bytes) = info else {
                return None;
            };
            String::from_utf8_lossy(&bytes)
                .contains("master_link_status:up")
                .then_some(())
        })
        .await;
        let sentinel_ports: Vec<u16> = (0..SENTINELS).map(|_| free_port()).collect();
        for port in &sentinel_ports {
            // Sentinel rewrites its configuration file: one each.
            let file = dir.join(format!("sentinel-{port}.conf"));
            std::fs::write(
                &file,
                format!(
                    "port {port}\nbind 127.0.0.1\n\
                     sentinel monitor {MASTER_NAME} 127.0.0.1 {primary_port} 2\n\
                     sentinel down-after-milliseconds {MASTER_NAME} 1000\n\
                     sentinel failover-timeout {MASTER_NAME} 10000\n\
                     sentinel parallel-syncs {MASTER_NAME} 1\n"
                ),
            )
            .expect("sentinel configuration");
            children.push(spawn(
                &dir,
                &[file.display().to_string(), "--sentinel".to_owned()],
            ));
        }
        let sentinel = Self {
            primary_port,
            replica_port,
            sentinel_ports,
            dir,
            children,
            primary: Some(primary),
        };
        // Every sentinel knows the replica and two other sentinels, so a
        // failover can be agreed on.
        for port in &sentinel.sentinel_ports {
            crate::eventually("each sentinel to see the group", WAIT, || async {
                let info =
                    query(*port, redis::cmd("SENTINEL").arg("MASTER").arg(MASTER_NAME)).await?;
                (sentinel_field(&info, "num-other-sentinels") == Some(2)
                    && sentinel_field(&info, "num-slaves") == Some(1))
                .then_some(())
            })
            .await;
        }
        sentinel
    }

    /// `REDIS_SENTINEL_NODES` for the processes under test.
    pub fn nodes_setting(&self) -> String {
        self.sentinel_ports
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The port of the primary the sentinels name now.
    pub async fn current_primary(&self) -> Option<u16> {
        let reply = query(
            self.sentinel_ports[0],
            redis::cmd("SENTINEL")
                .arg("GET-MASTER-ADDR-BY-NAME")
                .arg(MASTER_NAME),
        )
        .await?;
        let redis::Value::Array(parts) = reply else {
            return None;
        };
        match parts.get(1)? {
            redis::Value::BulkString(port) => String::from_utf8_lossy(port).parse().ok(),
            _ => None,
        }
    }

    /// Kills the primary's process.
    pub async fn kill_primary(&mut self) {
        if let Some(mut child) = self.primary.take() {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
    }
}

/// A numeric field of a `SENTINEL MASTER` reply (a flat list or a map of
/// names and values).
fn sentinel_field(reply: &redis::Value, name: &str) -> Option<i64> {
    let text = |v: &redis::Value| match v {
        redis::Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        redis::Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    };
    match reply {
        redis::Value::Array(items) => items
            .chunks(2)
            .find(|pair| pair.first().and_then(text).as_deref() == Some(name))
            .and_then(|pair| pair.get(1).and_then(text))
            .and_then(|v| v.parse().ok()),
        redis::Value::Map(pairs) => pairs
            .iter()
            .find(|(k, _)| text(k).as_deref() == Some(name))
            .and_then(|(_, v)| text(v))
            .and_then(|v| v.parse().ok()),
        _ => None,
    }
}

impl Drop for RedisSentinel {
    fn drop(&mut self) {
        for child in self.children.iter_mut().chain(self.primary.iter_mut()) {
            let _ = child.start_kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

//! A whole Bourse for one test: its own database, Redis prefix and SMTP
//! receiver; the API served on a random port; workers in-process (or, with
//! [`crate::process`], as real processes).

use std::{collections::HashMap, sync::Once, time::Duration};

use serde_json::Value;
use shared::config::Config;
use tokio::sync::oneshot;

use crate::{
    SmtpReceiver, TestDb, pgbouncer::PgBouncer, proxy::TcpProxy, redis_cluster::RedisCluster,
    redis_sentinel::RedisSentinel, redis_server::RedisServer,
};

/// The shared Redis every test uses under its own key prefix.
pub const REDIS_ADDR: &str = "127.0.0.1:6379";

fn init_tracing() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        shared::telemetry::init(
            shared::config::LogFormat::Pretty,
            "warn",
            &shared::config::TelemetryConfig::default(),
        );
        shared::tls::install_crypto_provider();
    });
}

pub struct TestAppBuilder {
    overrides: HashMap<String, String>,
    worker: bool,
    redis_proxy: bool,
    postgres_proxy: bool,
    private_redis: bool,
    redis_cluster: bool,
    redis_sentinel: bool,
    pgbouncer: Option<Direct>,
}

/// Whether processes behind PgBouncer also get `DATABASE_DIRECT_URL`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Direct {
    /// Only the pooler: relays poll, migrations go through it.
    No,
    /// `DATABASE_DIRECT_URL` for `LISTEN` and migrations.
    Yes,
}

impl Default for TestAppBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl TestAppBuilder {
    pub fn new() -> Self {
        Self {
            overrides: HashMap::new(),
            worker: true,
            redis_proxy: false,
            postgres_proxy: false,
            private_redis: false,
            redis_cluster: false,
            redis_sentinel: false,
            pgbouncer: None,
        }
    }

    /// Sets one configuration variable.
    pub fn env(mut self, name: &str, value: impl ToString) -> Self {
        self.overrides.insert(name.to_owned(), value.to_string());
        self
    }

    /// No in-process worker (a test starts its own, or none).
    pub fn without_worker(mut self) -> Self {
        self.worker = false;
        self
    }

    /// The worker reaches Redis through a proxy the test can cut.
    pub fn redis_through_proxy(mut self) -> Self {
        self.redis_proxy = true;
        self
    }

    /// The API and the workers reach PostgreSQL through a proxy the test
    /// can cut (`TestApp::postgres_proxy`); the test's own connections go
    /// straight to the server.
    pub fn postgres_through_proxy(mut self) -> Self {
        self.postgres_proxy = true;
        self
    }

    /// A Redis server of this test's own (`TestApp::redis_server`), which
    /// the test may stop and start again, losing its data.
    pub fn private_redis(mut self) -> Self {
        self.private_redis = true;
        self
    }

    /// A three-master Redis Cluster of this test's own
    /// (`TestApp::redis_cluster`), reached through `REDIS_CLUSTER_NODES`.
    pub fn redis_cluster(mut self) -> Self {
        self.redis_cluster = true;
        self
    }

    /// A primary, a replica and three sentinels of this test's own
    /// (`TestApp::redis_sentinel`), reached through `REDIS_SENTINEL_NODES`.
    pub fn redis_sentinel(mut self) -> Self {
        self.redis_sentinel = true;
        self
    }

    /// The API and the workers reach PostgreSQL through a PgBouncer of this
    /// test's own in transaction pooling mode (`TestApp::pgbouncer`,
    /// `DATABASE_POOLER=transaction`), with or without a direct URL beside
    /// it; the test's own connections go straight to the server.
    pub fn through_pgbouncer(mut self, direct: Direct) -> Self {
        self.pgbouncer = Some(direct);
        self
    }

    pub async fn start(self) -> TestApp {
        init_tracing();
        let db = TestDb::new().await;
        let smtp = SmtpReceiver::start().await;
        let prefix = format!("t{}", crate::random_suffix());
        let redis_server = if self.private_redis {
            Some(RedisServer::start().await)
        } else {
            None
        };
        let redis_cluster = if self.redis_cluster {
            Some(RedisCluster::start().await)
        } else {
            None
        };
        let redis_sentinel = if self.redis_sentinel {
            Some(RedisSentinel::start().await)
        } else {
            None
        };
        let redis_addr = redis_server.as_ref().map_or_else(
            || REDIS_ADDR.to_owned(),
            |r| format!("127.0.0.1:{}", r.port),
        );
        let proxy = if self.redis_proxy {
            Some(TcpProxy::start(&redis_addr).await)
        } else {
            None
        };
        let postgres_proxy = if self.postgres_proxy {
            Some(TcpProxy::start(&crate::db::server_addr()).await)
        } else {
            None
        };
        let pgbouncer = match self.pgbouncer {
            Some(_) => Some(PgBouncer::start().await),
            None => None,
        };
        let database_url = match (&postgres_proxy, &pgbouncer) {
            (Some(proxy), _) => crate::db::through(&db.url, proxy.port),
            (None, Some(bouncer)) => bouncer.url(&db.url),
            (None, None) => db.url.clone(),
        };
        let mut settings: HashMap<String, String> = [
            ("DATABASE_URL", database_url),
            ("DATABASE_POOL_SIZE", "5".into()),
            ("REDIS_URL", format!("redis://{redis_addr}/0")),
            ("REDIS_PREFIX", prefix.clone()),
            ("REDIS_TIMEOUT_MS", "2000".into()),
            ("HTTP_ADDR", "127.0.0.1:0".into()),
            ("WORKER_HTTP_ADDR", "127.0.0.1:0".into()),
            ("BCRYPT_COST", "4".into()),
            ("MAIL_TRANSPORT", "smtp".into()),
            ("SMTP_HOST", "127.0.0.1".into()),
            ("SMTP_PORT", smtp.port.to_string()),
            ("SMTP_TLS", "none".into()),
            ("SMTP_TIMEOUT_SECS", "5".into()),
            ("WORKER_HEARTBEAT_SECS", "1".into()),
            ("WORKER_LEASE_SECS", "2".into()),
            ("WORKER_POLL_MS", "50".into()),
            ("WORKER_CONCURRENCY", "8".into()),
            ("WORKER_SHUTDOWN_TIMEOUT_SECS", "10".into()),
            ("OUTBOX_POLL_MS", "50".into()),
            // The backlog gauge's scheduled rows, counted every second here.
            ("OUTBOX_SCHEDULED_SAMPLE_SECS", "1".into()),
            ("JOB_MAX_ATTEMPTS", "3".into()),
            ("JOB_BACKOFF_BASE_MS", "50".into()),
            ("JOB_BACKOFF_MAX_MS", "1000".into()),
            (
                "JWT_SECRET",
                format!(
                    "test-secret-{}-{}",
                    crate::random_suffix(),
                    crate::random_suffix()
                ),
            ),
            ("COOKIE_SECURE", "true".into()),
            // The hourly purge would put jobs on the monthly_fee queue in
            // the middle of tests that count them; its own test sets it.
            ("PURGE_CRON", "0 0 0 1 1 *".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        if pgbouncer.is_some() {
            settings.insert("DATABASE_POOLER".to_owned(), "transaction".to_owned());
        }
        if self.pgbouncer == Some(Direct::Yes) {
            settings.insert("DATABASE_DIRECT_URL".to_owned(), db.url.clone());
        }
        if let Some(cluster) = &redis_cluster {
            settings.insert("REDIS_CLUSTER_NODES".to_owned(), cluster.nodes_setting());
        }
        if let Some(sentinel) = &redis_sentinel {
            settings.insert("REDIS_SENTINEL_NODES".to_owned(), sentinel.nodes_setting());
            settings.insert(
                "REDIS_SENTINEL_MASTER".to_owned(),
                crate::redis_sentinel::MASTER_NAME.to_owned(),
            );
        }
        settings.extend(self.overrides);
        let config = Config::from_map(settings.clone()).expect("test configuration is valid");

        let (base_url, api_stop, api_task) = spawn_api(&config).await;

        let mut app = TestApp {
            db,
            smtp,
            prefix,
            settings,
            config,
            base_url,
            client: reqwest::Client::new(),
            proxy,
            postgres_proxy,
            pgbouncer,
            redis_server,
            redis_cluster,
            redis_sentinel,
            api_stop: Some(api_stop),
            api_task: Some(api_task),
            workers: Vec::new(),
            extra_apis: Vec::new(),
        };
        if self.worker {
            app.start_worker().await;
        }
        app
    }
}

/// Routes only tests have: a stand-in money movement and admin action, to
/// test the extractors before the real routes exist, and a handler that
/// panics.
fn test_routes() -> axum::Router<api::AppState> {
    use api::auth::{AdminUser, VerifiedUser};
    axum::Router::new()
        .route(
            "/api/v1/test/money",
            axum::routing::post(|VerifiedUser(user): VerifiedUser| async move { user.username }),
        )
        .route(
            "/api/v1/test/admin",
            axum::routing::post(|AdminUser(user): AdminUser| async move { user.username }),
        )
        .route("/api/v1/test/panic", axum::routing::get(panicking))
}

async fn panicking() -> &'static str {
    panic!("a handler bug")
}

/// Serves one more API process (same configuration) on a random port.
async fn spawn_api(config: &Config) -> (String, oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind API");
    let base_url = format!("http://{}", listener.local_addr().expect("addr"));
    let state = api::state(config.clone()).expect("API state");
    let router = api::routes::router_with(state.clone(), test_routes());
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let _ = api::serve_router(listener, state, router, async move {
            let _ = stopped.await;
        })
        .await;
    });
    (base_url, stop, task)
}

/// An in-process worker.
pub struct InProcessWorker {
    pub health_url: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

pub struct TestApp {
    pub db: TestDb,
    pub smtp: SmtpReceiver,
    pub prefix: String,
    /// The variables the configuration was built from (give them to worker
    /// processes).
    pub settings: HashMap<String, String>,
    pub config: Config,
    pub base_url: String,
    pub client: reqwest::Client,
    pub proxy: Option<TcpProxy>,
    /// See [`TestAppBuilder::postgres_through_proxy`].
    pub postgres_proxy: Option<TcpProxy>,
    /// See [`TestAppBuilder::through_pgbouncer`].
    pub pgbouncer: Option<PgBouncer>,
    /// See [`TestAppBuilder::private_redis`].
    pub redis_server: Option<RedisServer>,
    /// See [`TestAppBuilder::redis_cluster`].
    pub redis_cluster: Option<RedisCluster>,
    /// See [`TestAppBuilder::redis_sentinel`].
    pub redis_sentinel: Option<RedisSentinel>,
    api_stop: Option<oneshot::Sender<()>>,
    api_task: Option<tokio::task::JoinHandle<()>>,
    pub workers: Vec<InProcessWorker>,
    extra_apis: Vec<(oneshot::Sender<()>, tokio::task::JoinHandle<()>)>,
}

/// A response: status, JSON body (Null when empty or not JSON), headers.
pub struct Reply {
    pub status: u16,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
}

impl Reply {
    pub fn content_type(&self) -> String {
        self.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// Starts a second API process sharing this app's database and Redis;
    /// returns its base URL.
    pub async fn spawn_api(&mut self) -> String {
        let (url, stop, task) = spawn_api(&self.config).await;
        self.extra_apis.push((stop, task));
        url
    }

    /// Starts a second API process sharing this app's database but with
    /// `overrides` applied to its configuration (say, a Redis that is
    /// down); returns its base URL.
    pub async fn spawn_api_with(&mut self, overrides: &[(&str, &str)]) -> String {
        let mut settings = self.settings.clone();
        for (name, value) in overrides {
            settings.insert((*name).to_owned(), (*value).to_owned());
        }
        let config = Config::from_map(settings).expect("API configuration is valid");
        let (url, stop, task) = spawn_api(&config).await;
        self.extra_apis.push((stop, task));
        url
    }

    /// The configuration a worker should use: Redis through the proxy when
    /// the test has one.
    pub fn worker_config(&self) -> Config {
        let mut settings = self.settings.clone();
        if let Some(proxy) = &self.proxy {
            settings.insert(
                "REDIS_URL".into(),
                format!("redis://127.0.0.1:{}/0", proxy.port),
            );
        }
        Config::from_map(settings).expect("worker configuration is valid")
    }

    /// Starts one more in-process worker serving every queue.
    pub async fn start_worker(&mut self) -> &InProcessWorker {
        let config = self.worker_config();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind worker");
        let health_url = format!("http://{}/healthz", listener.local_addr().expect("addr"));
        let options = worker::Options::from_config(&config);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(worker::run_on(listener, config, options, async move {
            let _ = stopped.await;
        }));
        self.workers.push(InProcessWorker {
            health_url,
            stop: Some(stop),
            task: Some(task),
        });
        self.workers.last().expect("just pushed")
    }

    /// Stops every in-process worker (graceful, like SIGTERM).
    pub async fn stop_workers(&mut self) {
        for mut worker in self.workers.drain(..) {
            if let Some(stop) = worker.stop.take() {
                let _ = stop.send(());
            }
            if let Some(task) = worker.task.take() {
                let _ = tokio::time::timeout(Duration::from_secs(15), task).await;
            }
        }
    }

    pub async fn send(&self, request: reqwest::RequestBuilder) -> Reply {
        let response = request.send().await.expect("request sent");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("body read");
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply {
            status,
            body,
            headers,
        }
    }

    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        self.send(self.client.post(self.url(path)).json(body)).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(self.client.get(self.url(path))).await
    }

    /// The body of `GET path` as text (`/metrics`, pages).
    pub async fn get_text(&self, path: &str) -> String {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request sent")
            .text()
            .await
            .expect("body read")
    }

    /// Direct access to the job queues under this test's prefix.
    pub fn queues(&self) -> queue::JobQueues {
        let (_, conn) =
            queue::connect(&self.config.redis, worker::REDIS_RETRIES).expect("redis connection");
        queue::JobQueues::new(conn, self.prefix.clone())
    }

    /// A pooled connection to the test database.
    pub async fn conn(&self) -> diesel_async::AsyncPgConnection {
        self.db.conn().await
    }

    /// The number a query answers as `n` (`SELECT count(*) AS n ...`).
    pub async fn count(&self, sql: &str) -> i64 {
        use diesel_async::RunQueryDsl as _;
        #[derive(diesel::QueryableByName)]
        struct Count {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let mut conn = self.conn().await;
        diesel::sql_query(sql)
            .get_result::<Count>(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .n
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        for worker in &mut self.workers {
            if let Some(stop) = worker.stop.take() {
                let _ = stop.send(());
            }
            if let Some(task) = worker.task.take() {
                task.abort();
            }
        }
        if let Some(stop) = self.api_stop.take() {
            let _ = stop.send(());
        }
        for (stop, task) in self.extra_apis.drain(..) {
            let _ = stop.send(());
            task.abort();
        }
        if let Some(task) = self.api_task.take() {
            task.abort();
        }
        let prefix = self.prefix.clone();
        let _ = std::thread::spawn(move || {
            let Ok(client) = redis::Client::open(format!("redis://{REDIS_ADDR}/0")) else {
                return;
            };
            let Ok(mut conn) = client.get_connection() else {
                return;
            };
            for pattern in queue::key_patterns(&prefix) {
                let keys: Vec<String> = redis::cmd("KEYS")
                    .arg(pattern)
                    .query(&mut conn)
                    .unwrap_or_default();
                for chunk in keys.chunks(500) {
                    let _: Result<(), _> = redis::cmd("DEL").arg(chunk).query(&mut conn);
                }
            }
        })
        .join();
    }
}

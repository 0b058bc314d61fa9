//! `docker-compose.yml`, checked offline (no Docker engine needed):
//!
//! - it is valid against the Compose Specification JSON schema vendored in
//!   `tests/fixtures/compose-spec.json` (after YAML anchors and `<<` merge
//!   keys are resolved, as Compose resolves them);
//! - it keeps what the README promises: the six services, a `worker` that
//!   `--scale worker=4` can replicate (no `container_name`, no host ports),
//!   a `mailpit` whose published ports bind 127.0.0.1 only (caught mail
//!   holds verification and reset codes), the API on host port 8080 and
//!   Mailpit on 8025 unless `API_PORT`/`MAILPIT_PORT` say otherwise, images
//!   that `*_IMAGE` variables can replace (local stand-ins where no registry
//!   is reachable) with the official ones by default,
//!   dependencies on services that exist (and have a healthcheck when
//!   `service_healthy` waits for one), an environment for `migrate`, `api`
//!   and `worker` made only of settings Bourse reads and accepted by
//!   `shared::config::Config` itself, `api` and `worker` healthchecks on
//!   `/readyz` or `/healthz` at the port the process listens on, a `redis`
//!   that never evicts keys (`--maxmemory-policy noeviction`), and a
//!   `worker` stop grace period longer than its shutdown drain
//!   (`WORKER_SHUTDOWN_TIMEOUT_SECS`), so `docker compose stop` does not kill
//!   jobs in flight.
//!
//! The `*_is_reported` tests break a copy of the real file and show that
//! each check can fail.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    fs,
    path::{Path, PathBuf},
    time::Duration,
};

use serde_json::{Map, Value};
use shared::config::Config;

/// The services the README's `docker compose up` runs.
const SERVICES: [&str; 6] = ["postgres", "redis", "mailpit", "migrate", "api", "worker"];
/// Services whose published ports must stay on this machine: Mailpit shows
/// every caught email, verification and reset codes included.
const LOCAL_ONLY: [&str; 1] = ["mailpit"];
/// The host ports the README promises with no variable set, and the
/// variable that moves each (the stack test picks free ports with them).
const PUBLISHED: [(&str, &str, &str); 2] = [
    ("api", "8080", "API_PORT"),
    ("mailpit", "8025", "MAILPIT_PORT"),
];
/// The image each service runs when no variable names another, and that
/// variable (scripts/docker/local-images makes stand-ins for all of them).
const IMAGES: [(&str, &str, &str); 6] = [
    ("postgres", "postgres:15", "POSTGRES_IMAGE"),
    ("redis", "redis:7", "REDIS_IMAGE"),
    ("mailpit", "axllent/mailpit:latest", "MAILPIT_IMAGE"),
    ("migrate", "bourse:latest", "BOURSE_IMAGE"),
    ("api", "bourse:latest", "BOURSE_IMAGE"),
    ("worker", "bourse:latest", "BOURSE_IMAGE"),
];
/// Host addresses that are this machine only.
const LOOPBACK: [&str; 3] = ["127.0.0.1", "::1", "localhost"];
/// The services that run Bourse's binaries: their environment is Bourse's
/// configuration.
const BOURSE_SERVICES: [&str; 3] = ["migrate", "api", "worker"];
/// Read by the platform rather than by the configuration loader: the
/// tracing filter.
const PLATFORM_VARIABLES: [&str; 1] = ["RUST_LOG"];
/// The variables the compose file takes from the operator's shell, as the
/// README sets them (`JWT_SECRET=$(openssl rand -hex 32)`).
const SHELL: [(&str, &str); 1] = [(
    "JWT_SECRET",
    "5d41402abc4b2a76b9719d911017c5925d41402abc4b2a76b9719d911017c592",
)];
/// After draining its jobs (`WORKER_SHUTDOWN_TIMEOUT_SECS`) a worker still
/// stops its background tasks and its HTTP server (up to 2 s each), so the
/// grace period before Compose's SIGKILL must exceed the drain by this much.
const STOP_MARGIN: Duration = Duration::from_secs(5);

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn compose_file() -> String {
    let path = workspace().join("docker-compose.yml");
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The schema, compiled once per check, and the variable names Bourse reads.
struct Checker {
    schema: jsonschema::Validator,
    variables: BTreeSet<String>,
}

impl Checker {
    fn new() -> Self {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/compose-spec.json");
        let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let schema: Value = serde_json::from_str(&text).unwrap();
        // The schema has only local `#/definitions/...` references and is
        // draft-07 (its meta-schema ships with the crate): nothing to fetch.
        let schema = jsonschema::validator_for(&schema)
            .unwrap_or_else(|e| panic!("{}: not a usable schema: {e}", path.display()));
        Self {
            schema,
            variables: bourse_variables(),
        }
    }

    /// Every problem found in a compose file, one line each (empty: none).
    fn check(&self, yaml: &str) -> Vec<String> {
        let doc = match parse(yaml) {
            Ok(doc) => doc,
            Err(error) => return vec![error],
        };
        let mut problems = Vec::new();
        for error in self.schema.iter_errors(&doc) {
            problems.push(format!(
                "schema: at `{}`: {error}",
                error.instance_path().as_str()
            ));
        }

        let no_services = Map::new();
        let services = doc
            .get("services")
            .and_then(Value::as_object)
            .unwrap_or(&no_services);
        for name in SERVICES {
            if !services.contains_key(name) {
                problems.push(format!("service `{name}` is missing"));
            }
        }
        if let Some(redis) = services.get("redis")
            && !evicts_nothing(redis)
        {
            problems.push(
                "`redis` does not run with `--maxmemory-policy noeviction`: it may evict queued jobs"
                    .to_owned(),
            );
        }

        for (name, service) in services {
            for (target, condition) in depends_on(service) {
                match services.get(&target) {
                    None => problems.push(format!(
                        "`{name}` depends on `{target}`, which is not a service"
                    )),
                    Some(dependency)
                        if condition.as_deref() == Some("service_healthy")
                            && healthcheck(dependency).is_none() =>
                    {
                        problems.push(format!(
                            "`{name}` waits for `{target}` to be healthy, but `{target}` has no healthcheck"
                        ));
                    }
                    Some(_) => {}
                }
            }
        }

        let shell: HashMap<&str, &str> = SHELL.into_iter().collect();
        for name in LOCAL_ONLY {
            let Some(service) = services.get(name) else {
                continue;
            };
            let ports = service.get("ports").and_then(Value::as_array);
            for port in ports.into_iter().flatten() {
                let host_ip = match port {
                    Value::String(spec) => match interpolate(spec, &shell) {
                        Ok(spec) => published_host_ip(&Value::String(spec)),
                        Err(error) => {
                            problems.push(format!("`{name}` port {spec}: {error}"));
                            continue;
                        }
                    },
                    other => published_host_ip(other),
                };
                if !host_ip.is_some_and(|ip| LOOPBACK.contains(&ip.as_str())) {
                    problems.push(format!(
                        "`{name}` publishes port {port} on every address: bind it to 127.0.0.1 (\"127.0.0.1:8025:8025\")"
                    ));
                }
            }
        }

        if let Some(worker) = services.get("worker") {
            if worker.get("container_name").is_some() {
                problems.push(
                    "`worker` has a container_name: `--scale worker=4` needs generated names"
                        .to_owned(),
                );
            }
            if worker
                .get("ports")
                .and_then(Value::as_array)
                .is_some_and(|ports| !ports.is_empty())
            {
                problems.push(
                    "`worker` publishes host ports: replicas of `--scale worker=4` would fight over them"
                        .to_owned(),
                );
            }
        }

        for (name, default_port, variable) in PUBLISHED {
            let Some(service) = services.get(name) else {
                continue;
            };
            let ports: Vec<&Value> = service
                .get("ports")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .collect();
            let moved: HashMap<&str, &str> = [(variable, "18000")].into_iter().collect();
            // The host side of each published port: `[IP:]HOST:CONTAINER`
            // in the short form, `published` in the long one.
            let host_ports = |shell: &HashMap<&str, &str>| -> Vec<String> {
                ports
                    .iter()
                    .filter_map(|port| match port {
                        Value::String(spec) => interpolate(spec, shell)
                            .ok()
                            .and_then(|spec| spec.rsplit(':').nth(1).map(str::to_owned)),
                        Value::Object(long) => match long.get("published") {
                            Some(Value::String(published)) => interpolate(published, shell).ok(),
                            Some(Value::Number(published)) => Some(published.to_string()),
                            _ => None,
                        },
                        _ => None,
                    })
                    .collect()
            };
            if !host_ports(&HashMap::new())
                .iter()
                .any(|p| p == default_port)
            {
                problems.push(format!(
                    "`{name}` does not publish host port {default_port} by default"
                ));
            }
            if !host_ports(&moved).iter().any(|p| p == "18000") {
                problems.push(format!(
                    "`{name}`'s published port cannot be moved with {variable} (\"${{{variable}:-{default_port}}}\")"
                ));
            }
        }

        for (name, default_image, variable) in IMAGES {
            let Some(image) = services
                .get(name)
                .and_then(|service| service.get("image"))
                .and_then(Value::as_str)
            else {
                problems.push(format!("`{name}` names no image"));
                continue;
            };
            let local: HashMap<&str, &str> = [(variable, "bourse-local/x")].into_iter().collect();
            if interpolate(image, &HashMap::new()).as_deref() != Ok(default_image) {
                problems.push(format!("`{name}` does not run {default_image} by default"));
            }
            if interpolate(image, &local).as_deref() != Ok("bourse-local/x") {
                problems.push(format!(
                    "`{name}`'s image cannot be replaced with {variable} (\"${{{variable}:-{default_image}}}\")"
                ));
            }
        }

        let mut configs: BTreeMap<&str, Config> = BTreeMap::new();
        for name in BOURSE_SERVICES {
            let Some(service) = services.get(name) else {
                continue;
            };
            let mut values = HashMap::new();
            for (key, value) in environment(service) {
                if !self.variables.contains(&key) && !PLATFORM_VARIABLES.contains(&key.as_str()) {
                    problems.push(format!(
                        "`{name}` sets {key}, which Bourse does not read (misspelled or removed setting?)"
                    ));
                }
                // A bare `KEY` passes the shell's value through: unset here.
                let Some(value) = value else { continue };
                match interpolate(&value, &shell) {
                    Ok(value) => {
                        values.insert(key, value);
                    }
                    Err(error) => problems.push(format!("`{name}` {key}: {error}")),
                }
            }
            match Config::from_map(values) {
                Ok(config) => {
                    configs.insert(name, config);
                }
                Err(errors) => problems.push(format!(
                    "`{name}`: its environment is not a valid Bourse configuration: {}",
                    errors.to_string().replace('\n', "; ")
                )),
            }
        }

        for name in ["api", "worker"] {
            let Some(service) = services.get(name) else {
                continue;
            };
            let Some(command) = healthcheck(service) else {
                problems.push(format!("`{name}` has no healthcheck"));
                continue;
            };
            if !command.contains("/readyz") && !command.contains("/healthz") {
                problems.push(format!(
                    "`{name}` healthcheck `{command}` asks neither /readyz nor /healthz"
                ));
            }
            if let Some(config) = configs.get(name) {
                let port = match name {
                    "api" => config.http.addr.port(),
                    _ => config.worker.http_addr.port(),
                };
                if !command.contains(&format!(":{port}/")) {
                    problems.push(format!(
                        "`{name}` healthcheck `{command}` does not ask port {port}, where it listens"
                    ));
                }
            }
        }

        if let Some(worker) = services.get("worker") {
            let drain = configs.get("worker").map_or_else(
                || default_config().worker.shutdown_timeout,
                |config| config.worker.shutdown_timeout,
            );
            match worker.get("stop_grace_period") {
                None => problems.push(format!(
                    "`worker` has no stop_grace_period: Compose's 10s default kills it during its {}s drain",
                    drain.as_secs()
                )),
                Some(Value::String(raw)) => match parse_duration(raw) {
                    Ok(grace) if grace < drain + STOP_MARGIN => problems.push(format!(
                        "`worker` stop_grace_period {raw} is not at least {}s longer than its {}s drain \
                         (WORKER_SHUTDOWN_TIMEOUT_SECS)",
                        STOP_MARGIN.as_secs(),
                        drain.as_secs()
                    )),
                    Ok(_) => {}
                    Err(error) => problems.push(format!("`worker` stop_grace_period: {error}")),
                },
                Some(other) => problems.push(format!(
                    "`worker` stop_grace_period {other} is not a duration string"
                )),
            }
        }
        problems
    }
}

/// The document as JSON, with anchors, aliases and `<<` merge keys resolved.
fn parse(yaml: &str) -> Result<Value, String> {
    let mut value: serde_norway::Value =
        serde_norway::from_str(yaml).map_err(|e| format!("not valid YAML: {e}"))?;
    value
        .apply_merge()
        .map_err(|e| format!("bad `<<` merge key: {e}"))?;
    serde_json::to_value(&value).map_err(|e| format!("not representable as JSON: {e}"))
}

fn default_config() -> Config {
    Config::from_map(HashMap::new()).unwrap()
}

/// `(service, condition)` for each entry of `depends_on`, list or map form.
fn depends_on(service: &Value) -> Vec<(String, Option<String>)> {
    match service.get("depends_on") {
        Some(Value::Array(names)) => names
            .iter()
            .filter_map(Value::as_str)
            .map(|name| (name.to_owned(), None))
            .collect(),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(name, spec)| {
                let condition = spec
                    .get("condition")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                (name.clone(), condition)
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// The host address a published port binds, `None` for every address:
/// the short form's `IP:HOST:CONTAINER` (IPv6 in brackets) or the long
/// form's `host_ip`.
fn published_host_ip(port: &Value) -> Option<String> {
    match port {
        Value::String(spec) => {
            let parts: Vec<&str> = spec.rsplitn(3, ':').collect();
            (parts.len() == 3).then(|| parts[2].trim_matches(['[', ']']).to_owned())
        }
        Value::Object(long) => long
            .get("host_ip")
            .and_then(Value::as_str)
            .map(str::to_owned),
        _ => None,
    }
}

/// The healthcheck command as one line, or `None` when there is none (or
/// it is disabled).
/// Whether a Redis service's command sets `--maxmemory-policy noeviction`
/// (Redis may otherwise evict a queued job; see
/// `queue::check_eviction_policy`).
fn evicts_nothing(service: &Value) -> bool {
    let words: Vec<String> = match service.get("command") {
        Some(Value::String(line)) => line.split_whitespace().map(str::to_owned).collect(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|item| item.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    };
    words
        .windows(2)
        .any(|pair| pair[0] == "--maxmemory-policy" && pair[1] == "noeviction")
}

fn healthcheck(service: &Value) -> Option<String> {
    let check = service.get("healthcheck")?;
    if check.get("disable").and_then(Value::as_bool) == Some(true) {
        return None;
    }
    match check.get("test")? {
        Value::String(shell) => Some(shell.clone()),
        Value::Array(words) => {
            let words: Vec<&str> = words.iter().filter_map(Value::as_str).collect();
            match words.split_first() {
                Some((&"NONE", _)) | None => None,
                Some((&("CMD" | "CMD-SHELL"), rest)) => Some(rest.join(" ")),
                Some(_) => Some(words.join(" ")),
            }
        }
        _ => None,
    }
}

/// `(name, value)` for each variable of `environment`, map or `KEY=VALUE`
/// list form; `None` for a bare name (passed through from the shell).
fn environment(service: &Value) -> Vec<(String, Option<String>)> {
    match service.get("environment") {
        Some(Value::Object(map)) => map
            .iter()
            .map(|(key, value)| {
                let value = match value {
                    Value::Null => None,
                    Value::String(text) => Some(text.clone()),
                    other => Some(other.to_string()),
                };
                (key.clone(), value)
            })
            .collect(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(|item| match item.split_once('=') {
                Some((key, value)) => (key.to_owned(), Some(value.to_owned())),
                None => (item.to_owned(), None),
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Compose's variable interpolation: `$$`, `$NAME`, `${NAME}`, and
/// `${NAME:-default}`, `-`, `:?error`, `?`, `:+replacement`, `+`. A variable
/// missing from `shell` is unset (Compose substitutes an empty string).
fn interpolate(raw: &str, shell: &HashMap<&str, &str>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = raw;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            // The closing brace, skipping nested `${...}` in a default.
            let mut depth = 1;
            let mut end = None;
            for (i, c) in body.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            end = Some(i);
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let end = end.ok_or_else(|| format!("unclosed `${{` in {raw:?}"))?;
            out.push_str(&expand(&body[..end], shell)?);
            rest = &body[end + 1..];
        } else {
            let len = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            if len == 0 {
                return Err(format!("a lone `$` in {raw:?} (write `$$`)"));
            }
            out.push_str(shell.get(&after[..len]).copied().unwrap_or_default());
            rest = &after[len..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// The inside of one `${...}`.
fn expand(body: &str, shell: &HashMap<&str, &str>) -> Result<String, String> {
    let len = body
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(body.len());
    let (name, operator) = body.split_at(len);
    if name.is_empty() {
        return Err(format!("`${{{body}}}` names no variable"));
    }
    let value = shell.get(name).copied();
    let set_non_empty = value.is_some_and(|v| !v.is_empty());
    let value = value.unwrap_or_default();
    for (op, test_set) in [(":-", set_non_empty), ("-", value_is_set(shell, name))] {
        if let Some(default) = operator.strip_prefix(op) {
            return if test_set {
                Ok(value.to_owned())
            } else {
                interpolate(default, shell)
            };
        }
    }
    for (op, test_set) in [(":?", set_non_empty), ("?", value_is_set(shell, name))] {
        if let Some(message) = operator.strip_prefix(op) {
            return if test_set {
                Ok(value.to_owned())
            } else {
                Err(format!("required variable {name} is not set: {message}"))
            };
        }
    }
    for (op, test_set) in [(":+", set_non_empty), ("+", value_is_set(shell, name))] {
        if let Some(replacement) = operator.strip_prefix(op) {
            return if test_set {
                interpolate(replacement, shell)
            } else {
                Ok(String::new())
            };
        }
    }
    if operator.is_empty() {
        Ok(value.to_owned())
    } else {
        Err(format!("unsupported interpolation `${{{body}}}`"))
    }
}

fn value_is_set(shell: &HashMap<&str, &str>, name: &str) -> bool {
    shell.contains_key(name)
}

/// A Compose duration: Go's syntax, one or more `<number><unit>` with units
/// `h`, `m`, `s`, `ms`, `us`/`µs`, `ns` (e.g. `40s`, `1m30s`, `1.5s`).
fn parse_duration(raw: &str) -> Result<Duration, String> {
    let bad = || format!("{raw:?} is not a duration such as 40s or 1m30s");
    let mut rest = raw.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total = 0.0_f64;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let number: f64 = rest[..number_len].parse().map_err(|_| bad())?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return Err(bad()),
        };
        total += number * seconds;
        rest = &rest[unit_len..];
    }
    Ok(Duration::from_secs_f64(total))
}

/// Every environment variable Bourse reads, as the code itself lists them:
/// the configuration reader records each name it asks for
/// (`Config::variables`), and `bourse-api`'s command line lists its own
/// (`api::cli::variables`). So a new setting needs no change here.
fn bourse_variables() -> BTreeSet<String> {
    shared::config::Config::variables()
        .into_iter()
        .map(str::to_owned)
        .chain(api::cli::variables())
        .collect()
}

/// `SCREAMING_SNAKE_CASE`, as every variable name is.
fn is_variable_name(text: &str) -> bool {
    text.len() >= 2
        && text.starts_with(|c: char| c.is_ascii_uppercase())
        && text
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        && !text.ends_with('_')
        && !text.contains("__")
}

fn problems_of(yaml: &str) -> Vec<String> {
    Checker::new().check(yaml)
}

/// The real compose file with `from` (which must occur exactly once)
/// replaced by `to`.
fn edited(from: &str, to: &str) -> String {
    let original = compose_file();
    assert_eq!(
        original.matches(from).count(),
        1,
        "docker-compose.yml changed: update this test's edit of {from:?}"
    );
    original.replacen(from, to, 1)
}

#[track_caller]
fn assert_reported(yaml: &str, needles: &[&str]) {
    let problems = problems_of(yaml);
    assert!(
        problems
            .iter()
            .any(|problem| needles.iter().all(|needle| problem.contains(needle))),
        "no problem mentions all of {needles:?}; problems: {problems:#?}"
    );
}

#[test]
fn docker_compose_yml_is_valid_and_keeps_the_readme_promises() {
    let problems = problems_of(&compose_file());
    assert!(
        problems.is_empty(),
        "docker-compose.yml has {} problem(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn anchors_and_merge_keys_are_resolved() {
    let doc = parse(&compose_file()).unwrap();
    let api = &doc["services"]["api"]["environment"];
    assert!(api.get("<<").is_none(), "{api}");
    // From `x-app-env` through `<<: *app-env`, next to the service's own.
    assert_eq!(
        api["DATABASE_URL"],
        "postgres://bourse:bourse@postgres:5432/bourse"
    );
    assert_eq!(api["HTTP_ADDR"], "0.0.0.0:8080");
    // `environment: *app-env` (an alias without a merge).
    assert_eq!(
        doc["services"]["migrate"]["environment"]["APP_ENV"],
        "production"
    );
    // A key of the service wins over the merged one.
    let yaml = "a: &base {x: 1, y: 2}\nb:\n  <<: *base\n  y: 3\n";
    let doc = parse(yaml).unwrap();
    assert_eq!(doc["b"], serde_json::json!({"x": 1, "y": 3}));
}

#[test]
fn the_code_lists_the_variables_bourse_reads() {
    let names = bourse_variables();
    for name in [
        "APP_ENV",
        "DATABASE_URL",
        "JWT_SECRET",
        "HTTP_ADDR",
        "WORKER_HTTP_ADDR",
        "WORKER_SHUTDOWN_TIMEOUT_SECS",
        "RATE_LIMIT_LOGIN_PER_IP",
        "EXCHANGE",
        "DEMO_ADMIN_PASSWORD",
        "ADMIN_PASSWORD",
    ] {
        assert!(names.contains(name), "{name} not found in {names:?}");
    }
    // Every setting `.env.example` documents is one the code reads.
    let example = fs::read_to_string(workspace().join(".env.example")).unwrap();
    let documented: Vec<&str> = example
        .lines()
        .map(|line| line.trim_start_matches(['#', ' ']))
        .filter_map(|line| line.split_once('=').map(|(name, _)| name))
        .filter(|name| is_variable_name(name))
        .collect();
    assert!(documented.len() > 60, "{documented:?}");
    let missing: Vec<&&str> = documented
        .iter()
        .filter(|name| !names.contains(**name))
        .collect();
    assert!(missing.is_empty(), "documented but not found: {missing:?}");
}

#[test]
fn durations_and_interpolation_follow_compose() {
    assert_eq!(parse_duration("40s"), Ok(Duration::from_secs(40)));
    assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
    assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
    assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
    assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
    for bad in ["", "40", "s", "40x", "4 0s"] {
        assert!(parse_duration(bad).is_err(), "{bad:?}");
    }

    let shell: HashMap<&str, &str> = [("SET", "value"), ("EMPTY", "")].into_iter().collect();
    let cases = [
        ("plain", "plain"),
        ("$$SET", "$SET"),
        ("$SET/x", "value/x"),
        ("${SET}", "value"),
        ("${UNSET}", ""),
        ("${UNSET:-fallback}", "fallback"),
        ("${EMPTY:-fallback}", "fallback"),
        ("${EMPTY-fallback}", ""),
        ("${UNSET:-${SET}}", "value"),
        ("${SET:+alt}", "alt"),
        ("${UNSET:+alt}", ""),
        ("${SET:?needed}", "value"),
    ];
    for (raw, expected) in cases {
        assert_eq!(interpolate(raw, &shell).as_deref(), Ok(expected), "{raw}");
    }
    assert!(
        interpolate("${UNSET:?set it}", &shell)
            .unwrap_err()
            .contains("set it")
    );
    assert!(interpolate("${EMPTY:?set it}", &shell).is_err());
    assert!(interpolate("${SET", &shell).is_err());
}

#[test]
fn a_misspelled_key_is_reported_by_the_schema() {
    let yaml = edited(
        "    depends_on:\n      migrate:\n        condition: service_completed_successfully\n      redis:\n        condition: service_healthy\n    healthcheck:\n      test: [\"CMD\", \"curl\", \"-fsS\", \"http://localhost:8080/readyz\"]",
        "    depends_onn:\n      migrate:\n        condition: service_completed_successfully\n      redis:\n        condition: service_healthy\n    healthcheck:\n      test: [\"CMD\", \"curl\", \"-fsS\", \"http://localhost:8080/readyz\"]",
    );
    assert_reported(&yaml, &["schema", "/services/api", "depends_onn"]);
    // A value of the wrong type too.
    let yaml = edited("stop_grace_period: 40s", "stop_grace_period: [40s]");
    assert_reported(&yaml, &["schema", "/services/worker/stop_grace_period"]);
    // And broken YAML.
    assert_reported("services: [", &["not valid YAML"]);
}

#[test]
fn a_missing_service_or_dependency_is_reported() {
    let yaml = edited("  postgres:\n    image:", "  database:\n    image:");
    assert_reported(&yaml, &["service `postgres` is missing"]);
    assert_reported(
        &yaml,
        &["`migrate` depends on `postgres`, which is not a service"],
    );
    let yaml = edited(
        "      mailpit:\n        condition: service_healthy",
        "      mailer:\n        condition: service_healthy",
    );
    assert_reported(&yaml, &["`worker` depends on `mailer`"]);
    let yaml = edited(
        "    healthcheck:\n      test: [\"CMD\", \"/mailpit\", \"readyz\"]\n      interval: 5s\n      timeout: 3s\n      retries: 20\n",
        "",
    );
    assert_reported(&yaml, &["waits for `mailpit` to be healthy"]);
}

#[test]
fn a_mailpit_open_to_the_network_is_reported() {
    let yaml = edited("\"127.0.0.1:${MAILPIT_PORT:-8025}:8025\"", "\"8025:8025\"");
    assert_reported(&yaml, &["`mailpit` publishes port", "8025:8025"]);
    let yaml = edited(
        "      - \"127.0.0.1:${MAILPIT_PORT:-8025}:8025\"",
        "      - target: 8025\n        published: \"8025\"",
    );
    assert_reported(&yaml, &["`mailpit` publishes port"]);
    let yaml = edited(
        "      - \"127.0.0.1:${MAILPIT_PORT:-8025}:8025\"",
        "      - target: 8025\n        published: \"${MAILPIT_PORT:-8025}\"\n        host_ip: 127.0.0.1",
    );
    let problems = problems_of(&yaml);
    assert!(problems.is_empty(), "{problems:#?}");
    assert_eq!(
        published_host_ip(&Value::String("[::1]:8025:8025".into())).as_deref(),
        Some("::1")
    );
}

#[test]
fn a_redis_that_may_evict_jobs_is_reported() {
    let yaml = edited(
        "\"--maxmemory-policy\", \"noeviction\"",
        "\"--maxmemory-policy\", \"allkeys-lru\"",
    );
    assert_reported(
        &yaml,
        &["`redis` does not run with `--maxmemory-policy noeviction`"],
    );
}

#[test]
fn a_worker_that_cannot_scale_is_reported() {
    let yaml = edited(
        "    command: [\"bourse-worker\", \"--concurrency\", \"32\"]",
        "    command: [\"bourse-worker\", \"--concurrency\", \"32\"]\n    container_name: bourse-worker\n    ports:\n      - \"9090:9090\"",
    );
    assert_reported(&yaml, &["`worker` has a container_name"]);
    assert_reported(&yaml, &["`worker` publishes host ports"]);
}

#[test]
fn an_unknown_or_invalid_variable_is_reported() {
    // Misspelled in the shared anchor: every Bourse service sets it.
    let yaml = edited(
        "  LOG_FORMAT: json",
        "  LOG_FORMAT: json\n  WORKER_SHUTDOWN_TIMEOUT: \"60\"",
    );
    for service in BOURSE_SERVICES {
        assert_reported(
            &yaml,
            &[
                &format!("`{service}` sets WORKER_SHUTDOWN_TIMEOUT,"),
                "does not read",
            ],
        );
    }
    // The list form of `environment` is read too.
    let yaml = edited(
        "    environment: *app-env",
        "    environment:\n      - APP_ENV=production\n      - DATABSE_URL=postgres://x",
    );
    assert_reported(&yaml, &["`migrate` sets DATABSE_URL"]);
    // A known name with a value Bourse refuses.
    let yaml = edited("COOKIE_SECURE: \"false\"", "COOKIE_SECURE: \"maybe\"");
    assert_reported(
        &yaml,
        &["`api`: its environment is not a valid", "COOKIE_SECURE"],
    );
    // Production without a database.
    let yaml = edited(
        "  DATABASE_URL: postgres://bourse:bourse@postgres:5432/bourse\n",
        "",
    );
    assert_reported(
        &yaml,
        &["`worker`: its environment is not a valid", "DATABASE_URL"],
    );
}

#[test]
fn a_healthcheck_off_the_health_endpoints_is_reported() {
    let yaml = edited(
        "http://localhost:9090/healthz",
        "http://localhost:9090/metrics",
    );
    assert_reported(
        &yaml,
        &["`worker` healthcheck", "neither /readyz nor /healthz"],
    );
    let yaml = edited(
        "http://localhost:8080/readyz",
        "http://localhost:8081/readyz",
    );
    assert_reported(&yaml, &["`api` healthcheck", "does not ask port 8080"]);
    let yaml = edited(
        "      test: [\"CMD\", \"curl\", \"-fsS\", \"http://localhost:8080/readyz\"]",
        "      test: [\"NONE\"]",
    );
    assert_reported(&yaml, &["`api` has no healthcheck"]);
}

#[test]
fn a_stop_grace_period_shorter_than_the_drain_is_reported() {
    let drain = default_config().worker.shutdown_timeout.as_secs();
    let yaml = edited(
        "stop_grace_period: 40s",
        &format!("stop_grace_period: {drain}s"),
    );
    assert_reported(&yaml, &["stop_grace_period", &format!("{drain}s drain")]);
    let yaml = edited("    stop_grace_period: 40s\n", "");
    assert_reported(&yaml, &["`worker` has no stop_grace_period"]);
    // A longer drain set for the worker needs a longer grace period.
    let yaml = edited(
        "      WORKER_HTTP_ADDR: 0.0.0.0:9090",
        "      WORKER_HTTP_ADDR: 0.0.0.0:9090\n      WORKER_SHUTDOWN_TIMEOUT_SECS: \"60\"",
    );
    assert_reported(&yaml, &["stop_grace_period 40s", "60s drain"]);
    let yaml = edited("stop_grace_period: 40s", "stop_grace_period: forty");
    assert_reported(&yaml, &["not a duration"]);
}

#[test]
fn an_image_or_port_that_cannot_be_replaced_is_reported() {
    let yaml = edited("${REDIS_IMAGE:-redis:7}", "redis:7");
    assert_reported(
        &yaml,
        &["`redis`'s image cannot be replaced with REDIS_IMAGE"],
    );
    let yaml = edited("${REDIS_IMAGE:-redis:7}", "${REDIS_IMAGE:-redis:6}");
    assert_reported(&yaml, &["`redis` does not run redis:7 by default"]);
    let yaml = edited("\"${API_PORT:-8080}:8080\"", "\"8080:8080\"");
    assert_reported(
        &yaml,
        &["`api`'s published port cannot be moved with API_PORT"],
    );
    let yaml = edited(
        "\"127.0.0.1:${MAILPIT_PORT:-8025}:8025\"",
        "\"127.0.0.1:${MAILPIT_PORT:-9025}:8025\"",
    );
    assert_reported(
        &yaml,
        &["`mailpit` does not publish host port 8025 by default"],
    );
}

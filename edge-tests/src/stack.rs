//! One running edge: a database (in the run's cluster, or a private one), PgBouncer, the
//! stand-ins and `wrangler dev`. `Stack::shared()` is the one most tests use; scenarios that
//! break things (database down, read-only mode, fault switches, a pool of one) start their own.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;

use babybook_ops::generate::{create_family, Family, FamilySpec};

use crate::client::{Client, Death, SignedIn};
use crate::db_guard::DbGuard;
use crate::logs::parse_line;
use crate::postgres_cluster::{pid_alive, Bouncer, Cluster};
use crate::procs::{free_port, Guarded};
use crate::standins::{runtime, StandIn};

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repo root")
        .to_owned()
}

/// A directory of this test run's own (under `target/edge-stacks/<pid>/`), for a test's files.
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = run_dir().join(name);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn run_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo_root().join("target"));
        let base = target.join("edge-stacks");
        // Leftovers of runs that are gone (their pid is dead) are removed.
        if let Ok(entries) = std::fs::read_dir(&base) {
            for entry in entries.flatten() {
                let stale = entry
                    .file_name()
                    .to_str()
                    .and_then(|n| n.parse::<u32>().ok())
                    .is_some_and(|pid| !pid_alive(pid));
                if stale {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
        let dir = base.join(std::process::id().to_string());
        std::fs::create_dir_all(&dir).expect("run dir");
        dir
    })
    .clone()
}

/// The run's Postgres cluster, started on first use.
fn cluster() -> &'static Mutex<Cluster> {
    static CLUSTER: OnceLock<Mutex<Cluster>> = OnceLock::new();
    CLUSTER.get_or_init(|| Mutex::new(Cluster::start(&run_dir().join("cluster"))))
}

#[derive(Clone)]
pub struct StackOptions {
    pub name: String,
    /// Extra `--var NAME:VALUE` for wrangler dev (e.g. `READ_ONLY=true`).
    pub vars: Vec<(String, String)>,
    pub pool_size: u32,
    /// A Postgres cluster of its own, so a test may kill it.
    pub own_cluster: bool,
    /// Fixed ports (scripts/dev wants 8787 and 8790); free ports otherwise.
    pub port: Option<u16>,
    pub media_port: Option<u16>,
    pub test_controls: bool,
    /// Secrets from the repository's `.dev.vars` (created with random values when missing), which
    /// wrangler reads itself, instead of fresh ones on the command line: what `scripts/dev` uses,
    /// so the admin token survives restarts and no secret shows in `ps`.
    pub dev_vars: bool,
    /// Global cache purges configured (`CF_ZONE_ID`, `CF_API_BASE`, `CACHE_PURGE_TOKEN`) against
    /// the purge API stand-in, `Stack::purge_api`.
    pub purge_api: bool,
    /// Alerts sent (`ALERT_WEBHOOK_URL`) to the webhook stand-in, `Stack::alerts_received`.
    pub alert_webhook: bool,
    /// The `slo_burn` cron job reads the Analytics Engine SQL API stand-in, `Stack::sql_api`.
    pub sql_api: bool,
}

impl StackOptions {
    pub fn named(name: &str) -> StackOptions {
        StackOptions {
            name: name.to_owned(),
            vars: Vec::new(),
            pool_size: 50,
            own_cluster: false,
            port: None,
            media_port: None,
            test_controls: true,
            dev_vars: false,
            purge_api: false,
            alert_webhook: false,
            sql_api: false,
        }
    }

    pub fn var(mut self, name: &str, value: &str) -> StackOptions {
        self.vars.push((name.to_owned(), value.to_owned()));
        self
    }
}

pub struct Secrets {
    pub session_key: String,
    /// `ORIGIN_API_TOKEN`: what the edge presents to the origin API (and signs identities with).
    pub origin_token: String,
    /// `MEDIA_WORKER_TOKEN`: what the edge presents to the media worker, which checks it.
    pub media_token: String,
    /// The operator `Stack::admin` calls as, and their token (`ADMIN_TOKENS` holds both).
    pub admin_operator: String,
    pub admin_token: String,
    /// A second operator's token (`oncall`), on stacks the harness configures itself.
    pub oncall_token: Option<String>,
    /// The cache purge API token the Worker is given (and the stand-in accepts).
    pub purge_token: String,
}

impl Secrets {
    /// The `ADMIN_TOKENS` secret for these operators.
    pub fn admin_tokens(&self) -> String {
        let mut list = format!("{}:{}", self.admin_operator, self.admin_token);
        if let Some(oncall) = &self.oncall_token {
            list.push_str(&format!(",oncall:{oncall}"));
        }
        list
    }
}

pub struct Stack {
    pub name: String,
    pub dir: PathBuf,
    pub base_url: String,
    pub db_name: String,
    pub secrets: Secrets,
    own_cluster: Option<Mutex<Cluster>>,
    bouncer: Mutex<Bouncer>,
    /// Between wrangler's Hyperdrive proxy and PgBouncer (see `db_guard`).
    pub db_guard: Mutex<DbGuard>,
    pub media: Mutex<StandIn>,
    pub origin: Mutex<StandIn>,
    /// The cache purge API stand-in and the zone id the Worker purges, when `purge_api` is set.
    pub purge_api: Option<(Mutex<StandIn>, String)>,
    /// The alert webhook stand-in and the secret in its path, when `alert_webhook` is set.
    pub webhook: Option<(Mutex<StandIn>, String)>,
    /// The Analytics Engine SQL API stand-in and the read token the Worker is given.
    pub sql_api: Option<(Mutex<StandIn>, String)>,
    wrangler: Mutex<Option<Guarded>>,
    log_lines: Arc<Mutex<Vec<String>>>,
    death: Death,
    /// Set when the running `wrangler dev` is stopped on purpose (one flag per start).
    stopping: Mutex<Arc<std::sync::atomic::AtomicBool>>,
    options: StackOptions,
    port: u16,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Reads the local secrets from `.dev.vars`, adding random ones for any that are missing.
fn dev_vars_secrets(path: &std::path::Path) -> Secrets {
    let mut text = std::fs::read_to_string(path).unwrap_or_default();
    let value = |text: &str, key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .map(str::trim)
            .filter(|v| v.len() >= 32)
            .map(str::to_owned)
    };
    for key in ["SESSION_KEY_CURRENT", "ORIGIN_API_TOKEN", "MEDIA_WORKER_TOKEN"] {
        if value(&text, key).is_none() {
            text.push_str(&format!("{key}={}\n", random_hex(32)));
        }
    }
    if value(&text, "ADMIN_TOKENS").is_none() {
        text.push_str(&format!("ADMIN_TOKENS=dev:{}\n", random_hex(32)));
    }
    std::fs::write(path, &text).expect("write .dev.vars");
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
    }
    Secrets {
        session_key: value(&text, "SESSION_KEY_CURRENT").expect("session key"),
        origin_token: value(&text, "ORIGIN_API_TOKEN").expect("origin token"),
        media_token: value(&text, "MEDIA_WORKER_TOKEN").expect("media token"),
        admin_operator: "dev".into(),
        admin_token: value(&text, "ADMIN_TOKENS")
            .and_then(|v| {
                v.strip_prefix("dev:")
                    .map(|t| t.split([',', ' ']).next().unwrap_or("").to_owned())
            })
            .expect("ADMIN_TOKENS in .dev.vars starts with dev:<token>"),
        oncall_token: None,
        purge_token: random_hex(32),
    }
}

fn random_hex(bytes: usize) -> String {
    (0..bytes)
        .map(|_| {
            format!(
                "{:02x}",
                babybook_edge::secure_random::bytes::<1>().expect("randomness")[0]
            )
        })
        .collect()
}

impl Stack {
    /// The stack shared by every test that does not break anything.
    pub fn shared() -> &'static Stack {
        static SHARED: OnceLock<Stack> = OnceLock::new();
        // Many tests at once on a 2-core machine: connections take longer than production's
        // budget, and this stack is not where acquire timeouts are tested (scenario stacks are).
        SHARED.get_or_init(|| Stack::start(StackOptions::named("shared").var("DB_ACQUIRE_TIMEOUT_MS", "5000")))
    }

    pub fn start(options: StackOptions) -> Stack {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = run_dir().join(format!("{}-{n}", options.name));
        std::fs::create_dir_all(&dir).expect("stack dir");
        let db_name = format!("babybook_{}_{n}", options.name.replace('-', "_"));
        let own_cluster = options
            .own_cluster
            .then(|| Mutex::new(Cluster::start(&dir.join("cluster"))));
        let cluster_guard = match &own_cluster {
            Some(c) => c.lock().expect("cluster"),
            None => cluster().lock().expect("cluster"),
        };
        cluster_guard.create_database(&db_name);
        let bouncer = Bouncer::start(
            &dir.join("pgbouncer"),
            cluster_guard.port,
            &[&db_name],
            options.pool_size,
        );
        drop(cluster_guard);
        let db_guard = DbGuard::start(bouncer.port);

        let secrets = if options.dev_vars {
            dev_vars_secrets(&repo_root().join(".dev.vars"))
        } else {
            Secrets {
                session_key: random_hex(32),
                origin_token: random_hex(32),
                media_token: random_hex(32),
                admin_operator: "ci".into(),
                admin_token: random_hex(32),
                oncall_token: Some(random_hex(32)),
                purge_token: random_hex(32),
            }
        };
        let media = StandIn::media(
            options.media_port.unwrap_or_else(free_port),
            Some(secrets.media_token.clone()),
        );
        let origin = StandIn::origin(free_port());
        let purge_api = options.purge_api.then(|| {
            (
                Mutex::new(StandIn::purge(free_port(), secrets.purge_token.clone())),
                random_hex(16),
            )
        });
        let webhook = options.alert_webhook.then(|| {
            let secret = random_hex(24);
            (Mutex::new(StandIn::webhook(free_port(), secret.clone())), secret)
        });
        let sql_api = options.sql_api.then(|| {
            let token = random_hex(32);
            (Mutex::new(StandIn::sql_api(free_port(), token.clone())), token)
        });
        let port = options.port.unwrap_or_else(free_port);
        let stack = Stack {
            name: options.name.clone(),
            dir,
            base_url: format!("http://127.0.0.1:{port}"),
            db_name,
            secrets,
            own_cluster,
            bouncer: Mutex::new(bouncer),
            db_guard: Mutex::new(db_guard),
            media: Mutex::new(media),
            origin: Mutex::new(origin),
            purge_api,
            webhook,
            sql_api,
            wrangler: Mutex::new(None),
            log_lines: Arc::default(),
            death: Arc::default(),
            stopping: Mutex::default(),
            options: options.clone(),
            port,
        };
        stack.start_wrangler(port, &options);
        stack
    }

    /// Starts `wrangler dev` and waits for the Worker to answer `/health`. Twice a fresh clone's
    /// full run saw wrangler print "Ready" and the Worker then answer nothing for 120 s, with
    /// nothing in the log; the one whose port was kept was on 10080, a port `fetch` refuses,
    /// which `procs::free_port` now never hands out. A start that fails otherwise gets one more
    /// start, said on stderr, before the run fails.
    fn start_wrangler(&self, port: u16, options: &StackOptions) {
        if self.start_wrangler_once(port, options) {
            return;
        }
        eprintln!(
            "stack {}: wrangler dev never answered /health; stopping it and starting it once more. Its log:\n{}",
            self.name,
            self.log_tail(20)
        );
        self.stop_worker();
        if !self.start_wrangler_once(port, options) {
            panic!(
                "stack {}: wrangler dev never became healthy, twice:\n{}",
                self.name,
                self.log_tail(60)
            );
        }
    }

    /// What the Worker's local `HYPERDRIVE` binding connects to (through the database guard):
    /// `scripts/bench`'s plain JavaScript miss reads through the same.
    pub fn hyperdrive_connection_string(&self) -> String {
        let guard_port = self.db_guard.lock().expect("db guard").port;
        format!(
            "postgres://app_rw:local@127.0.0.1:{guard_port}/{}?sslmode=disable", // secretlint-disable-line -- a local test password
            self.db_name
        )
    }

    /// One start of `wrangler dev`; `false` when the Worker never answered `/health`.
    fn start_wrangler_once(&self, port: u16, options: &StackOptions) -> bool {
        let repo = repo_root();
        let media_url = self.media.lock().expect("media").url();
        let origin_url = self.origin.lock().expect("origin").url();
        let mut vars: Vec<(String, String)> = vec![
            ("MEDIA_WORKER_URL".into(), media_url.clone()),
            ("MEDIA_ORIGIN".into(), media_url),
            ("ORIGIN_URL".into(), origin_url),
            (
                "TEST_CONTROLS".into(),
                if options.test_controls { "on" } else { "off" }.into(),
            ),
            ("VIEW_FLUSH_SECONDS".into(), "0".into()),
            ("LOG_SAMPLE_SUCCESS".into(), "1".into()),
        ];
        if let Some((purge, zone)) = &self.purge_api {
            vars.push(("CF_ZONE_ID".into(), zone.clone()));
            vars.push((
                "CF_API_BASE".into(),
                format!("{}/client/v4", purge.lock().expect("purge").url()),
            ));
            vars.push(("CACHE_PURGE_TOKEN".into(), self.secrets.purge_token.clone()));
        }
        if let Some((webhook, secret)) = &self.webhook {
            vars.push((
                "ALERT_WEBHOOK_URL".into(),
                format!("{}/hook/{secret}", webhook.lock().expect("webhook").url()),
            ));
        }
        if let Some((sql_api, token)) = &self.sql_api {
            vars.push(("CF_ACCOUNT_ID".into(), "0123456789abcdef0123456789abcdef".into()));
            vars.push((
                "CF_ANALYTICS_API_BASE".into(),
                format!("{}/client/v4", sql_api.lock().expect("sql api").url()),
            ));
            vars.push(("CF_ANALYTICS_TOKEN".into(), token.clone()));
        }
        if !options.dev_vars {
            vars.push(("SESSION_KEY_CURRENT".into(), self.secrets.session_key.clone()));
            vars.push(("ORIGIN_API_TOKEN".into(), self.secrets.origin_token.clone()));
            vars.push(("MEDIA_WORKER_TOKEN".into(), self.secrets.media_token.clone()));
            vars.push(("ADMIN_TOKENS".into(), self.secrets.admin_tokens()));
        }
        for (k, v) in &options.vars {
            vars.retain(|(name, _)| name != k);
            vars.push((k.clone(), v.clone()));
        }
        let mut command = crate::procs::wrangler_dev(&repo, port, &self.dir.join("wrangler-state"));
        // Test stacks run the Worker as built, with no build watcher (see `watch_free_config`);
        // `scripts/dev` (the dev_vars stack) keeps rebuilding on edits.
        let watch_free = !options.dev_vars;
        if watch_free {
            crate::procs::build_worker_once(&repo);
            command
                .arg("--config")
                .arg(crate::procs::watch_free_config(&repo, &self.dir));
        }
        for (k, v) in &vars {
            command.arg("--var").arg(format!("{k}:{v}"));
        }
        command
            .env(
                "CLOUDFLARE_HYPERDRIVE_LOCAL_CONNECTION_STRING_HYPERDRIVE",
                self.hyperdrive_connection_string(),
            )
            .env("FORCE_COLOR", "0")
            .env("NO_COLOR", "1")
            .env("CI", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut guarded = Guarded::spawn(command).expect("start wrangler dev (npm ci first)");
        let log_path = self.dir.join("wrangler.log");
        let file = Arc::new(Mutex::new(std::fs::File::create(&log_path).expect("wrangler log")));
        for stream in [
            guarded
                .child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            guarded
                .child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let (lines, file) = (self.log_lines.clone(), file.clone());
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let _ = writeln!(file.lock().expect("log file"), "{line}");
                    lines.lock().expect("log lines").push(line);
                }
            });
        }
        let pid = guarded.pid();
        *self.wrangler.lock().expect("wrangler") = Some(guarded);
        if !self.wait_healthy(Duration::from_secs(120)) {
            return false;
        }
        if !watch_free {
            self.wait_for_initial_rebuild();
        }
        // Watch for an unexpected exit for the rest of the run.
        let stopping: Arc<std::sync::atomic::AtomicBool> = Arc::default();
        *self.stopping.lock().expect("stopping") = stopping.clone();
        let (death, lines, name) = (self.death.clone(), self.log_lines.clone(), self.name.clone());
        std::thread::spawn(move || loop {
            std::thread::sleep(Duration::from_millis(250));
            if stopping.load(Ordering::Relaxed) {
                return;
            }
            if !pid_alive(pid) {
                let tail: Vec<String> = lines
                    .lock()
                    .expect("lines")
                    .iter()
                    .rev()
                    .take(40)
                    .rev()
                    .cloned()
                    .collect();
                let why = format!(
                    "stack {name}: wrangler dev (pid {pid}) exited. Last lines:\n{}",
                    tail.join("\n")
                );
                eprintln!("\n!!!!! {why}\n");
                *death.lock().expect("death") = Some(why);
                return;
            }
        });
        true
    }

    /// Whether the Worker answers `/health` within `timeout` (`false` at once if wrangler exits).
    fn wait_healthy(&self, timeout: Duration) -> bool {
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .expect("client");
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if client
                .get(format!("{}/health", self.base_url))
                .send()
                .is_ok_and(|r| r.status().is_success())
            {
                return true;
            }
            let alive = self
                .wrangler
                .lock()
                .expect("wrangler")
                .as_mut()
                .is_some_and(|w| w.is_running());
            if !alive {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        false
    }

    /// wrangler's build watcher runs the custom build once more when it is ready, then reloads
    /// the Worker (resetting isolate state); tests start after that, not during it.
    fn wait_for_initial_rebuild(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let builds = || {
            self.log_lines
                .lock()
                .expect("lines")
                .iter()
                .filter(|l| l.contains("build-worker: up to date") || l.contains("gzipped (budget"))
                .count()
        };
        while builds() < 2 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        std::thread::sleep(Duration::from_millis(1_500));
        assert!(
            self.wait_healthy(Duration::from_secs(60)),
            "stack {}: wrangler dev never became healthy after its rebuild:\n{}",
            self.name,
            self.log_tail(60)
        );
    }

    pub fn log_tail(&self, n: usize) -> String {
        let lines = self.log_lines.lock().expect("lines");
        lines.iter().rev().take(n).rev().cloned().collect::<Vec<_>>().join("\n")
    }

    /// Is `wrangler dev` still up? (Tests of failure scenarios assert it survived.)
    pub fn alive(&self) -> bool {
        self.death.lock().expect("death").is_none()
            && self
                .wrangler
                .lock()
                .expect("wrangler")
                .as_mut()
                .is_some_and(|w| w.is_running())
    }

    /// CPU seconds used so far by `wrangler dev` (Node and workerd): benchmarks divide the
    /// difference by the requests served.
    pub fn server_cpu_seconds(&self) -> f64 {
        self.wrangler
            .lock()
            .expect("wrangler")
            .as_ref()
            .map_or(0.0, Guarded::cpu_seconds)
    }

    /// CPU seconds of the Worker's own `workerd` process (see `Guarded::runtime_cpu_seconds`).
    pub fn runtime_cpu_seconds(&self) -> f64 {
        self.wrangler
            .lock()
            .expect("wrangler")
            .as_ref()
            .map_or(0.0, Guarded::runtime_cpu_seconds)
    }

    pub fn client(&self) -> Client {
        Client::new(self.base_url.clone(), self.death.clone())
    }

    // ---------------------------------------------------------------- database

    fn with_cluster<T>(&self, f: impl FnOnce(&mut Cluster) -> T) -> T {
        match &self.own_cluster {
            Some(c) => f(&mut c.lock().expect("cluster")),
            None => f(&mut cluster().lock().expect("cluster")),
        }
    }

    /// A direct superuser connection to this stack's database (fixtures and assertions).
    pub fn db(&self) -> postgres::Client {
        let url = self.with_cluster(|c| c.url("postgres", &self.db_name));
        postgres::Client::connect(&url, postgres::NoTls).unwrap_or_else(|e| panic!("connect {}: {e}", self.db_name))
    }

    /// A direct connection as one of the app's roles.
    pub fn db_as(&self, role: &str) -> postgres::Client {
        let url = self.with_cluster(|c| c.url(role, &self.db_name));
        postgres::Client::connect(&url, postgres::NoTls).unwrap_or_else(|e| panic!("connect as {role}: {e}"))
    }

    /// A connection through PgBouncer (transaction pooling), as the Worker connects.
    pub fn pooled_as(&self, role: &str) -> postgres::Client {
        let url = self.bouncer.lock().expect("bouncer").url(role, &self.db_name);
        postgres::Client::connect(&url, postgres::NoTls)
            .unwrap_or_else(|e| panic!("connect through pgbouncer as {role}: {e}"))
    }

    pub fn bouncer(&self) -> MutexGuard<'_, Bouncer> {
        self.bouncer.lock().expect("bouncer")
    }

    /// SIGKILLs this stack's own Postgres cluster.
    pub fn kill_database(&self) {
        self.own_cluster
            .as_ref()
            .expect("kill_database needs StackOptions::own_cluster")
            .lock()
            .expect("cluster")
            .kill();
    }

    /// Client connections the app role holds on the server (for leak checks).
    pub fn server_connections(&self, role: &str) -> i64 {
        self.db()
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE usename = $1 AND datname = $2",
                &[&role, &self.db_name],
            )
            .expect("pg_stat_activity")
            .get(0)
    }

    /// Client connections `role` holds in PgBouncer right now (0 when the Worker leaks none).
    pub fn pool_clients(&self, role: &str) -> usize {
        self.bouncer()
            .admin("SHOW CLIENTS")
            .iter()
            .filter(|m| matches!(m, postgres::SimpleQueryMessage::Row(r) if r.get("user") == Some(role)))
            .count()
    }

    /// Waits until `role` holds no client connection in PgBouncer (the Worker keeps none between
    /// requests), polling up to `timeout`.
    pub fn wait_for_no_pool_clients(&self, role: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let clients = self.pool_clients(role);
            if clients == 0 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{clients} client connections of {role} still open in PgBouncer after {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Publishes a `transcode` job for each of `n` new `queued` assets of `account` through the
    /// test control, in one batch; returns the assets.
    pub fn publish_transcode_jobs(&self, account: &str, n: usize, trace: &str) -> Vec<String> {
        let assets: Vec<String> = (0..n).map(|_| self.queued_asset(account)).collect();
        let bodies: Vec<Value> = assets
            .iter()
            .map(|asset| crate::fixtures::transcode_job(account, asset, trace))
            .collect();
        self.control(serde_json::json!({"action": "publish_raw_batch", "bodies": bodies}));
        assets
    }

    /// A `queued` asset of `account` whose job counts as published (the sweep leaves it alone):
    /// what a test then publishes itself.
    pub fn queued_asset(&self, account: &str) -> String {
        self.db()
            .query_one(
                "INSERT INTO asset (account_id, media_type, original_key, size_bytes, status, queued_at, published_at)
                 VALUES ($1::text::uuid, 'image/jpeg', 'originals/fixture.jpg', 1, 'queued', now(), now()) RETURNING id::text",
                &[&account],
            )
            .expect("queued asset")
            .get(0)
    }

    /// Waits until everything published to `jobs` before this call has been consumed: publishes a
    /// sentinel job (a `queued` asset of `account` of its own) and waits for the `queue batch`
    /// line of the batch that finished it. The local queue delivers in publish order, so a job
    /// published earlier was in that batch or an earlier one. What a test checks after this did
    /// or did not happen; no sleep stands in for "nothing happened".
    pub fn drain_jobs(&self, account: &str) {
        let sentinel = self.queued_asset(account);
        let job = crate::fixtures::transcode_job(account, &sentinel, "drain-sentinel");
        self.control(serde_json::json!({"action": "publish_raw", "body": job}));
        let done = self.wait_for_log(Duration::from_secs(30), "the sentinel job", |l| {
            l["message"] == "job done" && l["asset_id"] == sentinel.as_str()
        });
        let done_at = done["timestamp"].as_str().unwrap_or("").to_owned();
        self.wait_for_log(Duration::from_secs(30), "the sentinel's batch line", |l| {
            l["message"] == "queue batch"
                && l["queue"] == "jobs"
                && l["timestamp"].as_str().is_some_and(|t| t >= done_at.as_str())
        });
    }

    /// A new family (account, user, child, moments with previews, share links).
    pub fn family(&self, moments: u32, shares: u32) -> Family {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let spec = FamilySpec {
            account_name: format!("Família {n}"),
            email: format!("family-{}-{n}-{}@example.test", std::process::id(), random_hex(3)),
            password: format!("password-{}", random_hex(6)),
            child_name: format!("Criança {n}"),
            moments,
            shares,
            first_token: None,
        };
        let url = self.with_cluster(|c| c.url("postgres", &self.db_name));
        runtime().block_on(async move {
            let mut client = babybook_ops::connect(&url).await.expect("connect");
            create_family(&mut client, &spec).await.expect("create family")
        })
    }

    /// A session cookie sealed here with the stack's key, for `family`'s user, issued at `iat_s`,
    /// whose server-side row is written by `begin_session`, as at sign-in: for
    /// tests and the benchmark that need many sessions, or sessions of a given age, without
    /// signing in through the rate-limited route.
    pub fn sealed_session(&self, family: &Family, iat_s: i64) -> String {
        self.sealed_session_signed_with(family, iat_s, &self.secrets.session_key)
    }

    /// The same, sealed with another signing secret (a previous key, a stranger's key).
    pub fn sealed_session_signed_with(&self, family: &Family, iat_s: i64, secret: &str) -> String {
        use babybook_edge::session::{Session, SessionKeys, SigningKey};
        let keys = SessionKeys {
            current: SigningKey::new(secret),
            previous: None,
        };
        let session = Session::new(
            format!("sealed-{}", random_hex(12)),
            babybook_jobs::Id::parse(&family.user_id).expect("user id"),
            babybook_jobs::Id::parse(&family.account_id).expect("account id"),
            iat_s,
        );
        // The row as sign-in writes it: through the same function (migrations/V11).
        self.db()
            .execute(
                "SELECT begin_session($1, $2::text::uuid, $3::text::uuid, to_timestamp($4::float8))",
                &[&session.sid, &family.user_id, &family.account_id, &(session.exp as f64)],
            )
            .expect("begin_session");
        session.seal(&keys)
    }

    pub fn sign_in(&self, family: &Family) -> SignedIn {
        SignedIn::sign_in(&self.client(), &family.email, &family.password)
    }

    // ---------------------------------------------------------------- logs, cron, admin

    pub fn logs(&self) -> Vec<Value> {
        self.log_lines
            .lock()
            .expect("lines")
            .iter()
            .filter_map(|l| parse_line(l))
            .collect()
    }

    /// Waits for a log line matching `pred`.
    pub fn wait_for_log(&self, timeout: Duration, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(line) = self.logs().into_iter().find(|l| pred(l)) {
                return line;
            }
            if Instant::now() > deadline {
                panic!(
                    "stack {}: no log line for {what} within {timeout:?}. Tail:\n{}",
                    self.name,
                    self.log_tail(40)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The Worker's own `request` log line for an answer (found by its trace id): what the
    /// Worker measured and decided, free of the test process's scheduling.
    pub fn request_line(&self, response: &crate::Response) -> Value {
        let trace = response.header("x-trace-id").expect("x-trace-id").to_owned();
        self.wait_for_log(Duration::from_secs(10), "the request's log line", |l| {
            l["message"] == "request" && l["trace_id"] == trace.as_str()
        })
    }

    /// Waits (bounded) until Postgres runs a statement starting with `sql_prefix`, seen in
    /// `pg_stat_activity` through a direct connection (not the pooler).
    pub fn wait_for_active_query(&self, sql_prefix: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let pattern = format!("{}%", sql_prefix.replace('%', "\\%"));
        loop {
            let active: i64 = self
                .db()
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE $1",
                    &[&pattern],
                )
                .expect("pg_stat_activity")
                .get(0);
            if active > 0 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no active query like {sql_prefix:?} within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Fires a cron trigger through wrangler's local scheduled endpoint at `time_ms`.
    pub fn fire_cron(&self, cron: &str, time_ms: i64) -> crate::Response {
        let cron = cron.replace(' ', "+").replace('/', "%2F").replace('*', "%2A");
        self.client()
            .get(&format!("/cdn-cgi/handler/scheduled?cron={cron}&time={time_ms}"))
    }

    pub fn admin(&self, method: &str, path: &str, body: Option<&Value>) -> crate::Response {
        let auth = format!("Bearer {}", self.secrets.admin_token);
        let mut headers = vec![
            ("authorization", auth.as_str()),
            ("x-admin-reason", "edge test harness"),
        ];
        if body.is_some() {
            headers.push(("content-type", "application/json"));
        }
        self.client()
            .request(method, path, &headers, body.map(|b| b.to_string().into_bytes()))
    }

    /// `POST /__test/controls`.
    pub fn control(&self, body: Value) -> crate::Response {
        let response = self.client().post_json("/__test/controls", &[], &body);
        assert_eq!(response.status, 200, "test control {body}: {}", response.text());
        response
    }

    /// Switches a fault (or a `skip_*` switch) of the Worker's test controls on or off.
    pub fn fault(&self, name: &str, on: bool) {
        self.control(serde_json::json!({"action": "fault", "name": name, "on": on}));
    }

    pub fn counters(&self) -> Value {
        self.client().get("/__test/counters").json()
    }

    /// The media stand-in's control API.
    pub fn media_control(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.media.lock().expect("media").url());
        let http = reqwest::blocking::Client::new();
        let mut request = http.request(reqwest::Method::from_bytes(method.as_bytes()).expect("method"), url);
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().expect("media stand-in control");
        response.json().unwrap_or(Value::Null)
    }

    pub fn origin_requests(&self) -> Value {
        let url = format!("{}/__control/requests", self.origin.lock().expect("origin").url());
        reqwest::blocking::get(url)
            .expect("origin stand-in")
            .json()
            .expect("json")
    }

    /// Every request the purge API stand-in received (`StackOptions::purge_api`), oldest first:
    /// `zone`, `token`, `kind`, `files`, `tags`, `hosts`, `prefixes`, `answer`, `code`, `removed`,
    /// `at_ms`.
    pub fn purge_requests(&self) -> Vec<Value> {
        let (purge, _) = self.purge_api.as_ref().expect("a stack with purge_api");
        let url = format!("{}/__control/requests", purge.lock().expect("purge").url());
        reqwest::blocking::get(url)
            .expect("purge stand-in")
            .json()
            .expect("json")
    }

    /// Every POST the alert webhook stand-in received (`StackOptions::alert_webhook`), oldest
    /// first: `at_ms`, `secret_ok`, `body` (the alert document), `status` (what it answered).
    pub fn alerts_received(&self) -> Vec<Value> {
        let (webhook, _) = self.webhook.as_ref().expect("a stack with alert_webhook");
        let url = format!("{}/__control/requests", webhook.lock().expect("webhook").url());
        reqwest::blocking::get(url)
            .expect("webhook stand-in")
            .json()
            .expect("json")
    }

    /// Waits until the webhook received an alert document matching `pred`; returns it.
    pub fn wait_for_alert(&self, timeout: Duration, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(found) = self.alerts_received().into_iter().find(|r| pred(&r["body"])) {
                return found["body"].clone();
            }
            assert!(
                Instant::now() < deadline,
                "stack {}: the webhook got no alert for {what} within {timeout:?}; it got {:?}. Tail:\n{}",
                self.name,
                self.alerts_received(),
                self.log_tail(40)
            );
            std::thread::sleep(Duration::from_millis(100)); // polling interval, bounded by the deadline
        }
    }

    /// Adds an answer rule to the SQL API stand-in (`{"matching", "status", "body", "times"}`).
    pub fn sql_answer(&self, rule: Value) {
        let (sql_api, _) = self.sql_api.as_ref().expect("a stack with sql_api");
        let url = format!("{}/__control/answers", sql_api.lock().expect("sql api").url());
        let status = reqwest::blocking::Client::new()
            .put(url)
            .header("content-type", "application/json")
            .body(rule.to_string())
            .send()
            .expect("sql api stand-in control")
            .status();
        assert!(status.is_success(), "sql api stand-in control: {status}");
    }

    /// Every query the SQL API stand-in received: `at_ms`, `account`, `token_ok`, `sql`.
    pub fn sql_queries(&self) -> Vec<Value> {
        let (sql_api, _) = self.sql_api.as_ref().expect("a stack with sql_api");
        let url = format!("{}/__control/requests", sql_api.lock().expect("sql api").url());
        reqwest::blocking::get(url)
            .expect("sql api stand-in")
            .json()
            .expect("json")
    }

    /// Makes the webhook stand-in answer 500 to its next `times` POSTs.
    pub fn fail_webhook(&self, times: u32) {
        let (webhook, _) = self.webhook.as_ref().expect("a stack with alert_webhook");
        let url = format!("{}/__control/failure", webhook.lock().expect("webhook").url());
        let status = reqwest::blocking::Client::new()
            .put(url)
            .header("content-type", "application/json")
            .body(serde_json::json!({"times": times}).to_string())
            .send()
            .expect("webhook stand-in control")
            .status();
        assert!(status.is_success(), "webhook stand-in control: {status}");
    }

    /// Makes the purge API stand-in fail (`{"mode", "times", "matching"}`), or accept everything
    /// again with `None`.
    pub fn purge_failure(&self, failure: Option<Value>) {
        let (purge, _) = self.purge_api.as_ref().expect("a stack with purge_api");
        let url = format!("{}/__control/failure", purge.lock().expect("purge").url());
        let http = reqwest::blocking::Client::new();
        let request = match failure {
            Some(body) => http
                .put(url)
                .header("content-type", "application/json")
                .body(body.to_string()),
            None => http.delete(url),
        };
        let status = request.send().expect("purge stand-in control").status();
        assert!(status.is_success(), "purge stand-in control: {status}");
    }

    /// Tells the purge API stand-in that a remote data centre holds a Cache API entry under `key`,
    /// stored with this `Cache-Tag` value (the model of the caches that cannot run locally).
    pub fn remote_cache_put(&self, key: &str, cache_tag: Option<&str>) {
        let (purge, _) = self.purge_api.as_ref().expect("a stack with purge_api");
        let url = format!("{}/__control/cached", purge.lock().expect("purge").url());
        let status = reqwest::blocking::Client::new()
            .put(url)
            .header("content-type", "application/json")
            .body(serde_json::json!({"key": key, "cache_tag": cache_tag}).to_string())
            .send()
            .expect("purge stand-in control")
            .status();
        assert!(status.is_success(), "purge stand-in control: {status}");
    }

    /// The keys of the modeled remote Cache API entries no purge has removed yet.
    pub fn remote_cached_keys(&self) -> Vec<String> {
        let (purge, _) = self.purge_api.as_ref().expect("a stack with purge_api");
        let url = format!("{}/__control/cached", purge.lock().expect("purge").url());
        let entries: Vec<Value> = reqwest::blocking::get(url)
            .expect("purge stand-in")
            .json()
            .expect("json");
        entries
            .iter()
            .filter_map(|e| e["key"].as_str().map(str::to_owned))
            .collect()
    }

    /// Sets the account's plan on the purge API stand-in (`free`, `pro`, `business` or
    /// `enterprise`, the default), which sets its rate limits and refills them.
    pub fn purge_plan(&self, plan: &str) {
        let (purge, _) = self.purge_api.as_ref().expect("a stack with purge_api");
        let url = format!("{}/__control/plan", purge.lock().expect("purge").url());
        let status = reqwest::blocking::Client::new()
            .put(url)
            .header("content-type", "application/json")
            .body(serde_json::json!({ "plan": plan }).to_string())
            .send()
            .expect("purge stand-in control")
            .status();
        assert!(status.is_success(), "purge stand-in control: {status}");
    }

    /// Stops `wrangler dev` and starts it again on the same port, database and stand-ins, with
    /// `vars` on top of the stack's own: one stack before and after a configuration change
    /// (a key rotation, say), as a deploy does it.
    pub fn restart_worker_with(&self, vars: &[(&str, &str)]) {
        self.stop_worker();
        let mut options = self.options.clone();
        for (k, v) in vars {
            options = options.var(k, v);
        }
        self.start_wrangler(self.port, &options);
    }

    fn stop_worker(&self) {
        self.stopping.lock().expect("stopping").store(true, Ordering::Relaxed);
        if let Some(mut w) = self.wrangler.lock().expect("wrangler").take() {
            w.stop(Duration::from_secs(3));
        }
    }

    pub fn stop(&self) {
        self.stop_worker();
        self.bouncer.lock().expect("bouncer").stop();
        self.db_guard.lock().expect("db guard").stop();
        self.media.lock().expect("media").stop();
        self.origin.lock().expect("origin").stop();
        if let Some((purge, _)) = &self.purge_api {
            purge.lock().expect("purge").stop();
        }
        if let Some((webhook, _)) = &self.webhook {
            webhook.lock().expect("webhook").stop();
        }
        if let Some((sql_api, _)) = &self.sql_api {
            sql_api.lock().expect("sql api").stop();
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.stop();
    }
}

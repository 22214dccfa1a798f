//! `scripts/canary` and `scripts/slo` run as an operator or CI runs them, against the Analytics
//! Engine SQL API stand-in (a real HTTP server) and a stand-in `wrangler` (a shell script the
//! canary is given with `--wrangler`, which records every call).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

const STABLE: &str = "11111111-1111-4111-8111-111111111111";
const NEW: &str = "22222222-2222-4222-8222-222222222222";
const TOKEN: &str = "analytics-read-token-for-tests"; // secret-scan: allow (a test value)

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap()
    })
}

/// A running SQL API stand-in; its base URL is `base`.
struct SqlApi {
    base: String,
    control: String,
}

impl SqlApi {
    fn start() -> SqlApi {
        let listener = runtime()
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let router = babybook_ops::standin::sql_api::router(Some(TOKEN.into()));
        runtime().spawn(async move {
            let _ = babybook_ops::standin::serve_on(listener, router).await;
        });
        SqlApi {
            base: format!("http://127.0.0.1:{port}/client/v4"),
            control: format!("http://127.0.0.1:{port}/__control"),
        }
    }

    fn answer(&self, rule: Value) {
        let status = Command::new("curl")
            .args([
                "-sS",
                "--fail",
                "-X",
                "PUT",
                "-H",
                "content-type: application/json",
                "--data",
            ])
            .arg(rule.to_string())
            .arg(format!("{}/answers", self.control))
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn queries(&self) -> Vec<Value> {
        let out = Command::new("curl")
            .args(["-sS", "--fail"])
            .arg(format!("{}/requests", self.control))
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

/// A base URL nothing listens on.
fn unreachable_base() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}/client/v4")
}

/// A running alert webhook stand-in; `url` is its hook (the secret in the path, as in production).
struct Webhook {
    url: String,
    control: String,
}

impl Webhook {
    fn start() -> Webhook {
        let listener = runtime()
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let router = babybook_ops::standin::webhook::router("hook-secret".into());
        runtime().spawn(async move {
            let _ = babybook_ops::standin::serve_on(listener, router).await;
        });
        Webhook {
            url: format!("http://127.0.0.1:{port}/hook/hook-secret"),
            control: format!("http://127.0.0.1:{port}/__control"),
        }
    }

    fn received(&self) -> Vec<Value> {
        let out = Command::new("curl")
            .args(["-sS", "--fail"])
            .arg(format!("{}/requests", self.control))
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

/// A `wrangler` that records its arguments, one call a line, in `calls.log` next to it.
fn fake_wrangler(dir: &Path) -> PathBuf {
    let path = dir.join("wrangler");
    std::fs::write(
        &path,
        format!(
            "#!/usr/bin/env bash\n\
             echo \"$*\" >> \"{log}\"\n\
             case \"$1 $2\" in\n\
             \"deployments status\") echo '{{\"id\": \"d1\", \"versions\": [{{\"version_id\": \"{STABLE}\", \"percentage\": 100}}]}}' ;;\n\
             \"versions upload\") echo 'Uploaded babybook-edge-production'; echo 'Worker Version ID: {NEW}' ;;\n\
             \"versions deploy\") echo 'SUCCESS' ;;\n\
             *) echo \"unexpected wrangler call: $*\" >&2; exit 9 ;;\n\
             esac\n",
            log = dir.join("calls.log").display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn calls(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("calls.log"))
        .unwrap_or_default()
        .lines()
        .map(|l| l.split(" --env").next().unwrap().to_owned())
        .collect()
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bb-scripts-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn run(script: &str, args: &[&str], base: &str) -> Output {
    Command::new(repo().join("scripts").join(script))
        .args(args)
        .env("CF_ACCOUNT_ID", "0123456789abcdef0123456789abcdef")
        .env("CF_ANALYTICS_TOKEN", TOKEN)
        .env("CF_API_BASE", base)
        .env("BBOPS", env!("CARGO_BIN_EXE_bbops"))
        .output()
        .unwrap()
}

fn canary(dir: &Path, base: &str) -> Output {
    let wrangler = fake_wrangler(dir);
    run(
        "canary",
        &[
            "--env",
            "production",
            "--wait",
            "0",
            "--wrangler",
            wrangler.to_str().unwrap(),
        ],
        base,
    )
}

fn versions(new_errors: u32, new_p95: f64) -> Value {
    json!({"meta": [], "rows": 2, "data": [
        {"version": NEW, "requests": "1000", "errors": new_errors, "p95_ms": new_p95},
        {"version": STABLE, "requests": "20000", "errors": 20, "p95_ms": 100.0},
    ]})
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

const STEP_5: &str = "versions deploy 22222222-2222-4222-8222-222222222222@5% 11111111-1111-4111-8111-111111111111@95%";
const STEP_25: &str =
    "versions deploy 22222222-2222-4222-8222-222222222222@25% 11111111-1111-4111-8111-111111111111@75%";
const FULL: &str = "versions deploy 22222222-2222-4222-8222-222222222222@100%";
const ROLLBACK: &str = "versions deploy 11111111-1111-4111-8111-111111111111@100%";

#[test]
fn a_healthy_canary_goes_5_then_25_then_100() {
    let (api, dir) = (SqlApi::start(), temp_dir("pass"));
    api.answer(json!({"matching": "GROUP BY version", "body": versions(1, 105.0)}));
    let out = canary(&dir, &api.base);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        calls(&dir),
        ["deployments status", "versions upload", STEP_5, STEP_25, FULL],
        "{}",
        text(&out)
    );
    let queries = api.queries();
    assert_eq!(queries.len(), 4, "one check of requests and one of the queue per step");
    assert!(queries.iter().all(|q| q["token_ok"] == true));
    assert!(queries[0]["sql"].as_str().unwrap().contains("babybook_edge_requests"));
    assert!(queries[1]["sql"].as_str().unwrap().contains("babybook_queue_health"));
}

#[test]
fn a_breach_at_5_percent_puts_the_stable_version_back_and_fails() {
    let (api, dir) = (SqlApi::start(), temp_dir("breach5"));
    api.answer(json!({"matching": "GROUP BY version", "body": versions(40, 105.0)}));
    let out = canary(&dir, &api.base);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(calls(&dir), ["deployments status", "versions upload", STEP_5, ROLLBACK]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("ROLLBACK: at 5 %: breach: 5xx rate"));
}

#[test]
fn a_latency_breach_at_25_percent_rolls_back_after_the_first_step_passed() {
    let (api, dir) = (SqlApi::start(), temp_dir("breach25"));
    api.answer(json!({"matching": "GROUP BY version", "body": versions(1, 105.0), "times": 1}));
    api.answer(json!({"matching": "GROUP BY version", "body": versions(1, 180.0)}));
    let out = canary(&dir, &api.base);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(
        calls(&dir),
        ["deployments status", "versions upload", STEP_5, STEP_25, ROLLBACK]
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("at 25 %: breach: p95"));
}

#[test]
fn an_unreachable_sql_api_never_promotes() {
    let dir = temp_dir("unreachable");
    let out = canary(&dir, &unreachable_base());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(calls(&dir), ["deployments status", "versions upload", STEP_5, ROLLBACK]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("unreachable"));
}

#[test]
fn an_error_answer_or_too_little_traffic_never_promotes() {
    let (api, dir) = (SqlApi::start(), temp_dir("error-answer"));
    api.answer(json!({"matching": "GROUP BY version", "status": 500, "body": {"errors": ["boom"]}}));
    let out = canary(&dir, &api.base);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(calls(&dir), ["deployments status", "versions upload", STEP_5, ROLLBACK]);

    let (api, dir) = (SqlApi::start(), temp_dir("no-traffic"));
    api.answer(json!({"matching": "GROUP BY version", "body": {"data": [{"version": STABLE, "requests": 500, "errors": 0, "p95_ms": 90}]}}));
    let out = canary(&dir, &api.base);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("undecided"),
        "{}",
        text(&out)
    );
}

/// Issue 30: a Ctrl-C or a cancelled CI job used to leave 5 % or 25 % on the new version with
/// nothing alerting. SIGTERM in the middle of the 5 % step's observation window: the stable
/// version is back at 100 % through the pinned wrangler's `versions deploy`, the alert webhook
/// got `canary_interrupted`, and the script did not sit out the window first.
#[test]
fn an_interrupted_canary_puts_the_stable_version_back_and_alerts() {
    let (api, dir, hook) = (SqlApi::start(), temp_dir("interrupted"), Webhook::start());
    api.answer(json!({"matching": "GROUP BY version", "body": versions(1, 105.0)}));
    fake_wrangler(&dir);
    let started = std::time::Instant::now();
    let child = Command::new(repo().join("scripts/canary"))
        .args(["--env", "production", "--wait", "20", "--wrangler", "wrangler"])
        .env("PATH", format!("{}:{}", dir.display(), std::env::var("PATH").unwrap()))
        .env("CF_ACCOUNT_ID", "0123456789abcdef0123456789abcdef")
        .env("CF_ANALYTICS_TOKEN", TOKEN)
        .env("CF_API_BASE", &api.base)
        .env("BBOPS", env!("CARGO_BIN_EXE_bbops"))
        .env("ALERT_WEBHOOK_URL", &hook.url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    while !calls(&dir).iter().any(|c| c == STEP_5) {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the 5 % step never started"
        );
        std::thread::sleep(Duration::from_millis(50)); // polling for the split, bounded above
    }
    std::thread::sleep(Duration::from_millis(300)); // into the observation window
                                                    // SAFETY: kill(2) on our own child's pid; no memory is shared.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "the canary sat out its window before acting on SIGTERM ({:?})",
        started.elapsed()
    );
    assert_eq!(out.status.code(), Some(143), "{}", text(&out));
    assert_eq!(
        calls(&dir),
        ["deployments status", "versions upload", STEP_5, ROLLBACK],
        "{}",
        text(&out)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("INTERRUPTED"),
        "{}",
        text(&out)
    );
    let alerts = hook.received();
    assert_eq!(alerts.len(), 1, "{alerts:?}\n{}", text(&out));
    assert_eq!(alerts[0]["secret_ok"], true);
    let alert = &alerts[0]["body"];
    assert_eq!(alert["alert"], "canary_interrupted", "{alert}");
    assert_eq!(alert["environment"], "production");
    assert_eq!(alert["version"]["id"], NEW);
    assert!(alert["summary"].as_str().unwrap().contains(STABLE), "{alert}");
}

/// Without a webhook the interruption is still loud, and a failed wrangler call mid-rollout
/// (any exit with traffic split) is handled the same way.
#[test]
fn a_canary_that_dies_with_traffic_split_puts_the_stable_version_back() {
    let (api, dir) = (SqlApi::start(), temp_dir("dies-split"));
    api.answer(json!({"matching": "GROUP BY version", "body": versions(1, 105.0)}));
    let wrangler = fake_wrangler(&dir);
    // The 25 % deploy fails (the API refused it half-way, say).
    let script = std::fs::read_to_string(&wrangler).unwrap().replace(
        "\"versions deploy\") echo 'SUCCESS' ;;",
        "\"versions deploy\") case \"$3\" in *@25%) echo 'API error' >&2; exit 1 ;; esac; echo 'SUCCESS' ;;",
    );
    std::fs::write(&wrangler, script).unwrap();
    let out = run(
        "canary",
        &[
            "--env",
            "production",
            "--wait",
            "0",
            "--wrangler",
            wrangler.to_str().unwrap(),
        ],
        &api.base,
    );
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        calls(&dir),
        ["deployments status", "versions upload", STEP_5, STEP_25, ROLLBACK],
        "{}",
        text(&out)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("ALERT canary_interrupted"), "{}", text(&out));
    assert!(stderr.contains("ALERT_WEBHOOK_URL is not set"), "{}", text(&out));
}

fn quiet(requests: u32) -> Value {
    json!({"meta": [], "rows": 2, "data": [
        {"version": NEW, "requests": requests, "errors": 0, "p95_ms": 90.0},
        {"version": STABLE, "requests": 400, "errors": 0, "p95_ms": 100.0},
    ]})
}

/// Issue 30: at night a step with fewer than --min-requests requests was judged a rollback.
/// It is observed again instead (the window grows with it), and promoted once traffic came.
#[test]
fn a_quiet_step_is_extended_then_promoted_when_traffic_arrives() {
    let (api, dir) = (SqlApi::start(), temp_dir("quiet"));
    api.answer(json!({"matching": "GROUP BY version", "body": quiet(12), "times": 2}));
    api.answer(json!({"matching": "GROUP BY version", "body": versions(1, 105.0)}));
    let out = canary(&dir, &api.base);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        calls(&dir),
        ["deployments status", "versions upload", STEP_5, STEP_25, FULL],
        "{}",
        text(&out)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.matches("extending").count(), 2, "{}", text(&out));
    let edge: Vec<_> = api
        .queries()
        .into_iter()
        .filter(|q| q["sql"].as_str().unwrap().contains("GROUP BY version"))
        .collect();
    assert_eq!(edge.len(), 4, "three looks at 5 %, one at 25 %");
}

/// A step that stays quiet through every extension is still never promoted.
#[test]
fn a_step_quiet_through_every_extension_rolls_back() {
    let (api, dir) = (SqlApi::start(), temp_dir("quiet-always"));
    api.answer(json!({"matching": "GROUP BY version", "body": quiet(3)}));
    let wrangler = fake_wrangler(&dir);
    let out = run(
        "canary",
        &[
            "--env",
            "production",
            "--wait",
            "0",
            "--max-extensions",
            "2",
            "--wrangler",
            wrangler.to_str().unwrap(),
        ],
        &api.base,
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(calls(&dir), ["deployments status", "versions upload", STEP_5, ROLLBACK]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("after 2 extensions"),
        "{}",
        text(&out)
    );
    assert_eq!(
        api.queries()
            .iter()
            .filter(|q| q["sql"].as_str().unwrap().contains("GROUP BY version"))
            .count(),
        3
    );
}

fn queue_rows(retried: u32, dead: u32, oldest_p99_ms: u32) -> Value {
    json!({"meta": [], "rows": 2, "data": [
        {"consumer_version": NEW, "jobs": 400, "retried": retried, "dead": dead, "oldest_p99_ms": oldest_p99_ms},
        {"consumer_version": STABLE, "jobs": 8000, "retried": 40, "dead": 1, "oldest_p99_ms": 2500},
    ]})
}

/// Issue 30: the seed's queue guardrails (oldest message age p99 over 1 min, job failure rate
/// over 2 %) on the batches the new version consumed, from QUEUE_METRICS.
#[test]
fn a_queue_guardrail_breach_rolls_back() {
    let (api, dir) = (SqlApi::start(), temp_dir("queue-failures"));
    api.answer(json!({"matching": "GROUP BY version", "body": versions(1, 105.0)}));
    api.answer(json!({"matching": "GROUP BY consumer_version", "body": queue_rows(9, 3, 4_000)}));
    let out = canary(&dir, &api.base);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(calls(&dir), ["deployments status", "versions upload", STEP_5, ROLLBACK]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("at 5 %: breach: job failure rate 3.00 %"),
        "{}",
        text(&out)
    );
    assert!(api
        .queries()
        .iter()
        .any(|q| q["sql"].as_str().unwrap().contains("FROM babybook_queue_health")));

    let (api, dir) = (SqlApi::start(), temp_dir("queue-age"));
    api.answer(json!({"matching": "GROUP BY version", "body": versions(1, 105.0)}));
    api.answer(json!({"matching": "GROUP BY consumer_version", "body": queue_rows(0, 0, 2_000), "times": 1}));
    api.answer(json!({"matching": "GROUP BY consumer_version", "body": queue_rows(0, 0, 95_000)}));
    let out = canary(&dir, &api.base);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(
        calls(&dir),
        ["deployments status", "versions upload", STEP_5, STEP_25, ROLLBACK]
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("at 25 %: breach: queue age p99 95000 ms"),
        "{}",
        text(&out)
    );
}

fn edge_answer(requests: u32, errors: u32, share: u32, slow: u32, misses: u32) -> Value {
    json!({"meta": [], "rows": 1, "data": [{"requests": requests, "errors": errors, "share_pages": share, "share_slow": slow, "share_misses": misses}]})
}

fn queue_answer() -> Value {
    json!({"meta": [], "rows": 1, "data": [{"batches": 120, "slow_batches": 0, "dead": 1, "max_backlog": 7}]})
}

#[test]
fn slo_prints_every_sli_with_its_burn_rates_and_fails_on_a_fast_burn() {
    let api = SqlApi::start();
    api.answer(json!({"matching": "share_misses", "body": edge_answer(20_000, 4, 8_000, 80, 900)}));
    api.answer(json!({"matching": "max_backlog", "body": queue_answer()}));
    let out = run("slo", &["--env", "production"], &api.base);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    for sli in [
        "availability",
        "share_ttfb_p95",
        "share_cache_hit_ratio",
        "queue_age_p95",
        "dlq_items",
    ] {
        assert!(stdout.contains(sli), "{sli} missing:\n{stdout}");
    }
    assert!(stdout.contains("99.98 %"), "availability 1 - 4/20000:\n{stdout}");
    assert_eq!(api.queries().len(), 4, "edge and queue, 1 h and 6 h");
    assert!(api
        .queries()
        .iter()
        .any(|q| q["sql"].as_str().unwrap().contains("INTERVAL '6' HOUR")));

    let burning = SqlApi::start();
    burning.answer(json!({"matching": "share_misses", "body": edge_answer(20_000, 2_000, 8_000, 80, 900)}));
    let out = run("slo", &["--env", "production"], &burning.base);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("FAST BURN"));
}

#[test]
fn slo_says_so_when_the_sql_api_cannot_be_read() {
    let out = run("slo", &["--env", "production"], &unreachable_base());
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unreachable"));
    let api = SqlApi::start();
    let out = Command::new(repo().join("scripts/slo"))
        .args(["--env", "production"])
        .env("CF_ACCOUNT_ID", "0123456789abcdef0123456789abcdef")
        .env("CF_ANALYTICS_TOKEN", "not-the-token")
        .env("CF_API_BASE", &api.base)
        .env("BBOPS", env!("CARGO_BIN_EXE_bbops"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("answered 401"));
}

/// Seed §6.4, issue 30: production releases stop while a paging SLI's 30-day error budget is
/// spent; an override for a fix is allowed and logged with its reason (a GitHub annotation in CI).
#[test]
fn the_release_freeze_refuses_a_spent_budget_allows_a_healthy_one_and_logs_an_override() {
    let thirty_days = "INTERVAL '720' HOUR";
    // 99.5 % availability over 1 000 000 requests: 5 000 errors is the whole budget.
    let spent = SqlApi::start();
    spent.answer(json!({"matching": thirty_days, "body": edge_answer(1_000_000, 6_200, 400_000, 1_000, 0)}));
    let out = run("slo", &["--env", "production", "--freeze-check"], &spent.base);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("BUDGET SPENT") && stdout.contains("124.0 %"),
        "{stdout}"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("RELEASE FREEZE"),
        "{}",
        text(&out)
    );
    assert_eq!(spent.queries().len(), 1, "one 30-day query");
    assert!(spent.queries()[0]["sql"].as_str().unwrap().contains(thirty_days));

    let out = Command::new(repo().join("scripts/slo"))
        .args([
            "--env",
            "production",
            "--freeze-check",
            "--override-freeze",
            "hotfix for INC-42: 5xx on /s/:token",
        ])
        .env("CF_ACCOUNT_ID", "0123456789abcdef0123456789abcdef")
        .env("CF_ANALYTICS_TOKEN", TOKEN)
        .env("CF_API_BASE", &spent.base)
        .env("BBOPS", env!("CARGO_BIN_EXE_bbops"))
        .env("GITHUB_ACTIONS", "true")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        all.contains("release freeze OVERRIDDEN: hotfix for INC-42: 5xx on /s/:token"),
        "{all}"
    );
    assert!(
        all.contains("::warning title=Release freeze overridden::hotfix for INC-42"),
        "the annotation: {all}"
    );

    let healthy = SqlApi::start();
    healthy.answer(json!({"matching": thirty_days, "body": edge_answer(1_000_000, 1_000, 400_000, 1_000, 0)}));
    let out = run("slo", &["--env", "production", "--freeze-check"], &healthy.base);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("no release freeze"),
        "{}",
        text(&out)
    );

    // Unreadable: no evidence the budget is left, so no release (an override still passes).
    let out = run("slo", &["--env", "production", "--freeze-check"], &unreachable_base());
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let out = run("slo", &["--env", "production", "--override-freeze", "x"], &healthy.base);
    assert_eq!(
        out.status.code(),
        Some(2),
        "--override-freeze only with --freeze-check: {}",
        text(&out)
    );
}

#[test]
fn the_ci_production_deploy_checks_the_release_freeze_before_uploading() {
    let workflow = std::fs::read_to_string(repo().join(".github/workflows/ci.yml")).unwrap();
    let job = workflow
        .split("\n  deploy-production:")
        .nth(1)
        .expect("a deploy-production job");
    let freeze = job
        .find("scripts/slo --env production --freeze-check")
        .expect("a freeze check");
    let upload = job.find("versions upload").expect("an upload");
    assert!(freeze < upload, "the freeze is checked before anything is uploaded");
    assert!(job.contains("--override-freeze"), "an override path exists");
}

#[test]
fn the_ci_production_deploy_goes_through_the_canary_at_5_and_25_percent() {
    let workflow = std::fs::read_to_string(repo().join(".github/workflows/ci.yml")).unwrap();
    let job = workflow
        .split("\n  deploy-production:")
        .nth(1)
        .expect("a deploy-production job");
    // Up to the next job (a line indented by exactly two spaces).
    let job: String = job
        .lines()
        .skip(1)
        .take_while(|l| !(l.starts_with("  ") && !l.starts_with("   ") && l.trim_end().ends_with(':')))
        .map(|l| format!("{l}\n"))
        .collect();
    let canary = job
        .lines()
        .skip_while(|l| !l.contains("scripts/canary"))
        .take(2)
        .collect::<String>();
    assert!(canary.contains("--env production"), "{canary}");
    assert!(canary.contains("--steps 5,25"), "{canary}");
    assert!(
        !job.contains("versions deploy"),
        "no traffic split outside the canary's guardrails"
    );
}

#[test]
fn logpush_dry_run_defines_a_30_day_and_a_90_day_job_and_calls_nothing() {
    let out = Command::new(repo().join("scripts/logpush"))
        .args(["--env", "production", "--dry-run"])
        .env("CF_API_BASE", unreachable_base())
        .env_remove("CF_LOGPUSH_TOKEN")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "\"dataset\": \"workers_trace_events\"",
        "babybook-edge-production-all (kept 30 days",
        "babybook-edge-production-errors (kept 90 days",
        "workers/all/ --expire-days 30",
        "workers/errors/ --expire-days 90",
        "ScriptName\\\",\\\"operator\\\":\\\"eq\\\",\\\"value\\\":\\\"babybook-edge-production",
    ] {
        assert!(stdout.contains(needle), "{needle} missing:\n{stdout}");
    }
    assert!(
        stdout.contains("<R2_SECRET_ACCESS_KEY>"),
        "no credential is printed, only its name"
    );
}

/// Issue 29: what is archived never holds a request's URL (a share page's URL is its token).
/// The trace event's `Event` field is the request (URL included); the jobs keep an allowlist of
/// fields without it, and no environment keeps Workers Logs' invocation log (also per URL).
#[test]
fn no_archive_keeps_a_request_url_so_no_share_token_is_kept() {
    let out = Command::new(repo().join("scripts/logpush"))
        .args(["--env", "staging", "--dry-run"])
        .env("CF_API_BASE", unreachable_base())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut jobs = 0;
    let mut rest = stdout.as_ref();
    while let Some(at) = rest.find("\"field_names\": [") {
        let list = &rest[at..];
        let list = &list[..list.find(']').expect("the end of the list") + 1];
        let fields: Vec<String> = list[list.find('[').unwrap() + 1..list.len() - 1]
            .split(',')
            .map(|f| f.trim().trim_matches('"').to_owned())
            .filter(|f| !f.is_empty())
            .collect();
        assert_eq!(
            fields,
            [
                "EventTimestampMs",
                "ScriptName",
                "ScriptVersion",
                "Outcome",
                "Exceptions",
                "Logs"
            ],
            "only these fields are archived: {list}"
        );
        jobs += 1;
        rest = &rest[at + 1..];
    }
    assert_eq!(jobs, 2, "both Logpush jobs were checked:\n{stdout}");

    let config: toml::Value = toml::from_str(&std::fs::read_to_string(repo().join("wrangler.toml")).unwrap()).unwrap();
    for env in ["staging", "production"] {
        assert_eq!(
            config["env"][env]["observability"]["logs"]["invocation_logs"].as_bool(),
            Some(false),
            "env.{env} keeps Workers Logs' invocation log, which holds each request's URL"
        );
    }
}

/// Issue 30: staging and production deployed two builds of their own. CI's deploy jobs now run
/// wrangler with WORKER_BUNDLE_PREBUILT=1 over the bundle the test job built and tested: the
/// [build] command (scripts/build-worker) then checks it against its SHA256SUMS and never builds,
/// so a changed byte, or no manifest, fails the deploy. Run in a copy of the scripts, with no
/// worker-build or wasm-bindgen on the PATH.
#[test]
fn a_deploy_of_the_prebuilt_bundle_checks_its_manifest_and_never_builds() {
    let root = temp_dir("prebuilt");
    std::fs::create_dir_all(root.join("scripts/lib")).unwrap();
    std::fs::create_dir_all(root.join("build")).unwrap();
    for file in ["scripts/build-worker", "scripts/lib/tools.sh"] {
        std::fs::copy(repo().join(file), root.join(file)).unwrap();
    }
    std::fs::write(root.join("build/index.js"), "export default {};\n").unwrap();
    std::fs::write(root.join("build/index_bg.wasm"), b"\0asm\x01\0\0\0").unwrap();
    let build = |prebuilt: bool| {
        let mut cmd = Command::new(root.join("scripts/build-worker"));
        cmd.env("PATH", "/usr/bin:/bin");
        if prebuilt {
            cmd.env("WORKER_BUNDLE_PREBUILT", "1");
        }
        cmd.output().unwrap()
    };
    let out = build(true);
    assert_ne!(out.status.code(), Some(0), "no manifest: {}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("SHA256SUMS is missing"),
        "{}",
        text(&out)
    );

    let sums = Command::new("sh")
        .args(["-c", "sha256sum ./index.js ./index_bg.wasm > SHA256SUMS"])
        .current_dir(root.join("build"))
        .status()
        .unwrap();
    assert!(sums.success());
    let out = build(true);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("the prebuilt bundle, not rebuilt"),
        "{}",
        text(&out)
    );

    std::fs::write(root.join("build/index.js"), "export default { changed: true };\n").unwrap();
    let out = build(true);
    assert_ne!(out.status.code(), Some(0), "a changed byte: {}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not the bundle that was tested"),
        "{}",
        text(&out)
    );

    // Without the variable it would build, and here it cannot: the deploy jobs must set it.
    let out = build(false);
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
}

/// The deploy jobs build nothing: they deploy the test job's bundle, and production checks it is
/// the one staging deployed.
#[test]
fn staging_and_production_deploy_the_bundle_the_test_job_built() {
    let workflow = std::fs::read_to_string(repo().join(".github/workflows/ci.yml")).unwrap();
    let job = |name: &str| -> String {
        let rest = workflow
            .split(&format!("\n  {name}:"))
            .nth(1)
            .unwrap_or_else(|| panic!("a {name} job"));
        rest.lines()
            .skip(1)
            .take_while(|l| !(l.starts_with("  ") && !l.starts_with("   ") && l.trim_end().ends_with(':')))
            .map(|l| format!("{l}\n"))
            .collect()
    };
    let test = job("test");
    assert!(
        test.contains("name: worker-bundle"),
        "the test job uploads what it built:\n{test}"
    );
    for name in ["deploy-staging", "deploy-production"] {
        let deploy = job(name);
        assert!(
            deploy.contains("name: worker-bundle"),
            "{name} downloads the tested bundle"
        );
        assert!(
            deploy.contains("WORKER_BUNDLE_PREBUILT: \"1\""),
            "{name} never rebuilds"
        );
        for build in ["ensure_rust_tools", "cargo ", "rustup "] {
            assert!(!deploy.contains(build), "{name} builds ({build})");
        }
    }
    assert!(
        job("deploy-production").contains("needs.deploy-staging.outputs.bundle"),
        "production checks it deploys the bundle staging deployed"
    );
}

/// Issue 30 item 6: every action pinned by a commit (with its release in a comment), the
/// Cloudflare token only in the steps that call Cloudflare (never job-wide, so never in `npm ci`
/// or an install), Dependabot watching those pins, and no audit that skips the deploy tools.
#[test]
fn ci_pins_its_actions_by_commit_and_gives_the_cloudflare_token_only_to_deploy_steps() {
    let workflow = std::fs::read_to_string(repo().join(".github/workflows/ci.yml")).unwrap();
    let mut actions = 0;
    for line in workflow
        .lines()
        .filter(|l| l.trim_start().starts_with("- uses:") || l.trim_start().starts_with("uses:"))
    {
        let spec = line.split("uses:").nth(1).unwrap().trim();
        let (action, rest) = spec.split_once('@').unwrap_or_else(|| panic!("unpinned: {line}"));
        let sha = rest.split_whitespace().next().unwrap();
        assert!(
            sha.len() == 40 && sha.chars().all(|c| c.is_ascii_hexdigit()),
            "{action} is not pinned by a commit: {line}"
        );
        assert!(
            rest.contains("# v"),
            "{action}: say which release the commit is: {line}"
        );
        actions += 1;
    }
    assert!(actions >= 10, "{actions} actions found");

    // Every step whose environment holds the token calls Cloudflare: wrangler, the canary, or the
    // preflight (which asks wrangler and the zone API what the deploy is about to meet).
    let steps: Vec<&str> = workflow.split("\n      - ").skip(1).collect();
    let mut with_token = 0;
    for step in &steps {
        if step.contains("CLOUDFLARE_API_TOKEN:") {
            with_token += 1;
            assert!(
                step.contains("wrangler") || step.contains("scripts/canary") || step.contains("scripts/preflight"),
                "token in a step that does not deploy:\n{step}"
            );
            assert!(!step.contains("npm ci") && !step.contains("cargo install"), "{step}");
        }
    }
    assert!(
        with_token >= 4,
        "staging deploy, upload, canary, triggers: {with_token}"
    );
    for job in workflow.split("\n  ").filter(|j| j.starts_with("deploy-")) {
        let head: String = job
            .lines()
            .take_while(|l| !l.trim_start().starts_with("steps:"))
            .collect();
        assert!(!head.contains("CLOUDFLARE_API_TOKEN"), "a job-wide token: {head}");
    }

    assert!(
        !workflow.contains("--omit=dev"),
        "npm audit must cover wrangler and esbuild (dev dependencies)"
    );
    assert!(
        !workflow.contains("actions/cache@"),
        "Swatinem/rust-cache, not hand-rolled caches"
    );
    assert!(
        workflow.contains("shellcheck --severity=warning"),
        "shellcheck over scripts/"
    );
    let dependabot = std::fs::read_to_string(repo().join(".github/dependabot.yml")).expect(".github/dependabot.yml");
    for ecosystem in ["github-actions", "npm", "cargo"] {
        assert!(
            dependabot.contains(&format!("package-ecosystem: {ecosystem}")),
            "{ecosystem}"
        );
    }
}

/// A stand-in of the Worker's admin routes for the operator scripts: `dead` dead jobs of class
/// `external`, re-driven at most 500 a call as `POST /admin/jobs/redrive` does (then `404` once
/// none is left). Returns its base URL and every call received (`METHOD path body`).
fn admin_api(dead: usize) -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use axum::routing::post;
    use std::sync::{Arc, Mutex};
    let calls: Arc<Mutex<Vec<String>>> = Arc::default();
    let left = Arc::new(Mutex::new(dead));
    let (log, log2) = (calls.clone(), calls.clone());
    let router = axum::Router::new()
        .route(
            "/admin/jobs/redrive",
            post(move |body: String| async move {
                log.lock().unwrap().push(format!("POST /admin/jobs/redrive {body}"));
                let mut left = left.lock().unwrap();
                if *left == 0 {
                    return (
                        axum::http::StatusCode::NOT_FOUND,
                        axum::Json(json!({"error": {"code": "not_found"}})),
                    );
                }
                let n = (*left).min(500);
                *left -= n;
                let ids: Vec<String> = (0..n).map(|i| format!("job-{i}")).collect();
                (
                    axum::http::StatusCode::OK,
                    axum::Json(json!({"redriven": ids, "skipped": []})),
                )
            }),
        )
        .route(
            "/admin/switches",
            post(move |body: String| async move {
                log2.lock().unwrap().push(format!("POST /admin/switches {body}"));
                axum::Json(json!({"switch": "read-only", "on": true}))
            }),
        );
    let listener = runtime()
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    runtime().spawn(async move {
        let _ = babybook_ops::standin::serve_on(listener, router).await;
    });
    (format!("http://127.0.0.1:{port}"), calls)
}

fn operator(script: &str, args: &[&str]) -> Output {
    Command::new(repo().join("scripts").join(script))
        .args(args)
        .env("ADMIN_TOKEN", "operator-token-for-tests-0123456789abcdef")
        .env("ADMIN_REASON", "test of the operator scripts")
        .env_remove("EDGE_URL")
        .output()
        .unwrap()
}

/// Issue 30: `scripts/redrive --class` stopped after the first 500 jobs; it goes on until the
/// class is empty.
#[test]
fn redrive_of_a_class_goes_on_until_no_dead_job_is_left() {
    let (base, calls) = admin_api(1_234);
    let out = operator("redrive", &["--url", &base, "--class", "external"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        calls.lock().unwrap().len(),
        4,
        "500 + 500 + 234, then the 404 of an empty class"
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("redrive: 1234 re-driven in 4 call(s)"),
        "{}",
        text(&out)
    );
    let (base, calls) = admin_api(0);
    let out = operator("redrive", &["--url", &base, "--class", "worker_bug"]);
    assert!(
        out.status.success(),
        "nothing to re-drive is not an error: {}",
        text(&out)
    );
    assert_eq!(calls.lock().unwrap().len(), 1);
}

/// Issue 30: a runbook's follow-up line without EDGE_URL reached http://localhost:8787. The
/// operator scripts now need --env or --url, and refuse before any call without them.
#[test]
fn operator_scripts_need_an_explicit_environment() {
    let (base, calls) = admin_api(3);
    for (script, args) in [
        ("redrive", &["--class", "external"][..]),
        ("redrive", &["--list"]),
        ("switch", &["read-only", "off"]),
        ("switch", &["--list"]),
        ("slo", &[]),
    ] {
        let out = Command::new(repo().join("scripts").join(script))
            .args(args)
            .env("EDGE_URL", &base)
            .env("ADMIN_TOKEN", "operator-token-for-tests-0123456789abcdef")
            .env("ADMIN_REASON", "test")
            .env("CF_ACCOUNT_ID", "0123456789abcdef0123456789abcdef")
            .env("CF_ANALYTICS_TOKEN", TOKEN)
            .env("CF_API_BASE", unreachable_base())
            .env("BBOPS", env!("CARGO_BIN_EXE_bbops"))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "scripts/{script} {args:?}: {}", text(&out));
    }
    assert!(
        calls.lock().unwrap().is_empty(),
        "no call without an explicit environment"
    );
    let out = operator("switch", &["--url", &base, "read-only", "on"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        calls.lock().unwrap().as_slice(),
        ["POST /admin/switches {\"switch\":\"read-only\",\"on\":true}"]
    );
}

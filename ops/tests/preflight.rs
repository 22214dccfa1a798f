//! scripts/preflight (issue 30 item 2): a deploy that would break is refused, naming what is
//! wrong. Run against a stand-in `wrangler` (canned `secret list`, `whoami --json` and
//! `auth token --json` answers in the shapes wrangler 4.86 prints) and a stand-in zone API.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

const ZONE: &str = "0123456789abcdef0123456789abcdef";
const ACCOUNT: &str = "fedcba9876543210fedcba9876543210";
const SECRETS: [&str; 7] = [
    "SESSION_KEY_CURRENT",
    "ORIGIN_API_TOKEN",
    "MEDIA_WORKER_TOKEN",
    "ADMIN_TOKENS",
    "CACHE_PURGE_TOKEN",
    "ALERT_WEBHOOK_URL",
    "CF_ANALYTICS_TOKEN",
];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repo root")
        .to_owned()
}

/// A zone API stand-in: answers `GET /zones/<id>` with the status and body set in `answer`, and
/// keeps the requests' first line and authorization header.
struct ZoneApi {
    base: String,
    answer: Arc<Mutex<(u16, String)>>,
    seen: Arc<Mutex<Vec<String>>>,
}

impl ZoneApi {
    fn start(name: &str) -> ZoneApi {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}/client/v4", listener.local_addr().unwrap());
        let answer = Arc::new(Mutex::new((
            200,
            serde_json::json!({"success": true, "result": {"id": ZONE, "name": name, "account": {"id": ACCOUNT}}})
                .to_string(),
        )));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (a, s) = (answer.clone(), seen.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                let mut request = Vec::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                    let l = line.trim_end().to_owned();
                    if request.is_empty() || l.to_ascii_lowercase().starts_with("authorization") {
                        request.push(l);
                    }
                    line.clear();
                }
                s.lock().unwrap().push(request.join(" | "));
                let (status, body) = a.lock().unwrap().clone();
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        ZoneApi { base, answer, seen }
    }
}

/// A directory with a `wrangler` stand-in, its canned answers and a filled wrangler.toml.
struct Fixture {
    dir: PathBuf,
}

impl Fixture {
    fn new(name: &str) -> Fixture {
        let dir = std::env::temp_dir().join(format!("bb-preflight-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let wrangler = dir.join("wrangler");
        std::fs::write(
            &wrangler,
            format!(
                "#!/usr/bin/env bash\n\
                 d=\"{dir}\"\n\
                 echo \"$*\" >> \"$d/calls.log\"\n\
                 case \"$1 $2\" in\n\
                 \"secret list\") if [ -e \"$d/secret-list-fails\" ]; then echo '✘ [ERROR] Worker \"babybook-edge-staging\" (env: staging) not found.' >&2; exit 1; fi; cat \"$d/secrets.json\" ;;\n\
                 \"whoami --json\") cat \"$d/whoami.json\" ;;\n\
                 \"auth token\") echo '{{\"type\": \"api_token\", \"token\": \"stand-in-token\"}}' ;;\n\
                 *) echo \"unexpected wrangler call: $*\" >&2; exit 9 ;;\n\
                 esac\n",
                dir = dir.display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&wrangler, std::fs::Permissions::from_mode(0o755)).unwrap();
        let f = Fixture { dir };
        f.secrets(&SECRETS);
        f.accounts(&[ACCOUNT]);
        // wrangler.toml with staging's placeholders filled the way a first deploy fills them.
        std::fs::copy(repo().join("wrangler.toml"), f.config()).unwrap();
        let out = Command::new(repo().join("scripts/tf-outputs-to-wrangler"))
            .args(["--env", "staging", "--outputs"])
            .arg(repo().join("ops/tests/fixtures/tf-outputs-staging.json"))
            .arg("--config")
            .arg(f.config())
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        f
    }

    fn config(&self) -> PathBuf {
        self.dir.join("wrangler.toml")
    }

    /// `wrangler secret list --format json`: `[{"name": …, "type": "secret_text"}]`.
    fn secrets(&self, names: &[&str]) {
        let list: Vec<_> = names
            .iter()
            .map(|n| serde_json::json!({"name": n, "type": "secret_text"}))
            .collect();
        std::fs::write(
            self.dir.join("secrets.json"),
            serde_json::to_string_pretty(&list).unwrap(),
        )
        .unwrap();
    }

    /// `wrangler whoami --json`.
    fn accounts(&self, ids: &[&str]) {
        let accounts: Vec<_> = ids
            .iter()
            .map(|id| serde_json::json!({"id": id, "name": "Baby Book"}))
            .collect();
        let who = serde_json::json!({"loggedIn": true, "authType": "User API Token", "email": "ops@babybook.example",
                                     "accounts": accounts, "tokenPermissions": []});
        std::fs::write(self.dir.join("whoami.json"), who.to_string()).unwrap();
    }

    fn edit(&self, from: &str, to: &str) {
        let text = std::fs::read_to_string(self.config()).unwrap();
        assert!(text.contains(from), "{from}");
        std::fs::write(self.config(), text.replacen(from, to, 1)).unwrap();
    }

    fn run(&self, api: &ZoneApi, extra_env: &[(&str, &str)]) -> Output {
        Command::new(repo().join("scripts/preflight"))
            .args(["--env", "staging", "--config"])
            .arg(self.config())
            .arg("--wrangler")
            .arg(self.dir.join("wrangler"))
            .env("CF_API_BASE", &api.base)
            .env_remove("CLOUDFLARE_ACCOUNT_ID")
            .envs(extra_env.iter().copied())
            .output()
            .unwrap()
    }
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn refused_naming(out: &Output, needles: &[&str]) {
    let all = text(out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    for needle in needles {
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(needle),
            "{needle:?} not named:\n{all}"
        );
    }
}

#[test]
fn a_good_configuration_passes_and_checks_secrets_account_and_zone() {
    let f = Fixture::new("good");
    let api = ZoneApi::start("babybook.com");
    let out = f.run(&api, &[("CLOUDFLARE_ACCOUNT_ID", ACCOUNT)]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok (wrangler.toml, secrets, account and zone)"));
    let calls = std::fs::read_to_string(f.dir.join("calls.log")).unwrap();
    assert!(
        calls.contains("secret list --config") && calls.contains("--env staging --format json"),
        "{calls}"
    );
    assert!(
        calls.contains("whoami --json") && calls.contains("auth token --json"),
        "{calls}"
    );
    let seen = api.seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        [format!(
            "GET /client/v4/zones/{ZONE} HTTP/1.1 | Authorization: Bearer stand-in-token"
        )]
    );
}

#[test]
fn every_unfilled_placeholder_is_named() {
    let f = Fixture::new("placeholders");
    std::fs::copy(repo().join("wrangler.toml"), f.config()).unwrap();
    let api = ZoneApi::start("babybook.com");
    let out = f.run(&api, &[]);
    refused_naming(
        &out,
        &[
            "env.staging.vars.CF_ZONE_ID = 'REPLACE_WITH_BABYBOOK_COM_ZONE_ID'",
            "env.staging.vars.CF_ACCOUNT_ID = 'REPLACE_WITH_CLOUDFLARE_ACCOUNT_ID'",
            "env.staging.vars.RUNBOOK_BASE_URL = 'REPLACE_WITH_RUNBOOK_BASE_URL'",
            "env.staging.hyperdrive[0].id = 'REPLACE_WITH_STAGING_HYPERDRIVE_ID'",
            "env.staging.kv_namespaces[0].id = 'REPLACE_WITH_STAGING_OPS_STATE_KV_ID'",
            "refused: 7 problem(s)",
            "zone: not checked",
            "account: not checked",
        ],
    );
    assert!(
        api.seen.lock().unwrap().is_empty(),
        "no zone lookup with a placeholder id"
    );
    // Offline (no credentials): the file's problems alone.
    let offline = Command::new(repo().join("scripts/preflight"))
        .args(["--env", "production", "--offline"])
        .output()
        .unwrap();
    refused_naming(
        &offline,
        &["REPLACE_WITH_PRODUCTION_HYPERDRIVE_ID", "refused: 5 problem(s)"],
    );
}

#[test]
fn a_missing_or_test_only_var_is_named() {
    let f = Fixture::new("vars");
    f.edit(
        "RUNBOOK_BASE_URL = \"https://github.com/example-org/babybook-edge/blob/main/\"\n",
        "",
    );
    f.edit(
        "MEDIA_WORKER_URL = \"https://media-worker.staging.babybook.com\"\n",
        "MEDIA_WORKER_URL = \"\"\nTEST_CONTROLS = \"on\"\n",
    );
    let api = ZoneApi::start("babybook.com");
    refused_naming(
        &f.run(&api, &[]),
        &[
            "var: RUNBOOK_BASE_URL is missing from [env.staging.vars]",
            "var: MEDIA_WORKER_URL is missing",
            "var: TEST_CONTROLS must not be set",
            "refused: 3 problem(s)",
        ],
    );
}

#[test]
fn a_missing_secret_is_named() {
    let f = Fixture::new("secrets");
    f.secrets(&SECRETS[..4]);
    let api = ZoneApi::start("babybook.com");
    refused_naming(
        &f.run(&api, &[]),
        &[
            "secret: CACHE_PURGE_TOKEN is not set on babybook-edge-staging (npx wrangler secret put CACHE_PURGE_TOKEN --env staging)",
            "secret: ALERT_WEBHOOK_URL",
            "secret: CF_ANALYTICS_TOKEN",
            "refused: 3 problem(s)",
        ],
    );
    // A Worker that does not exist yet (no secret was ever put): refused, saying why.
    std::fs::write(f.dir.join("secret-list-fails"), "").unwrap();
    refused_naming(&f.run(&api, &[]), &["secrets:", "failed (exit 1)", "not found"]);
}

#[test]
fn an_account_that_does_not_match_is_named() {
    let f = Fixture::new("account");
    f.accounts(&["00000000000000000000000000000001"]);
    let api = ZoneApi::start("babybook.com");
    refused_naming(
        &f.run(&api, &[]),
        &[&format!(
            "account: CF_ACCOUNT_ID {ACCOUNT} is not an account these credentials reach"
        )],
    );
    f.accounts(&[ACCOUNT]);
    refused_naming(
        &f.run(&api, &[("CLOUDFLARE_ACCOUNT_ID", "00000000000000000000000000000002")]),
        &["account: CLOUDFLARE_ACCOUNT_ID 00000000000000000000000000000002 (where this deploy goes) is not CF_ACCOUNT_ID"],
    );
}

#[test]
fn a_zone_that_does_not_match_is_named() {
    let f = Fixture::new("zone");
    let api = ZoneApi::start("example.org");
    refused_naming(
        &f.run(&api, &[]),
        &[&format!(
            "zone: CF_ZONE_ID {ZONE} is 'example.org', but the routes are on babybook.com"
        )],
    );
    *api.answer.lock().unwrap() = (
        200,
        serde_json::json!({"result": {"id": ZONE, "name": "babybook.com", "account": {"id": "00000000000000000000000000000003"}}})
            .to_string(),
    );
    refused_naming(
        &f.run(&api, &[]),
        &["belongs to account 00000000000000000000000000000003"],
    );
    *api.answer.lock().unwrap() = (404, r#"{"success": false, "errors": [{"code": 1001}]}"#.into());
    refused_naming(&f.run(&api, &[]), &[&format!("GET /zones/{ZONE} answered 404")]);
    f.edit(ZONE, "0123456789ABCDEF0123456789ABCDEF");
    refused_naming(&f.run(&api, &[]), &["is not a zone id (32 lowercase hex digits)"]);
}

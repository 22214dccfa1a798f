//! Issue 18: operable in production. The deployed version on every signal, switches flipped
//! through the admin route with no deploy or restart, and alerts that reach the webhook
//! stand-in (a real HTTP server the Worker calls), once per window.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use babybook_edge::switches::ISOLATE_CACHE_MS;

use crate::{Stack, StackOptions};

const EVERY_FIVE: &str = "*/5 * * * *";

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

/// How long a flip may take to be seen locally: the per-isolate bound, plus the requests' own
/// time on a loaded machine.
fn flip_deadline() -> Duration {
    Duration::from_millis(ISOLATE_CACHE_MS as u64) + Duration::from_secs(5)
}

fn is_uuid(text: &str) -> bool {
    text.len() == 36
        && text.char_indices().all(|(i, c)| {
            if [8, 13, 18, 23].contains(&i) {
                c == '-'
            } else {
                c.is_ascii_hexdigit()
            }
        })
}

#[test]
fn the_health_answer_and_every_log_line_carry_the_deployed_version_id() {
    let stack = Stack::shared();
    let health = stack.client().get("/health");
    assert_eq!(health.status, 200);
    let version_id = health.json()["version_id"].as_str().unwrap_or("").to_owned();
    assert!(
        is_uuid(&version_id),
        "the version metadata binding's id: {version_id:?}"
    );
    let family = stack.family(1, 1);
    let page = stack.client().get(&format!("/s/{}", family.shares[0].token));
    assert_eq!(page.status, 200);
    let line = stack.request_line(&page);
    assert_eq!(line["version_id"], version_id.as_str(), "{line}");
    assert!(line.get("version_tag").is_some_and(Value::is_string), "{line}");
    let others = stack.logs();
    let without: Vec<&Value> = others
        .iter()
        .filter(|l| l.get("service").is_some() && l["version_id"] != version_id.as_str())
        .collect();
    assert!(without.is_empty(), "log lines without this version id: {without:?}");
}

/// `POST /admin/switches` as the harness's operator.
fn switch(stack: &Stack, name: &str, on: bool) -> Value {
    let r = stack.admin("POST", "/admin/switches", Some(&json!({"switch": name, "on": on})));
    assert_eq!(r.status, 200, "switch {name} {on}: {}", r.text());
    r.json()
}

/// Repeats `attempt` until it answers `status` or the flip deadline passes; returns the answer.
fn until_status(what: &str, status: u16, attempt: impl Fn() -> edge_tests::Response) -> edge_tests::Response {
    let deadline = Instant::now() + flip_deadline();
    loop {
        let r = attempt();
        if r.status == status {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: still {} after {:?}: {}",
            r.status,
            flip_deadline(),
            r.text()
        );
        std::thread::sleep(Duration::from_millis(200)); // polling interval, bounded by the deadline
    }
}

#[test]
fn read_only_flipped_through_the_admin_route_refuses_writes_within_the_bound_then_lifts_without_a_restart() {
    let stack = Stack::start(StackOptions::named("switches"));
    let family = stack.family(2, 1);
    let signed_in = stack.sign_in(&family);
    let create = || {
        signed_in.write(
            "POST",
            "/shares",
            Some(&json!({"moment_ids": family.moment_ids, "title": "switch test", "expires_in_days": 7})),
        )
    };
    assert_eq!(create().status, 201, "writes are accepted before the flip");
    let listed = stack.admin("GET", "/admin/switches", None).json();
    assert_eq!(
        listed["switches"]["read-only"],
        json!({"on": false, "source": "deploy default"})
    );

    let flipped = switch(&stack, "read-only", true);
    assert_eq!(flipped["on"], true);
    let refused = until_status("a write after read-only on", 503, create);
    assert_eq!(refused.error_code(), "read_only");
    assert_eq!(signed_in.get("/shares").status, 200, "reads go on");
    assert_eq!(
        stack.client().get(&format!("/s/{}", family.shares[0].token)).status,
        200,
        "share pages go on"
    );
    let flip_line = stack.wait_for_log(Duration::from_secs(10), "the audit line of the flip", |l| {
        l["message"] == "request" && l["route"] == "/admin/switches" && l["audit"] == "admin"
    });
    assert_eq!(flip_line["operator"], stack.secrets.admin_operator.as_str());
    // Issue 29: the action's own line says who and why, not only the request's line.
    let own = stack.wait_for_log(Duration::from_secs(10), "the switch's own line", |l| {
        l["message"] == "switch flipped" && l["switch"] == "read-only" && l["on"] == true
    });
    assert_eq!(own["operator"], stack.secrets.admin_operator.as_str(), "{own}");
    assert_eq!(own["admin_reason"], "edge test harness", "{own}");

    // A restart (what a deploy does to the isolates) keeps the switch: it lives in KV.
    stack.restart_worker_with(&[]);
    assert_eq!(create().status, 503, "read-only survives a restart of the Worker");
    let listed = stack.admin("GET", "/admin/switches", None).json();
    assert_eq!(listed["switches"]["read-only"], json!({"on": true, "source": "switch"}));

    switch(&stack, "read-only", false);
    until_status("a write after read-only off", 201, create);
    assert!(stack.alive(), "no restart was needed");

    // The export kill switch: exports only.
    switch(&stack, "exports-off", true);
    let export = || signed_in.write("POST", "/exports", None);
    let paused = until_status("an export after exports-off on", 503, export);
    assert_eq!(paused.error_code(), "service_unavailable");
    assert_eq!(create().status, 201, "other writes are not paused");
    switch(&stack, "exports-off", false);
    let resumed = export();
    assert_ne!(resumed.status, 503, "exports resume: {}", resumed.text());
}

#[test]
fn a_switch_stored_off_overrides_a_read_only_deploy_default() {
    let stack = Stack::start(StackOptions::named("switch-default").var("READ_ONLY", "true"));
    let family = stack.family(1, 0);
    let signed_in = stack.sign_in(&family);
    let create = || {
        signed_in.write(
            "POST",
            "/shares",
            Some(&json!({"moment_ids": family.moment_ids, "title": "x", "expires_in_days": 7})),
        )
    };
    assert_eq!(create().status, 503, "READ_ONLY=true is the default");
    let listed = stack.admin("GET", "/admin/switches", None).json();
    assert_eq!(
        listed["switches"]["read-only"],
        json!({"on": true, "source": "deploy default"})
    );
    // The operator's command, as an operator runs it.
    let script = |args: &[&str]| {
        let out = std::process::Command::new(edge_tests::stack::repo_root().join("scripts/switch"))
            .arg("--url")
            .arg(&stack.base_url)
            .args(args)
            .env("ADMIN_TOKEN", &stack.secrets.admin_token)
            .env("ADMIN_REASON", "edge test of scripts/switch")
            .output()
            .expect("scripts/switch");
        assert!(out.status.success(), "scripts/switch {args:?}: {out:?}");
        serde_json::from_slice::<Value>(&out.stdout).expect("scripts/switch prints the answer")
    };
    assert_eq!(script(&["read-only", "off"])["on"], false);
    until_status("a write with the switch off", 201, create);
    assert_eq!(
        script(&["--list"])["switches"]["read-only"],
        json!({"on": false, "source": "switch"})
    );
}

#[test]
fn an_unknown_switch_or_a_missing_value_is_a_422_and_changes_nothing() {
    let stack = Stack::shared();
    for body in [
        json!({"switch": "read_only", "on": true}),
        json!({"switch": "read-only"}),
        json!({"switch": "read-only", "on": "yes"}),
        json!({"on": true}),
    ] {
        let r = stack.admin("POST", "/admin/switches", Some(&body));
        assert_eq!(r.status, 422, "{body}: {}", r.text());
        assert_eq!(r.error_code(), "validation_failed", "{body}");
    }
    let without_token = stack
        .client()
        .post_json("/admin/switches", &[], &json!({"switch": "read-only", "on": true}));
    assert_eq!(without_token.status, 401);
    let listed = stack.admin("GET", "/admin/switches", None).json();
    assert_eq!(listed["switches"]["read-only"]["on"], false);
}

// ------------------------------------------------------------------ alerts

/// Publishes a message the consumer can never parse: a `dlq_item` alert.
fn publish_poison(stack: &Stack, tag: &str) {
    let pill = format!("{{not json {tag} {}", babybook_edge::secure_random::new_id().unwrap());
    stack.control(json!({"action": "publish_raw", "body": Value::String(pill)}));
}

fn dead_line_count(stack: &Stack) -> usize {
    stack.logs().iter().filter(|l| l["alert"] == "dlq_item").count()
}

#[test]
fn a_dead_job_reaches_the_webhook_once_per_window_and_a_failed_delivery_is_tried_again() {
    let stack = Stack::start(StackOptions {
        alert_webhook: true,
        ..StackOptions::named("alerts-dlq")
    });
    let version_id = stack.client().get("/health").json()["version_id"]
        .as_str()
        .unwrap()
        .to_owned();

    // 1. The webhook is down for the first one: the Worker says so, and starts no window.
    stack.fail_webhook(1);
    publish_poison(&stack, "first");
    stack.wait_for_log(Duration::from_secs(20), "the failed delivery", |l| {
        l["message"] == "alert webhook failed" && l["alert_name"] == "dlq_item"
    });

    // 2. The next dead job is delivered.
    publish_poison(&stack, "second");
    let alert = stack.wait_for_alert(Duration::from_secs(20), "the second dead job", |b| {
        b["alert"] == "dlq_item"
    });
    assert_eq!(alert["severity"], "sev2");
    assert_eq!(alert["environment"], "local");
    assert_eq!(alert["version"]["id"], version_id.as_str());
    assert_eq!(alert["runbook"], "docs/runbooks/dlq.md");
    assert!(alert["summary"].as_str().is_some_and(|s| !s.is_empty()));
    assert!(alert["trace_id"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(
        stack.alerts_received().iter().all(|r| r["secret_ok"] == true),
        "every call used the secret URL"
    );

    // 3. A third within the window is written to the log but not sent.
    let before = dead_line_count(&stack);
    publish_poison(&stack, "third");
    stack.wait_for_log(Duration::from_secs(20), "the suppressed third", |l| {
        l["message"] == "alert suppressed: sent within the window" && l["alert_name"] == "dlq_item"
    });
    assert!(
        dead_line_count(&stack) > before,
        "the alert's log line is still written"
    );
    let delivered: Vec<Value> = stack
        .alerts_received()
        .into_iter()
        .filter(|r| r["status"] == 200 && r["body"]["alert"] == "dlq_item")
        .collect();
    assert_eq!(delivered.len(), 1, "one page per window: {delivered:?}");
}

#[test]
fn a_consumer_that_never_picks_up_the_probe_pages_consumer_stalled_as_sev1() {
    let stack = Stack::start(StackOptions {
        alert_webhook: true,
        ..StackOptions::named("alerts-stalled")
    });
    let t0 = now_ms();
    stack.fault("consumer_paused", true);
    assert_eq!(stack.fire_cron(EVERY_FIVE, t0).status, 200, "the probe is published");
    stack.wait_for_log(Duration::from_secs(10), "the consumer reporting it is paused", |l| {
        l["message"] == "consumer paused"
    });
    // Six minutes later by the trigger's clock the probe was never picked up.
    assert_eq!(stack.fire_cron(EVERY_FIVE, t0 + 6 * 60_000).status, 200);
    let stalled = stack.wait_for_alert(Duration::from_secs(20), "consumer_stalled", |b| {
        b["alert"] == "consumer_stalled"
    });
    assert_eq!(stalled["severity"], "sev1");
    assert_eq!(stalled["runbook"], "docs/runbooks/incident.md#consumer-stalled");
    let ttr = stack.wait_for_alert(Duration::from_secs(20), "queue_ttr", |b| b["alert"] == "queue_ttr");
    assert_eq!(ttr["severity"], "sev2");
    stack.fault("consumer_paused", false);
}

#[test]
fn a_probe_that_was_picked_up_but_is_slow_is_not_a_stalled_consumer() {
    let stack = Stack::start(StackOptions {
        alert_webhook: true,
        ..StackOptions::named("alerts-not-stalled")
    });
    let t0 = now_ms();
    // The media worker is down: the probe's job is claimed, fails and is retried.
    stack.media.lock().unwrap().stop();
    assert_eq!(stack.fire_cron(EVERY_FIVE, t0).status, 200);
    let probe: String = stack
        .db()
        .query_one(
            "SELECT id::text FROM asset WHERE is_probe ORDER BY created_at DESC LIMIT 1",
            &[],
        )
        .unwrap()
        .get(0);
    let deadline = Instant::now() + Duration::from_secs(20);
    while stack
        .db()
        .query_one(
            "SELECT processing_started_at IS NOT NULL FROM asset WHERE id = $1::text::uuid",
            &[&probe],
        )
        .unwrap()
        .get::<_, bool>(0)
        .eq(&false)
    {
        assert!(Instant::now() < deadline, "the consumer never claimed the probe");
        std::thread::sleep(Duration::from_millis(100)); // polling interval, bounded by the deadline
    }
    assert_eq!(stack.fire_cron(EVERY_FIVE, t0 + 6 * 60_000).status, 200);
    // The probe's alert line is written while the cron run is under way, before its `cron end`;
    // the webhook call may still be in flight then, so the judgement reads the lines.
    let ended = stack.wait_for_log(Duration::from_secs(20), "the probe run's end", |l| {
        l["message"] == "cron end"
            && l["cron_job"] == "queue_probe"
            && l["scheduled_time"] != json!(null)
            && l["scheduled_time"]
                .as_str()
                .is_some_and(|t| t >= babybook_jobs::format_rfc3339_millis(t0 + 6 * 60_000).as_str())
    });
    let alerts: Vec<String> = stack
        .logs()
        .iter()
        .take_while(|l| **l != ended)
        .filter_map(|l| l["alert"].as_str().map(str::to_owned))
        .collect();
    assert!(alerts.iter().any(|a| a == "queue_ttr"), "{alerts:?}");
    assert!(
        !alerts.iter().any(|a| a == "consumer_stalled"),
        "a claimed job is slow, not stalled: {alerts:?}"
    );
    stack.wait_for_alert(Duration::from_secs(20), "queue_ttr", |b| b["alert"] == "queue_ttr");
    stack.media.lock().unwrap().start();
}

fn edge_window(requests: u32, errors: u32, share_pages: u32, slow: u32) -> Value {
    json!({"meta": [], "rows": 1, "data": [{"requests": requests, "errors": errors, "share_pages": share_pages, "share_slow": slow, "share_misses": 0}]})
}

#[test]
fn the_slo_cron_pages_a_fast_burn_in_both_windows_and_not_one_in_the_last_hour_only() {
    let stack = Stack::start(StackOptions {
        alert_webhook: true,
        sql_api: true,
        ..StackOptions::named("alerts-slo")
    });
    // The last hour burns (10 % 5xx), the last six did not: no page yet.
    stack.sql_answer(
        json!({"matching": "INTERVAL '1' HOUR", "body": edge_window(10_000, 1_000, 2_000, 20), "times": 1}),
    );
    stack.sql_answer(
        json!({"matching": "INTERVAL '6' HOUR", "body": edge_window(60_000, 1_000, 12_000, 120), "times": 1}),
    );
    let t0 = now_ms();
    assert_eq!(stack.fire_cron(EVERY_FIVE, t0).status, 200);
    let first = stack.wait_for_log(Duration::from_secs(20), "the first slo_burn run", |l| {
        l["message"] == "cron end" && l["cron_job"] == "slo_burn"
    });
    assert_eq!(first["ok"], true, "{first}");
    assert_eq!(first["report"]["fast_burning"], json!([]), "{first}");
    assert!(
        first["report"]["burn_1h"]["availability"].as_f64().unwrap() > 14.4,
        "{first}"
    );

    // Both windows burn: a Sev-1 page naming the SLI.
    stack.sql_answer(json!({"matching": "INTERVAL '1' HOUR", "body": edge_window(10_000, 1_000, 2_000, 20)}));
    stack.sql_answer(json!({"matching": "INTERVAL '6' HOUR", "body": edge_window(60_000, 6_000, 12_000, 120)}));
    assert_eq!(stack.fire_cron(EVERY_FIVE, t0 + 5 * 60_000).status, 200);
    let page = stack.wait_for_alert(Duration::from_secs(20), "slo_fast_burn", |b| {
        b["alert"] == "slo_fast_burn"
    });
    assert_eq!(page["severity"], "sev1");
    assert!(page["summary"].as_str().unwrap().contains("availability"), "{page}");
    assert!(!page["summary"].as_str().unwrap().contains("share_ttfb"), "{page}");
    let queries = stack.sql_queries();
    assert!(
        queries.iter().all(|q| q["token_ok"] == true),
        "the Worker's read token: {queries:?}"
    );
    assert!(queries
        .iter()
        .all(|q| q["sql"].as_str().unwrap().contains("FROM babybook_edge_requests_local")));
}

#[test]
fn an_unreadable_sql_api_fails_the_slo_cron_run_and_pages_nothing() {
    let stack = Stack::start(StackOptions {
        alert_webhook: true,
        sql_api: true,
        ..StackOptions::named("alerts-slo-down")
    });
    stack.sql_answer(json!({"status": 500, "body": {"errors": ["internal"]}}));
    let fired = stack.fire_cron(EVERY_FIVE, now_ms());
    assert_eq!(fired.status, 500, "the scheduled run reports the failure");
    let end = stack.wait_for_log(Duration::from_secs(20), "the failed slo_burn run", |l| {
        l["message"] == "cron end" && l["cron_job"] == "slo_burn"
    });
    assert_eq!(end["ok"], false, "{end}");
    assert!(!stack
        .alerts_received()
        .iter()
        .any(|r| r["body"]["alert"] == "slo_fast_burn"));
}

/// A stack whose purges go to the purge API stand-in and whose alerts go to the webhook.
fn alert_stack() -> &'static Stack {
    static STACK: std::sync::OnceLock<Stack> = std::sync::OnceLock::new();
    STACK.get_or_init(|| {
        Stack::start(StackOptions {
            purge_api: true,
            alert_webhook: true,
            ..StackOptions::named("alerts")
        })
    })
}

#[test]
fn purges_that_keep_failing_reach_the_webhook_as_purge_failing() {
    let stack = alert_stack();
    let family = stack.family(1, 1);
    let share = &family.shares[0];
    stack.purge_failure(Some(
        json!({"mode": "server_error", "times": 3, "matching": share.token_hash_hex}),
    ));
    let s = stack.sign_in(&family);
    let revoke = s.write("DELETE", &format!("/shares/{}", share.id), None);
    assert_eq!(revoke.status, 204, "{}", revoke.text());
    let alert = stack.wait_for_alert(Duration::from_secs(60), "purge_failing", |b| {
        b["alert"] == "purge_failing"
    });
    assert_eq!(alert["severity"], "sev2");
    assert_eq!(alert["runbook"], "docs/runbooks/cache-purge.md");
    assert!(
        !alert.to_string().contains(&share.token) && !alert.to_string().contains(&share.token_hash_hex),
        "the page names no link: {alert}"
    );
}

#[test]
fn a_guess_spread_over_many_networks_reaches_the_webhook_as_login_email_ceiling() {
    let stack = alert_stack();
    let family = stack.family(1, 0);
    let attempt = || {
        let c = stack.client().with_new_network();
        let token = c.get("/auth/csrf").json()["csrf_token"].as_str().unwrap().to_owned();
        c.post_json(
            "/auth/login",
            &[("x-csrf-token", &token), ("cookie", &format!("__Host-csrf={token}"))],
            &json!({"email": family.email, "password": "wrong-password"}),
        )
    };
    // The ceiling is per minute: enough attempts that one window sees more than it allows,
    // wherever the minute boundary falls.
    let ceiling = babybook_edge::rate_limit::LOGIN_EMAIL_CEILING.limit;
    let refused = (0..3 * ceiling).map(|_| attempt()).find(|r| r.status == 429);
    assert!(refused.is_some(), "the ceiling was never met");
    let alert = stack.wait_for_alert(Duration::from_secs(20), "login_email_ceiling", |b| {
        b["alert"] == "login_email_ceiling"
    });
    assert_eq!(alert["severity"], "sev3");
    assert_eq!(alert["runbook"], "docs/runbooks/abuse.md#login_email_ceiling");
    assert!(
        !alert.to_string().contains(&family.email),
        "the page carries no email: {alert}"
    );
}

#[test]
fn force_prewarm_switched_on_makes_the_prewarm_cron_run_outside_any_window() {
    let stack = alert_stack();
    let family = stack.family(1, 1);
    stack
        .db()
        .execute(
            "UPDATE share_link SET view_count = 2000000000 WHERE id = $1::text::uuid",
            &[&family.shares[0].id],
        )
        .unwrap();
    // 29 November: no seasonal window.
    let outside = babybook_jobs::parse_rfc3339_millis("2026-11-29T15:00:00-03:00").unwrap();
    let run = |what: &str| -> Value {
        let fired = stack.fire_cron("*/4 * * * *", outside);
        assert_eq!(fired.status, 200, "{what}");
        stack.wait_for_log(Duration::from_secs(20), what, |l| {
            l["message"] == "cron end"
                && l["cron_job"] == "prewarm"
                && l["scheduled_time"] == "2026-11-29T18:00:00.000Z"
        })
    };
    switch(stack, "force-prewarm", true);
    // The switch is read at the start of each run; this isolate forgot its snapshot on the flip.
    let forced = run("the forced run");
    assert_eq!(forced["report"]["forced"], true, "{forced}");
    assert!(forced["report"]["warmed"].as_u64().unwrap() >= 1, "{forced}");

    switch(stack, "force-prewarm", false);
    let count = |l: &Value| l["message"] == "cron end" && l["cron_job"] == "prewarm";
    let runs_before = stack.logs().iter().filter(|l| count(l)).count();
    assert_eq!(stack.fire_cron("*/4 * * * *", outside).status, 200);
    let deadline = Instant::now() + Duration::from_secs(20);
    let skipped = loop {
        let ends: Vec<Value> = stack.logs().into_iter().filter(|l| count(l)).collect();
        if ends.len() > runs_before {
            break ends.last().unwrap().clone();
        }
        assert!(Instant::now() < deadline, "no second prewarm run");
        std::thread::sleep(Duration::from_millis(100)); // polling interval, bounded by the deadline
    };
    assert_eq!(skipped["report"]["reason"], "outside any seasonal window", "{skipped}");
}

/// The test controls' `sli_points` and `sli_weight` counters moved by `run` (Analytics Engine
/// cannot be read in `wrangler dev`; the counters are what `edge::sli` wrote).
fn sli_written(stack: &Stack, run: impl FnOnce()) -> (u64, u64) {
    let counter = |c: &Value, name: &str| c[name].as_u64().unwrap_or_else(|| panic!("{name} in {c}"));
    let before = stack.counters();
    run();
    let after = stack.counters();
    (
        counter(&after, "sli_points") - counter(&before, "sli_points"),
        counter(&after, "sli_weight") - counter(&before, "sli_weight"),
    )
}

/// Issue 31: the stable version writes a share `SLI_SAMPLE_RATE` of its SLI points, each
/// weighing 1/rate, so the weights still add up to the requests; every 5xx is written at weight
/// 1 whatever the rate; and a version under canary (uploaded less than `SLI_CANARY_MINUTES` ago:
/// `wrangler dev`'s version is uploaded when it starts) writes every point at weight 1. (The
/// counters' own request before each run is a point too: at most one more.)
#[test]
fn sli_points_are_sampled_with_their_weight_and_5xx_and_a_version_under_canary_write_every_one() {
    let stack = Stack::start(
        StackOptions::named("sli-weights")
            .var("SLI_SAMPLE_RATE", "0.25")
            .var("SLI_CANARY_MINUTES", "0"),
    );
    let client = stack.client();

    // Stable: 400 health answers at 0.25, Binomial(400, 0.25) = 100 ± 8.7 points of weight 4.
    let (points, weight) = sli_written(&stack, || {
        for _ in 0..400 {
            assert_eq!(client.get("/health").status, 200);
        }
    });
    assert!((60..=141).contains(&points), "{points} points for 400 requests at 0.25");
    assert_eq!(weight, 4 * points, "each sampled point weighs 1/0.25");
    assert!(weight.abs_diff(400) <= 164, "{weight} requests counted for 400");

    // Every 5xx is written, at weight 1: the pooler is down, the floor's query answers 503.
    stack.bouncer().kill();
    let (points, weight) = sli_written(&stack, || {
        for _ in 0..20 {
            let status = client.get("/__test/floor").status;
            assert!(status >= 500, "the floor with the pooler down: {status}");
        }
    });
    stack.bouncer().restart();
    assert!(points == 20 || points == 21, "{points} points for 20 5xx answers");
    assert!(
        weight == 20 || weight == 24,
        "{weight}: 20 at weight 1 (and the counters' request at 4)"
    );

    // Under canary: every point, each weighing 1.
    stack.restart_worker_with(&[("SLI_CANARY_MINUTES", "60")]);
    let (points, weight) = sli_written(&stack, || {
        for _ in 0..100 {
            assert_eq!(client.get("/health").status, 200);
        }
    });
    assert!(
        points == 100 || points == 101,
        "{points} points for 100 requests under canary"
    );
    assert_eq!(weight, points, "a canary's points weigh 1");
}

//! Issue 2: health, readiness, the error envelope, trace ids, logs, and surviving the database.

use std::time::{Duration, Instant};

use crate::{Stack, StackOptions};

#[test]
fn ready_answers_200_after_select_1_through_pgbouncer() {
    let response = Stack::shared().client().get("/ready");
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.json()["database"], "ok");
}

#[test]
fn errors_before_any_handler_still_get_the_envelope_with_the_trace_id() {
    let client = Stack::shared().client();
    let scanner = client.get("/.env");
    assert_eq!(scanner.status, 404);
    assert_eq!(scanner.error_code(), "not_found");
    let wrong_method = client.request("POST", "/me", &[], None);
    assert_eq!(wrong_method.status, 405);
    assert_eq!(wrong_method.error_code(), "method_not_allowed");
    assert_eq!(wrong_method.header("allow"), Some("GET, HEAD, OPTIONS"));
}

#[test]
fn a_trace_id_sent_by_the_client_is_echoed_and_logged() {
    let stack = Stack::shared();
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let response = stack
        .client()
        .get_with("/me", &[("traceparent", &format!("00-{trace}-00f067aa0ba902b7-01"))]);
    assert_eq!(response.header("x-trace-id"), Some(trace));
    let line = stack.wait_for_log(Duration::from_secs(5), "the request line", |l| {
        l["trace_id"] == trace && l["message"] == "request"
    });
    for field in ["timestamp", "level", "message", "service", "env", "version", "trace_id"] {
        assert!(line.get(field).is_some(), "log line lacks {field}: {line}");
    }
    let other = stack
        .client()
        .get_with("/health", &[("x-trace-id", "bad trace id with spaces")]);
    assert_ne!(
        other.header("x-trace-id"),
        Some("bad trace id with spaces"),
        "an invalid trace id must be replaced"
    );
}

#[test]
fn a_thousand_ready_probes_at_concurrency_32_all_succeed_and_leak_no_connections() {
    // Its own stack: this load would starve the shared pool other tests use.
    let stack = &Stack::start(StackOptions::named("ready-load"));
    let client = stack.client();
    let failures = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..32 {
            scope.spawn(|| {
                for _ in 0..(1000 / 32 + 1) {
                    let r = client.get("/ready");
                    if r.status != 200 {
                        failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            });
        }
    });
    assert_eq!(failures.into_inner(), 0, "non-2xx /ready answers");
    assert!(stack.alive(), "wrangler dev died under load");
    // The Worker holds no connection between requests: PgBouncer's client connections drop to
    // zero (each closes once its request has answered; polled to a deadline, not slept on).
    stack.wait_for_no_pool_clients("app_rw", Duration::from_secs(10));
}

#[test]
fn when_the_database_dies_ready_answers_503_within_two_seconds_health_stays_200_and_the_server_stays_up() {
    let stack = Stack::start(StackOptions {
        own_cluster: true,
        ..StackOptions::named("db-stop")
    });
    assert_eq!(stack.client().get("/ready").status, 200);
    stack.kill_database();
    let started = Instant::now();
    let response = stack.client().get("/ready");
    let took = started.elapsed();
    assert_eq!(response.status, 503, "{}", response.text());
    assert_eq!(response.error_code(), "database_unavailable");
    assert!(response
        .header("retry-after")
        .is_some_and(|s| s.parse::<u32>().unwrap() > 0));
    assert!(took < Duration::from_millis(2_500), "503 took {took:?}");
    assert!(stack.alive(), "wrangler dev died when the database stopped");
    assert_eq!(
        stack.client().get("/health").status,
        200,
        "liveness must not depend on the database"
    );
}

#[test]
fn when_pgbouncer_cannot_get_a_server_connection_ready_fails_fast() {
    let stack = Stack::start(StackOptions::named("db-paused"));
    assert_eq!(stack.client().get("/ready").status, 200);
    stack.bouncer().admin(&format!("PAUSE {}", stack.db_name));
    let started = Instant::now();
    let response = stack.client().get("/ready");
    assert_eq!(response.status, 503, "{}", response.text());
    assert!(
        started.elapsed() < Duration::from_millis(2_500),
        "took {:?}",
        started.elapsed()
    );
    stack.bouncer().admin(&format!("RESUME {}", stack.db_name));
    assert_eq!(
        stack.client().get("/ready").status,
        200,
        "the edge recovers when the pool does"
    );
    assert!(stack.alive());
}

/// `wrangler dev` on a port the Fetch Standard blocks (`procs::FETCH_BAD_PORTS`) prints "Ready"
/// and never answers: a fresh-clone run lost a stack on 10080 that way, twice in a row. The
/// harness's port picker skips those ports; the real wrangler, on one of them and on the port the
/// picker gives, says why (and when the skip could go: the day the first one answers).
#[test]
fn wrangler_dev_on_a_port_fetch_blocks_never_answers_so_no_stack_gets_one() {
    use edge_tests::procs::{pick_port, wrangler_dev, Guarded};
    let bad = 10_080;
    let (low, high) = edge_tests::procs::port_range();
    assert!((low..high).contains(&u32::from(bad)), "10080 is in the harness's range");
    assert!(
        std::net::TcpListener::bind(("127.0.0.1", bad)).is_ok(),
        "10080 is taken on this machine"
    );
    let good = edge_tests::procs::free_port();
    assert_eq!(pick_port([bad, good]), Some(good), "the picker never hands out 10080");

    let dir = std::env::temp_dir().join(format!("bad-port-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("index.js"),
        "export default { fetch() { return new Response('ok'); } };\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("wrangler.toml"),
        "name = \"bad-port\"\nmain = \"index.js\"\ncompatibility_date = \"2025-01-01\"\n",
    )
    .unwrap();
    let answers = |port: u16| {
        let mut command = wrangler_dev(&dir, port, &dir.join(format!("state-{port}")));
        command
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        // Its own process group: wrangler and its workerd go together.
        let mut wrangler = Guarded::spawn(command).expect("wrangler dev");
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(40);
        let mut answered = false;
        while !answered && Instant::now() < deadline {
            answered = client
                .get(format!("http://127.0.0.1:{port}/"))
                .send()
                .is_ok_and(|r| r.status().is_success());
            std::thread::sleep(Duration::from_millis(250)); // polling interval, bounded by the deadline
        }
        wrangler.stop(Duration::from_secs(3));
        answered
    };
    assert!(answers(good), "wrangler dev on {good} answered nothing in 40 s");
    assert!(
        !answers(bad),
        "wrangler dev on 10080 answers now: the pinned wrangler no longer fetches itself there, the skip may go"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

//! `scripts/bench`: the numbers behind the Performance table of docs/performance.md, measured in one run on
//! one machine and reported as ratios against a baseline measured in the same run.
//!
//! bench [--smoke] [--soak]
//!   --smoke  short runs (seconds), budgets on size only: what scripts/test runs
//!   --soak   also the 100 000-request soak (80 % share hits, 10 % misses, 10 % API)
//!   --hit-only  only the interleaved rounds (baseline, hits, refusals), printed, not recorded
//!            (for pricing a change to the hot paths quickly)
//!   --queue-only  only the queue throughput, printed, not recorded
//!   --jobs=N  jobs in the queue run (default 300)
//!   --report-only  the tables written again from bench/results.json, nothing measured
//!   --rounds=N  interleaved rounds (default 7)
//!   --seconds=N  seconds per throughput measurement (default 10)

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use edge_tests::stack::repo_root;
use edge_tests::{Stack, StackOptions};

#[derive(Clone, Copy)]
struct Settings {
    seconds: u32,
    connections: u32,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let smoke = args.iter().any(|a| a == "--smoke");
    let soak_run = args.iter().any(|a| a == "--soak");
    let hit_only = args.iter().any(|a| a == "--hit-only");
    let queue_only = args.iter().any(|a| a == "--queue-only");
    if args.iter().any(|a| a == "--report-only") {
        report_only(&repo_root());
        return;
    }
    let rounds = flag_value(&args, "--rounds=").unwrap_or(7);
    let settings = Settings {
        seconds: if smoke {
            1
        } else {
            flag_value(&args, "--seconds=").unwrap_or(10)
        },
        connections: 32,
    };
    let repo = repo_root();
    let mut results = json!({"machine": machine(), "mode": if smoke { "smoke" } else { "full" }});

    eprintln!("bench: starting the stack …");
    // The SLI points as production's stable version writes them (wrangler.toml's
    // [env.production.vars]): `wrangler dev`'s version counts as just uploaded, so without
    // SLI_CANARY_MINUTES=0 it would write every point, as a version under canary does.
    let sli_rate = production_var(&repo_root(), "SLI_SAMPLE_RATE").unwrap_or_else(|| "1".into());
    let stack = Stack::start(
        StackOptions::named("bench")
            .var("LOG_SAMPLE_SUCCESS", "0.01")
            .var("VIEW_FLUSH_SECONDS", "30")
            .var("SLI_SAMPLE_RATE", &sli_rate)
            .var("SLI_CANARY_MINUTES", "0"),
    );
    if queue_only {
        let queue = queue_throughput(&stack, flag_value(&args, "--jobs=").unwrap_or(300));
        println!("{}", serde_json::to_string_pretty(&queue).unwrap());
        return;
    }
    // Every miss needs a (token, language) pair of its own: 3 rounds of 1 000 tokens give 2 000
    // misses a round, 200 a second for 10 s, before wrk's threads run out (the result says so).
    let (accounts, shares) = if smoke { (2, 20) } else { (20, 150) };
    eprintln!("bench: generating {} share links …", accounts * shares);
    let families = generate(&stack, accounts, 12, shares);
    let tokens: Vec<String> = families
        .iter()
        .flat_map(|f| f.shares.iter().map(|s| s.token.clone()))
        .collect();
    let work = stack.dir.join("bench");
    std::fs::create_dir_all(&work).expect("bench dir");
    let hot = tokens[0].clone();
    let hot_file = write_lines(&work, "hot.txt", std::slice::from_ref(&hot));
    // A recipient link of the hot share: its hits read the share's cached page through the
    // link's resolution.
    let recipient = recipient_link(&stack, &families[0].shares[0].token_hash_hex);
    let recipient_file = write_lines(&work, "recipient.txt", std::slice::from_ref(&recipient));

    // Warm the hot page, take its bytes and headers for the baseline.
    let client = stack.client();
    let warm = client.get(&format!("/s/{hot}"));
    assert_eq!(warm.status, 200, "hot page: {}", warm.text());
    let page = client.get(&format!("/s/{hot}"));
    assert_eq!(page.header("x-cache-status"), Some("hit"));
    let etag = page.header("etag").expect("etag").to_owned();

    eprintln!("bench: starting the baseline Worker …");
    let baseline_dir = repo.join("bench/baseline");
    std::fs::write(baseline_dir.join("page.html"), &page.body).expect("page.html");
    let headers: serde_json::Map<String, Value> = page
        .headers
        .iter()
        .filter(|(n, _)| {
            !matches!(
                n.as_str(),
                "content-length" | "transfer-encoding" | "date" | "x-trace-id"
            )
        })
        .map(|(n, v)| (n.clone(), Value::String(v.clone())))
        .collect();
    std::fs::write(baseline_dir.join("headers.json"), Value::Object(headers).to_string()).expect("headers.json");
    let baseline = Baseline::start(&baseline_dir, &work);

    // Every run also reads the CPU time of the server it drives: all of `wrangler dev` (Node and
    // both workerd), and the Worker's own runtime alone (its workerd process), so every row
    // carries server CPU and Worker CPU per request.
    let stack_cpu = || (stack.server_cpu_seconds(), stack.runtime_cpu_seconds());
    let baseline_cpu = || (baseline.process.cpu_seconds(), baseline.process.runtime_cpu_seconds());
    let wrk_with = |name: &str,
                    base: &str,
                    mode: &str,
                    file: &Path,
                    extra: &[&str],
                    connections: u32,
                    cpu: &dyn Fn() -> (f64, f64)|
     -> Value {
        eprintln!("bench: {name} …");
        let settings = Settings {
            connections,
            ..settings
        };
        let r = with_cpu(cpu, || run_wrk(base, mode, file, extra, &settings));
        eprintln!("       {r}");
        r
    };
    let wrk = |name: &str, base: &str, mode: &str, file: &Path, extra: &[&str]| {
        wrk_with(name, base, mode, file, extra, settings.connections, &stack_cpu)
    };
    let empty = write_lines(&work, "empty.txt", &[]);
    let base = stack.base_url.clone();

    // Protection is priced in the same process: the test controls switch hygiene and rate
    // limits off for one run and on again for the next, so both runs share the isolate, its
    // caches and its JIT state; two processes differed by more than the thing measured.
    check_protection_switches(&stack, &hot);
    let set_protection = |on: bool| {
        stack.fault(SKIP_HYGIENE, !on);
        stack.fault(SKIP_RATE_LIMITS, !on);
    };

    // The throughput comparisons run interleaved, round after round, in an order that alternates
    // (forward, then backward): drift on a shared machine then hits all of them alike. Besides
    // the baseline and the hits, the three refusals the Worker should give cheapest: a malformed
    // token's 404, a scanner path's 404 and the 429 of one address over the share limit.
    let rounds = if smoke { 1 } else { rounds };
    let interleaved: [(&str, &str, &str); 7] = [
        ("baseline_js_same_bytes", "baseline", "baseline"),
        ("share_hit", "share hit", "hit"),
        ("share_hit_without_protection", "share hit, no protection", "hit"),
        ("malformed_404", "malformed token", "malformed"),
        ("scanner_404", "scanner path", "scanner"),
        ("rate_limited_429", "over the share limit", "limited"),
        ("share_hit_recipient_link", "share hit, recipient link", "hit"),
    ];
    let recipient_row = interleaved.len() - 1;
    let mut runs: Vec<Vec<Value>> = interleaved.iter().map(|_| Vec::new()).collect();
    for round in 1..=rounds {
        eprintln!("bench: round {round} of {rounds}");
        let mut order: Vec<usize> = (0..interleaved.len()).collect();
        if round % 2 == 0 {
            order.reverse();
        }
        for which in order {
            let (_, name, mode) = interleaved[which];
            let result = if which == 0 {
                wrk_with(
                    name,
                    &baseline.url,
                    mode,
                    &hot_file,
                    &[],
                    settings.connections,
                    &baseline_cpu,
                )
            } else {
                set_protection(which != 2);
                let file = if which == recipient_row {
                    &recipient_file
                } else {
                    &hot_file
                };
                wrk(name, &base, mode, file, &[])
            };
            runs[which].push(result);
        }
    }
    set_protection(true);
    drop(baseline);
    let mut protection = protection_cost(&runs[1], &runs[2]);
    let price_us = protection_price_in_runtime(&stack);
    protection["in_runtime_us_per_request"] = json!(price_us);
    eprintln!("bench: protection cost {protection}");
    let mut http = serde_json::Map::new();
    for ((key, _, _), rounds) in interleaved.iter().zip(runs) {
        http.insert((*key).into(), median_round(rounds));
    }
    results["protection_cost"] = protection;
    if hit_only {
        results["http"] = Value::Object(http);
        println!("{}", serde_json::to_string_pretty(&results).unwrap());
        return;
    }
    http.insert(
        "share_304".into(),
        wrk("304", &base, "not-modified", &hot_file, &[&etag]),
    );
    // Misses at light load (4 connections): their latency is the budget; 32 connections would
    // measure the 2-core machine's queueing behind the database, not the miss path. Each miss
    // round has tokens of its own (every request a miss); the floor's rounds alternate with them:
    // the same Hyperdrive binding answering a bare one-row query, at the same concurrency.
    //
    // Issue 31: the plain JavaScript Worker's miss (`bench/plain-miss`: `pg` over the same local
    // Hyperdrive binding, one simple-protocol round trip, the same `public_share_page`, a page of
    // the same content, no cache) runs in the same rounds, on the round's own tokens, at the same
    // 4 connections: our miss must serve at least its throughput.
    eprintln!("bench: starting the plain JavaScript miss Worker …");
    let plain = Baseline::start_plain_miss(&repo.join("bench/plain-miss"), &work, &stack, &tokens[0]);
    let plain_cpu = || (plain.process.cpu_seconds(), plain.process.runtime_cpu_seconds());
    let miss_rounds = if smoke { 1 } else { 3 };
    let per_round = (tokens.len() - 1) / miss_rounds;
    let (mut misses, mut floors, mut plains) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..miss_rounds {
        let chunk = &tokens[1 + round * per_round..1 + (round + 1) * per_round];
        let file = write_lines(&work, &format!("miss-{round}.txt"), chunk);
        let miss = || wrk_with("share miss", &base, "miss", &file, &[], 4, &stack_cpu);
        let floor = || wrk_with("floor: bare query", &base, "floor", &empty, &[], 4, &stack_cpu);
        let plain_miss = || wrk_with("plain JS miss", &plain.url, "plain-miss", &file, &[], 4, &plain_cpu);
        if round % 2 == 0 {
            floors.push(floor());
            misses.push(miss());
            plains.push(plain_miss());
        } else {
            plains.push(plain_miss());
            misses.push(miss());
            floors.push(floor());
        }
    }
    drop(plain);
    http.insert("share_miss".into(), median_round(misses));
    http.insert("miss_floor".into(), median_round(floors));
    http.insert("plain_js_miss".into(), median_round(plains));
    results["miss_breakdown"] = miss_breakdown(&stack);
    http.insert("health".into(), wrk("health", &base, "health", &empty, &[]));
    // Signed-in API reads, each with a live server-side session (checked in the statement that
    // sets the request's account), at 4 connections like the misses. The per-user limits are off
    // for these runs: 40 users at full speed would measure 429s. The Worker's own counters give
    // database round trips per request.
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let sessions: Vec<String> = families.iter().map(|f| stack.sealed_session(f, now_s)).collect();
    stack.fault(SKIP_RATE_LIMITS, true);
    for (key, path) in [("api_me", "/me"), ("api_shares", "/shares")] {
        let lines: Vec<String> = sessions.iter().map(|c| format!("api {path} {c}")).collect();
        let file = write_lines(&work, &format!("{key}.txt"), &lines);
        let mut row = wrk_with(&format!("API GET {path}"), &base, "soak", &file, &[], 4, &stack_cpu);
        // Round trips are counted on requests made one at a time: wrk's count leaves out the
        // requests still in flight when it stops, which the Worker did serve.
        // The load run's last requests may still be in the Worker: start on a quiet counter.
        let client = stack.client();
        let sample = 20;
        let before = quiet_counters(&stack);
        for cookie in sessions.iter().cycle().take(sample) {
            let r = client.get_with(path, &[("cookie", &format!("__Host-session={cookie}"))]);
            assert_eq!(r.status, 200, "{path}: {}", r.text());
        }
        let after = stack.counters();
        let per_request = |name: &str| {
            (after[name].as_f64().unwrap_or(f64::NAN) - before[name].as_f64().unwrap_or(f64::NAN)) / sample as f64
        };
        row["db_round_trips_per_request"] = json!(per_request("db_round_trips"));
        row["db_connections_per_request"] = json!(per_request("db_connections"));
        http.insert(key.into(), row);
    }
    // Issue 31: the Worker's CPU per sign-in, one at a time (each a fresh address): the
    // password's PBKDF2 runs in the runtime's Web Crypto, where it used to run in wasm on the
    // isolate's CPU.
    let sign_ins = if smoke { 2 } else { 10 };
    let (_, worker_before) = stack_cpu();
    for family in families.iter().cycle().take(sign_ins) {
        edge_tests::SignedIn::sign_in(&stack.client().with_new_ip(), &family.email, &family.password);
    }
    let (_, worker_after) = stack_cpu();
    http.insert(
        "sign_in".into(),
        json!({"sign_ins": sign_ins, "worker_cpu_us_per_request": (worker_after - worker_before) * 1e6 / sign_ins as f64}),
    );
    stack.fault(SKIP_RATE_LIMITS, false);
    results["http"] = Value::Object(http);

    results["wasm"] = wasm_size(&repo);
    results["startup"] = startup(&repo);
    results["queue"] = queue_throughput(&stack, if smoke { 20 } else { 300 });
    results["cost"] = cost(&repo, &results);
    // The micro-benchmarks compile criterion in release: the full run only.
    if !smoke {
        results["micro"] = micro(&repo);
    }
    if soak_run {
        results["soak"] = soak(&stack, &work, &families);
    }
    drop(stack);

    let (table, failures) = report(&results, smoke);
    results["budgets_missed"] = json!(failures);
    // A smoke run proves the script works; its numbers never replace the recorded ones.
    let out = if smoke {
        repo.join("target/bench-smoke")
    } else {
        repo.join("bench")
    };
    std::fs::create_dir_all(&out).expect("results dir");
    std::fs::write(
        out.join("results.json"),
        serde_json::to_string_pretty(&results).unwrap(),
    )
    .expect("results.json");
    std::fs::write(out.join("results.md"), &table).expect("results.md");
    if !smoke {
        update_performance_doc(&repo, &table, &results);
    }
    println!("{table}");
    if failures.is_empty() {
        println!("bench: every budget met");
    } else {
        println!("bench: budgets missed: {}", failures.join("; "));
        std::process::exit(1);
    }
}

/// Adds a recipient link to the share of `share_token_hash_hex` (straight into the database, as
/// the generator makes shares) and returns its token.
fn recipient_link(stack: &Stack, share_token_hash_hex: &str) -> String {
    let token = babybook_edge::share::ShareToken::generate().expect("randomness");
    let share_hash = babybook_edge::hex::decode::<32>(share_token_hash_hex)
        .expect("a token hash")
        .to_vec();
    let added = stack
        .db()
        .execute(
            "INSERT INTO share_recipient (account_id, share_id, name, token_hash)
             SELECT account_id, id, 'bench', $1 FROM share_link WHERE token_hash = $2",
            &[&token.hash().0.to_vec(), &share_hash],
        )
        .expect("recipient link");
    assert_eq!(added, 1, "the hot share has a recipient link");
    token.as_text()
}

/// The number after `prefix` (`--rounds=7`), when the flag is given.
fn flag_value<T: std::str::FromStr>(args: &[String], prefix: &str) -> Option<T> {
    let value = args.iter().find_map(|a| a.strip_prefix(prefix))?;
    Some(
        value
            .parse()
            .unwrap_or_else(|_| panic!("{prefix}N: {value} is not a number")),
    )
}

/// Writes the tables again from the recorded `bench/results.json`, measuring nothing: for a
/// change to how the results are shown.
fn report_only(repo: &Path) {
    let text = std::fs::read_to_string(repo.join("bench/results.json")).expect("bench/results.json");
    let mut results: Value = serde_json::from_str(&text).expect("results JSON");
    // The cost is a stated mix priced with the recorded CPU: a change to the model is priced again.
    if results.get("cost").is_some() {
        results["cost"] = cost(repo, &results);
        std::fs::write(
            repo.join("bench/results.json"),
            serde_json::to_string_pretty(&results).expect("results JSON"),
        )
        .expect("results.json");
    }
    let (table, _) = report(&results, false);
    std::fs::write(repo.join("bench/results.md"), &table).expect("results.md");
    update_performance_doc(repo, &table, &results);
    println!("{table}");
}

fn machine() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    json!({"cpu": cpu, "cores": cores, "os": std::env::consts::OS})
}

fn generate(stack: &Stack, accounts: u32, moments: u32, shares: u32) -> Vec<babybook_ops::generate::Family> {
    let mut db = stack.db();
    let port: String = db.query_one("SHOW port", &[]).unwrap().get(0);
    let url = format!("postgres://postgres@127.0.0.1:{port}/{}", stack.db_name);
    edge_tests::standins::runtime()
        .block_on(babybook_ops::generate::run(
            &url,
            babybook_ops::generate::Spec {
                accounts,
                moments,
                shares,
            },
        ))
        .expect("generate")
}

fn write_lines(dir: &Path, name: &str, lines: &[String]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, lines.join("\n") + "\n").expect("write");
    path
}

fn run_wrk(base: &str, mode: &str, file: &Path, extra: &[&str], s: &Settings) -> Value {
    let script = repo_root().join("bench/wrk/requests.lua");
    let output = Command::new("wrk")
        .env("WRK_THREADS", "2")
        .args([
            "-t2",
            &format!("-c{}", s.connections),
            &format!("-d{}s", s.seconds),
            "--latency",
            "-s",
        ])
        .arg(&script)
        .arg(base)
        .arg("--")
        .arg(mode)
        .arg(file)
        .args(extra)
        .output()
        .expect("wrk (apt-get install wrk)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().rev().find(|l| l.starts_with('{')).unwrap_or_else(|| {
        panic!(
            "wrk printed no result:\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    serde_json::from_str(line).expect("wrk JSON")
}

struct Baseline {
    url: String,
    process: edge_tests::procs::Guarded,
}

impl Baseline {
    fn start(dir: &Path, work: &Path) -> Baseline {
        let port = edge_tests::procs::free_port();
        let mut command = edge_tests::procs::wrangler_dev(dir, port, &work.join("baseline-state"));
        command
            .stdout(std::fs::File::create(work.join("baseline.log")).expect("log"))
            .stderr(std::process::Stdio::null());
        let process = edge_tests::procs::Guarded::spawn(command).expect("baseline wrangler dev");
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(60);
        while reqwest::blocking::get(format!("{url}/"))
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
            != 200
        {
            assert!(Instant::now() < deadline, "the baseline Worker never came up");
            std::thread::sleep(Duration::from_millis(200));
        }
        Baseline { url, process }
    }
}

impl Baseline {
    /// The plain JavaScript miss (`bench/plain-miss`), reading through the stack's Hyperdrive
    /// connection string; up once a live token's page answers 200.
    fn start_plain_miss(dir: &Path, work: &Path, stack: &Stack, token: &str) -> Baseline {
        std::fs::copy(repo_root().join("templates/share.css"), dir.join("share.css")).expect("share.css");
        let port = edge_tests::procs::free_port();
        let mut command = edge_tests::procs::wrangler_dev(dir, port, &work.join("plain-miss-state"));
        let media = stack.media.lock().expect("media").url();
        command
            .arg("--var")
            .arg(format!("MEDIA_ORIGIN:{media}"))
            .env(
                "CLOUDFLARE_HYPERDRIVE_LOCAL_CONNECTION_STRING_HYPERDRIVE",
                stack.hyperdrive_connection_string(),
            )
            .stdout(std::fs::File::create(work.join("plain-miss.log")).expect("log"))
            .stderr(std::fs::File::create(work.join("plain-miss.err")).expect("log"));
        let process = edge_tests::procs::Guarded::spawn(command).expect("plain-miss wrangler dev");
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let status = reqwest::blocking::get(format!("{url}/s/{token}"))
                .map(|r| r.status().as_u16())
                .unwrap_or(0);
            if status == 200 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the plain JavaScript miss Worker never served the page (last status {status}; {})",
                work.join("plain-miss.err").display()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        Baseline { url, process }
    }
}

impl Drop for Baseline {
    fn drop(&mut self) {
        self.process.stop(Duration::from_secs(3));
    }
}

fn wasm_size(repo: &Path) -> Value {
    let path = repo.join("build/index_bg.wasm");
    let raw = std::fs::metadata(&path)
        .expect("build/index_bg.wasm (scripts/build-worker)")
        .len();
    let out = Command::new("gzip")
        .args(["-9", "-c"])
        .arg(&path)
        .output()
        .expect("gzip");
    json!({"raw_bytes": raw, "gzip_bytes": out.stdout.len()})
}

fn startup(repo: &Path) -> Value {
    let out = Command::new("node")
        .arg(repo.join("bench/wasm-startup.mjs"))
        .arg(repo.join("build/index_bg.wasm"))
        .arg("7")
        .output()
        .expect("node");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("wasm-startup: {text} {}", String::from_utf8_lossy(&out.stderr)));
    serde_json::from_str(line).expect("json")
}

fn queue_throughput(stack: &Stack, jobs: usize) -> Value {
    eprintln!("bench: queue throughput, {jobs} jobs …");
    let family = &generate(stack, 1, 1, 0)[0];
    let bodies: Vec<Value> = (0..jobs)
        .map(|_| {
            edge_tests::fixtures::transcode_job(
                &family.account_id,
                &stack.queued_asset(&family.account_id),
                "bench-queue-throughput",
            )
        })
        .collect();
    let quiet = quiet_counters(stack);
    let cpu_before = stack.runtime_cpu_seconds();
    let started = Instant::now();
    for chunk in bodies.chunks(100) {
        stack.control(json!({"action": "publish_raw_batch", "bodies": chunk}));
    }
    let mut db = stack.db();
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let ready: i64 = db
            .query_one(
                "SELECT count(*) FROM asset WHERE account_id = $1::text::uuid AND status = 'ready' AND original_key = 'originals/fixture.jpg'",
                &[&family.account_id],
            )
            .unwrap()
            .get(0);
        if ready as usize >= jobs {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "queue throughput: only {ready} of {jobs} ready"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let seconds = started.elapsed().as_secs_f64();
    // The last batch's lines and acks come after its rows are ready: wait for a quiet counter.
    let after = quiet_counters(stack);
    let cpu = stack.runtime_cpu_seconds() - cpu_before;
    let per_job = |name: &str| {
        (after[name].as_f64().unwrap_or(f64::NAN) - quiet[name].as_f64().unwrap_or(f64::NAN)) / jobs as f64
    };
    json!({
        "jobs": jobs, "seconds": seconds, "jobs_per_second": jobs as f64 / seconds,
        "db_round_trips_per_job": per_job("db_round_trips"),
        "db_connections_per_job": per_job("db_connections"),
        "worker_cpu_us_per_job": cpu * 1e6 / jobs as f64,
    })
}

/// Where a miss's time goes inside the Worker, from its sampled `request` lines (medians, ms):
/// the whole request, the wait for the cache lookup, and the database read with the render (the
/// runtime's clock moves with I/O only, so these are waits; CPU is in the Worker CPU column).
/// The floor's own line gives the same for the bare query.
fn miss_breakdown(stack: &Stack) -> Value {
    let lines = stack.logs();
    let of = |route: &str, miss: bool, field: &str| -> Vec<f64> {
        lines
            .iter()
            .filter(|l| l["message"] == "request" && l["route"] == route)
            .filter(|l| !miss || l["cache_status"] == "miss")
            .filter_map(|l| l[field].as_f64())
            .collect()
    };
    let misses = of("/s/:token", true, "duration_ms");
    json!({
        "sampled_misses": misses.len(),
        "miss_duration_ms": median(&misses),
        "miss_cache_lookup_ms": median(&of("/s/:token", true, "cache_lookup_ms")),
        "miss_db_and_render_ms": median(&of("/s/:token", true, "db_render_ms")),
        "sampled_floors": of("/__test/floor", false, "duration_ms").len(),
        "floor_duration_ms": median(&of("/__test/floor", false, "duration_ms")),
    })
}

/// The Worker's counters once they stop moving (the last requests of a run may still be in the
/// Worker when the client is done).
fn quiet_counters(stack: &Stack) -> Value {
    let mut before = stack.counters();
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(200)); // pacing: a counter compared over time
        let now = stack.counters();
        if now["db_round_trips"] == before["db_round_trips"] {
            return now;
        }
        before = now;
    }
    before
}

/// The edge's cost per active account per year (`bench/cost-model.json`: the request mix, its
/// reasons and the prices), with this run's Worker CPU per request of each kind of work. Worker CPU
/// is the Worker's own `workerd` process, which locally also runs Miniflare's emulation of the
/// cache, the rate limiter and the queues: an upper bound of the CPU Cloudflare bills.
fn cost(repo: &Path, r: &Value) -> Value {
    let text = std::fs::read_to_string(repo.join("bench/cost-model.json")).expect("bench/cost-model.json");
    let model: Value = serde_json::from_str(&text).expect("cost model JSON");
    let num = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
    let price = |name: &str| num(&model["prices_usd"][name]) / 1e6;
    let mix = &model["mix_per_active_account_per_year"];
    let cpu_us = |row: &str| num(&r["http"][row]["worker_cpu_us_per_request"]);
    let views = num(&mix["share_page_views"]["count"]);
    let hit_share = num(&mix["share_page_views"]["cache_hit_share"]);
    let view_cpu = hit_share * cpu_us("share_hit") + (1.0 - hit_share) * cpu_us("share_miss");
    let api = num(&mix["api_requests"]["count"]);
    let api_cpu = (cpu_us("api_me") + cpu_us("api_shares")) / 2.0;
    let deliveries = num(&mix["media_jobs"]["count"]) * num(&mix["media_jobs"]["deliveries_per_job"])
        + num(&mix["purge_jobs"]["count"]);
    let batches = deliveries / num(&model["queue"]["messages_per_batch"]);
    let job_cpu = num(&r["queue"]["worker_cpu_us_per_job"]);
    let cron = &mix["cron_invocations_shared"];
    let crons = num(&cron["per_year"]) / num(&cron["active_accounts"]);
    // Cron runs are priced at a miss's CPU: not measured on their own, and a few dozen a year.
    let invocations = views + api + batches + crons;
    let cpu_ms = (views * view_cpu + api * api_cpu + deliveries * job_cpu + crons * cpu_us("share_miss")) / 1000.0;
    let queue_ops = deliveries * num(&model["queue"]["operations_per_delivered_message"]);
    // Each lever's figure from production's settings as the model restates them (a host test
    // holds them to wrangler.toml) and the mix's assumptions.
    let sli = &model["analytics_engine"];
    let stable_rate = num(&sli["sli_sample_rate"]);
    // The share of a year's requests a version serves within its canary minutes (all of them,
    // an upper bound), when it writes every point.
    let canary_share =
        (num(&sli["releases_per_year"]) * num(&sli["sli_canary_minutes"]) / (365.0 * 24.0 * 60.0)).min(1.0);
    let always = num(&sli["always_written_share"]);
    let points_per_request = stable_rate + (1.0 - stable_rate) * (always + (1.0 - always) * canary_share);
    let points = (views + api) * points_per_request + batches * num(&sli["points_per_queue_batch"]);
    let logs = &model["logs"];
    let success = num(&logs["log_sample_success"]);
    let logged_always = num(&logs["always_logged_share_of_requests"]);
    let lines_per_request = logged_always + (1.0 - logged_always) * success;
    let retried = num(&logs["retried_share_of_deliveries"]);
    let lines_per_job = num(&logs["success_lines_per_delivered_job"]) * success + retried;
    // A batch's line is written every time when one of its messages was retried or died, else
    // sampled like a success's.
    let messages_per_batch = num(&model["queue"]["messages_per_batch"]);
    let batch_always = 1.0 - (1.0 - retried).powf(messages_per_batch);
    let lines_per_batch = batch_always + (1.0 - batch_always) * success;
    let log_events = invocations * num(&logs["invocation_logs_per_invocation"])
        + (views + api) * lines_per_request
        + deliveries * lines_per_job
        + batches * lines_per_batch
        + crons * num(&logs["lines_per_cron_run"]);
    let trace_events = invocations * num(&logs["logpush_trace_events_per_invocation"]);
    let r2_writes = num(&mix["dead_job_records"]["count"]);
    let usd = json!({
        "worker_requests": invocations * price("worker_requests_per_million"),
        "worker_cpu": cpu_ms * price("worker_cpu_ms_per_million"),
        "queue_operations": queue_ops * price("queue_operations_per_million"),
        "analytics_engine_points": points * price("analytics_engine_points_per_million"),
        "workers_logs_events": log_events * price("workers_logs_events_per_million"),
        "logpush_trace_events": trace_events * price("logpush_trace_events_per_million"),
        "r2_writes": r2_writes * price("r2_class_a_per_million"),
    });
    let total_usd: f64 = usd.as_object().unwrap().values().map(num).sum();
    let brl = total_usd * num(&model["brl_per_usd"]);
    json!({
        "per_active_account_per_year": {
            "worker_invocations": invocations, "worker_cpu_ms": cpu_ms, "queue_operations": queue_ops,
            "analytics_engine_points": points, "workers_logs_events": log_events,
            "logpush_trace_events": trace_events, "r2_writes": r2_writes,
        },
        "worker_cpu_us": {"share_page_view": view_cpu, "api_request": api_cpu, "job": job_cpu},
        "levers": {
            "sli_points_per_request": points_per_request, "sli_sample_rate": stable_rate,
            "sli_canary_share_of_requests": canary_share,
            "log_lines_per_request": lines_per_request, "log_lines_per_delivered_job": lines_per_job,
            "log_lines_per_queue_batch": lines_per_batch, "queue_operations_per_delivered_job": num(&model["queue"]["operations_per_delivered_message"]),
        },
        "usd": usd,
        "total_usd": total_usd,
        "brl_per_usd": model["brl_per_usd"],
        "total_brl": brl,
        "budget_brl": model["budget_brl_per_account_year"],
        "target_brl": model["target_brl_per_account_year"],
    })
}

fn micro(repo: &Path) -> Value {
    eprintln!("bench: host micro-benchmarks (criterion) …");
    let measurement = "3";
    let out = Command::new("cargo")
        .current_dir(repo)
        .args([
            "bench",
            "-q",
            "-p",
            "babybook-micro-bench",
            "--bench",
            "core",
            "--",
            "--warm-up-time",
            "1",
            "--measurement-time",
            measurement,
        ])
        .output()
        .expect("cargo bench");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    // criterion: "<name>   time:   [low mid high]" (the name may be on the previous line)
    let mut results = serde_json::Map::new();
    let mut name = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if let Some((before, after)) = trimmed.split_once("time:") {
            if !before.trim().is_empty() {
                name = before.trim().to_owned();
            }
            let parts: Vec<&str> = after
                .trim()
                .trim_start_matches('[')
                .trim_end_matches(']')
                .split_whitespace()
                .collect();
            if parts.len() >= 4 {
                let value: f64 = parts[2].parse().unwrap_or(f64::NAN);
                let micros = match parts[3] {
                    "ns" => value / 1000.0,
                    "µs" | "us" => value,
                    "ms" => value * 1000.0,
                    "s" => value * 1e6,
                    _ => f64::NAN,
                };
                results.insert(name.clone(), json!(micros));
            }
        } else if !trimmed.is_empty() && !trimmed.contains(':') {
            name = trimmed.to_owned();
        }
    }
    assert!(
        !results.is_empty(),
        "criterion printed nothing:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    json!({"unit": "microseconds (median)", "results": results})
}

fn soak(stack: &Stack, work: &Path, families: &[babybook_ops::generate::Family]) -> Value {
    eprintln!("bench: soak, 100 000 requests at concurrency 64 …");
    let more = generate(stack, 40, 2, 100);
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let mut lines = Vec::new();
    let hot: Vec<&str> = families.iter().take(10).map(|f| f.shares[0].token.as_str()).collect();
    for t in &hot {
        stack.client().get(&format!("/s/{t}"));
    }
    let cold: Vec<&str> = more
        .iter()
        .flat_map(|f| f.shares.iter().map(|s| s.token.as_str()))
        .collect();
    let users: Vec<String> = families
        .iter()
        .chain(more.iter())
        .map(|f| stack.sealed_session(f, now_s))
        .collect();
    for i in 0..1000 {
        match i % 10 {
            0 => lines.push(format!("miss /s/{}", cold[(i / 10) % cold.len()])),
            1 => lines.push(format!(
                "api {} {}",
                if i % 20 == 1 { "/me" } else { "/shares" },
                users[(i / 10) % users.len()]
            )),
            _ => lines.push(format!("hit /s/{}", hot[i % hot.len()])),
        }
    }
    let file = write_lines(work, "soak.txt", &lines);
    let before = stack.server_connections("app_rw");
    let settings = Settings {
        seconds: 600,
        connections: 64,
    };
    let started = Instant::now();
    let result = run_wrk(&stack.base_url, "soak", &file, &["", "50000"], &settings);
    let seconds = started.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_secs(3));
    let after = stack.server_connections("app_rw");
    let bouncer_clients = stack.pool_clients("app_rw");
    json!({
        "requests": result["requests"], "seconds": seconds, "rps": result["rps"], "p95_ms": result["p95_ms"], "p99_ms": result["p99_ms"],
        "status_5xx": result["status_5xx"], "socket_errors": result["socket_errors"],
        "server_alive": stack.alive(), "app_rw_server_connections_before": before, "app_rw_server_connections_after": after,
        "pgbouncer_client_connections_after": bouncer_clients, "pool_size": stack.bouncer().pool_size,
    })
}

/// The Worker's test-control switches that take protection out (`edge/test_controls.rs`).
const SKIP_HYGIENE: &str = "skip_hygiene";
const SKIP_RATE_LIMITS: &str = "skip_rate_limits";

/// The switches behind the protection price must really take protection out, and put it back:
/// a scanner path is refused as such only with hygiene on, and 601 share requests from one
/// address within one window all pass only with rate limits off (the limit is 600).
fn check_protection_switches(stack: &Stack, token: &str) {
    let scanner_refusals = || stack.counters()["rejections"]["scanner"].as_u64().unwrap_or(0);
    let client = stack.client();
    let probe = |expected_refusals: u64| {
        let before = scanner_refusals();
        // Without hygiene the path goes where any unknown API path goes: a 404 from the route table.
        let status = client.get("/wp-login.php").status;
        assert_eq!(
            scanner_refusals() - before,
            expected_refusals,
            "scanner refusals ({status})"
        );
    };
    probe(1);
    stack.fault(SKIP_HYGIENE, true);
    probe(0);
    stack.fault(SKIP_HYGIENE, false);
    probe(1);

    stack.fault(SKIP_RATE_LIMITS, true);
    // Start early in a 10 s window, so the 601 requests cannot straddle two.
    let into_window = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        % 10_000;
    if into_window > 2_000 {
        std::thread::sleep(Duration::from_millis((10_050 - into_window) as u64));
    }
    let path = format!("/s/{token}");
    let ip = [("cf-connecting-ip", "203.0.113.99")];
    let refused = (0..601).filter(|_| client.get_with(&path, &ip).status == 429).count();
    assert_eq!(refused, 0, "share requests refused with the rate limits switched off");
    stack.fault(SKIP_RATE_LIMITS, false);
}

/// What a share hit's hygiene and rate limit cost inside the runtime, in microseconds: the Worker
/// runs them `N` times in one request (test controls), against the same request with none; the
/// difference over `N`, median of five. The binding call is the real local binding's.
fn protection_price_in_runtime(stack: &Stack) -> f64 {
    const N: u32 = 20_000;
    let time = |n: u32| {
        let started = Instant::now();
        let r = stack.control(json!({"action": "repeat_share_protection", "n": n}));
        let elapsed = started.elapsed().as_secs_f64();
        assert_eq!(r.json()["passed"], json!(n), "every repetition passes");
        elapsed
    };
    time(1_000);
    let prices: Vec<f64> = (0..5).map(|_| (time(N) - time(0)) * 1e6 / f64::from(N)).collect();
    eprintln!("bench: protection in the runtime, µs per request: {prices:?}");
    median(&prices)
}

/// Runs `run` (one wrk measurement) and adds CPU per request, read from `cpu`: the whole server's
/// (Node + workerd) and the Worker's own runtime's.
fn with_cpu(cpu: impl Fn() -> (f64, f64), run: impl FnOnce() -> Value) -> Value {
    let (server, worker) = cpu();
    let mut result = run();
    let requests = result["requests"].as_f64().unwrap_or(f64::NAN);
    let (server_after, worker_after) = cpu();
    result["server_cpu_us_per_request"] = json!((server_after - server) * 1e6 / requests);
    result["worker_cpu_us_per_request"] = json!((worker_after - worker) * 1e6 / requests);
    result
}

/// What hygiene and rate limits cost on the hit path, from rounds measured in pairs: each round's
/// throughput without them over its throughput with them, and the same for server CPU per
/// request. The medians of the paired ratios are the result; a pair shares the machine's state
/// of the moment, so drift between rounds cancels.
fn protection_cost(hits: &[Value], bares: &[Value]) -> Value {
    let ratios = |field: &str, hit_over_bare: bool| -> Vec<f64> {
        hits.iter()
            .zip(bares)
            .map(|(h, b)| {
                let (h, b) = (
                    h[field].as_f64().unwrap_or(f64::NAN),
                    b[field].as_f64().unwrap_or(f64::NAN),
                );
                if hit_over_bare {
                    h / b - 1.0
                } else {
                    b / h - 1.0
                }
            })
            .collect()
    };
    let throughput = ratios("rps", false);
    let cpu = ratios("server_cpu_us_per_request", true);
    json!({
        "throughput_cost_rounds": throughput,
        "throughput_cost": median(&throughput),
        "cpu_per_request_cost_rounds": cpu,
        "cpu_per_request_cost": median(&cpu),
    })
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// The round with the median throughput, carrying every round's requests/s; its error counts are
/// the totals of all rounds, so no failed round hides behind the median.
fn median_round(mut runs: Vec<Value>) -> Value {
    let all: Vec<f64> = runs.iter().map(|r| r["rps"].as_f64().unwrap_or(f64::NAN)).collect();
    let total = |field: &str| runs.iter().map(|r| r[field].as_u64().unwrap_or(0)).sum::<u64>();
    let (status_5xx, socket_errors) = (total("status_5xx"), total("socket_errors"));
    runs.sort_by(|a, b| {
        a["rps"]
            .as_f64()
            .partial_cmp(&b["rps"].as_f64())
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let mut median = runs.swap_remove(runs.len() / 2);
    median["rps_rounds"] = json!(all);
    median["status_5xx"] = json!(status_5xx);
    median["socket_errors"] = json!(socket_errors);
    median
}

/// The size the build script allows (`WASM_GZIP_BUDGET_BYTES` in scripts/build-worker): what
/// every build, smoke runs included, holds the Worker to so that a regression fails.
fn build_size_budget() -> u64 {
    let script = std::fs::read_to_string(repo_root().join("scripts/build-worker")).unwrap_or_default();
    script
        .lines()
        .find_map(|l| l.strip_prefix("WASM_GZIP_BUDGET_BYTES=$(("))
        .and_then(|l| l.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

/// A var of wrangler.toml's `[env.production.vars]` (`NAME = "value"` lines), as written.
fn production_var(repo: &Path, name: &str) -> Option<String> {
    let text = std::fs::read_to_string(repo.join("wrangler.toml")).ok()?;
    let mut in_production_vars = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_production_vars = line == "[env.production.vars]";
        } else if in_production_vars {
            if let Some((key, value)) = line.split_once('=') {
                if key.trim() == name {
                    return Some(value.trim().trim_matches('"').to_owned());
                }
            }
        }
    }
    None
}

/// Issue 17's size target, what a full run holds the Worker to.
const WASM_TARGET_BYTES: u64 = 400 * 1024;

fn report(r: &Value, smoke: bool) -> (String, Vec<String>) {
    let http = &r["http"];
    let num = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
    let baseline_rps = num(&http["baseline_js_same_bytes"]["rps"]);
    let mut failures = Vec::new();
    let mut table = String::new();
    table.push_str(&format!(
        "Measured by `scripts/bench` ({} mode) on {} ({} cores), 2 wrk threads, 32 connections unless a row says otherwise. The baseline, the hits and the three refusals are the median of {} interleaved rounds (every round's requests/s in `results.json`); the miss, its floor and the plain JavaScript Worker's miss the median of alternating rounds. The unprotected hit row is the same Worker process with hygiene and rate limits switched off by its test controls. The Worker writes its SLI points at production's `SLI_SAMPLE_RATE`, as a stable version (`SLI_CANARY_MINUTES=0`). Server CPU is all of `wrangler dev` (Node and both workerd); Worker CPU is the Worker's own workerd process alone (the runtime, which locally also runs Miniflare's emulated cache, rate limiter and queues). Everything runs in the same session, so compare ratios, not absolute numbers.\n\n",
        r["mode"].as_str().unwrap_or(""),
        r["machine"]["cpu"].as_str().unwrap_or("?"),
        r["machine"]["cores"],
        http["share_hit"]["rps_rounds"].as_array().map_or(0, Vec::len)
    ));
    table.push_str(
        "| measurement | requests/s | p50 ms | p95 ms | p99 ms | server CPU µs/request | Worker CPU µs/request | vs baseline |\n|---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let rows = [
        ("baseline: minimal JS Worker, same bytes", "baseline_js_same_bytes"),
        ("share page, cache hit", "share_hit"),
        (
            "share page, cache hit, no hygiene/rate limits",
            "share_hit_without_protection",
        ),
        (
            "share page, cache hit through a recipient link",
            "share_hit_recipient_link",
        ),
        ("share page, 304 revalidation", "share_304"),
        (
            "share page, cache miss (database + render; 4 connections)",
            "share_miss",
        ),
        (
            "floor of a miss: the same Hyperdrive binding, bare `SELECT 1` (4 connections)",
            "miss_floor",
        ),
        (
            "plain JS Worker's miss: `pg` over the same binding, one round trip, same content, no cache (4 connections)",
            "plain_js_miss",
        ),
        ("404 for a malformed token", "malformed_404"),
        ("404 for a scanner path", "scanner_404"),
        ("429 over the share limit (one address)", "rate_limited_429"),
        ("/health", "health"),
        ("API `GET /me`, signed in (4 connections)", "api_me"),
        ("API `GET /shares`, signed in (4 connections)", "api_shares"),
    ];
    for (label, key) in rows {
        let m = &http[key];
        let rps = num(&m["rps"]);
        table.push_str(&format!(
            "| {label} | {:.0} | {:.2} | {:.2} | {:.2} | {:.0} | {:.0} | {:.2}× |\n",
            rps,
            num(&m["p50_ms"]),
            num(&m["p95_ms"]),
            num(&m["p99_ms"]),
            num(&m["server_cpu_us_per_request"]),
            num(&m["worker_cpu_us_per_request"]),
            rps / baseline_rps
        ));
    }
    let ratio = |key: &str| num(&http[key]["rps"]) / baseline_rps;
    let (miss, floor) = (&http["share_miss"], &http["miss_floor"]);
    let gzip = r["wasm"]["gzip_bytes"].as_u64().unwrap_or(u64::MAX);
    let startup = num(&r["startup"]["median_ms"]);
    let render = num(&r["micro"]["results"]["render_largest_allowed_page"]);
    let queue = &r["queue"];
    let cost = &r["cost"];
    let errors: u64 = http
        .as_object()
        .map(|o| {
            o.values()
                .map(|m| m["status_5xx"].as_u64().unwrap_or(0) + m["socket_errors"].as_u64().unwrap_or(0))
                .sum()
        })
        .unwrap_or(0);
    let full = !smoke;
    let mut budget = |name: &str, value: String, limit: &str, ok: bool, enforced: bool| {
        if enforced && !ok {
            failures.push(format!("{name}: {value} (budget {limit})"));
        }
        format!(
            "| {name} | {value} | {limit} | {} |\n",
            if ok {
                "met"
            } else if enforced {
                "**missed**"
            } else {
                "not met (smoke run: not enforced)"
            }
        )
    };
    let round_trips = ["api_me", "api_shares"].map(|k| num(&http[k]["db_round_trips_per_request"]));
    let mut budgets = String::from("\n| budget | measured | limit | |\n|---|---:|---:|---|\n");
    // BEGIN + the settings (the session check is inside them), the read, COMMIT: what a
    // signed-in read cost before sessions were checked on the server.
    budgets.push_str(&budget(
        "database round trips per signed-in API read (`/me`, `/shares`)",
        format!("{:.2}, {:.2}", round_trips[0], round_trips[1]),
        "≤ 3",
        round_trips.iter().all(|n| *n <= 3.0),
        true,
    ));
    budgets.push_str(&budget(
        "cache-hit throughput vs baseline",
        format!("{:.2}×", ratio("share_hit")),
        "≥ 0.95×",
        ratio("share_hit") >= 0.95,
        full,
    ));
    let recipient = ratio("share_hit_recipient_link") / ratio("share_hit");
    budgets.push_str(&budget(
        "recipient-link hit throughput vs the share's own hit (within noise)",
        format!("{recipient:.2}×"),
        "≥ 0.95×",
        recipient >= 0.95,
        full,
    ));
    for (name, key) in [
        ("malformed-token 404 throughput vs baseline", "malformed_404"),
        ("scanner-path 404 throughput vs baseline", "scanner_404"),
        ("429 throughput vs baseline", "rate_limited_429"),
    ] {
        budgets.push_str(&budget(
            name,
            format!("{:.2}×", ratio(key)),
            "≥ 1.00×",
            ratio(key) >= 1.0,
            full,
        ));
    }
    let p50 = num(&miss["p50_ms"]) / num(&floor["p50_ms"]);
    let p95 = num(&miss["p95_ms"]) / num(&floor["p95_ms"]);
    budgets.push_str(&budget(
        "cache-miss p50 vs its floor's p50",
        format!(
            "{p50:.2}× ({:.1} ms vs {:.1} ms)",
            num(&miss["p50_ms"]),
            num(&floor["p50_ms"])
        ),
        "≤ 1.2×",
        p50 <= 1.2,
        full,
    ));
    budgets.push_str(&budget(
        "cache-miss p95 vs its floor's p95",
        format!(
            "{p95:.2}× ({:.1} ms vs {:.1} ms)",
            num(&miss["p95_ms"]),
            num(&floor["p95_ms"])
        ),
        "≤ 1.5×",
        p95 <= 1.5,
        full,
    ));
    let plain = &http["plain_js_miss"];
    let vs_plain = num(&miss["rps"]) / num(&plain["rps"]);
    // wrk divides by the whole duration: a miss run that ran out of tokens is a lower bound.
    let out_of_tokens = miss["threads_out_of_tokens"].as_u64().unwrap_or(0) > 0;
    budgets.push_str(&budget(
        "cache-miss throughput vs the plain JS Worker's miss",
        format!(
            "{vs_plain:.2}× ({:.0} vs {:.0} requests/s; p50 {:.1} vs {:.1} ms{})",
            num(&miss["rps"]),
            num(&plain["rps"]),
            num(&miss["p50_ms"]),
            num(&plain["p50_ms"]),
            if out_of_tokens {
                "; the miss ran out of tokens: a lower bound"
            } else {
                ""
            }
        ),
        "≥ 1.00×",
        vs_plain >= 1.0,
        full,
    ));
    let protection = &r["protection_cost"];
    let throughput_cost = num(&protection["throughput_cost"]);
    let price_us = num(&protection["in_runtime_us_per_request"]);
    budgets.push_str(&budget(
        "hygiene + rate-limit cost on hit throughput (median of the paired rounds)",
        format!(
            "{:.1} % (server CPU per request {:+.1} %; in the runtime {:.1} µs per request, {:.1} % of a hit's Worker CPU)",
            throughput_cost * 100.0,
            num(&protection["cpu_per_request_cost"]) * 100.0,
            price_us,
            price_us / num(&http["share_hit"]["worker_cpu_us_per_request"]) * 100.0
        ),
        "< 5 %",
        throughput_cost < 0.05,
        full,
    ));
    let build_budget = build_size_budget();
    budgets.push_str(&budget(
        "gzipped wasm (scripts/build-worker's budget, every build)",
        format!("{} KiB", gzip / 1024),
        &format!("≤ {} KiB", build_budget / 1024),
        gzip <= build_budget,
        true,
    ));
    budgets.push_str(&budget(
        "gzipped wasm (issue 17's target)",
        format!("{} KiB", gzip / 1024),
        &format!("≤ {} KiB", WASM_TARGET_BYTES / 1024),
        gzip <= WASM_TARGET_BYTES,
        full,
    ));
    budgets.push_str(&budget(
        "start-up: wasm compile + instantiate (V8, median of 7)",
        format!("{startup:.1} ms"),
        "≤ 100 ms",
        startup <= 100.0,
        full,
    ));
    budgets.push_str(&budget(
        "queue: jobs per second end to end",
        format!(
            "{:.0} ({:.2} database round trips and {:.2} connections per job)",
            num(&queue["jobs_per_second"]),
            num(&queue["db_round_trips_per_job"]),
            num(&queue["db_connections_per_job"])
        ),
        "≥ 300",
        num(&queue["jobs_per_second"]) >= 300.0,
        full,
    ));
    budgets.push_str(&budget(
        "queue: database round trips per job",
        format!("{:.2}", num(&queue["db_round_trips_per_job"])),
        "≤ 1",
        num(&queue["db_round_trips_per_job"]) <= 1.0,
        true,
    ));
    budgets.push_str(&budget(
        "the edge's cost per active account per year",
        format!("R$ {:.4}", num(&cost["total_brl"])),
        &format!("≤ R$ {:.4}", num(&cost["budget_brl"])),
        num(&cost["total_brl"]) <= num(&cost["budget_brl"]),
        full,
    ));
    budgets.push_str(&budget(
        "the edge's cost per active account per year (issue 31's target)",
        format!("R$ {:.4}", num(&cost["total_brl"])),
        &format!("≤ R$ {:.4}", num(&cost["target_brl"])),
        num(&cost["total_brl"]) <= num(&cost["target_brl"]),
        full,
    ));
    if smoke {
        budgets.push_str("| render the largest allowed page (host, criterion) | — | < 1000 µs | full run only |\n");
    } else {
        budgets.push_str(&budget(
            "render the largest allowed page (host, criterion)",
            format!("{render:.0} µs"),
            "< 1000 µs",
            render < 1000.0,
            true,
        ));
    }
    budgets.push_str(&budget(
        "5xx or socket errors during the runs",
        errors.to_string(),
        "0",
        errors == 0,
        true,
    ));
    table.push_str(&budgets);
    table.push_str(&format!(
        "\nQueue: {} jobs end to end (publish → consumer → instant media stand-in → database) in {:.1} s: **{:.0} jobs/s**, {:.2} database round trips and {:.2} connections per job, {:.0} µs of Worker CPU per job (local queue: batches of up to 50).\n",
        queue["jobs"],
        num(&queue["seconds"]),
        num(&queue["jobs_per_second"]),
        num(&queue["db_round_trips_per_job"]),
        num(&queue["db_connections_per_job"]),
        num(&queue["worker_cpu_us_per_job"])
    ));
    let b = &r["miss_breakdown"];
    table.push_str(&format!(
        "\nInside the Worker (its sampled `request` lines, medians; the runtime's clock moves with I/O only, so these are waits): a miss took {:.0} ms, of which {:.0} ms waiting for the cache lookup and {:.0} ms for the database read and the render ({} lines); the floor's bare query took {:.0} ms ({} lines).\n",
        num(&b["miss_duration_ms"]),
        num(&b["miss_cache_lookup_ms"]),
        num(&b["miss_db_and_render_ms"]),
        b["sampled_misses"],
        num(&b["floor_duration_ms"]),
        b["sampled_floors"]
    ));
    table.push_str(&cost_table(cost));
    if let Some(m) = r["micro"]["results"].as_object() {
        table.push_str("\nHost micro-benchmarks (criterion, median):");
        for (k, v) in m {
            table.push_str(&format!(" `{k}` {:.2} µs;", num(v)));
        }
        table.push('\n');
    }
    if r.get("soak").is_some() {
        let s = &r["soak"];
        let ok = s["status_5xx"] == 0 && s["server_alive"] == true && s["pgbouncer_client_connections_after"] == 0;
        if !ok {
            failures.push("soak".into());
        }
        table.push_str(&format!(
            "\nSoak: {} requests (80 % share hits, 10 % misses, 10 % API with sessions) at concurrency 64 in {:.0} s ({:.0} req/s, p95 {:.1} ms): {} 5xx, {} socket errors, server alive: {}, app_rw server connections {} → {} (pool {}), PgBouncer client connections left: {}.\n",
            s["requests"], num(&s["seconds"]), num(&s["rps"]), num(&s["p95_ms"]),
            s["status_5xx"], s["socket_errors"], s["server_alive"], s["app_rw_server_connections_before"], s["app_rw_server_connections_after"],
            s["pool_size"], s["pgbouncer_client_connections_after"]
        ));
    }
    (table, failures)
}

/// The cost per active account per year, by what Cloudflare bills (`bench/cost-model.json`).
fn cost_table(cost: &Value) -> String {
    let num = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
    let per = &cost["per_active_account_per_year"];
    let usd = &cost["usd"];
    let rate = num(&cost["brl_per_usd"]);
    let mut out = format!(
        "\nCost per active account per year (the request mix and prices in `bench/cost-model.json`, R$ {rate:.2} per US$; Worker CPU per page view {:.0} µs, per API request {:.0} µs, per job {:.0} µs, from this run):\n\n| what Cloudflare bills | per account per year | US$ | R$ |\n|---|---:|---:|---:|\n",
        num(&cost["worker_cpu_us"]["share_page_view"]),
        num(&cost["worker_cpu_us"]["api_request"]),
        num(&cost["worker_cpu_us"]["job"]),
    );
    let levers = &cost["levers"];
    // Recorded runs from before the levers were priced one by one have no `levers`.
    let sli_label = if levers.is_object() {
        format!(
            "Analytics Engine data points ({:.3} SLI points a request: SLI_SAMPLE_RATE {}, every point for a version's first SLI_CANARY_MINUTES and every bad event; one a queue batch)",
            num(&levers["sli_points_per_request"]),
            num(&levers["sli_sample_rate"]),
        )
    } else {
        "Analytics Engine data points".to_owned()
    };
    let logs_label = if levers.is_object() {
        format!(
            "Workers Logs events (our sampled lines: {:.3} a request, {:.3} a delivered job, {:.3} a queue batch; invocation logs off in production)",
            num(&levers["log_lines_per_request"]),
            num(&levers["log_lines_per_delivered_job"]),
            num(&levers["log_lines_per_queue_batch"]),
        )
    } else {
        "Workers Logs events (our sampled lines; invocation logs off in production)".to_owned()
    };
    for (label, amount, key) in [
        (
            "Worker invocations (page views, API, queue batches, cron share)",
            "worker_invocations",
            "worker_requests",
        ),
        ("Worker CPU (ms)", "worker_cpu_ms", "worker_cpu"),
        (
            "queue operations (written, read and deleted: three a delivered message)",
            "queue_operations",
            "queue_operations",
        ),
        (sli_label.as_str(), "analytics_engine_points", "analytics_engine_points"),
        (logs_label.as_str(), "workers_logs_events", "workers_logs_events"),
        (
            "Logpush trace events (one per invocation, the 30- and 90-day archive)",
            "logpush_trace_events",
            "logpush_trace_events",
        ),
        ("R2 writes (dead-job records)", "r2_writes", "r2_writes"),
    ] {
        let dollars = num(&usd[key]);
        out.push_str(&format!(
            "| {label} | {:.1} | {:.6} | {:.5} |\n",
            num(&per[amount]),
            dollars,
            dollars * rate
        ));
    }
    out.push_str(&format!(
        "| **total** | | **{:.6}** | **{:.5}** |\n",
        num(&cost["total_usd"]),
        num(&cost["total_brl"])
    ));
    out
}

/// Writes `text` between `<!-- <marker>:begin -->` and `<!-- <marker>:end -->` in `file`.
fn write_between(repo: &Path, file: &str, marker: &str, text: &str) {
    let path = repo.join(file);
    let Ok(old) = std::fs::read_to_string(&path) else {
        return;
    };
    let (begin, end) = (format!("<!-- {marker}:begin -->"), format!("<!-- {marker}:end -->"));
    let (Some(start), Some(stop)) = (old.find(&begin), old.find(&end)) else {
        return;
    };
    let updated = format!("{}{begin}\n{text}\n{}", &old[..start], &old[stop..]);
    std::fs::write(path, updated).unwrap_or_else(|e| panic!("{file}: {e}"));
}

/// The full table into docs/performance.md, the headline figures into the README.
fn update_performance_doc(repo: &Path, table: &str, results: &Value) {
    write_between(repo, "docs/performance.md", "bench", table);
    write_between(repo, "README.md", "bench-summary", &summary(results));
}

/// The README's lines: issue 17's figures against their budgets, from one full run.
fn summary(r: &Value) -> String {
    let num = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
    let http = &r["http"];
    let ratio = |key: &str| num(&http[key]["rps"]) / num(&http["baseline_js_same_bytes"]["rps"]);
    let cpu = |key: &str| num(&http[key]["worker_cpu_us_per_request"]);
    let (miss, floor) = (&http["share_miss"], &http["miss_floor"]);
    let queue = &r["queue"];
    let batches = (num(&queue["jobs"]) / 50.0).ceil();
    let usd = &r["cost"]["usd"];
    let rows = [
        (
            "gzipped wasm (`wasm.gzip_bytes`)".to_owned(),
            format!(
                "{} bytes ({} KiB)",
                r["wasm"]["gzip_bytes"],
                r["wasm"]["gzip_bytes"].as_u64().unwrap_or(0) / 1024
            ),
            format!(
                "≤ {} KiB (every build fails above {} KiB)",
                WASM_TARGET_BYTES / 1024,
                build_size_budget() / 1024
            ),
            r["wasm"]["gzip_bytes"].as_u64().is_some_and(|b| b <= WASM_TARGET_BYTES),
            "what is left, by crate: [Size budget](docs/performance.md#size-budget)".to_owned(),
        ),
        (
            "queue, end to end (`queue.jobs_per_second`)".to_owned(),
            format!(
                "{:.0} jobs/s, {:.2} database round trips per job",
                num(&queue["jobs_per_second"]),
                num(&queue["db_round_trips_per_job"])
            ),
            "≥ 300 jobs/s".to_owned(),
            num(&queue["jobs_per_second"]) >= 300.0,
            format!(
                "{:.0} ms a batch of 50 (300 jobs/s needs {:.0}); {:.1} ms of Worker CPU a job",
                num(&queue["seconds"]) * 1000.0 / batches,
                50.0 * 1000.0 / 300.0,
                num(&queue["worker_cpu_us_per_job"]) / 1000.0
            ),
        ),
        (
            "share miss vs its floor (`http.miss_floor`), p50 / p95".to_owned(),
            format!(
                "{:.2}× / {:.2}× ({:.1} / {:.1} ms vs {:.1} / {:.1} ms)",
                num(&miss["p50_ms"]) / num(&floor["p50_ms"]),
                num(&miss["p95_ms"]) / num(&floor["p95_ms"]),
                num(&miss["p50_ms"]),
                num(&miss["p95_ms"]),
                num(&floor["p50_ms"]),
                num(&floor["p95_ms"])
            ),
            "≤ 1.2× / ≤ 1.5×".to_owned(),
            num(&miss["p50_ms"]) <= 1.2 * num(&floor["p50_ms"]) && num(&miss["p95_ms"]) <= 1.5 * num(&floor["p95_ms"]),
            format!(
                "Worker CPU {:.1} ms a miss, {:.1} ms the floor",
                cpu("share_miss") / 1000.0,
                cpu("miss_floor") / 1000.0
            ),
        ),
        (
            "share miss vs the plain JS Worker's miss (`http.plain_js_miss`)".to_owned(),
            format!(
                "{:.2}× ({:.0} vs {:.0} requests/s)",
                num(&miss["rps"]) / num(&http["plain_js_miss"]["rps"]),
                num(&miss["rps"]),
                num(&http["plain_js_miss"]["rps"])
            ),
            "≥ 1.00×".to_owned(),
            num(&miss["rps"]) >= num(&http["plain_js_miss"]["rps"]),
            format!(
                "Worker CPU {:.1} ms a miss, {:.1} ms the plain Worker's",
                cpu("share_miss") / 1000.0,
                cpu("plain_js_miss") / 1000.0
            ),
        ),
        (
            "share hit vs the baseline".to_owned(),
            format!("{:.2}×", ratio("share_hit")),
            "≥ 0.95×".to_owned(),
            ratio("share_hit") >= 0.95,
            format!(
                "Worker CPU {:.0} µs a hit, {:.0} µs the baseline",
                cpu("share_hit"),
                cpu("baseline_js_same_bytes")
            ),
        ),
        (
            "recipient-link hit vs the share's own hit".to_owned(),
            format!("{:.2}×", ratio("share_hit_recipient_link") / ratio("share_hit")),
            "≥ 0.95×".to_owned(),
            ratio("share_hit_recipient_link") >= 0.95 * ratio("share_hit"),
            format!(
                "Worker CPU {:.0} µs a recipient-link hit, {:.0} µs a share hit",
                cpu("share_hit_recipient_link"),
                cpu("share_hit")
            ),
        ),
        (
            "refusals vs the baseline: malformed token, scanner, 429".to_owned(),
            format!(
                "{:.2}×, {:.2}×, {:.2}×",
                ratio("malformed_404"),
                ratio("scanner_404"),
                ratio("rate_limited_429")
            ),
            "≥ 1.00×".to_owned(),
            ["malformed_404", "scanner_404", "rate_limited_429"]
                .iter()
                .all(|k| ratio(k) >= 1.0),
            format!(
                "Worker CPU {:.0}, {:.0}, {:.0} µs, the baseline {:.0} µs",
                cpu("malformed_404"),
                cpu("scanner_404"),
                cpu("rate_limited_429"),
                cpu("baseline_js_same_bytes")
            ),
        ),
        (
            "the edge's cost per active account per year (`cost.total_brl`)".to_owned(),
            format!("R$ {:.4}", num(&r["cost"]["total_brl"])),
            format!(
                "≤ R$ {:.3} (issue 31's target ≤ R$ {:.4}: {})",
                num(&r["cost"]["budget_brl"]),
                num(&r["cost"]["target_brl"]),
                if num(&r["cost"]["total_brl"]) <= num(&r["cost"]["target_brl"]) {
                    "met"
                } else {
                    "missed"
                }
            ),
            num(&r["cost"]["total_brl"]) <= num(&r["cost"]["budget_brl"]),
            format!(
                "Worker invocations and queue operations alone R$ {:.4}",
                (num(&usd["worker_requests"]) + num(&usd["queue_operations"])) * num(&r["cost"]["brl_per_usd"])
            ),
        ),
    ];
    let mut out = String::from(
        "| figure (last full `scripts/bench` run) | measured | budget | | the run's measure of the cause |\n|---|---:|---|---|---|\n",
    );
    for (figure, measured, budget, met, cause) in rows {
        let verdict = if met { "met" } else { "**missed**" };
        out.push_str(&format!("| {figure} | {measured} | {budget} | {verdict} | {cause} |\n"));
    }
    out
}

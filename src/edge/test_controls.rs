//! Test-only controls: fault switches, counters and cache ageing. Compiled in, but every entry
//! point checks `Config::test_controls`, which is false unless `ENVIRONMENT=local` and
//! `TEST_CONTROLS=on`; in staging and production `/__test/*` answers 404 and the switches read off.

use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;

use crate::config::Config;

thread_local! {
    static FAULTS: RefCell<BTreeSet<String>> = const { RefCell::new(BTreeSet::new()) };
    static DB_CONNECTIONS: Cell<u64> = const { Cell::new(0) };
    static DB_ROUND_TRIPS: Cell<u64> = const { Cell::new(0) };
    static ORIGIN_CALLS: Cell<u64> = const { Cell::new(0) };
    static MEDIA_CALLS: Cell<u64> = const { Cell::new(0) };
    static RENDERS: Cell<u64> = const { Cell::new(0) };
}

/// Switches that take protection out of the way (local test runs only, like every fault): the
/// benchmark prices hygiene and rate limits by switching both off and on again in one process,
/// and the OpenAPI contract run sends hundreds of requests as one user from one address.
pub const SKIP_HYGIENE: &str = "skip_hygiene";
pub const SKIP_RATE_LIMITS: &str = "skip_rate_limits";
/// Every rate limit asks a binding that does not exist: share pages must stay up, logins shut.
pub const LIMITER_UNAVAILABLE: &str = "rate_limiter_unavailable";

/// Is the named fault switched on? Always false outside local test runs.
pub fn fault(config: &Config, name: &str) -> bool {
    config.test_controls && FAULTS.with(|f| f.borrow().contains(name))
}

pub fn set_fault(name: &str, on: bool) {
    FAULTS.with(|f| {
        let mut faults = f.borrow_mut();
        if on {
            faults.insert(name.to_owned());
        } else {
            faults.remove(name);
        }
    });
}

#[derive(Clone, Copy)]
pub enum Counter {
    DbConnections,
    /// Statement round trips on an open connection (BEGIN and the settings, pipelined, are one).
    DbRoundTrips,
    OriginCalls,
    MediaCalls,
    Renders,
}

fn cell(counter: Counter) -> &'static std::thread::LocalKey<Cell<u64>> {
    match counter {
        Counter::DbConnections => &DB_CONNECTIONS,
        Counter::DbRoundTrips => &DB_ROUND_TRIPS,
        Counter::OriginCalls => &ORIGIN_CALLS,
        Counter::MediaCalls => &MEDIA_CALLS,
        Counter::Renders => &RENDERS,
    }
}

/// Counts always (it is one add); only `/__test/counters` reads it.
pub fn count(counter: Counter) {
    cell(counter).with(|c| c.set(c.get() + 1));
}

pub fn counters() -> serde_json::Value {
    let get = |c| cell(c).with(Cell::get);
    let memory = super::share_cache::memory_usage();
    serde_json::json!({
        "db_connections": get(Counter::DbConnections),
        "db_round_trips": get(Counter::DbRoundTrips),
        "origin_calls": get(Counter::OriginCalls),
        "media_calls": get(Counter::MediaCalls),
        "renders": get(Counter::Renders),
        "share_memory": {
            "entries": memory.entries,
            "bytes": memory.bytes,
            "largest_entry_bytes": memory.largest_entry_bytes,
        },
        "rejections": crate::telemetry::rejection_totals(),
        "faults": FAULTS.with(|f| f.borrow().iter().cloned().collect::<Vec<_>>()),
    })
}

/// `POST /__test/controls` actions (local test runs only; the route refuses otherwise):
///
/// - `{"action": "fault", "name": "queue_publish" | "consumer_paused" | "cron:<job>" |
///   "skip_hygiene" | "skip_rate_limits" | "rate_limiter_unavailable", "on": true}`
/// - `{"action": "age_share_cache", "token": "…", "seconds": 301}`: makes a cached page older
/// - `{"action": "repeat_share_protection", "n": 20000}`: a share page's hygiene and rate limit,
///   n times (the benchmark times it)
/// - `{"action": "publish_raw", "body": …}` / `{"action": "publish_raw_batch", "bodies": [...]}`
pub async fn run(
    cx: &super::context::RequestContext,
    body: serde_json::Map<String, serde_json::Value>,
) -> Result<crate::reply::Reply, crate::error::ApiError> {
    use crate::error::{ApiError, ErrorCode};
    let bad = |what: &str| ApiError::validation(vec![("body".into(), what.into())]);
    let ok = || crate::reply::Reply::json(200, &serde_json::json!({"ok": true}));
    match body.get("action").and_then(|a| a.as_str()) {
        Some("repeat_share_protection") => {
            let n = body
                .get("n")
                .and_then(|n| n.as_u64())
                .filter(|n| *n <= 100_000)
                .ok_or_else(|| bad("n (at most 100000)"))?;
            let passed = super::pipeline::repeat_share_protection(cx, n as u32).await;
            Ok(crate::reply::Reply::json(200, &serde_json::json!({"passed": passed})))
        }
        Some("fault") => {
            let name = body.get("name").and_then(|n| n.as_str()).ok_or_else(|| bad("name"))?;
            set_fault(name, body.get("on").and_then(|o| o.as_bool()).unwrap_or(true));
            Ok(ok())
        }
        Some("age_share_cache") => {
            let token = body
                .get("token")
                .and_then(|t| t.as_str())
                .and_then(|t| crate::share::ShareToken::parse(t).ok())
                .ok_or_else(|| bad("token"))?;
            let seconds = body
                .get("seconds")
                .and_then(|s| s.as_i64())
                .ok_or_else(|| bad("seconds"))?;
            let hash = token.hash();
            let mut aged = 0;
            for lang in crate::lang::Lang::ALL {
                if let Some(mut page) = super::share_cache::get(cx.config(), &hash, lang).await {
                    page.rendered_at_ms -= seconds * 1000;
                    super::share_cache::put(cx.config(), &hash, lang, &page)
                        .await
                        .map_err(|e| ApiError::new(ErrorCode::Internal, e))?;
                    aged += 1;
                }
            }
            Ok(crate::reply::Reply::json(200, &serde_json::json!({"aged": aged})))
        }
        Some("publish_raw") => {
            let message = body.get("body").ok_or_else(|| bad("body"))?;
            super::jobs::publish_raw(&cx.io, message)
                .await
                .map_err(|e| ApiError::new(ErrorCode::ServiceUnavailable, e))?;
            Ok(ok())
        }
        Some("publish_raw_batch") => {
            let bodies = body
                .get("bodies")
                .and_then(|b| b.as_array())
                .ok_or_else(|| bad("bodies"))?;
            super::jobs::publish_raw_batch(&cx.io, bodies)
                .await
                .map_err(|e| ApiError::new(ErrorCode::ServiceUnavailable, e))?;
            Ok(ok())
        }
        _ => Err(bad("unknown action")),
    }
}

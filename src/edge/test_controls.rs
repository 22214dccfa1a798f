//! Test-only controls: fault switches, counters and cache ageing. Compiled in, but every entry
//! point checks `Config::test_controls`, which is false unless `ENVIRONMENT=local` and
//! `TEST_CONTROLS=on`; in staging and production `/__test/*` answers 404 and the switches read off.

use super::context::RequestContext;
use super::faults::{self, Counter, Fault};
use super::{jobs, protection, share_cache};

/// `GET /__test/counters`: every `Counter`, the isolate's share page memory, rejection totals and
/// the faults switched on.
pub fn counters() -> serde_json::Value {
    let memory = share_cache::memory_usage();
    let mut out = serde_json::Map::new();
    for counter in Counter::ALL {
        out.insert(counter.name().into(), faults::counted(counter).into());
    }
    out.insert(
        "share_memory".into(),
        serde_json::json!({
            "entries": memory.entries,
            "bytes": memory.bytes,
            "largest_entry_bytes": memory.largest_entry_bytes,
        }),
    );
    out.insert("rejections".into(), crate::telemetry::rejection_totals().into());
    out.insert("faults".into(), faults::active().into());
    serde_json::Value::Object(out)
}

/// `GET /__test/floor`: the floor under a share page miss, for the benchmark. The same Hyperdrive
/// binding answers a bare one-row query (`SELECT 1`, one simple-query message on a connection of
/// its own, as the miss's read is), and nothing else: no transaction, no render, no cache.
pub async fn floor(cx: &RequestContext) -> Result<crate::reply::Reply, crate::error::ApiError> {
    super::db::bare_query(&cx.io, "SELECT 1").await?;
    Ok(crate::reply::Reply::json(200, &serde_json::json!({"ok": true})))
}

/// `POST /__test/controls` actions (local test runs only; the route refuses otherwise):
///
/// - `{"action": "fault", "name": <a `Fault`'s name>, "on": true}` (an unknown name is a 422)
/// - `{"action": "age_share_cache", "token": "…", "seconds": 301}`: makes a cached page older
/// - `{"action": "repeat_share_protection", "n": 20000}`: a share page's hygiene and rate limit,
///   n times (the benchmark times it)
/// - `{"action": "publish_raw", "body": …}` / `{"action": "publish_raw_batch", "bodies": [...]}`
/// - `{"action": "share_cache_entry", "token": "…", "lang": "en"}`: the cached first page's key
///   and stored headers
/// - `{"action": "share_link_resolution", "token": "…"}`: a recipient token's resolution entry
/// - `{"action": "cache_put_raw", "key": "…", "body": "…", "headers": {…}}`: an entry under any
///   key (another version's page)
pub async fn run(
    cx: &RequestContext,
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
            let passed = protection::repeat_share_protection(cx, n as u32).await;
            Ok(crate::reply::Reply::json(200, &serde_json::json!({"passed": passed})))
        }
        Some("fault") => {
            let fault = body
                .get("name")
                .and_then(|n| n.as_str())
                .and_then(Fault::parse)
                .ok_or_else(|| bad("name (a known fault)"))?;
            faults::set(fault, body.get("on").and_then(|o| o.as_bool()).unwrap_or(true));
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
                if let Some(mut page) = share_cache::get(cx.config(), &hash, lang).await {
                    page.rendered_at_ms -= seconds * 1000;
                    // The stored tags go back with the aged copy (a lookup does not read them).
                    let key = crate::share::cache_policy::page_cache_key(cx.config().cache_host(), &hash, lang);
                    if let Ok(Some(stored)) = worker::Cache::default().get(key.as_str(), true).await {
                        page.cache_tags = stored.headers().get("cache-tag").ok().flatten().unwrap_or_default();
                    }
                    share_cache::put(cx.config(), &hash, lang, &page)
                        .await
                        .map_err(|e| ApiError::new(ErrorCode::Internal, e))?;
                    aged += 1;
                }
            }
            Ok(crate::reply::Reply::json(200, &serde_json::json!({"aged": aged})))
        }
        Some("share_cache_entry") => {
            // What the Cache API holds for a link's first page in a language.
            let lang = body
                .get("lang")
                .and_then(|l| l.as_str())
                .and_then(|tag| crate::lang::Lang::ALL.into_iter().find(|l| l.tag() == tag))
                .ok_or_else(|| bad("lang (pt-BR or en)"))?;
            let token = token_of(&body).ok_or_else(|| bad("token"))?;
            let key = crate::share::cache_policy::page_cache_key(cx.config().cache_host(), &token.hash(), lang);
            cache_entry(&key).await
        }
        Some("share_link_resolution") => {
            // What this data center's Cache API holds of a recipient token's resolution.
            let token = token_of(&body).ok_or_else(|| bad("token"))?;
            let key = crate::share::cache_policy::resolution_cache_key(cx.config().cache_host(), &token.hash());
            cache_entry(&key).await
        }
        Some("cache_put_raw") => {
            // An entry under any key, as another version of the Worker would have written it.
            let key = body.get("key").and_then(|k| k.as_str()).ok_or_else(|| bad("key"))?;
            let text = body.get("body").and_then(|b| b.as_str()).ok_or_else(|| bad("body"))?;
            let headers = worker::Headers::new();
            for (name, value) in body.get("headers").and_then(|h| h.as_object()).into_iter().flatten() {
                let _ = headers.set(name, value.as_str().unwrap_or_default());
            }
            let response = super::js_body::response(200, headers.0, Some(text.as_bytes()));
            share_cache::default_cache_put(key, &response)
                .await
                .map_err(|e| ApiError::new(ErrorCode::Internal, e))?;
            Ok(ok())
        }
        Some("publish_raw") => {
            let message = body.get("body").ok_or_else(|| bad("body"))?;
            jobs::publish_raw(&cx.io, message)
                .await
                .map_err(|e| ApiError::new(ErrorCode::ServiceUnavailable, e))?;
            Ok(ok())
        }
        Some("publish_raw_batch") => {
            let bodies = body
                .get("bodies")
                .and_then(|b| b.as_array())
                .ok_or_else(|| bad("bodies"))?;
            jobs::publish_raw_batch(&cx.io, bodies)
                .await
                .map_err(|e| ApiError::new(ErrorCode::ServiceUnavailable, e))?;
            Ok(ok())
        }
        _ => Err(bad("unknown action")),
    }
}

fn token_of(body: &serde_json::Map<String, serde_json::Value>) -> Option<crate::share::ShareToken> {
    body.get("token")
        .and_then(|t| t.as_str())
        .and_then(|t| crate::share::ShareToken::parse(t).ok())
}

/// An entry of this data center's Cache API: its key, whether it is there, the headers stored
/// with it (the `Cache-Tag` a purge by tag matches) and its body as text.
async fn cache_entry(key: &str) -> Result<crate::reply::Reply, crate::error::ApiError> {
    let mut cached = worker::Cache::default()
        .get(key, true)
        .await
        .map_err(|e| crate::error::ApiError::new(crate::error::ErrorCode::Internal, e.to_string()))?;
    let headers: serde_json::Map<String, serde_json::Value> = cached
        .as_ref()
        .map(|r| r.headers().entries().map(|(k, v)| (k, v.into())).collect())
        .unwrap_or_default();
    let text = match cached.as_mut() {
        Some(r) => r.text().await.unwrap_or_default(),
        None => String::new(),
    };
    Ok(crate::reply::Reply::json(
        200,
        &serde_json::json!({"key": key, "found": cached.is_some(), "headers": headers, "body": text}),
    ))
}

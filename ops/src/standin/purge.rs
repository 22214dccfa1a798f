//! The Cloudflare zone cache purge API stand-in (`POST /zones/{zone}/purge_cache`), for the tests
//! of global purges on revoke and edit. The Worker's `CF_API_BASE` points at
//! `http://127.0.0.1:<port>/client/v4`.
//!
//! It holds the Worker to Cloudflare's documented contract instead of accepting whatever it is
//! sent, and it models the Cache API entries of the *other* data centres (which cannot run
//! locally), so a test can see what a purge would really remove there.
//!
//! # Sources
//!
//! Every documented rule below follows one of these pages (the page, then the section heading):
//!
//! - API reference, "Purge Cached Content" (`POST /zones/{zone_id}/purge_cache`),
//!   <https://developers.cloudflare.com/api/resources/cache/methods/purge/>: "Choose what to
//!   purge" ("Send one of these fields in the request body: `files` … `tags` … `hosts` …
//!   `prefixes` … `purge_everything`"), "Check the result" (a `200` with `success: true` means
//!   Cloudflare accepted the request), "Availability and limits", the body parameters
//!   (`purge_everything`: "Must be the only field in the request"; `prefixes`: "Do not include a
//!   scheme, query string, or fragment"; `files`: full URLs, or objects `{url, headers}`) and the
//!   "4XX" examples (codes 1092 and 1134).
//! - "Purge cache", <https://developers.cloudflare.com/cache/how-to/purge-cache/>: "Availability
//!   and limits", "Hostname, tag, prefix URL, and purge everything limits" (per account: Free 5
//!   requests per minute, bucket 25; Pro 5/s, 25; Business 10/s, 50; Enterprise 50/s, 500; at most
//!   100 operations per request on every plan), "Single-file purge limits" (800, 1500, 1500 and
//!   3000 URLs per second; at most 100 URLs per request, 500 on Enterprise; "calculated using a
//!   moving average") and "Token bucket rate limiting".
//! - "Purge cache by cache-tags", <https://developers.cloudflare.com/cache/how-to/purge-cache/purge-by-tags/>:
//!   "Add Cache-Tag HTTP response headers" (comma-separated; whitespace around names and
//!   repeated or trailing commas are removed) and "A few things to remember" (at least one byte;
//!   "the maximum length of a cache-tag in an API call is 1,024 characters"; printable ASCII only;
//!   no spaces; "Case is not sensitive").
//! - "Purge cache by hostname", <https://developers.cloudflare.com/cache/how-to/purge-cache/purge-by-hostname/>
//!   (top of page): "all assets at URLs with a host that matches one of the provided values".
//! - "Purge cache by prefix (URL)", <https://developers.cloudflare.com/cache/how-to/purge-cache/purge_by_prefix/>:
//!   top of page (`www.example.com/foo` for `https://www.example.com/foo/bar/baz/qux.jpg`) and
//!   "Limitations" (at most 31 path separators; no query string or fragment; "If you purge
//!   `foo.com/bar`, any asset that starts with `foo.com/bar` will be purged").
//! - Workers, "How the Cache works", <https://developers.cloudflare.com/workers/reference/how-the-cache-works/>:
//!   "Purge assets stored with the Cache API" (Purge Everything and Cache-Tags purge Cache API
//!   entries; "it is not possible to purge a URL that uses a custom cache key set by a Worker";
//!   purge by host or prefix are the other alternatives it names).
//! - "Purge cache key resources", <https://developers.cloudflare.com/cache/how-to/purge-cache/purge-cache-key/>
//!   (top of page): the same sentence about URLs stored through the Cache API under a custom key.
//! - Workers Cache API, <https://developers.cloudflare.com/workers/runtime-apis/cache/>: "Headers"
//!   (`Cache-Tag` "Allows resource purging by tag(s) later") and "Background" (the contents "do
//!   not replicate outside of the originating data center").
//! - Workers, "Purging the cache", <https://developers.cloudflare.com/workers/cache/purge/>:
//!   "Attach tags on write" ("Invalid tags are silently dropped at storage time"). That page is
//!   about Workers Caching; the model applies the same rule to Cache API entries by analogy.
//!
//! # Endpoints
//!
//! ```text
//! POST /client/v4/zones/{zone}/purge_cache   Authorization: Bearer <token>; a body naming exactly
//!                                             one of files, tags, hosts, prefixes, purge_everything
//! GET  /__control/requests                   every purge request received, in order (PurgeRequest)
//! PUT  /__control/failure                    adds a failure rule: {"mode": "server_error" |
//!                                             "success_false" | "hang", "times": 3 (absent:
//!                                             until told otherwise), "matching": "<text a tag, a
//!                                             file, a host or a prefix contains>"}; the first rule
//!                                             a valid request matches answers it
//! DELETE /__control/failure                  drops every rule: all requests are accepted again
//! PUT  /__control/plan                       {"plan": "free" | "pro" | "business" | "enterprise"}:
//!                                             the account's plan (enterprise at start); refills the
//!                                             rate-limit buckets
//! GET  /__control/plan                       {"plan": …}
//! PUT  /__control/cached                     {"key": "<cache key URL>", "cache_tag": "<the
//!                                             Cache-Tag value stored with it>" (may be absent)}:
//!                                             one entry cached in a remote data centre
//! GET  /__control/cached                     the modeled entries still cached: {key, cache_tag, tags}
//! DELETE /__control/cached                   forgets every modeled entry
//! ```
//!
//! # The contract, documented or chosen
//!
//! Documented (pages above):
//! - exactly one kind per body; `purge_everything` must be the only field (error 1092, whose
//!   message is copied from the API reference's example);
//! - at most 100 tags, hosts or prefixes per request, and 100 files (500 on Enterprise);
//! - a tag is 1..=1024 printable ASCII characters without spaces, compared case-insensitively;
//!   stored `Cache-Tag` values are split on commas, trimmed, and empty names dropped;
//! - prefixes carry no scheme, query string or fragment and at most 31 path separators, and
//!   remove every key that starts with them;
//! - the per-account token buckets of each plan (tag, host, prefix and purge-everything requests
//!   share one; files have their own, in URLs per second), and error code 1134 with its message;
//! - a `files` purge is answered as accepted (`200`, `success: true` only says Cloudflare received
//!   it) but removes no Cache API entry stored under a Worker-chosen key;
//! - purge everything removes every entry; tags, hosts and prefixes remove the entries they name.
//!
//! The stand-in's own choices (not documented):
//! - HTTP `429` for a rate-limited purge (the docs show code 1134 only under "4XX");
//! - HTTP `400` with code 1012 (kept from the earlier stand-in) for a body naming no kind, naming
//!   several ("send one of these fields"), not a JSON object, a list that is not an array of the
//!   right items or is empty, an invalid file, host or prefix, and more than the allowed items
//!   (message "You cannot provide more than 100 items", as a GitHub thread quotes the API);
//! - HTTP `400` with code 1100 for an invalid tag (the code a third-party thread saw for a tag over
//!   1,024 characters, there in a `200` with `success: false`: a client must treat both as failure);
//! - `403` with code 10000 for a wrong bearer token; only the bearer scheme is modeled;
//! - only requests that pass authentication and validation take tokens; the single-file limit is a
//!   token bucket of one second's URLs, not a moving average;
//! - a request an injected failure answers (after it took its token) removes nothing;
//! - host and prefix comparisons ignore the case of the host; a stored tag that is not printable
//!   ASCII or holds a space is dropped; the 16 KB limit of a `Cache-Tag` header is not modeled.
//!
//! An accepted purge answers `200 {"success": true, "errors": [], "messages": [], "result":
//! {"id": …}}`. Failure modes: `server_error` (`500`), `success_false` (`200` with `"success":
//! false`, which a client that only reads the status would take for an accepted purge), `hang`
//! (answers after 60 s).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// Most tags, hosts or prefixes one request may name, on every plan (documented).
pub const MAX_ITEMS: usize = 100;
/// Longest tag a purge request may name, in characters (documented).
pub const MAX_TAG_LEN: usize = 1024;
/// Most path separators in one prefix (documented).
pub const MAX_PREFIX_SEPARATORS: usize = 31;

/// Body refusals the docs give no code for (the earlier stand-in's code; not documented).
const CODE_BAD_BODY: u32 = 1012;
/// An invalid tag (seen in a third-party thread for a tag over 1,024 characters; not documented).
const CODE_BAD_TAG: u32 = 1100;
/// `purge_everything` with another field (documented example).
const CODE_PURGE_EVERYTHING_ALONE: u32 = 1092;
/// Rate limited (documented example; the HTTP status is not documented).
const CODE_RATE_LIMITED: u32 = 1134;
const RATE_LIMITED_MESSAGE: &str =
    "Unable to purge, rate limit reached. Please wait and consider throttling your request speed";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureMode {
    ServerError,
    SuccessFalse,
    Hang,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Failure {
    pub mode: FailureMode,
    /// Fail this many matching requests, then accept again. Until told otherwise when absent.
    #[serde(default)]
    pub times: Option<u32>,
    /// Fail only requests with a tag, file, host or prefix containing this text (every valid
    /// request when absent), so tests sharing the stand-in do not fail one another's purges.
    #[serde(default)]
    pub matching: Option<String>,
}

/// The account's Cloudflare plan, which sets the purge rate limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Plan {
    Free,
    Pro,
    Business,
    #[default]
    Enterprise,
}

impl Plan {
    /// Tag, host, prefix and purge-everything requests: (requests per second, bucket size).
    fn request_limit(self) -> (f64, f64) {
        match self {
            Plan::Free => (5.0 / 60.0, 25.0),
            Plan::Pro => (5.0, 25.0),
            Plan::Business => (10.0, 50.0),
            Plan::Enterprise => (50.0, 500.0),
        }
    }

    /// Single-file purges: URLs per second (the bucket holds one second's worth).
    fn urls_per_second(self) -> f64 {
        match self {
            Plan::Free => 800.0,
            Plan::Pro | Plan::Business => 1500.0,
            Plan::Enterprise => 3000.0,
        }
    }

    /// Most URLs one single-file purge may name.
    fn max_files(self) -> usize {
        match self {
            Plan::Enterprise => 500,
            _ => MAX_ITEMS,
        }
    }
}

/// One purge request as the stand-in saw it, with what it answered.
#[derive(Debug, Clone, Serialize)]
pub struct PurgeRequest {
    pub at_ms: i64,
    pub zone: String,
    /// The bearer token sent (the test's own value, never a real secret).
    pub token: Option<String>,
    /// `files`, `tags`, `hosts`, `prefixes` or `purge_everything`; `none` when the body named no
    /// kind (or was not a JSON object), `several` when it named more than one.
    pub kind: String,
    /// The lists the body named (empty when it did not name one); a file given as `{url,
    /// headers}` is recorded by its URL.
    pub files: Vec<String>,
    pub tags: Vec<String>,
    pub hosts: Vec<String>,
    pub prefixes: Vec<String>,
    /// `accepted`, `unauthorized`, `bad_request`, `rate_limited`, `server_error`,
    /// `success_false` or `hang`.
    pub answer: String,
    /// The error code answered, if any.
    pub code: Option<u32>,
    /// How many modeled remote Cache API entries it removed.
    pub removed: usize,
}

/// One modeled Cache API entry in a remote data centre.
#[derive(Debug, Clone, Serialize)]
pub struct CachedEntry {
    /// The cache key, as the Worker passed it to `cache.put`.
    pub key: String,
    /// The `Cache-Tag` value stored with it, as given.
    pub cache_tag: Option<String>,
    /// The tags Cloudflare would keep from it: split on commas, trimmed, empty and invalid names
    /// dropped, each once.
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct CachePut {
    key: String,
    #[serde(default)]
    cache_tag: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct PlanBody {
    plan: Plan,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(capacity: f64) -> Bucket {
        Bucket {
            tokens: capacity,
            at: Instant::now(),
        }
    }

    /// Refills at `rate` tokens a second up to `capacity`, then takes `cost` tokens if it holds them.
    fn take(&mut self, cost: f64, rate: f64, capacity: f64) -> bool {
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(capacity);
        self.at = now;
        if self.tokens >= cost {
            self.tokens -= cost;
            true
        } else {
            false
        }
    }
}

struct Inner {
    plan: Plan,
    /// Tag, host, prefix and purge-everything requests (one bucket per account).
    requests_bucket: Bucket,
    /// Single-file purges, in URLs.
    files_bucket: Bucket,
    failures: Vec<Failure>,
    requests: Vec<PurgeRequest>,
    cached: Vec<CachedEntry>,
}

impl Inner {
    fn new(plan: Plan) -> Inner {
        Inner {
            plan,
            requests_bucket: Bucket::full(plan.request_limit().1),
            files_bucket: Bucket::full(plan.urls_per_second()),
            failures: Vec::new(),
            requests: Vec::new(),
            cached: Vec::new(),
        }
    }

    fn set_plan(&mut self, plan: Plan) {
        self.plan = plan;
        self.requests_bucket = Bucket::full(plan.request_limit().1);
        self.files_bucket = Bucket::full(plan.urls_per_second());
    }

    /// Takes the tokens `purge` costs from its bucket; false when rate limited.
    fn admit(&mut self, purge: &Purge) -> bool {
        match purge {
            Purge::Files(files) => {
                let rate = self.plan.urls_per_second();
                self.files_bucket.take(files.len() as f64, rate, rate)
            }
            _ => {
                let (rate, capacity) = self.plan.request_limit();
                self.requests_bucket.take(1.0, rate, capacity)
            }
        }
    }

    /// The first failure rule `purge` matches, counted down; its mode.
    fn injected_failure(&mut self, purge: &Purge) -> Option<FailureMode> {
        let i = self
            .failures
            .iter()
            .position(|f| f.matching.as_ref().is_none_or(|m| purge.mentions(m)))?;
        let failure = &mut self.failures[i];
        let mode = failure.mode;
        if let Some(times) = &mut failure.times {
            *times = times.saturating_sub(1);
        }
        if failure.times == Some(0) {
            self.failures.remove(i);
        }
        Some(mode)
    }
}

#[derive(Clone)]
struct Shared {
    token: Option<String>,
    inner: Arc<Mutex<Inner>>,
}

pub async fn serve(port: u16, token: Option<String>) -> Result<(), String> {
    let listener = super::listen(port).await?;
    println!("purge API stand-in listening on http://127.0.0.1:{port}/client/v4");
    axum::serve(listener, router(token)).await.map_err(|e| e.to_string())
}

/// `token`: the only bearer token accepted (any when `None`).
pub fn router(token: Option<String>) -> Router {
    let shared = Shared {
        token,
        inner: Arc::new(Mutex::new(Inner::new(Plan::default()))),
    };
    Router::new()
        .route("/client/v4/zones/{zone}/purge_cache", post(purge))
        .route(
            "/__control/requests",
            get(|State(s): State<Shared>| async move { Json(s.inner.lock().expect("state").requests.clone()) }),
        )
        .route(
            "/__control/failure",
            put(|State(s): State<Shared>, Json(f): Json<Failure>| async move {
                s.inner.lock().expect("state").failures.push(f);
                StatusCode::NO_CONTENT
            })
            .delete(|State(s): State<Shared>| async move {
                s.inner.lock().expect("state").failures.clear();
                StatusCode::NO_CONTENT
            }),
        )
        .route(
            "/__control/plan",
            put(|State(s): State<Shared>, Json(p): Json<PlanBody>| async move {
                s.inner.lock().expect("state").set_plan(p.plan);
                StatusCode::NO_CONTENT
            })
            .get(|State(s): State<Shared>| async move { Json(json!({"plan": s.inner.lock().expect("state").plan})) }),
        )
        .route(
            "/__control/cached",
            put(cache_put)
                .get(|State(s): State<Shared>| async move { Json(s.inner.lock().expect("state").cached.clone()) })
                .delete(|State(s): State<Shared>| async move {
                    s.inner.lock().expect("state").cached.clear();
                    StatusCode::NO_CONTENT
                }),
        )
        .with_state(shared)
}

/// Registers one remote Cache API entry; a second put of the same key replaces it, as
/// `cache.put` does.
async fn cache_put(State(s): State<Shared>, Json(put): Json<CachePut>) -> Response {
    let parsed = url::Url::parse(&put.key);
    if !parsed.is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some()) {
        return (StatusCode::BAD_REQUEST, "key must be an absolute http(s) URL").into_response();
    }
    let entry = CachedEntry {
        tags: stored_tags(put.cache_tag.as_deref().unwrap_or("")),
        key: put.key,
        cache_tag: put.cache_tag,
    };
    let mut inner = s.inner.lock().expect("state");
    inner.cached.retain(|e| e.key != entry.key);
    inner.cached.push(entry);
    StatusCode::NO_CONTENT.into_response()
}

/// The tags Cloudflare keeps from a stored `Cache-Tag` value: split on commas, whitespace around
/// each name removed, empty names (repeated or trailing commas) dropped, invalid names dropped.
pub fn stored_tags(cache_tag: &str) -> Vec<String> {
    let mut tags: Vec<String> = Vec::new();
    for tag in cache_tag.split(',').map(str::trim) {
        if !tag.is_empty() && tag.chars().all(|c| c.is_ascii_graphic()) && !tags.iter().any(|t| t == tag) {
            tags.push(tag.to_owned());
        }
    }
    tags
}

/// A valid purge request: what it names.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Purge {
    Everything,
    Files(Vec<String>),
    Tags(Vec<String>),
    Hosts(Vec<String>),
    Prefixes(Vec<String>),
}

impl Purge {
    /// Whether a failure rule's text is in one of the items it names.
    fn mentions(&self, text: &str) -> bool {
        match self {
            Purge::Everything => false,
            Purge::Files(items) | Purge::Tags(items) | Purge::Hosts(items) | Purge::Prefixes(items) => {
                items.iter().any(|i| i.contains(text))
            }
        }
    }

    /// Whether this purge removes a Cache API entry stored under a Worker-chosen key.
    fn removes(&self, entry: &CachedEntry) -> bool {
        match self {
            Purge::Everything => true,
            // "it is not possible to purge a URL that uses a custom cache key set by a Worker".
            Purge::Files(_) => false,
            Purge::Tags(tags) => entry
                .tags
                .iter()
                .any(|e| tags.iter().any(|t| t.eq_ignore_ascii_case(e))),
            Purge::Hosts(hosts) => {
                let Ok(key) = url::Url::parse(&entry.key) else {
                    return false;
                };
                let host = key.host_str().unwrap_or("");
                let authority = match key.port() {
                    Some(port) => format!("{host}:{port}"),
                    None => host.to_owned(),
                };
                hosts
                    .iter()
                    .any(|h| h.eq_ignore_ascii_case(host) || h.eq_ignore_ascii_case(&authority))
            }
            Purge::Prefixes(prefixes) => {
                let Some(key) = schemeless(&entry.key) else {
                    return false;
                };
                prefixes.iter().any(|p| key.starts_with(&lower_host(p)))
            }
        }
    }
}

/// `https://Share.Example/a?b` → `share.example/a?b`: a key as a prefix purge compares it.
fn schemeless(key: &str) -> Option<String> {
    let key = url::Url::parse(key).ok()?;
    let host = key.host_str()?;
    let port = key.port().map(|p| format!(":{p}")).unwrap_or_default();
    Some(format!("{host}{port}{}", &key[url::Position::BeforePath..]))
}

/// A prefix with its host part lowercased (hosts are case-insensitive).
fn lower_host(prefix: &str) -> String {
    match prefix.split_once('/') {
        Some((host, path)) => format!("{}/{path}", host.to_ascii_lowercase()),
        None => prefix.to_ascii_lowercase(),
    }
}

/// A refused body: the error code and message answered with `400`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Refusal {
    code: u32,
    message: String,
}

fn refusal(code: u32, message: impl Into<String>) -> Refusal {
    Refusal {
        code,
        message: message.into(),
    }
}

const KINDS: [&str; 4] = ["files", "tags", "hosts", "prefixes"];

/// What a body named, for the record, and whether it is a valid purge.
struct Named {
    kind: String,
    lists: [Vec<String>; 4],
    purge: Result<Purge, Refusal>,
}

fn read_body(body: &str, plan: Plan) -> Named {
    let Ok(Value::Object(map)) = serde_json::from_str::<Value>(body) else {
        return Named {
            kind: "none".into(),
            lists: Default::default(),
            purge: Err(refusal(CODE_BAD_BODY, "Request body must be a JSON object")),
        };
    };
    let named: Vec<&str> = ["purge_everything"]
        .into_iter()
        .chain(KINDS)
        .filter(|k| map.contains_key(*k))
        .collect();
    let kind = match named[..] {
        [] => "none",
        [one] => one,
        _ => "several",
    };
    Named {
        kind: kind.into(),
        lists: KINDS.map(|k| map.get(k).map(recorded_items).unwrap_or_default()),
        purge: validate(&map, plan),
    }
}

/// The strings of a list as the record shows them (a file object by its `url`).
fn recorded_items(list: &Value) -> Vec<String> {
    list.as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|i| i.as_str().or_else(|| i.get("url")?.as_str()).map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn validate(map: &Map<String, Value>, plan: Plan) -> Result<Purge, Refusal> {
    if let Some(everything) = map.get("purge_everything") {
        // "Must be the only field in the request."
        if map.len() > 1 {
            return Err(refusal(
                CODE_PURGE_EVERYTHING_ALONE,
                "Request cannot contain \"purge_everything\" and any of \"files\", \"tags\", \"hosts\" or \"prefixes\"",
            ));
        }
        if everything != &Value::Bool(true) {
            return Err(refusal(
                CODE_PURGE_EVERYTHING_ALONE,
                "\"purge_everything\" must be true",
            ));
        }
        return Ok(Purge::Everything);
    }
    let named: Vec<&str> = KINDS.into_iter().filter(|k| map.contains_key(*k)).collect();
    let field = match named[..] {
        [] => {
            return Err(refusal(
                CODE_BAD_BODY,
                "Request must contain one of \"purge_everything\", \"files\", \"tags\", \"hosts\" or \"prefixes\"",
            ))
        }
        [one] => one,
        // The docs say "Send one of these fields in the request body"; what the API answers for
        // two is not documented.
        _ => {
            return Err(refusal(
                CODE_BAD_BODY,
                "Request must contain only one of \"files\", \"tags\", \"hosts\" or \"prefixes\"",
            ))
        }
    };
    let Some(items) = map[field].as_array() else {
        return Err(refusal(CODE_BAD_BODY, format!("\"{field}\" must be an array")));
    };
    if items.is_empty() {
        return Err(refusal(CODE_BAD_BODY, format!("\"{field}\" must not be empty")));
    }
    let max = if field == "files" { plan.max_files() } else { MAX_ITEMS };
    if items.len() > max {
        return Err(refusal(
            CODE_BAD_BODY,
            format!("You cannot provide more than {max} items in \"{field}\""),
        ));
    }
    let check: fn(&Value) -> Result<String, Refusal> = match field {
        "files" => file_url,
        "tags" => tag,
        "hosts" => host,
        _ => prefix,
    };
    let items = items.iter().map(check).collect::<Result<Vec<_>, _>>()?;
    Ok(match field {
        "files" => Purge::Files(items),
        "tags" => Purge::Tags(items),
        "hosts" => Purge::Hosts(items),
        _ => Purge::Prefixes(items),
    })
}

/// A file: a full http(s) URL, or `{"url": …, "headers": {…}}`.
fn file_url(item: &Value) -> Result<String, Refusal> {
    let url = item.as_str().or_else(|| item.get("url")?.as_str()).unwrap_or("");
    match url::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => Ok(url.to_owned()),
        _ => Err(refusal(CODE_BAD_BODY, format!("Invalid url in \"files\": {item}"))),
    }
}

/// A tag: 1..=1024 printable ASCII characters, no spaces.
fn tag(item: &Value) -> Result<String, Refusal> {
    let Some(tag) = item.as_str() else {
        return Err(refusal(CODE_BAD_TAG, format!("Tag must be a string: {item}")));
    };
    if tag.is_empty() || tag.len() > MAX_TAG_LEN {
        return Err(refusal(
            CODE_BAD_TAG,
            format!(
                "Tag must be 1 to {MAX_TAG_LEN} characters long: {} characters",
                tag.len()
            ),
        ));
    }
    if !tag.chars().all(|c| c.is_ascii_graphic()) {
        return Err(refusal(
            CODE_BAD_TAG,
            format!("Tag must be printable ASCII without spaces: {tag:?}"),
        ));
    }
    Ok(tag.to_owned())
}

/// A host: a hostname (with a port, perhaps), no scheme or path.
fn host(item: &Value) -> Result<String, Refusal> {
    match item.as_str() {
        Some(h) if !h.is_empty() && h.chars().all(|c| c.is_ascii_graphic() && !"/?#".contains(c)) => Ok(h.to_owned()),
        _ => Err(refusal(CODE_BAD_BODY, format!("Invalid host in \"hosts\": {item}"))),
    }
}

/// A prefix: a host followed by a path, with no scheme, query string or fragment, and at most 31
/// path separators.
fn prefix(item: &Value) -> Result<String, Refusal> {
    let Some(p) = item
        .as_str()
        .filter(|p| !p.is_empty() && !p.chars().any(char::is_whitespace))
    else {
        return Err(refusal(
            CODE_BAD_BODY,
            format!("Invalid prefix in \"prefixes\": {item}"),
        ));
    };
    if p.contains("://") {
        return Err(refusal(CODE_BAD_BODY, format!("Prefix must not include a scheme: {p}")));
    }
    if p.contains(['?', '#']) {
        return Err(refusal(
            CODE_BAD_BODY,
            format!("Prefix must not include a query string or fragment: {p}"),
        ));
    }
    if p.matches('/').count() > MAX_PREFIX_SEPARATORS {
        return Err(refusal(
            CODE_BAD_BODY,
            format!("Prefix must have at most {MAX_PREFIX_SEPARATORS} path separators: {p}"),
        ));
    }
    Ok(p.to_owned())
}

fn cloudflare_error(status: StatusCode, code: u32, message: &str) -> Response {
    (
        status,
        Json(json!({"success": false, "errors": [{"code": code, "message": message}], "messages": [], "result": null})),
    )
        .into_response()
}

/// How the stand-in answers one request.
enum Answer {
    Unauthorized,
    BadRequest(Refusal),
    RateLimited,
    Failed(FailureMode),
    Accepted,
}

impl Answer {
    fn name(&self) -> &'static str {
        match self {
            Answer::Unauthorized => "unauthorized",
            Answer::BadRequest(_) => "bad_request",
            Answer::RateLimited => "rate_limited",
            Answer::Failed(FailureMode::ServerError) => "server_error",
            Answer::Failed(FailureMode::SuccessFalse) => "success_false",
            Answer::Failed(FailureMode::Hang) => "hang",
            Answer::Accepted => "accepted",
        }
    }

    fn code(&self) -> Option<u32> {
        match self {
            Answer::Unauthorized => Some(10000),
            Answer::BadRequest(r) => Some(r.code),
            Answer::RateLimited => Some(CODE_RATE_LIMITED),
            Answer::Failed(FailureMode::SuccessFalse | FailureMode::Hang) => Some(1105),
            Answer::Failed(FailureMode::ServerError) | Answer::Accepted => None,
        }
    }
}

async fn purge(State(s): State<Shared>, Path(zone): Path<String>, headers: HeaderMap, body: String) -> Response {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let authorized = s.token.is_none() || token == s.token;
    let answer = {
        let mut inner = s.inner.lock().expect("state");
        let named = read_body(&body, inner.plan);
        // Order: authentication, the body, the rate limit, then injected failures.
        let answer = match (&named.purge, authorized) {
            (_, false) => Answer::Unauthorized,
            (Err(refusal), true) => Answer::BadRequest(refusal.clone()),
            (Ok(purge), true) if !inner.admit(purge) => Answer::RateLimited,
            (Ok(purge), true) => inner.injected_failure(purge).map_or(Answer::Accepted, Answer::Failed),
        };
        let removed = match (&answer, &named.purge) {
            (Answer::Accepted, Ok(purge)) => {
                let before = inner.cached.len();
                inner.cached.retain(|entry| !purge.removes(entry));
                before - inner.cached.len()
            }
            _ => 0,
        };
        let [files, tags, hosts, prefixes] = named.lists;
        inner.requests.push(PurgeRequest {
            at_ms: super::now_ms(),
            zone: zone.clone(),
            token,
            kind: named.kind,
            files,
            tags,
            hosts,
            prefixes,
            answer: answer.name().to_owned(),
            code: answer.code(),
            removed,
        });
        answer
    };
    match answer {
        Answer::Unauthorized => cloudflare_error(StatusCode::FORBIDDEN, 10000, "Authentication error"),
        Answer::BadRequest(refusal) => cloudflare_error(StatusCode::BAD_REQUEST, refusal.code, &refusal.message),
        // HTTP 429 is the stand-in's choice: the docs show code 1134 only as a "4XX example".
        Answer::RateLimited => cloudflare_error(StatusCode::TOO_MANY_REQUESTS, CODE_RATE_LIMITED, RATE_LIMITED_MESSAGE),
        Answer::Failed(FailureMode::ServerError) => {
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
        Answer::Failed(FailureMode::SuccessFalse) => {
            cloudflare_error(StatusCode::OK, 1105, "purge temporarily unavailable")
        }
        Answer::Failed(FailureMode::Hang) => {
            tokio::time::sleep(Duration::from_secs(60)).await;
            cloudflare_error(StatusCode::GATEWAY_TIMEOUT, 1105, "too late")
        }
        Answer::Accepted => {
            Json(json!({"success": true, "errors": [], "messages": [], "result": {"id": zone}})).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const TOKEN: &str = "test-purge-token";
    const ZONE_PATH: &str = "/client/v4/zones/zone-1/purge_cache";
    const LINK_TAG: &str = "bb-link-00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    const ACCOUNT_TAG: &str = "bb-acct-0123456789abcdef0123456789abcdef";
    const PAGE_KEY: &str = "https://share.example.com/__edge-cache/v2/r1/page/0011/en";

    /// A stand-in on an ephemeral loopback port.
    struct Server {
        addr: std::net::SocketAddr,
    }

    impl Server {
        async fn start() -> Server {
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await.expect("bind");
            let addr = listener.local_addr().expect("addr");
            tokio::spawn(async move { axum::serve(listener, router(Some(TOKEN.into()))).await });
            Server { addr }
        }

        /// One HTTP/1.1 request on its own connection: (status, JSON body or `null`).
        async fn call(&self, method: &str, path: &str, bearer: Option<&str>, body: Option<&Value>) -> (u16, Value) {
            let body = body.map(Value::to_string).unwrap_or_default();
            let auth = bearer
                .map(|t| format!("authorization: Bearer {t}\r\n"))
                .unwrap_or_default();
            let request = format!(
                "{method} {path} HTTP/1.1\r\nhost: {}\r\nconnection: close\r\ncontent-type: application/json\r\n\
                 {auth}content-length: {}\r\n\r\n{body}",
                self.addr,
                body.len()
            );
            let mut stream = tokio::net::TcpStream::connect(self.addr).await.expect("connect");
            stream.write_all(request.as_bytes()).await.expect("write");
            let mut response = Vec::new();
            stream.read_to_end(&mut response).await.expect("read");
            let response = String::from_utf8(response).expect("utf-8");
            let (head, body) = response.split_once("\r\n\r\n").expect("a response head");
            let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("a status");
            (status, serde_json::from_str(body).unwrap_or(Value::Null))
        }

        async fn purge(&self, body: Value) -> (u16, Value) {
            self.call("POST", ZONE_PATH, Some(TOKEN), Some(&body)).await
        }

        async fn cache(&self, key: &str, cache_tag: Option<&str>) {
            let (status, _) = self
                .call(
                    "PUT",
                    "/__control/cached",
                    None,
                    Some(&json!({"key": key, "cache_tag": cache_tag})),
                )
                .await;
            assert_eq!(status, 204);
        }

        async fn cached_keys(&self) -> Vec<String> {
            let (_, entries) = self.call("GET", "/__control/cached", None, None).await;
            entries
                .as_array()
                .expect("a list")
                .iter()
                .map(|e| e["key"].as_str().expect("key").to_owned())
                .collect()
        }

        async fn requests(&self) -> Vec<Value> {
            let (_, requests) = self.call("GET", "/__control/requests", None, None).await;
            requests.as_array().expect("a list").clone()
        }
    }

    fn error_code(answer: &Value) -> u64 {
        answer["errors"][0]["code"].as_u64().unwrap_or(0)
    }

    #[tokio::test]
    async fn a_files_purge_is_accepted_but_leaves_a_cache_api_entry_cached() {
        let server = Server::start().await;
        server.cache(PAGE_KEY, Some(LINK_TAG)).await;

        let (status, answer) = server.purge(json!({"files": [PAGE_KEY]})).await;

        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["success"], true);
        assert_eq!(
            server.cached_keys().await,
            [PAGE_KEY],
            "a Worker-chosen key cannot be purged by URL"
        );
        let request = &server.requests().await[0];
        assert_eq!(request["kind"], "files");
        assert_eq!(request["files"], json!([PAGE_KEY]));
        assert_eq!(request["answer"], "accepted");
        assert_eq!(request["removed"], 0);
    }

    #[tokio::test]
    async fn a_tag_purge_removes_the_entry_whatever_the_case_and_whitespace_of_its_cache_tag_header() {
        let server = Server::start().await;
        let other = "https://share.example.com/__edge-cache/v2/r1/page/9999/en";
        let header = format!(" {} ,, {ACCOUNT_TAG} ,", LINK_TAG.to_ascii_uppercase());
        server.cache(PAGE_KEY, Some(&header)).await;
        server.cache(other, Some("bb-link-other")).await;
        server.cache("https://share.example.com/untagged", None).await;

        let (status, answer) = server.purge(json!({"tags": [LINK_TAG]})).await;

        assert_eq!(status, 200, "{answer}");
        let left = server.cached_keys().await;
        assert_eq!(left, [other, "https://share.example.com/untagged"]);
        let request = &server.requests().await[0];
        assert_eq!((&request["kind"], &request["removed"]), (&json!("tags"), &json!(1)));
    }

    #[tokio::test]
    async fn a_purge_naming_101_tags_is_refused_and_removes_nothing() {
        let server = Server::start().await;
        server.cache(PAGE_KEY, Some(LINK_TAG)).await;
        let mut tags: Vec<String> = (0..100).map(|i| format!("bb-link-{i}")).collect();
        tags.push(LINK_TAG.into());

        let (status, answer) = server.purge(json!({ "tags": tags })).await;

        assert_eq!(status, 400, "{answer}");
        assert_eq!(answer["success"], false);
        let message = answer["errors"][0]["message"].as_str().unwrap_or("");
        assert!(message.contains("more than 100 items"), "{message}");
        assert_eq!(server.cached_keys().await, [PAGE_KEY]);
        let request = &server.requests().await[0];
        assert_eq!(
            (&request["answer"], &request["removed"]),
            (&json!("bad_request"), &json!(0))
        );
    }

    #[tokio::test]
    async fn purge_everything_alongside_tags_is_refused_with_error_1092() {
        let server = Server::start().await;
        server.cache(PAGE_KEY, Some(LINK_TAG)).await;

        let (status, answer) = server
            .purge(json!({"purge_everything": true, "tags": [LINK_TAG]}))
            .await;

        assert_eq!((status, error_code(&answer)), (400, 1092), "{answer}");
        assert_eq!(server.cached_keys().await, [PAGE_KEY]);
        let (status, _) = server.purge(json!({"purge_everything": true})).await;
        assert_eq!(status, 200);
        assert!(
            server.cached_keys().await.is_empty(),
            "purge everything alone removes every entry"
        );
    }

    #[tokio::test]
    async fn a_purge_naming_both_files_and_tags_is_refused() {
        let server = Server::start().await;

        let (status, answer) = server.purge(json!({"files": [PAGE_KEY], "tags": [LINK_TAG]})).await;

        assert_eq!(status, 400, "{answer}");
        assert_eq!(server.requests().await[0]["kind"], "several");
    }

    #[tokio::test]
    async fn a_tag_with_a_space_or_over_1024_characters_is_refused() {
        let server = Server::start().await;
        for bad in [
            "bb link".to_owned(),
            "x".repeat(MAX_TAG_LEN + 1),
            String::new(),
            "bé".to_owned(),
        ] {
            let (status, answer) = server.purge(json!({ "tags": [bad] })).await;
            assert_eq!(status, 400, "{answer}");
        }
        let (status, _) = server.purge(json!({ "tags": ["x".repeat(MAX_TAG_LEN)] })).await;
        assert_eq!(status, 200);
    }

    #[tokio::test]
    async fn host_and_prefix_purges_remove_only_the_entries_they_name() {
        let server = Server::start().await;
        let other_host = "https://other.example.com/__edge-cache/v2/r1/page/0011/en";
        let other_page = "https://share.example.com/__edge-cache/v2/r1/page/2222/en";
        server.cache(PAGE_KEY, None).await;
        server.cache(other_page, None).await;
        server.cache(other_host, None).await;

        let (status, _) = server
            .purge(json!({"prefixes": ["Share.Example.com/__edge-cache/v2/r1/page/0011"]}))
            .await;
        assert_eq!(status, 200);
        assert_eq!(server.cached_keys().await, [other_page, other_host]);
        let (status, _) = server.purge(json!({"prefixes": ["https://share.example.com/"]})).await;
        assert_eq!(status, 400, "a prefix carries no scheme");

        let (status, _) = server.purge(json!({"hosts": ["SHARE.example.com"]})).await;
        assert_eq!(status, 200);
        assert_eq!(server.cached_keys().await, [other_host]);
    }

    #[tokio::test]
    async fn on_the_free_plan_the_26th_purge_within_a_second_is_rate_limited_with_code_1134() {
        let server = Server::start().await;
        let (status, _) = server
            .call("PUT", "/__control/plan", None, Some(&json!({"plan": "free"})))
            .await;
        assert_eq!(status, 204);

        for i in 0..25 {
            let (status, answer) = server.purge(json!({ "tags": [format!("bb-link-{i}")] })).await;
            assert_eq!(status, 200, "purge {}: {answer}", i + 1);
        }
        let (status, answer) = server.purge(json!({"tags": ["bb-link-26"]})).await;

        assert_eq!((status, error_code(&answer)), (429, 1134), "{answer}");
        assert_eq!(answer["success"], false);
        assert_eq!(server.requests().await[25]["answer"], "rate_limited");
        let (status, _) = server
            .call("PUT", "/__control/plan", None, Some(&json!({"plan": "free"})))
            .await;
        assert_eq!(status, 204);
        let (status, _) = server.purge(json!({"tags": ["bb-link-27"]})).await;
        assert_eq!(status, 200, "setting the plan refills the bucket");
    }

    #[tokio::test]
    async fn a_wrong_bearer_token_is_refused_with_403() {
        let server = Server::start().await;
        server.cache(PAGE_KEY, Some(LINK_TAG)).await;

        let body = json!({"tags": [LINK_TAG]});
        let (status, answer) = server.call("POST", ZONE_PATH, Some("not-the-token"), Some(&body)).await;

        assert_eq!((status, error_code(&answer)), (403, 10000), "{answer}");
        let (status, _) = server.call("POST", ZONE_PATH, None, Some(&body)).await;
        assert_eq!(status, 403, "no token at all");
        assert_eq!(server.cached_keys().await, [PAGE_KEY]);
        assert_eq!(server.requests().await[0]["answer"], "unauthorized");
    }

    #[tokio::test]
    async fn a_failure_rule_matching_a_tag_answers_that_purge_and_it_removes_nothing() {
        let server = Server::start().await;
        server.cache(PAGE_KEY, Some(LINK_TAG)).await;
        let rule = json!({"mode": "success_false", "times": 1, "matching": &LINK_TAG[8..20]});
        let (status, _) = server.call("PUT", "/__control/failure", None, Some(&rule)).await;
        assert_eq!(status, 204);

        let (status, answer) = server.purge(json!({"tags": [LINK_TAG]})).await;
        assert_eq!((status, &answer["success"]), (200, &json!(false)), "{answer}");
        assert_eq!(server.cached_keys().await, [PAGE_KEY]);

        let (status, _) = server.purge(json!({"tags": [LINK_TAG]})).await;
        assert_eq!(status, 200);
        assert!(server.cached_keys().await.is_empty());
        let answers: Vec<Value> = server.requests().await.iter().map(|r| r["answer"].clone()).collect();
        assert_eq!(answers, [json!("success_false"), json!("accepted")]);
    }
}

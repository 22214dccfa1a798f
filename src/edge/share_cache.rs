//! The edge cache of share pages: one rendered page per (token hash, language), stored with its
//! render time so the share route (and cron prewarm, byte for byte the same) can apply
//! stale-while-revalidate and stale-if-error by hand.

use std::cell::RefCell;
use std::rc::Rc;

use bytes::Bytes;
use worker::{Cache, Headers, Response};

use babybook_jobs::purge::{after_purge_failure, PurgeDecision};
use babybook_jobs::{Id, Job, JobMessage};

use super::context::{self, Io, RequestContext};

use crate::alerts::Alert;
use crate::config::{Config, GlobalPurge};
use crate::error::ApiError;
use crate::lang::Lang;
use crate::reply::Reply;
use crate::share::cache_policy::{
    self, CacheStatus, CACHE_STATUS_HEADER, EXPIRES_AT_HEADER, GENERATION_HEADER, RENDERED_AT_HEADER,
};
use crate::share::headers::{apply_page_headers, weak_etag};
use crate::share::page::{render_share_view, with_share_url, SharePage};
use crate::share::page_memory::{self, PageMemory, Usage};
use crate::share::view::View;
use crate::share::{purge, TokenHash};
use crate::telemetry::{Level, LogLine};

use super::db::{self, Budget};
use super::faults::{count, Counter};
use super::jobs;

/// A rendered page as the cache holds it. Cloning it shares the body (a count, not a copy).
#[derive(Debug, Clone)]
pub struct CachedPage {
    pub body: Bytes,
    pub etag: String,
    pub rendered_at_ms: i64,
    pub expires_at_ms: Option<i64>,
    /// The digest of the data it was rendered from (`SharePage::generation`).
    pub generation: String,
}

/// Where a served page is: the request's `scheme://host` and the share URL of the view, put into
/// the page's `og:url` and `og:image` when it goes out (the cached page holds no token).
pub struct ServedAt<'a> {
    pub origin: &'a str,
    pub share_url: &'a str,
}

impl CachedPage {
    /// `None` when the share has no such view (a page past the end).
    pub fn render(page: &SharePage, lang: Lang, media_origin: &str, view: View, now_ms: i64) -> Option<CachedPage> {
        let html = render_share_view(page, lang, media_origin, view)?;
        count(Counter::Renders);
        let body = Bytes::from(html.into_bytes());
        let etag = weak_etag(&body);
        Some(CachedPage {
            body,
            etag,
            rendered_at_ms: now_ms,
            expires_at_ms: page.expires_at_ms,
            generation: page.generation.clone(),
        })
    }

    /// The response a client gets for this page: 200 with the body, or 304 when `not_modified`.
    pub fn to_reply(
        &self,
        lang: Lang,
        media_origin: &str,
        at: &ServedAt<'_>,
        status: CacheStatus,
        not_modified: bool,
    ) -> Reply {
        let mut reply = if not_modified {
            Reply::new(304)
        } else {
            Reply::new(200)
                .header("content-type", "text/html; charset=utf-8")
                .with_body(with_share_url(&self.body, at.origin, at.share_url))
        };
        apply_page_headers(&mut reply, &self.etag, lang, media_origin);
        reply.set_header(CACHE_STATUS_HEADER, status.as_str());
        reply
    }
}

/// Reads what a live link shows, through the narrow `public_share_page` door. `None` for unknown,
/// expired and revoked links alike.
pub async fn load(io: &Io, hash: &TokenHash) -> Result<Option<SharePage>, ApiError> {
    let json = db::call_with_bytes(io, Budget::Hot, "public_share_page", &hash.0).await?;
    match json {
        None => Ok(None),
        Some(text) => SharePage::from_json(&text)
            .map(Some)
            .map_err(|e| ApiError::new(crate::error::ErrorCode::Internal, format!("share page JSON: {e}"))),
    }
}

thread_local! {
    /// A small in-isolate copy of the hottest pages, in front of the Cache API: a hit served from
    /// here costs no cache lookup at all. Entries live `SHARE_MEMORY_TTL_MS` (2 s by default), so
    /// a revocation purged in another isolate reaches this one within that time; in this isolate
    /// a purge removes them at once. Bounded in bytes, not entries (see `page_memory`): a page
    /// over `page_memory::MAX_PAGE_BYTES` is served from the Cache API, never kept here.
    static MEMORY: RefCell<PageMemory<(TokenHash, Lang, View), CachedPage>> =
        RefCell::new(PageMemory::new(page_memory::BUDGET_BYTES, page_memory::MAX_PAGE_BYTES));
}

/// What an entry costs the isolate: the body and the ETag (the rest is the fixed overhead).
fn page_bytes(page: &CachedPage) -> usize {
    page.body.len() + page.etag.len()
}

/// The in-isolate memory's entries and bytes (for the test counters).
pub fn memory_usage() -> Usage {
    MEMORY.with(|m| m.borrow().usage())
}

fn memory_get(config: &Config, hash: &TokenHash, lang: Lang, view: View, now_ms: i64) -> Option<CachedPage> {
    let ttl = i64::try_from(config.share_memory_ttl_ms).unwrap_or(0);
    // A shared entry; the clone below counts a reference to the body, it copies no page.
    MEMORY.with(|m| {
        m.borrow()
            .get(&(*hash, lang, view), now_ms, ttl)
            .map(|page| CachedPage::clone(&page))
    })
}

fn memory_put(config: &Config, hash: &TokenHash, lang: Lang, view: View, page: &CachedPage, now_ms: i64) {
    if config.share_memory_ttl_ms == 0 {
        return;
    }
    let ttl = i64::try_from(config.share_memory_ttl_ms).unwrap_or(0);
    MEMORY.with(|m| {
        m.borrow_mut().put(
            (*hash, lang, view),
            Rc::new(page.clone()),
            page_bytes(page),
            now_ms,
            ttl,
        )
    });
}

/// The link's first page in `lang`, if cached.
pub async fn get(config: &Config, hash: &TokenHash, lang: Lang) -> Option<CachedPage> {
    get_view(config, hash, lang, View::FIRST).await
}

pub async fn get_view(config: &Config, hash: &TokenHash, lang: Lang, view: View) -> Option<CachedPage> {
    let now = super::context::now_ms();
    if let Some(page) = memory_get(config, hash, lang, view, now) {
        return Some(page);
    }
    let page = cache_api_get(config, hash, lang, view).await?;
    memory_put(config, hash, lang, view, &page, now);
    Some(page)
}

async fn cache_api_get(config: &Config, hash: &TokenHash, lang: Lang, view: View) -> Option<CachedPage> {
    let cache = Cache::default();
    let mut response = cache
        .get(
            cache_policy::view_cache_key(config.cache_host(), hash, lang, view),
            true,
        )
        .await
        .ok()??;
    let etag = response.headers().get("etag").ok()??;
    let rendered_at_ms = response.headers().get(RENDERED_AT_HEADER).ok()??.parse().ok()?;
    let expires_at_ms = response
        .headers()
        .get(EXPIRES_AT_HEADER)
        .ok()
        .flatten()
        .and_then(|v| v.parse().ok());
    let generation = response
        .headers()
        .get(GENERATION_HEADER)
        .ok()
        .flatten()
        .unwrap_or_default();
    let body = Bytes::from(response.bytes().await.ok()?);
    Some(CachedPage {
        body,
        etag,
        rendered_at_ms,
        expires_at_ms,
        generation,
    })
}

/// Stores the link's first page in `lang`.
pub async fn put(config: &Config, hash: &TokenHash, lang: Lang, page: &CachedPage) -> Result<(), String> {
    put_view(config, hash, lang, View::FIRST, page).await
}

pub async fn put_view(
    config: &Config,
    hash: &TokenHash,
    lang: Lang,
    view: View,
    page: &CachedPage,
) -> Result<(), String> {
    let headers = Headers::new();
    let set = |k: &str, v: &str| headers.set(k, v).map_err(|e| e.to_string());
    set("content-type", "text/html; charset=utf-8")?;
    set("etag", &page.etag)?;
    set(RENDERED_AT_HEADER, &page.rendered_at_ms.to_string())?;
    set(GENERATION_HEADER, &page.generation)?;
    if let Some(at) = page.expires_at_ms {
        set(EXPIRES_AT_HEADER, &at.to_string())?;
    }
    // How long the Cache API keeps it: well past max-age, for stale-if-error.
    set(
        "cache-control",
        &format!("public, max-age={}", cache_policy::cache_entry_ttl_seconds()),
    )?;
    let response = super::js_body::response(200, headers.0, Some(&page.body));
    memory_put(config, hash, lang, view, page, super::context::now_ms());
    let key = cache_policy::view_cache_key(config.cache_host(), hash, lang, view);
    default_cache_put(&key, &response).await
}

/// `caches.default.put` with the runtime's own `Response`: `worker::Cache::put` takes a
/// `worker::Response`, which builds a second JavaScript `Response` from the first.
async fn default_cache_put(key: &str, response: &worker::web_sys::Response) -> Result<(), String> {
    use wasm_bindgen::JsCast;
    use worker::worker_sys::ext::CacheStorageExt;
    let global: worker::web_sys::WorkerGlobalScope = js_sys::global().unchecked_into();
    let caches = global.caches().map_err(|e| format!("{e:?}"))?;
    wasm_bindgen_futures::JsFuture::from(caches.default().put_with_str(key, response))
        .await
        .map(|_| ())
        .map_err(|e| format!("{e:?}"))
}

/// When a fresh render is stored in this isolate's memory and the data center's cache: before
/// answering (prewarm), or right after, in `waitUntil` (a request's miss: the family waits for
/// the database and the render, not for the cache write).
#[derive(Clone, Copy)]
enum Store<'a> {
    Now,
    AfterAnswering(&'a Io),
}

/// Removes every list page in every language (and their revalidation markers) of a link from
/// this data center's cache, and every view of it from this isolate: enough when the link is
/// found gone or expired, which every data center finds alone. Its moment views are left to
/// expire: without the first page they are never served (`cache_policy::moment_view_current`).
pub async fn purge_here(config: &Config, hash: &TokenHash) -> Vec<String> {
    MEMORY.with(|m| m.borrow_mut().retain(|(h, _, _), _| h != hash));
    let host = config.cache_host();
    let urls = purge::page_urls(host, hash);
    let markers = Lang::ALL.iter().flat_map(|&lang| {
        View::all_list_pages().map(move |view| cache_policy::revalidation_marker_key(host, hash, lang, view))
    });
    let deletes = urls.iter().cloned().chain(markers).map(|key| async move {
        let _ = Cache::default().delete(key.as_str(), true).await;
    });
    futures_util::future::join_all(deletes).await;
    urls
}

/// On revoke and edit: purges this isolate and this data center before the answer goes out, then
/// every data center in the background (`waitUntil`), so the answer never waits for the purge
/// API. That background try gets `PURGE_TIMEOUT_MS`; if it fails (another status, `success:
/// false`, no answer in time, or a deployed environment without `CF_ZONE_ID` and
/// `CACHE_PURGE_TOKEN`), a `purge` job takes over, which the consumer retries with backoff until
/// the API accepts it (`babybook_jobs::purge`).
pub async fn purge(cx: &RequestContext, account_id: Id, hash: &TokenHash) {
    purge_here(cx.config(), hash).await;
    if cx.config().global_purge() == GlobalPurge::Off {
        return;
    }
    let (io, settings, trace, hash) = (cx.io.clone(), cx.settings.clone(), cx.trace_id.clone(), *hash);
    cx.io.lifeline.wait_until(async move {
        let config = &settings.config;
        let line = |level, text: &str| {
            context::line(config, &trace, level, text)
                .account(&account_id)
                .field("token_hash", hash.short())
        };
        let detail = match purge_globally(config, &hash).await {
            Ok(()) => {
                context::emit(&line(Level::Info, "global cache purge"));
                return;
            }
            Err(detail) => detail,
        };
        let now = context::now_ms();
        let PurgeDecision::Retry { delay_seconds, alert } = after_purge_failure(1, now, now, PURGE_HORIZON_MS) else {
            return;
        };
        let queued = match crate::secure_random::new_id() {
            Ok(job_id) => {
                let message = JobMessage::new(
                    job_id,
                    account_id,
                    trace.clone(),
                    now,
                    Job::Purge {
                        token_hash: hash.to_hex(),
                        failed_attempts: 1,
                    },
                );
                jobs::publish_after(&io, config, &message, delay_seconds)
                    .await
                    .map(|()| message.job_id)
            }
            Err(e) => Err(format!("randomness: {e}")),
        };
        let failed = match queued {
            Ok(job_id) => {
                purge_failure_line(&line, 1, &detail, delay_seconds, alert).field("job_id", job_id.to_string())
            }
            // Nothing will try again: say so as loudly as a purge that keeps failing.
            Err(e) => Alert::PurgeFailing
                .on(line(Level::Error, "global cache purge lost"))
                .field("failed_attempts", 1)
                .field("detail", detail)
                .field("publish_error", e),
        };
        super::alerts::raise(&io, config, failed);
    });
}

/// How long after it was asked for a purge is still worth retrying: the edge cache keeps a page
/// this long, so by then every copy it would remove has expired.
pub const PURGE_HORIZON_MS: i64 = cache_policy::cache_entry_ttl_seconds() * 1000;

/// The log line of a failed purge try: a warning, or from the `PURGE_ALERT_AFTER_FAILURES`-th
/// failure on the `purge_failing` alert (Sev-2: a revoked link may still be served elsewhere).
pub fn purge_failure_line(
    line: &dyn Fn(Level, &str) -> LogLine,
    failed_attempts: u32,
    detail: &str,
    retry_in_seconds: u32,
    alert: bool,
) -> LogLine {
    let base = if alert {
        Alert::PurgeFailing.on(line(Level::Error, "global cache purge failing"))
    } else {
        line(Level::Warn, "global cache purge failed")
    };
    base.field("failed_attempts", failed_attempts)
        .field("detail", detail.to_owned())
        .field("retry_in_seconds", retry_in_seconds)
}

/// One call of the zone purge API naming every language's page of the link. `Ok` only when the
/// API accepted it (a 2xx with `"success": true`).
pub async fn purge_globally(config: &Config, hash: &TokenHash) -> Result<(), String> {
    use worker::{Fetch, Method, Request, RequestInit};
    let GlobalPurge::Configured(settings) = config.global_purge() else {
        return Err("CF_ZONE_ID or CACHE_PURGE_TOKEN is not set: other data centers cannot be purged".into());
    };
    let urls = purge::page_urls(config.cache_host(), hash);
    let headers = Headers::new();
    let _ = headers.set("authorization", &format!("Bearer {}", settings.token.expose()));
    let _ = headers.set("content-type", "application/json");
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_headers(headers)
        .with_body(Some(purge::request_body(&urls).into()));
    let request = Request::new_with_init(&purge::request_url(settings), &init).map_err(|e| e.to_string())?;
    let call = async {
        let mut response = Fetch::Request(request).send().await.map_err(|e| e.to_string())?;
        let status = response.status_code();
        let body = response.text().await.unwrap_or_default();
        Ok::<_, String>((status, body))
    };
    match super::timeout::within(purge::PURGE_TIMEOUT_MS, call).await {
        Ok(Ok((status, body))) => purge::accepted(status, &body),
        Ok(Err(e)) => Err(format!("purge API unreachable: {e}")),
        Err(_) => Err(format!(
            "purge API gave no answer within {} ms",
            purge::PURGE_TIMEOUT_MS
        )),
    }
}

/// Claims the right to re-render a stale page: false if another request claimed it recently, so
/// a burst of stale hits triggers one render, not hundreds.
pub async fn claim_revalidation(config: &Config, hash: &TokenHash, lang: Lang, view: View) -> bool {
    let cache = Cache::default();
    let key = cache_policy::revalidation_marker_key(config.cache_host(), hash, lang, view);
    if matches!(cache.get(key.as_str(), true).await, Ok(Some(_))) {
        return false;
    }
    let headers = Headers::new();
    let _ = headers.set(
        "cache-control",
        &format!("public, max-age={}", cache_policy::REVALIDATION_MARKER_SECONDS),
    );
    let marker = Response::builder()
        .with_status(200)
        .with_headers(headers)
        .fixed(b"1".to_vec());
    cache.put(key.as_str(), marker).await.is_ok()
}

pub async fn release_revalidation(config: &Config, hash: &TokenHash, lang: Lang, view: View) {
    let _ = Cache::default()
        .delete(
            cache_policy::revalidation_marker_key(config.cache_host(), hash, lang, view),
            true,
        )
        .await;
}

/// Renders a link's first page in `langs` and stores each. `Ok(None)`: the link is not live (its
/// cached pages are purged). Used by cron prewarm.
pub async fn render_and_store(
    io: &Io,
    config: &Config,
    hash: &TokenHash,
    langs: &[Lang],
    now_ms: i64,
) -> Result<Option<Vec<(Lang, CachedPage)>>, ApiError> {
    let Some(page) = load(io, hash).await? else {
        purge_here(config, hash).await;
        return Ok(None);
    };
    let mut pages = Vec::with_capacity(langs.len());
    for &lang in langs {
        if let Some(rendered) = render_and_put(config, hash, &page, lang, View::FIRST, now_ms, Store::Now).await {
            pages.push((lang, rendered));
        }
    }
    Ok(Some(pages))
}

/// What a render from the database gave for one view.
pub enum Rendered {
    /// The link is not live (its cached pages are purged).
    Gone,
    /// The link is live but has no such page (`?page=` past the end): the 404 page, nothing purged.
    NoSuchView,
    Page(CachedPage),
}

/// Renders one view of a link and stores it. A moment's full view also stores the first page
/// when the cached one is of other data, so the two agree on the generation.
pub async fn render_and_store_view(
    io: &Io,
    config: &Config,
    hash: &TokenHash,
    lang: Lang,
    view: View,
    first_page_generation: Option<&str>,
    now_ms: i64,
) -> Result<Rendered, ApiError> {
    let Some(page) = load(io, hash).await? else {
        purge_here(config, hash).await;
        return Ok(Rendered::Gone);
    };
    let store = Store::AfterAnswering(io);
    let Some(rendered) = render_and_put(config, hash, &page, lang, view, now_ms, store).await else {
        return Ok(Rendered::NoSuchView);
    };
    if matches!(view, View::Moment(_)) && first_page_generation != Some(page.generation.as_str()) {
        render_and_put(config, hash, &page, lang, View::FIRST, now_ms, store).await;
    }
    Ok(Rendered::Page(rendered))
}

async fn render_and_put(
    config: &Config,
    hash: &TokenHash,
    page: &SharePage,
    lang: Lang,
    view: View,
    now_ms: i64,
    store: Store<'_>,
) -> Option<CachedPage> {
    let rendered = CachedPage::render(page, lang, &config.media_origin, view, now_ms)?;
    // Serving beats caching: if the write fails the page still goes out, and the next request
    // renders again.
    let put_failed = |config: &Config, e: String| {
        let line = context::line(config, &context::new_trace_id(), Level::Warn, "cache put failed");
        context::emit(&line.field("detail", e));
    };
    match store {
        Store::Now => {
            if let Err(e) = put_view(config, hash, lang, view, &rendered).await {
                put_failed(config, e);
            }
        }
        Store::AfterAnswering(io) => {
            let (config, hash, page) = (config.clone(), *hash, rendered.clone());
            io.lifeline.wait_until(async move {
                if let Err(e) = put_view(&config, &hash, lang, view, &page).await {
                    put_failed(&config, e);
                }
            });
        }
    }
    Some(rendered)
}

//! The edge cache of share pages: one rendered page per (token hash, language), stored with its
//! render time so the share route (and cron prewarm, byte for byte the same) can apply
//! stale-while-revalidate and stale-if-error by hand.

use std::cell::RefCell;
use std::rc::Rc;

use bytes::Bytes;
use worker::{Cache, Headers, Response};

use babybook_jobs::purge::{after_purge_failure, PurgeDecision};
use babybook_jobs::{Id, JobMessage};

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
use crate::share::link::{resolution_cache_tags, split_link_page, LinkInfo, LinkKey, Resolution};
use crate::share::page::{render_share_view, with_share_url, SharePage};
use crate::share::page_memory::{self, PageMemory, Usage};
use crate::share::purge::{self, PurgeTarget};
use crate::share::view::View;
use crate::share::TokenHash;
use babybook_jobs::TraceId;

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
    /// Its `Cache-Tag` header (`share::purge`): what a global purge names. Set on a render;
    /// empty on a copy read back from the cache.
    pub cache_tags: String,
}

/// Where a served page is: the request's `scheme://host` and the share URL of the view, put into
/// the page's `og:url` and `og:image` when it goes out (the cached page holds no token).
pub struct ServedAt<'a> {
    pub origin: &'a str,
    pub share_url: &'a str,
}

impl CachedPage {
    /// `None` when the share has no such view (a page past the end).
    pub fn render(
        page: &SharePage,
        hash: &TokenHash,
        lang: Lang,
        media_origin: &str,
        view: View,
        now_ms: i64,
    ) -> Option<CachedPage> {
        let html = render_share_view(page, lang, media_origin, view)?;
        count(Counter::Renders);
        let cache_tags = match &page.account_id {
            Some(account) => purge::cache_tag_header(hash, account),
            None => purge::link_tag(hash),
        };
        let body = Bytes::from(html.into_bytes());
        let etag = weak_etag(&body);
        Some(CachedPage {
            body,
            etag,
            rendered_at_ms: now_ms,
            expires_at_ms: page.expires_at_ms,
            generation: page.generation.clone(),
            cache_tags,
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

/// Reads what a live link shows (its share's page) and where that page is cached, through the
/// narrow `public_share_link_page` door. `None` for unknown, expired and revoked links (or
/// shares) alike.
pub async fn load(io: &Io, token: &TokenHash) -> Result<Option<(SharePage, LinkInfo)>, ApiError> {
    let text = db::call_with_bytes(io, Budget::Hot, "public_share_link_page", &token.0).await?;
    let Some(text) = text else { return Ok(None) };
    let internal = |detail: String| ApiError::new(crate::error::ErrorCode::Internal, detail);
    let (page, link) = split_link_page(&text).map_err(internal)?;
    let page = SharePage::from_json(page).map_err(|e| internal(format!("share page JSON: {e}")))?;
    Ok(Some((page, link)))
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

thread_local! {
    /// Recipient tokens' resolutions, in front of their Cache API entries, for as long as pages
    /// are kept here. `None`: the token is its own page key (a share's own link, or a token this
    /// isolate has not seen resolved yet).
    static RESOLUTIONS: RefCell<PageMemory<TokenHash, Option<Resolution>>> =
        RefCell::new(PageMemory::new(RESOLUTION_MEMORY_BYTES, RESOLUTION_ENTRY_BYTES));
}

/// What the resolutions kept in an isolate may take, and what each is counted as.
const RESOLUTION_MEMORY_BYTES: usize = 256 * 1024;
const RESOLUTION_ENTRY_BYTES: usize = 128;

/// Where a token's request reads its page.
pub enum Resolved {
    /// `locked`: the link has a passphrase (known here from its resolution; a first request in
    /// this data center learns it from the database, in [`render_and_store_view`]).
    Page { link: LinkKey, locked: bool },
    /// A recipient link whose own expiry has passed (its resolution is purged here).
    Expired,
}

/// The page key of `token`: a recipient's resolution from this isolate or this data center's
/// cache, and otherwise the token's own hash (a share's own link; a recipient's first request
/// here reads the database, which says, and the page is then looked up under its share's key).
pub async fn resolve(config: &Config, token: &TokenHash, now_ms: i64) -> Resolved {
    let ttl = i64::try_from(config.share_memory_ttl_ms).unwrap_or(0);
    let remembered = RESOLUTIONS.with(|r| r.borrow().get(token, now_ms, ttl).map(|r| *r));
    let resolution = match remembered {
        Some(resolution) => resolution,
        None => {
            let stored = cache_api_resolution(config, token).await;
            remember_resolution(config, token, stored, now_ms);
            stored
        }
    };
    match resolution {
        Some(r) if cache_policy::link_expired(r.expires_at_ms, now_ms) => {
            purge_here(config, &[*token]).await;
            Resolved::Expired
        }
        Some(r) => Resolved::Page {
            link: LinkKey {
                token: *token,
                page: r.page_key,
            },
            locked: r.locked,
        },
        None => Resolved::Page {
            link: LinkKey {
                token: *token,
                page: *token,
            },
            locked: false,
        },
    }
}

fn remember_resolution(config: &Config, token: &TokenHash, resolution: Option<Resolution>, now_ms: i64) {
    if config.share_memory_ttl_ms == 0 {
        return;
    }
    let ttl = i64::try_from(config.share_memory_ttl_ms).unwrap_or(0);
    RESOLUTIONS.with(|r| {
        r.borrow_mut()
            .put(*token, Rc::new(resolution), RESOLUTION_ENTRY_BYTES, now_ms, ttl)
    });
}

async fn cache_api_resolution(config: &Config, token: &TokenHash) -> Option<Resolution> {
    let key = cache_policy::resolution_cache_key(config.cache_host(), token);
    let mut response = Cache::default().get(key, true).await.ok()??;
    Resolution::from_text(&response.text().await.ok()?)
}

/// Stores a recipient token's resolution (read from the database with `link`), then reads the
/// link's fence again: if the link changed or went meanwhile, the resolution is removed, as
/// [`store_fenced`] does for pages.
async fn store_resolution(io: &Io, config: &Config, token: &TokenHash, link: &LinkInfo, account: Option<Id>) {
    let resolution = Resolution {
        page_key: link.page_key,
        expires_at_ms: link.expires_at_ms,
        locked: link.locked,
    };
    let headers = Headers::new();
    let _ = headers.set(
        "cache-control",
        &format!("public, max-age={}", cache_policy::cache_entry_ttl_seconds()),
    );
    if let Some(account) = &account {
        let _ = headers.set("cache-tag", &resolution_cache_tags(token, &link.page_key, account));
    }
    let body = resolution.to_text();
    let response = super::js_body::response(200, headers.0, Some(body.as_bytes()));
    let key = cache_policy::resolution_cache_key(config.cache_host(), token);
    remember_resolution(config, token, Some(resolution), context::now_ms());
    if let Err(e) = default_cache_put(&key, &response).await {
        let line = context::line(config, &context::new_trace_id(), Level::Warn, "cache put failed");
        context::emit(&line.field("detail", e));
    }
    let now = db::call_with_bytes(io, Budget::Hot, "share_page_fence", &token.0).await;
    if matches!(&now, Ok(Some(fence)) if Some(fence) == link.fence.as_ref()) || now.is_err() {
        return;
    }
    RESOLUTIONS.with(|r| r.borrow_mut().remove(token));
    let _ = Cache::default().delete(key.as_str(), true).await;
    count(Counter::FencedWrites);
    context::emit(
        &context::line(
            config,
            &context::new_trace_id(),
            Level::Warn,
            "share cache write fenced",
        )
        .field("token_hash", token.short())
        .field("reason", "the link changed while it was resolved"),
    );
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
        // Not read back: a lookup needs none of it (only a re-put would, and only the test
        // controls re-put a page read back; they copy it themselves).
        cache_tags: String::new(),
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
    // Cloudflare keeps it with the entry (and never sends it on): what a purge by tag matches.
    if !page.cache_tags.is_empty() {
        set("cache-tag", &page.cache_tags)?;
    }
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
pub async fn default_cache_put(key: &str, response: &worker::web_sys::Response) -> Result<(), String> {
    use wasm_bindgen::JsCast;
    use worker::worker_sys::ext::CacheStorageExt;
    let global: worker::web_sys::WorkerGlobalScope = js_sys::global().unchecked_into();
    let caches = global.caches().map_err(|e| format!("{e:?}"))?;
    wasm_bindgen_futures::JsFuture::from(caches.default().put_with_str(key, response))
        .await
        .map(|_| ())
        .map_err(|e| format!("{e:?}"))
}

/// Removes every list page in every language (and their revalidation markers) of these links
/// from this data center's cache, every view of them from this isolate, and a recipient token's
/// resolution from both: enough when a link is found gone or expired, which every data center
/// finds alone, and the first step of every purge. Moment views are left to expire: without their first page they are never served
/// (`cache_policy::moment_view_current`). Keys hold this Worker's render version; another
/// version's copies (a canary) go with the purge by tag.
pub async fn purge_here(config: &Config, hashes: &[TokenHash]) {
    if hashes.is_empty() {
        return;
    }
    MEMORY.with(|m| m.borrow_mut().retain(|(h, _, _), _| !hashes.contains(h)));
    RESOLUTIONS.with(|r| r.borrow_mut().retain(|h, _| !hashes.contains(h)));
    let host = config.cache_host();
    let keys = hashes.iter().flat_map(|hash| {
        Lang::ALL
            .iter()
            .flat_map(move |&lang| {
                View::all_list_pages().flat_map(move |view| {
                    [
                        cache_policy::view_cache_key(host, hash, lang, view),
                        cache_policy::revalidation_marker_key(host, hash, lang, view),
                    ]
                })
            })
            .chain(std::iter::once(cache_policy::resolution_cache_key(host, hash)))
    });
    let deletes = keys.map(|key| async move {
        let _ = Cache::default().delete(key.as_str(), true).await;
    });
    futures_util::future::join_all(deletes).await;
}

/// A purge the database already holds as an intent (the triggers of migration V12 note it in the
/// transaction of the change): what to purge, and the version of the link or account it covers
/// (`confirm_purges` clears the intent only up to that version).
#[derive(Debug, Clone, Copy)]
pub struct PurgeIntent {
    pub target: PurgeTarget,
    pub version: i64,
}

/// After a change that alters pages: purges `here` (the links this data center may hold) in
/// this isolate and data center before the answer goes out, then every data center by cache tag
/// in the background (`waitUntil`), so the answer never waits for the purge API. Accepted: the
/// intent is confirmed. Refused (another status, `success: false`, no answer within
/// `PURGE_TIMEOUT_MS`, a deployed environment without `CF_ZONE_ID` and `CACHE_PURGE_TOKEN`): a
/// purge job retries with backoff; and whatever happens to this isolate, the intent stays in
/// the database for the cron sweep ([`sweep_pending_purges`]).
pub async fn purge(cx: &RequestContext, account_id: Id, intent: PurgeIntent, here: &[TokenHash]) {
    purge_here(cx.config(), here).await;
    let (io, settings, trace) = (cx.io.clone(), cx.settings.clone(), cx.trace_id.clone());
    cx.io.lifeline.wait_until(async move {
        let config = &settings.config;
        if config.global_purge() == GlobalPurge::Off {
            // Local: this data center is every data center.
            let _ = confirm_purges(&io, &[intent]).await;
            return;
        }
        let line = |level, text: &str| purge_line(config, &trace, level, text, account_id, intent.target);
        let detail = match purge_globally(config, &[intent.target]).await {
            Ok(()) => {
                let confirmed = confirm_purges(&io, &[intent]).await;
                let mut done = line(Level::Info, "global cache purge");
                if let Err(e) = confirmed {
                    // The sweep purges it again and confirms it then.
                    done = done.field("confirm_error", e.detail);
                }
                context::emit(&done);
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
                let message = JobMessage::new(job_id, account_id, trace.clone(), now, purge_job(intent.target, 1));
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
            // No job will try again soon; the sweep still will (the intent is in the database).
            Err(e) => Alert::PurgeFailing
                .on(line(Level::Error, "global cache purge failed, left to the sweep"))
                .field("failed_attempts", 1)
                .field("detail", detail)
                .field("publish_error", e),
        };
        super::alerts::raise(&io, config, failed);
    });
}

fn purge_line(
    config: &Config,
    trace: &TraceId,
    level: Level,
    text: &str,
    account_id: Id,
    target: PurgeTarget,
) -> LogLine {
    let line = context::line(config, trace, level, text).account(&account_id);
    match target {
        PurgeTarget::Link(hash) => line.field("token_hash", hash.short()).field("purge_scope", "link"),
        PurgeTarget::Account(_) => line.field("purge_scope", "account"),
    }
}

/// Clears the intents of purges the API accepted (up to the versions they covered).
pub async fn confirm_purges(io: &Io, intents: &[PurgeIntent]) -> Result<(), ApiError> {
    use crate::sql_text;
    let links: Vec<(TokenHash, i64)> = intents
        .iter()
        .filter_map(|i| match i.target {
            PurgeTarget::Link(hash) => Some((hash, i.version)),
            PurgeTarget::Account(_) => None,
        })
        .collect();
    let accounts: Vec<(Id, i64)> = intents
        .iter()
        .filter_map(|i| match i.target {
            PurgeTarget::Account(id) => Some((id, i.version)),
            PurgeTarget::Link(_) => None,
        })
        .collect();
    let call = format!(
        "SELECT confirm_purges({}, {}, {}, {})",
        sql_text::bytea_array(links.iter().map(|(h, _)| &h.0[..])),
        sql_text::int8_array(links.iter().map(|(_, v)| *v)),
        sql_text::uuid_array(accounts.iter().map(|(id, _)| *id)),
        sql_text::int8_array(accounts.iter().map(|(_, v)| *v)),
    );
    let sql = sql_text::transaction(Budget::Standard.statement_ms(), None, &[call]);
    db::one_message(io, Budget::Standard, &sql).await.map(|_| ())
}

/// The links of an account this data center may hold pages of, and the account's pages version:
/// what an account-wide purge removes here and the version it covers (`account_purge_scope`),
/// read inside the transaction of the change.
pub async fn account_scope(tx: &db::Tx, account_id: Id) -> Result<(i64, Vec<TokenHash>), ApiError> {
    use tokio_postgres::types::Type;
    let account = account_id.to_string();
    let row = tx
        .one(
            "SELECT version, token_hashes FROM account_purge_scope($1::uuid)",
            &[(&account, Type::TEXT)],
        )
        .await?;
    Ok((
        db::col(&row, 0)?,
        purge::parse_token_hashes(&db::col::<String>(&row, 1)?),
    ))
}

/// [`account_scope`] on a connection of its own, after a change another system committed.
pub async fn account_scope_now(io: &Io, account_id: Id) -> Result<(i64, Vec<TokenHash>), ApiError> {
    let call = format!("SELECT version, token_hashes FROM account_purge_scope('{account_id}')");
    let sql = crate::sql_text::transaction(Budget::Standard.statement_ms(), None, &[call]);
    let rows = db::one_message(io, Budget::Standard, &sql).await?;
    let row = rows
        .get(1)
        .ok_or_else(|| ApiError::new(crate::error::ErrorCode::Internal, "no such account"))?;
    let text = |i: usize| row.try_get(i).ok().flatten().unwrap_or_default();
    let version = text(0)
        .parse()
        .map_err(|_| ApiError::new(crate::error::ErrorCode::Internal, "account_purge_scope: version"))?;
    Ok((version, purge::parse_token_hashes(text(1))))
}

/// Every purge still pending in the database for at least `SWEEP_MIN_AGE_SECONDS` (the edge's
/// own try gets that long): each is purged here, then by tag in every data center, in calls of at
/// most `MAX_TAGS_PER_CALL` tags; what the API accepts is confirmed, the rest stays for the next
/// run. A purge pending longer than `PURGE_OVERDUE_SECONDS` while the API refuses is the
/// `purge_failing` alert.
pub async fn sweep_pending_purges(io: &Io, config: &Config, trace: &TraceId) -> Result<serde_json::Value, String> {
    let call = format!(
        "SELECT kind, account_id::text, version::text, token_hashes, pending_seconds::text \
         FROM pending_purges('{SWEEP_MIN_AGE_SECONDS} seconds'::interval, 500)"
    );
    let sql = crate::sql_text::transaction(Budget::Standard.statement_ms(), None, &[call]);
    let rows = db::one_message(io, Budget::Standard, &sql)
        .await
        .map_err(|e| e.detail)?;
    let mut intents = Vec::with_capacity(rows.len());
    let mut here = Vec::new();
    let mut oldest_seconds = 0i64;
    // The first row is the settings statement's.
    for row in rows.iter().skip(1) {
        let text = |i: usize| row.try_get(i).ok().flatten().unwrap_or_default();
        let (Ok(account), Ok(version)) = (Id::parse(text(1)), text(2).parse::<i64>()) else {
            continue;
        };
        oldest_seconds = oldest_seconds.max(text(4).parse().unwrap_or(0));
        let hashes = purge::parse_token_hashes(text(3));
        let target = match (text(0), hashes.first()) {
            ("link", Some(hash)) => PurgeTarget::Link(*hash),
            ("account", _) => PurgeTarget::Account(account),
            _ => continue,
        };
        here.extend(hashes);
        intents.push(PurgeIntent { target, version });
    }
    purge_here(config, &here).await;
    let mut confirmed = Vec::new();
    let mut failures = Vec::new();
    if config.global_purge() == GlobalPurge::Off {
        confirmed = intents.clone();
    } else {
        for batch in intents.chunks(purge::MAX_TAGS_PER_CALL) {
            let targets: Vec<PurgeTarget> = batch.iter().map(|i| i.target).collect();
            match purge_globally(config, &targets).await {
                Ok(()) => confirmed.extend_from_slice(batch),
                Err(detail) => failures.push(detail),
            }
        }
    }
    if !confirmed.is_empty() {
        confirm_purges(io, &confirmed).await.map_err(|e| e.detail)?;
    }
    if oldest_seconds > PURGE_OVERDUE_SECONDS && !failures.is_empty() {
        let line = context::line(config, trace, Level::Error, "cache purges overdue")
            .field("pending", intents.len())
            .field("oldest_pending_seconds", oldest_seconds)
            .field("detail", failures.join("; "));
        super::alerts::raise(io, config, Alert::PurgeFailing.on(line));
    }
    Ok(serde_json::json!({
        "pending": intents.len(),
        "confirmed": confirmed.len(),
        "failed_calls": failures.len(),
        "oldest_pending_seconds": oldest_seconds,
    }))
}

/// How long a purge intent is left to the edge's own try before the sweep repeats it.
pub const SWEEP_MIN_AGE_SECONDS: u32 = 30;
/// A purge still pending after this long, with the API refusing it, is the `purge_failing` alert.
pub const PURGE_OVERDUE_SECONDS: i64 = 600;

pub use crate::jobs::purge::{purge_failure_line, purge_job, PURGE_HORIZON_MS};

/// One call of the zone purge API per `MAX_TAGS_PER_CALL` tags of `targets`. `Ok` only when the
/// API accepted every call (a 2xx with `"success": true`).
pub async fn purge_globally(config: &Config, targets: &[PurgeTarget]) -> Result<(), String> {
    let GlobalPurge::Configured(settings) = config.global_purge() else {
        return Err("CF_ZONE_ID or CACHE_PURGE_TOKEN is not set: other data centers cannot be purged".into());
    };
    for tags in purge::tag_batches(targets) {
        purge_call(settings, &tags).await?;
    }
    Ok(())
}

async fn purge_call(settings: &crate::config::CachePurge, tags: &[String]) -> Result<(), String> {
    use worker::{Fetch, Method, Request, RequestInit};
    let headers = Headers::new();
    let _ = headers.set("authorization", &format!("Bearer {}", settings.token.expose()));
    let _ = headers.set("content-type", "application/json");
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_headers(headers)
        .with_body(Some(purge::request_body(tags).into()));
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

/// Renders a link's first page in `langs` and stores each before returning (fenced: see
/// [`store_fenced`]). `Ok(None)`: the link is not live (its cached pages are purged here). Used by
/// cron prewarm.
pub async fn render_and_store(
    io: &Io,
    config: &Config,
    hash: &TokenHash,
    langs: &[Lang],
    now_ms: i64,
) -> Result<Option<Vec<(Lang, CachedPage)>>, ApiError> {
    let Some((page, link)) = load(io, hash).await? else {
        purge_here(config, &[*hash]).await;
        return Ok(None);
    };
    let key = link.page_key;
    let entries: Vec<(Lang, View, CachedPage)> = langs
        .iter()
        .filter_map(|&lang| {
            CachedPage::render(&page, &key, lang, &config.media_origin, View::FIRST, now_ms)
                .map(|p| (lang, View::FIRST, p))
        })
        .collect();
    let kept = store_fenced(io, config, &key, page.fence.as_deref(), &entries).await;
    Ok(Some(if kept {
        entries.into_iter().map(|(lang, _, p)| (lang, p)).collect()
    } else {
        Vec::new()
    }))
}

/// What a render from the database gave for one view.
pub enum Rendered {
    /// The link is not live (its cached pages are purged).
    Gone,
    /// The link is live but has no such page (`?page=` past the end): the 404 page, nothing purged.
    NoSuchView,
    Page(CachedPage),
    /// Another link of the share rendered it from the same data: taken from the cache, not
    /// rendered again.
    Shared(CachedPage),
    /// The link has a passphrase and the request no pass: nothing was rendered or read from the
    /// cache (the link's resolution is stored, so later requests here know without the database).
    Locked,
}

/// Renders one view of a link for a request and stores it right after the answer (fenced). A
/// moment's full view also stores the first page when the cached one is of other data, so the
/// two agree on the generation. A recipient token's first request here also stores its
/// resolution, and takes its share's page from the cache when another link of the share put it
/// there from the same data (one render for every link of a share). `passed`: the request holds
/// the link's pass, if it needs one.
#[allow(clippy::too_many_arguments)]
pub async fn render_and_store_view(
    io: &Io,
    config: &Config,
    token: &TokenHash,
    lang: Lang,
    view: View,
    first_page_generation: Option<&str>,
    passed: bool,
    now_ms: i64,
) -> Result<Rendered, ApiError> {
    let Some((page, link)) = load(io, token).await? else {
        purge_here(config, &[*token]).await;
        return Ok(Rendered::Gone);
    };
    let (key, locked) = (link.page_key, link.locked);
    if key != *token {
        let (settings, resolved, writer) = (config.clone(), *token, io.clone());
        let account = page.account_id;
        io.lifeline.wait_until(async move {
            store_resolution(&writer, &settings, &resolved, &link, account).await;
        });
    }
    if locked && !passed {
        return Ok(Rendered::Locked);
    }
    if key != *token {
        let shared = get_view(config, &key, lang, view).await.filter(|cached| {
            cached.generation == page.generation
                && cache_policy::freshness(cached.rendered_at_ms, now_ms) == cache_policy::Freshness::Fresh
        });
        if let Some(page) = shared {
            return Ok(Rendered::Shared(page));
        }
    }
    let hash = &key;
    let media = &config.media_origin;
    let Some(rendered) = CachedPage::render(&page, hash, lang, media, view, now_ms) else {
        return Ok(Rendered::NoSuchView);
    };
    let mut entries = vec![(lang, view, rendered.clone())];
    if matches!(view, View::Moment(_)) && first_page_generation != Some(page.generation.as_str()) {
        if let Some(first) = CachedPage::render(&page, hash, lang, media, View::FIRST, now_ms) {
            entries.push((lang, View::FIRST, first));
        }
    }
    // The family waits for the database and the render, not for the cache write.
    let (config, hash, fence) = (config.clone(), *hash, page.fence.clone());
    let writer = io.clone();
    io.lifeline.wait_until(async move {
        store_fenced(&writer, &config, &hash, fence.as_deref(), &entries).await;
    });
    Ok(Rendered::Page(rendered))
}

/// Stores freshly rendered views of one link, then reads the link's fence again: if it is not the
/// one the render read (`fence`), the link changed or went while the page was being rendered and
/// written (a revoke, an edit, a deleted photo that committed meanwhile, whose purge may already
/// have run), and what was written is removed at once. So a page read before a change is never
/// kept after it: either the change's purge runs after this write and removes it, or this check
/// runs after the change and does. `true` when the views were kept (also when the fence cannot
/// be read: see below).
async fn store_fenced(
    io: &Io,
    config: &Config,
    hash: &TokenHash,
    fence: Option<&str>,
    entries: &[(Lang, View, CachedPage)],
) -> bool {
    // Serving beats caching: if a write fails the page still went out, and the next request
    // renders again.
    for (lang, view, page) in entries {
        if let Err(e) = put_view(config, hash, *lang, *view, page).await {
            let line = context::line(config, &context::new_trace_id(), Level::Warn, "cache put failed");
            context::emit(&line.field("detail", e));
        }
    }
    let line = |level, text: &str| {
        context::line(config, &context::new_trace_id(), level, text).field("token_hash", hash.short())
    };
    let reason = match (
        db::call_with_bytes(io, Budget::Hot, "share_page_fence", &hash.0).await,
        fence,
    ) {
        (Ok(Some(now)), Some(read)) if now == read => {
            // Sampled like every success line: what a test (or on-call) reads to know the write
            // is final.
            context::emit_success(config, &line(Level::Info, "share cache write kept"));
            return true;
        }
        (Ok(Some(_)), _) => "the link changed while its page was rendered",
        (Ok(None), _) => "the link went while its page was rendered",
        // The database failed right after the render: the copy is kept for stale-if-error. A
        // change that committed meanwhile holds its purge intent in the database, which purges
        // this copy by tag once the database is back (the change's own purge or the sweep).
        (Err(e), _) => {
            context::emit(&line(Level::Warn, "share cache write unfenced").field("detail", e.detail));
            return true;
        }
    };
    MEMORY.with(|m| m.borrow_mut().retain(|(h, _, _), _| h != hash));
    let host = config.cache_host();
    let deletes = entries.iter().map(|(lang, view, _)| {
        let key = cache_policy::view_cache_key(host, hash, *lang, *view);
        async move {
            let _ = Cache::default().delete(key.as_str(), true).await;
        }
    });
    futures_util::future::join_all(deletes).await;
    count(Counter::FencedWrites);
    context::emit(&line(Level::Warn, "share cache write fenced").field("reason", reason));
    false
}

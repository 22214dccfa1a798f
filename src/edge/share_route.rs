//! `GET /s/:token`: the public share page (SPEC §1).
//!
//! malformed token → 404 page (no cache, no database)
//! fresh copy      → `hit`
//! stale copy      → `stale`, re-rendered once in the background (`revalidated` in its log line)
//! expired copy    → rendered anew (`miss`); the old copy is served if the database fails (`stale-if-error`)
//! no copy         → rendered (`miss`); 503 page if the database fails
//! not live        → the same 404 page as a malformed token

use std::cell::RefCell;

use crate::error::ErrorCode;
use crate::lang::Lang;
use crate::reply::Reply;
use crate::share::cache_policy::{freshness, link_expired, CacheStatus, Freshness};
use crate::share::headers::{self, if_none_match_matches};
use crate::share::page::{MessagePage, STYLESHEET};
use crate::share::views::ViewTally;
use crate::share::{ShareToken, TokenHash};
use crate::telemetry::Level;

use super::context::{self, RequestContext};
use super::exchange::{share_error_page, Incoming, Notes};
use super::share_cache::{self, CachedPage};

thread_local! {
    static VIEWS: RefCell<ViewTally> = RefCell::new(ViewTally::default());
    /// Re-renders under way in this isolate. Checked and claimed without an await in between, so
    /// concurrent stale hits here start one render; the cache marker does the same across isolates.
    static REVALIDATING: RefCell<std::collections::HashSet<(TokenHash, Lang)>> = RefCell::new(std::collections::HashSet::new());
}

/// The one not-found page: byte-identical for malformed, unknown, expired and revoked tokens.
pub fn not_found(cx: &RequestContext) -> Reply {
    let mut reply = share_error_page(cx, MessagePage::NotFound, 404);
    reply.set_header("cache-control", headers::NOT_FOUND_CACHE_CONTROL);
    reply.set_header("vary", "Accept-Language");
    reply
}

pub fn stylesheet(cx: &RequestContext, file: &str) -> Reply {
    if format!("/_static/{file}") != crate::share::page::stylesheet_path() {
        return not_found(cx);
    }
    let mut reply = Reply::new(200)
        .header("content-type", "text/css; charset=utf-8")
        .with_body(STYLESHEET.as_bytes().to_vec());
    reply.set_header("cache-control", "public, max-age=31536000, immutable");
    headers::apply_security_headers(&mut reply, &cx.config().media_origin);
    reply
}

pub async fn serve(cx: &RequestContext, incoming: &Incoming, token_text: &str, notes: &mut Notes) -> Reply {
    let Ok(token) = ShareToken::parse(token_text) else {
        notes.fields.push(("share", "malformed".into()));
        return not_found(cx);
    };
    let hash = token.hash();
    notes.fields.push(("token_hash", hash.short().into()));
    let lang = cx.lang;
    let now = context::now_ms();
    let if_none_match = incoming.header("if-none-match").map(str::to_owned);
    let media_origin = cx.config().media_origin.clone();

    let cached = share_cache::get(cx.config(), &hash, lang).await;
    if cached.as_ref().is_some_and(|c| link_expired(c.expires_at_ms, now)) {
        share_cache::purge_here(cx.config(), &hash).await;
        return not_found(cx);
    }
    let (page, status) = match cached.map(|c| (freshness(c.rendered_at_ms, now), c)) {
        Some((Freshness::Fresh, page)) => (page, CacheStatus::Hit),
        Some((Freshness::Stale, page)) => {
            let started = revalidate_in_background(cx, hash, lang).await;
            // Which stale answer started the one re-render, in the request's own log line.
            notes
                .fields
                .push(("revalidation", if started { "started" } else { "joined" }.into()));
            (page, CacheStatus::Stale)
        }
        Some((Freshness::Expired, old)) => match render(cx, &hash, lang, now, notes).await {
            Ok(Some(page)) => (page, CacheStatus::Miss),
            Ok(None) => return not_found(cx),
            Err(ErrorCode::DatabaseUnavailable) => {
                context::emit(
                    &cx.line(Level::Warn, "share served stale-if-error")
                        .field("token_hash", hash.short()),
                );
                (old, CacheStatus::StaleIfError)
            }
            Err(_) => return share_error_page(cx, MessagePage::Unavailable, 503).header("retry-after", "5"),
        },
        None => match render(cx, &hash, lang, now, notes).await {
            Ok(Some(page)) => (page, CacheStatus::Miss),
            Ok(None) => return not_found(cx),
            Err(_) => return share_error_page(cx, MessagePage::Unavailable, 503).header("retry-after", "5"),
        },
    };
    notes.fields.push(("cache_status", status.as_str().into()));
    count_view(cx, hash, now);
    let not_modified = if_none_match
        .as_deref()
        .is_some_and(|inm| if_none_match_matches(inm, &page.etag));
    page.to_reply(lang, &media_origin, status, not_modified)
}

/// Renders and stores; `Err` carries the error code (the detail is logged here).
async fn render(
    cx: &RequestContext,
    hash: &TokenHash,
    lang: Lang,
    now: i64,
    notes: &mut Notes,
) -> Result<Option<CachedPage>, ErrorCode> {
    let started = context::now_ms();
    let result = share_cache::render_and_store(&cx.io, cx.config(), hash, &[lang], now).await;
    notes
        .fields
        .push(("db_render_ms", (context::now_ms() - started).into()));
    match result {
        Ok(Some(mut pages)) => Ok(pages.pop().map(|(_, page)| page)),
        Ok(None) => Ok(None),
        Err(e) => {
            notes.fields.push(("error_detail", e.detail.clone().into()));
            Err(e.code)
        }
    }
}

/// Starts the page's re-render in `waitUntil` unless one is already running here or in another
/// isolate of this data center; `true` when this call started it.
async fn revalidate_in_background(cx: &RequestContext, hash: TokenHash, lang: Lang) -> bool {
    if !REVALIDATING.with(|r| r.borrow_mut().insert((hash, lang))) {
        return false;
    }
    if !share_cache::claim_revalidation(cx.config(), &hash, lang).await {
        REVALIDATING.with(|r| r.borrow_mut().remove(&(hash, lang)));
        return false;
    }
    let io = cx.io.clone();
    let settings = cx.settings.clone();
    let trace_id = cx.trace_id.clone();
    cx.io.lifeline.wait_until(async move {
        let now = context::now_ms();
        let outcome = share_cache::render_and_store(&io, &settings.config, &hash, &[lang], now).await;
        share_cache::release_revalidation(&settings.config, &hash, lang).await;
        REVALIDATING.with(|r| r.borrow_mut().remove(&(hash, lang)));
        let (level, result) = match &outcome {
            Ok(Some(_)) => (Level::Info, "revalidated".to_owned()),
            Ok(None) => (Level::Info, "gone".to_owned()),
            Err(e) => (Level::Warn, format!("failed: {}", e.detail)),
        };
        context::emit(
            &context::line(&settings.config, &trace_id, level, "share revalidation")
                .field("cache_status", "revalidated")
                .field("result", result)
                .field("token_hash", hash.short())
                .field("lang", lang.tag()),
        );
    });
    true
}

/// Tallies the view in the isolate; flushes the tally in the background when due.
fn count_view(cx: &RequestContext, hash: TokenHash, now: i64) {
    let interval = i64::try_from(cx.config().view_flush_seconds).unwrap_or(30) * 1000;
    let due = VIEWS.with(|v| {
        let mut tally = v.borrow_mut();
        tally.record(hash);
        tally.take_if_due(now, interval)
    });
    let Some(tally) = due else { return };
    let io = cx.io.clone();
    cx.io.lifeline.wait_until(async move {
        let hashes: Vec<Vec<u8>> = tally.iter().map(|(h, _)| h.0.to_vec()).collect();
        let counts: Vec<i32> = tally
            .iter()
            .map(|(_, n)| i32::try_from(*n).unwrap_or(i32::MAX))
            .collect();
        let result = super::db::transaction(&io, super::db::Scope::System, super::db::Budget::Standard, async |tx| {
            use tokio_postgres::types::Type;
            tx.exec(
                "SELECT record_share_views($1, $2)",
                &[(&hashes, Type::BYTEA_ARRAY), (&counts, Type::INT4_ARRAY)],
            )
            .await
        })
        .await;
        if result.is_err() {
            VIEWS.with(|v| v.borrow_mut().restore(tally));
        }
    });
}

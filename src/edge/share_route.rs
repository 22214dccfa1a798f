//! `GET /s/:token`: the public share page (SPEC §1).
//!
//! malformed token → 404 page (no cache, no database)
//! fresh copy      → `hit`
//! stale copy      → `stale`, re-rendered once in the background (`revalidated` in its log line)
//! expired copy    → rendered anew (`miss`); the old copy is served if the database fails (`stale-if-error`)
//! no copy         → rendered (`miss`); 503 page if the database fails
//! not live        → the same 404 page as a malformed token
//!
//! A recipient link's token reads its share's pages (`share::link`): its page key comes from the
//! link's resolution in this isolate or data center, and from the database on its first request
//! here; the link's own expiry is checked on the resolution, its revocation purges it.
//!
//! Each view (`?page=N`, `?moment=K`, `share::view`) is cached apart with the same rules; a view
//! past the end of the share is the 404 page. A moment's full view is served from the cache only
//! beside a cached first page of the same generation, and follows that page's freshness: its
//! re-render is the first page's, and a purge (which names the list pages) retires it too.

use std::cell::RefCell;

use crate::error::ErrorCode;
use crate::lang::Lang;
use crate::reply::Reply;
use crate::routes::{Matched, RouteId};
use crate::share::cache_policy::moment_view_current;
use crate::share::cache_policy::{freshness, link_expired, CacheStatus, Freshness};
use crate::share::headers::{self, if_none_match_matches};
use crate::share::link::LinkKey;
use crate::share::page::{MessagePage, OG_DEFAULT_PNG};
use crate::share::view::View;
use crate::share::views::ViewTally;
use crate::share::{ShareToken, TokenHash};
use crate::telemetry::Level;

use super::context::{self, RequestContext};
use super::exchange::{share_error_page, share_not_found as not_found, Incoming, Notes};
use super::share_cache::{self, CachedPage, Rendered, Resolved, ServedAt};
use super::share_gate;

thread_local! {
    static VIEWS: RefCell<ViewTally> = RefCell::new(ViewTally::default());
    /// Re-renders under way in this isolate. Checked and claimed without an await in between, so
    /// concurrent stale hits here start one render; the cache marker does the same across isolates.
    static REVALIDATING: RefCell<std::collections::HashSet<(TokenHash, Lang, View)>> = RefCell::new(std::collections::HashSet::new());
}

/// `/_static/…`: the branded link preview, under its fingerprint (the stylesheet is inline). Any
/// fingerprint's name gets today's image: a page rendered by the version before a deploy (still
/// in a messaging app's preview, or served by the other side of a canary) names the old one.
pub fn static_file(cx: &RequestContext, file: &str) -> Reply {
    if !crate::share::page::is_og_default_file(file) {
        return not_found(cx);
    }
    let mut reply = Reply::new(200)
        .header("content-type", "image/png")
        .with_body(OG_DEFAULT_PNG.to_vec());
    reply.set_header("cache-control", "public, max-age=31536000, immutable");
    headers::apply_security_headers(&mut reply, &cx.config().media_origin);
    reply
}

/// The rejection tag of a token that cannot be one (wrong length or alphabet).
const MALFORMED_TOKEN: &str = "malformed_token";

/// The token of a share page's path, parsed once for the whole request (`Ok(None)` on another
/// route). A token that cannot be one gets the share page's 404 before anything else happens to
/// the request (no admission, rate limit or handler): a refusal like a scanner path, counted
/// always and logged by a sample, so a flood of them costs no more than the answer.
pub fn token_of(cx: &RequestContext, matched: &Matched<'_>, notes: &mut Notes) -> Result<Option<ShareToken>, Reply> {
    let Some(text) = matched
        .param("token")
        .filter(|_| matches!(matched.route.id(), RouteId::SharePage | RouteId::SharePassphrase))
    else {
        return Ok(None);
    };
    match ShareToken::parse(text) {
        Ok(token) => Ok(Some(token)),
        Err(_) => {
            crate::telemetry::count_rejection(MALFORMED_TOKEN);
            notes.rejection = Some(MALFORMED_TOKEN);
            notes.fields.push(("share", "malformed".into()));
            Err(not_found(cx))
        }
    }
}

pub async fn serve(cx: &RequestContext, incoming: &Incoming, notes: &mut Notes) -> Reply {
    // The pipeline parsed it (`token_of`) and refused a malformed one.
    let Some(token) = &incoming.share_token else {
        return not_found(cx);
    };
    let Ok(view) = View::from_query(incoming.query.as_deref()) else {
        notes.fields.push(("share", "no_such_view".into()));
        return not_found(cx);
    };
    let hash = token.hash();
    notes.fields.push(("token_hash", hash.short().into()));
    if view != View::FIRST {
        notes.fields.push(("share_view", view.query().into()));
    }
    let lang = cx.lang;
    let now = context::now_ms();
    let if_none_match = incoming.header("if-none-match").map(str::to_owned);
    let media_origin = cx.config().media_origin.clone();

    // A locked link's page goes only to a browser holding its pass (`share_gate`); only a
    // request that brings a pass cookie pays for checking it.
    let passed = share_gate::holds_pass(cx, incoming, &hash);
    let link = match share_cache::resolve(cx.config(), &hash, now).await {
        Resolved::Page { locked: true, .. } if !passed => return locked(cx, token, view, notes),
        Resolved::Page { link, .. } => link,
        Resolved::Expired => {
            notes.fields.push(("share", "link_expired".into()));
            return not_found(cx);
        }
    };
    let served = match view {
        View::List(_) => serve_list(cx, link, lang, view, passed, now, notes).await,
        View::Moment(_) => serve_moment(cx, link, lang, view, passed, now, notes).await,
    };
    let (page, status) = match served {
        Ok(served) => served,
        Err(Refused::Page(reply)) => return reply,
        Err(Refused::Locked) => return locked(cx, token, view, notes),
    };
    notes.fields.push(("cache_status", status.as_str().into()));
    count_view(cx, hash, now);
    let not_modified = if_none_match
        .as_deref()
        .is_some_and(|inm| if_none_match_matches(inm, &page.etag));
    let share_url = format!("{}/s/{}{}", cx.origin, token.as_text(), view.url_suffix());
    let at = ServedAt {
        origin: &cx.origin,
        share_url: &share_url,
    };
    page.to_reply(lang, &media_origin, &at, status, not_modified)
}

/// The passphrase form instead of a locked link's page.
fn locked(cx: &RequestContext, token: &crate::share::ShareToken, view: View, notes: &mut Notes) -> Reply {
    notes.fields.push(("share", "locked".into()));
    share_gate::form(cx, token, view, 200, None)
}

/// Why a view is not served.
enum Refused {
    /// This answer instead (the 404 page, the unavailable page).
    Page(Reply),
    /// The link has a passphrase, learned from the database, and the request no pass.
    Locked,
}

impl From<Reply> for Refused {
    fn from(reply: Reply) -> Refused {
        Refused::Page(reply)
    }
}

fn unavailable(cx: &RequestContext) -> Reply {
    share_error_page(cx, MessagePage::Unavailable, 503).header("retry-after", "5")
}

/// A list page: its own cache entry, fresh, stale (re-rendered in the background), or rendered.
async fn serve_list(
    cx: &RequestContext,
    link: LinkKey,
    lang: Lang,
    view: View,
    passed: bool,
    now: i64,
    notes: &mut Notes,
) -> Result<(CachedPage, CacheStatus), Refused> {
    let cached = unexpired(cx, link.page, lang, view, now).await?;
    Ok(match cached.map(|c| (freshness(c.rendered_at_ms, now), c)) {
        Some((Freshness::Fresh, page)) => (page, CacheStatus::Hit),
        Some((Freshness::Stale, page)) => stale(cx, link, lang, view, page, notes).await,
        Some((Freshness::Expired, old)) => match render(cx, &link.token, lang, view, None, passed, now, notes).await {
            Ok(page) => (page, CacheStatus::Miss),
            Err(RenderFailure::NotFound) => return Err(not_found(cx).into()),
            Err(RenderFailure::Locked) => return Err(Refused::Locked),
            Err(RenderFailure::Code(ErrorCode::DatabaseUnavailable)) => {
                warn_stale_if_error(cx, &link.token);
                (old, CacheStatus::StaleIfError)
            }
            Err(RenderFailure::Code(_)) => return Err(unavailable(cx).into()),
        },
        None => match render(cx, &link.token, lang, view, None, passed, now, notes).await {
            Ok(page) => (page, CacheStatus::Miss),
            Err(RenderFailure::NotFound) => return Err(not_found(cx).into()),
            Err(RenderFailure::Locked) => return Err(Refused::Locked),
            Err(RenderFailure::Code(_)) => return Err(unavailable(cx).into()),
        },
    })
}

/// A moment in full: served from the cache only beside the link's cached first page of the same
/// generation, whose freshness it follows.
async fn serve_moment(
    cx: &RequestContext,
    link: LinkKey,
    lang: Lang,
    view: View,
    passed: bool,
    now: i64,
    notes: &mut Notes,
) -> Result<(CachedPage, CacheStatus), Refused> {
    let first = unexpired(cx, link.page, lang, View::FIRST, now).await?;
    let first_freshness = first.as_ref().map(|c| freshness(c.rendered_at_ms, now));
    let first_generation = first.as_ref().map(|c| c.generation.clone());
    let cached = match &first_generation {
        Some(generation) => share_cache::get_view(cx.config(), &link.page, lang, view)
            .await
            .filter(|m| moment_view_current(&m.generation, generation)),
        None => None,
    };
    match (first_freshness, cached) {
        (Some(Freshness::Fresh), Some(page)) => Ok((page, CacheStatus::Hit)),
        (Some(Freshness::Stale), Some(page)) => Ok(stale(cx, link, lang, View::FIRST, page, notes).await),
        (_, old) => match (
            render(
                cx,
                &link.token,
                lang,
                view,
                first_generation.as_deref(),
                passed,
                now,
                notes,
            )
            .await,
            old,
        ) {
            (Ok(page), _) => Ok((page, CacheStatus::Miss)),
            (Err(RenderFailure::NotFound), _) => Err(not_found(cx).into()),
            (Err(RenderFailure::Locked), _) => Err(Refused::Locked),
            (Err(RenderFailure::Code(ErrorCode::DatabaseUnavailable)), Some(old)) => {
                warn_stale_if_error(cx, &link.token);
                Ok((old, CacheStatus::StaleIfError))
            }
            (Err(RenderFailure::Code(_)), _) => Err(unavailable(cx).into()),
        },
    }
}

/// The cached copy of `view`, unless the link behind it has expired: then its pages are purged
/// here and the answer is the 404.
async fn unexpired(
    cx: &RequestContext,
    hash: TokenHash,
    lang: Lang,
    view: View,
    now: i64,
) -> Result<Option<CachedPage>, Reply> {
    let cached = share_cache::get_view(cx.config(), &hash, lang, view).await;
    if cached.as_ref().is_some_and(|c| link_expired(c.expires_at_ms, now)) {
        share_cache::purge_here(cx.config(), &[hash]).await;
        return Err(not_found(cx));
    }
    Ok(cached)
}

/// A stale copy goes out while `revalidated` is rendered again in the background, once; which
/// stale answer started the re-render goes in the request's own log line.
async fn stale(
    cx: &RequestContext,
    link: LinkKey,
    lang: Lang,
    revalidated: View,
    page: CachedPage,
    notes: &mut Notes,
) -> (CachedPage, CacheStatus) {
    let started = revalidate_in_background(cx, link, lang, revalidated).await;
    notes
        .fields
        .push(("revalidation", if started { "started" } else { "joined" }.into()));
    (page, CacheStatus::Stale)
}

fn warn_stale_if_error(cx: &RequestContext, hash: &TokenHash) {
    context::emit(
        &cx.line(Level::Warn, "share served stale-if-error")
            .field("token_hash", hash.short()),
    );
}

enum RenderFailure {
    /// The link is not live, or has no such view.
    NotFound,
    /// The link has a passphrase and the request no pass.
    Locked,
    Code(ErrorCode),
}

/// Renders and stores one view of the page `token` shows; the error's detail is logged here.
#[allow(clippy::too_many_arguments)]
async fn render(
    cx: &RequestContext,
    token: &TokenHash,
    lang: Lang,
    view: View,
    first_page_generation: Option<&str>,
    passed: bool,
    now: i64,
    notes: &mut Notes,
) -> Result<CachedPage, RenderFailure> {
    let started = context::now_ms();
    // What the cache lookups before this render waited (the clock moves with I/O only); a hit
    // never gets here, so it pays for no timing.
    notes.fields.push(("cache_lookup_ms", (started - now).into()));
    let result = share_cache::render_and_store_view(
        &cx.io,
        cx.config(),
        token,
        lang,
        view,
        first_page_generation,
        passed,
        now,
    )
    .await;
    notes
        .fields
        .push(("db_render_ms", (context::now_ms() - started).into()));
    match result {
        Ok(Rendered::Page(page)) => {
            notes.fields.push(("page_render", "new".into()));
            Ok(page)
        }
        Ok(Rendered::Shared(page)) => {
            notes.fields.push(("page_render", "shared".into()));
            Ok(page)
        }
        Ok(Rendered::Gone) | Ok(Rendered::NoSuchView) => Err(RenderFailure::NotFound),
        Ok(Rendered::Locked) => Err(RenderFailure::Locked),
        Err(e) => {
            notes.fields.push(("error_detail", e.detail.clone().into()));
            Err(RenderFailure::Code(e.code))
        }
    }
}

/// Starts the page's re-render in `waitUntil` unless one is already running here or in another
/// isolate of this data center (for any link of the share); `true` when this call started it.
/// The render reads the database through the request's own token: a link revoked meanwhile
/// renders nothing.
async fn revalidate_in_background(cx: &RequestContext, link: LinkKey, lang: Lang, view: View) -> bool {
    let hash = link.page;
    if !REVALIDATING.with(|r| r.borrow_mut().insert((hash, lang, view))) {
        return false;
    }
    if !share_cache::claim_revalidation(cx.config(), &hash, lang, view).await {
        REVALIDATING.with(|r| r.borrow_mut().remove(&(hash, lang, view)));
        return false;
    }
    let io = cx.io.clone();
    let settings = cx.settings.clone();
    let trace_id = cx.trace_id.clone();
    cx.io.lifeline.wait_until(async move {
        let now = context::now_ms();
        // Started by a request that was let in: a locked link's page only re-renders for a pass.
        let outcome =
            share_cache::render_and_store_view(&io, &settings.config, &link.token, lang, view, None, true, now).await;
        share_cache::release_revalidation(&settings.config, &hash, lang, view).await;
        REVALIDATING.with(|r| r.borrow_mut().remove(&(hash, lang, view)));
        let (level, result) = match &outcome {
            Ok(Rendered::Page(_)) => (Level::Info, "revalidated".to_owned()),
            Ok(Rendered::Shared(_)) => (Level::Info, "revalidated by another link".to_owned()),
            Ok(Rendered::Gone) => (Level::Info, "gone".to_owned()),
            Ok(Rendered::Locked) => (Level::Info, "locked".to_owned()),
            Ok(Rendered::NoSuchView) => (Level::Info, "no such page".to_owned()),
            Err(e) => (Level::Warn, format!("failed: {}", e.detail)),
        };
        context::emit(
            &context::line(&settings.config, &trace_id, level, "share revalidation")
                .field("cache_status", "revalidated")
                .field("result", result)
                .field("token_hash", link.token.short())
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

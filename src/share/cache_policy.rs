//! Stale-while-revalidate and stale-if-error, by hand: the Cache API honours neither, so the edge
//! stores each page with its render time and decides here what a cached copy is good for.

use crate::lang::Lang;
use crate::share::view::View;
use crate::share::TokenHash;

/// A page is fresh this long after it was rendered (`max-age=300`).
pub const MAX_AGE_MS: i64 = 300_000;
/// Then served stale while one background render refreshes it (`stale-while-revalidate=60`).
pub const STALE_WHILE_REVALIDATE_MS: i64 = 60_000;
/// And kept this long for when the database is down (stale-if-error).
pub const STALE_IF_ERROR_MS: i64 = 24 * 3_600_000;
/// How long the "a re-render is under way" marker lives: a burst of stale hits re-renders once.
pub const REVALIDATION_MARKER_SECONDS: u32 = 15;

/// What a cached copy of a page is good for, by its age.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Serve it.
    Fresh,
    /// Serve it now and re-render in the background.
    Stale,
    /// Render anew; serve this copy only if rendering fails (stale-if-error).
    Expired,
}

pub fn freshness(rendered_at_ms: i64, now_ms: i64) -> Freshness {
    let age = now_ms.saturating_sub(rendered_at_ms);
    if age <= MAX_AGE_MS {
        Freshness::Fresh
    } else if age <= MAX_AGE_MS + STALE_WHILE_REVALIDATE_MS {
        Freshness::Stale
    } else {
        Freshness::Expired
    }
}

/// How long the Cache API keeps an entry: long enough to serve it stale when the database fails.
pub const fn cache_entry_ttl_seconds() -> i64 {
    (MAX_AGE_MS + STALE_WHILE_REVALIDATE_MS + STALE_IF_ERROR_MS) / 1000
}

/// The edge cache's key for one rendered page: a URL on the share host, under a path no route
/// serves, built from the token *hash* (never the token). The Cache API's own delete reaches only
/// this data center; other data centers are purged by the page's cache tags (`share::purge`).
pub fn page_cache_key(host: &str, hash: &TokenHash, lang: Lang) -> String {
    view_cache_key(host, hash, lang, View::FIRST)
}

/// The key of one view of a link: list pages by number, a moment's full view by its position. A
/// moment's view is served only while the link's first page is cached with the same generation
/// (see [`GENERATION_HEADER`]), so removing the list pages retires every moment view with them.
///
/// Every key holds the [`render_version`]: a page is only ever served by a Worker whose templates,
/// stylesheet and rendering code made it, so during a canary (two versions live) and after a
/// deploy each version reads its own pages, and a page's inline stylesheet always matches the
/// CSP hash the serving version adds.
pub fn view_cache_key(host: &str, hash: &TokenHash, lang: Lang, view: View) -> String {
    let hex = hash.to_hex();
    let lang = lang.tag();
    let render = render_version();
    match view {
        View::List(1) => format!("https://{host}/__edge-cache/v2/{render}/page/{hex}/{lang}"),
        View::List(n) => format!("https://{host}/__edge-cache/v2/{render}/page/{hex}/{lang}/{n}"),
        View::Moment(k) => format!("https://{host}/__edge-cache/v2/{render}/moment/{hex}/{lang}/{k}"),
    }
}

/// The key of a recipient token's resolution (`share::link::Resolution`): which page key its
/// requests read. Not under the render version: it holds no rendered bytes. `link2`: since
/// passphrases, a resolution says whether its link is locked; the `link/` entries of the version
/// before never did, and read here they would open a locked link during a canary.
pub fn resolution_cache_key(host: &str, token: &TokenHash) -> String {
    format!("https://{host}/__edge-cache/v2/link2/{}", token.to_hex())
}

/// What a rendered page's bytes depend on besides its data, as 12 hex digits: the templates, the
/// inline stylesheet, the branded preview image and the code that renders and paginates
/// (`build.rs` hashes them). Two builds that would render a share differently have different
/// versions.
pub fn render_version() -> &'static str {
    env!("BABYBOOK_RENDER_VERSION")
}

pub fn revalidation_marker_key(host: &str, hash: &TokenHash, lang: Lang, view: View) -> String {
    let base = format!(
        "https://{host}/__edge-cache/v2/{}/revalidating/{}/{}",
        render_version(),
        hash.to_hex(),
        lang.tag()
    );
    match view {
        View::List(1) => base,
        View::List(n) => format!("{base}/{n}"),
        View::Moment(k) => format!("{base}/m{k}"),
    }
}

/// Whether a cached moment view may be served: it was rendered from the same data (generation)
/// as the link's first page that is in the cache now. A purge removes the first page, so a
/// revoked or edited link's moment views are never served after it.
pub fn moment_view_current(moment_generation: &str, first_page_generation: &str) -> bool {
    !moment_generation.is_empty() && moment_generation == first_page_generation
}

/// The response header that reports what the cache did (documented in docs/share-pages.md).
pub const CACHE_STATUS_HEADER: &str = "x-cache-status";
/// Stored with each cached page: epoch milliseconds of its render.
pub const RENDERED_AT_HEADER: &str = "x-rendered-at";
/// Stored with each cached page: the digest of the data it was rendered from.
pub const GENERATION_HEADER: &str = "x-share-generation";
/// Stored with each cached page of an expiring link: epoch milliseconds of its expiry.
pub const EXPIRES_AT_HEADER: &str = "x-link-expires-at";

/// A cached page of a link that has expired since it was rendered is not served.
pub fn link_expired(expires_at_ms: Option<i64>, now_ms: i64) -> bool {
    expires_at_ms.is_some_and(|at| at <= now_ms)
}

/// What the cache did for a share request, as `X-Cache-Status` and the log's `cache_status` say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    Hit,
    Stale,
    Miss,
    Revalidated,
    StaleIfError,
}

impl CacheStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CacheStatus::Hit => "hit",
            CacheStatus::Stale => "stale",
            CacheStatus::Miss => "miss",
            CacheStatus::Revalidated => "revalidated",
            CacheStatus::StaleIfError => "stale-if-error",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freshness_follows_max_age_then_the_swr_window() {
        let rows = [
            (0, Freshness::Fresh),
            (300_000, Freshness::Fresh),
            (300_001, Freshness::Stale),
            (360_000, Freshness::Stale),
            (360_001, Freshness::Expired),
            (-5_000, Freshness::Fresh),
        ];
        for (age, want) in rows {
            assert_eq!(freshness(1_000_000, 1_000_000 + age), want, "age {age} ms");
        }
    }

    #[test]
    fn cache_keys_separate_languages_and_never_hold_the_token() {
        let hash = TokenHash([0xab; 32]);
        let pt = page_cache_key("share.babybook.com", &hash, Lang::PtBr);
        let en = page_cache_key("share.babybook.com", &hash, Lang::En);
        assert_ne!(pt, en);
        assert!(pt.starts_with("https://share.babybook.com/__edge-cache/"));
        assert!(pt.contains(&hash.to_hex()));
        assert_ne!(
            pt,
            revalidation_marker_key("share.babybook.com", &hash, Lang::PtBr, View::FIRST)
        );
    }

    #[test]
    fn every_view_has_its_own_key_and_the_first_page_keeps_the_old_one() {
        let hash = TokenHash([0xab; 32]);
        let key = |view| view_cache_key("s.test", &hash, Lang::En, view);
        let hex = hash.to_hex();
        let render = render_version();
        assert_eq!(
            key(View::List(1)),
            format!("https://s.test/__edge-cache/v2/{render}/page/{hex}/en")
        );
        assert_eq!(
            key(View::List(2)),
            format!("https://s.test/__edge-cache/v2/{render}/page/{hex}/en/2")
        );
        assert_eq!(
            key(View::Moment(2)),
            format!("https://s.test/__edge-cache/v2/{render}/moment/{hex}/en/2")
        );
        let markers: std::collections::HashSet<_> = [View::List(1), View::List(2), View::Moment(2)]
            .map(|v| revalidation_marker_key("s.test", &hash, Lang::En, v))
            .into();
        assert_eq!(markers.len(), 3);
    }

    #[test]
    fn the_render_version_is_twelve_hex_digits_of_the_templates_stylesheet_and_render_code() {
        let version = render_version();
        assert_eq!(version.len(), 12);
        assert!(version.bytes().all(|b| b.is_ascii_hexdigit()), "{version}");
        let build = include_str!("../../build.rs");
        for input in ["templates/share.css", "templates/share.html", "src/share/page.rs"] {
            assert!(build.contains(&format!("\"{input}\"")), "{input} is not a render input");
        }
    }

    #[test]
    fn a_moment_view_is_current_only_with_the_first_page_it_was_rendered_with() {
        assert!(moment_view_current("ab12", "ab12"));
        assert!(!moment_view_current("ab12", "cd34"), "the link was edited since");
        assert!(
            !moment_view_current("", ""),
            "a page without a generation is never current"
        );
    }

    #[test]
    fn a_cached_page_dies_with_its_link() {
        assert!(!link_expired(None, 10));
        assert!(!link_expired(Some(11), 10));
        assert!(link_expired(Some(10), 10));
    }

    #[test]
    fn entries_outlive_the_swr_window_for_stale_if_error() {
        assert!(cache_entry_ttl_seconds() * 1000 > MAX_AGE_MS + STALE_WHILE_REVALIDATE_MS);
    }
}

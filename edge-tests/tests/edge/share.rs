//! Issue 4: public share pages, `GET /s/:token`.

use std::time::{Duration, Instant};

use edge_tests::html::check_balanced;
use edge_tests::Response;

use crate::{Stack, StackOptions};

const SHARE_CACHE_CONTROL: &str = "public, max-age=300, stale-while-revalidate=60";

/// The share CSP; `style-src` allows the page's inline stylesheet by its hash.
fn csp(stack: &Stack) -> String {
    format!(
        "default-src 'self'; img-src 'self' data: {}; style-src {}; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
        stack.media.lock().unwrap().url(),
        babybook_edge::share::style::style_source()
    )
}

fn assert_security_headers(stack: &Stack, r: &Response) {
    assert_eq!(r.header("x-robots-tag"), Some("noindex"));
    assert_eq!(r.header("referrer-policy"), Some("no-referrer"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(r.header("content-security-policy"), Some(csp(stack).as_str()));
    assert!(r
        .header("strict-transport-security")
        .is_some_and(|h| h.starts_with("max-age=")));
    assert!(
        r.headers_named("set-cookie").is_empty(),
        "a share response must never set a cookie"
    );
}

#[test]
fn a_live_link_renders_with_every_header_of_the_spec_and_open_graph_tags() {
    let stack = Stack::shared();
    let family = stack.family(3, 1);
    let path = format!("/s/{}", family.shares[0].token);
    let r = stack.client().get(&path);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("cache-control"), Some(SHARE_CACHE_CONTROL));
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(r.header("vary"), Some("Accept-Language"));
    let etag = r.header("etag").expect("etag").to_owned();
    assert!(etag.starts_with("W/\"") && etag.ends_with('"'), "weak etag: {etag}");
    assert_security_headers(stack, &r);
    let html = r.text();
    for needle in [
        "<meta property=\"og:title\"",
        "<meta property=\"og:image\"",
        "<meta name=\"twitter:card\"",
        "Criança",
        "Primeiro sorriso",
        "loading=\"lazy\"",
        "srcset=",
    ] {
        assert!(html.contains(needle), "page lacks {needle}");
    }
    assert!(!html.contains("<script"), "no JavaScript on share pages");
    // The token appears once, as the page's own URL for link previews (issue 16), and nowhere else.
    assert_eq!(
        html.matches(&family.shares[0].token).count(),
        1,
        "the token is only in og:url"
    );
    let og_url = format!(
        r#"<meta property="og:url" content="{}/s/{}">"#,
        stack.base_url, family.shares[0].token
    );
    assert!(html.contains(&og_url), "og:url is the share URL: {og_url}");
    check_balanced(&html).unwrap_or_else(|e| panic!("HTML not well-formed: {e}"));
}

#[test]
fn if_none_match_gets_304_without_a_body_and_a_different_tag_gets_the_page() {
    let stack = Stack::shared();
    let family = stack.family(1, 1);
    let path = format!("/s/{}", family.shares[0].token);
    let client = stack.client();
    let first = client.get(&path);
    let etag = first.header("etag").unwrap().to_owned();
    for header in [
        etag.clone(),
        etag.replace("W/", ""),
        format!("W/\"nope\", {etag}"),
        "*".into(),
    ] {
        let r = client.get_with(&path, &[("if-none-match", &header)]);
        assert_eq!(r.status, 304, "If-None-Match: {header}");
        assert!(r.body.is_empty(), "304 with a body");
        assert_eq!(r.header("etag"), Some(etag.as_str()));
        assert_eq!(r.header("cache-control"), Some(SHARE_CACHE_CONTROL));
        assert_security_headers(stack, &r);
    }
    let other = client.get_with(&path, &[("if-none-match", "W/\"other\"")]);
    assert_eq!(other.status, 200);
    assert_eq!(other.body, first.body);
}

#[test]
fn the_second_request_is_a_cache_hit_and_languages_are_cached_apart() {
    let stack = Stack::shared();
    let family = stack.family(1, 1);
    let path = format!("/s/{}", family.shares[0].token);
    let client = stack.client();
    assert_eq!(client.get(&path).header("x-cache-status"), Some("miss"));
    let hit = client.get(&path);
    assert_eq!(hit.header("x-cache-status"), Some("hit"));
    let english = client.get_with(&path, &[("accept-language", "en-US,en;q=0.9")]);
    assert_eq!(
        english.header("x-cache-status"),
        Some("miss"),
        "English has its own cache entry"
    );
    assert_eq!(english.header("content-language"), Some("en"));
    assert!(english.text().contains("<html lang=\"en\">"));
    assert!(english.text().contains("1 shared moment"));
    assert_ne!(english.header("etag"), hit.header("etag"));
    assert_eq!(
        client
            .get_with(&path, &[("accept-language", "en")])
            .header("x-cache-status"),
        Some("hit")
    );
    assert_eq!(
        client
            .get_with(&path, &[("accept-language", "pt-BR")])
            .header("x-cache-status"),
        Some("hit")
    );
}

#[test]
fn malformed_unknown_expired_and_revoked_tokens_get_the_identical_404_page() {
    let stack = Stack::shared();
    let family = stack.family(1, 3);
    let mut db = stack.db();
    let client = stack.client();
    let (expired, revoked, live) = (&family.shares[0], &family.shares[1], &family.shares[2]);
    // Cached first: expiry and revocation must win over the edge cache.
    db.execute(
        "UPDATE share_link SET expires_at = now() + interval '2 seconds' WHERE id = $1::text::uuid",
        &[&expired.id],
    )
    .unwrap();
    for share in [expired, revoked, live] {
        assert_eq!(client.get(&format!("/s/{}", share.token)).status, 200);
    }
    // The expiry is wall-clock time: wait for it to show, rather than for a fixed while.
    let deadline = Instant::now() + Duration::from_secs(10);
    while client.get(&format!("/s/{}", expired.token)).status != 404 {
        assert!(Instant::now() < deadline, "the link never expired");
        std::thread::sleep(Duration::from_millis(100)); // polling interval
    }
    let signed_in = stack.sign_in(&family);
    assert_eq!(
        signed_in
            .write("DELETE", &format!("/shares/{}", revoked.id), None)
            .status,
        204
    );

    let paths = [
        "/s/not-a-token".to_owned(),
        "/s/AAAAAAAAAAAAAAAAAAAAAA".to_owned(),
        format!("/s/{}", expired.token),
        format!("/s/{}", revoked.token),
    ];
    let answers: Vec<Response> = paths.iter().map(|p| client.get(p)).collect();
    let comparable = |r: &Response| r.comparable();
    for (path, answer) in paths.iter().zip(&answers) {
        assert_eq!(answer.status, 404, "{path}");
        assert_eq!(
            answer.header("cache-control"),
            Some("no-store"),
            "{path}: a 404 must not be cached"
        );
        assert!(answer.header("etag").is_none(), "{path}: no ETag on the 404 page");
        assert_security_headers(stack, answer);
        assert_eq!(
            comparable(answer),
            comparable(&answers[0]),
            "{path} differs from the malformed-token answer"
        );
    }
    assert_eq!(
        client.get(&format!("/s/{}", live.token)).status,
        200,
        "the live link still works"
    );
}

#[test]
fn stale_while_revalidate_serves_the_old_page_with_one_re_render_then_the_edited_one() {
    let stack = Stack::shared();
    let family = stack.family(1, 1);
    let token = &family.shares[0].token;
    let path = format!("/s/{token}");
    let client = stack.client();
    assert_eq!(client.get(&path).header("x-cache-status"), Some("miss"));
    // The miss's cache write is final once its fence is checked: an edit before that would
    // (rightly) have the write removed, and nothing stale would be left to serve.
    let short = &family.shares[0].token_hash_hex[..12];
    stack.wait_for_log(Duration::from_secs(10), "the miss's write kept", |l| {
        l["message"] == "share cache write kept" && l["token_hash"] == short
    });
    stack
        .db()
        .execute(
            "UPDATE moment SET title = 'Título editado' WHERE id = $1::text::uuid",
            &[&family.moment_ids[0]],
        )
        .unwrap();
    let hit = client.get(&path);
    assert_eq!(hit.header("x-cache-status"), Some("hit"));
    assert!(
        !hit.text().contains("Título editado"),
        "a fresh cached copy is served as is"
    );

    stack.control(serde_json::json!({"action": "age_share_cache", "token": token, "seconds": 301}));
    let stale = client.get(&path);
    assert_eq!(stale.header("x-cache-status"), Some("stale"));
    assert!(
        !stale.text().contains("Título editado"),
        "the stale copy is served at once"
    );
    // Until the one background re-render lands, every answer is the old copy, marked stale, and
    // none starts another re-render.
    let mut stale_answers = vec![stale];
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let next = client.get(&path);
        if next.text().contains("Título editado") {
            assert_eq!(
                next.header("x-cache-status"),
                Some("hit"),
                "the background re-render refilled the cache"
            );
            break;
        }
        assert_eq!(
            next.header("x-cache-status"),
            Some("stale"),
            "the old copy, before the re-render landed"
        );
        stale_answers.push(next);
        assert!(Instant::now() < deadline, "the background revalidation never landed");
        std::thread::sleep(Duration::from_millis(100)); // polling interval
    }
    let revalidations: Vec<String> = stale_answers
        .iter()
        .map(|r| {
            stack.request_line(r)["revalidation"]
                .as_str()
                .unwrap_or("none")
                .to_owned()
        })
        .collect();
    assert_eq!(
        revalidations[0], "started",
        "the first stale answer starts the re-render"
    );
    assert!(
        revalidations[1..].iter().all(|r| r == "joined"),
        "one re-render for the whole stale period: {revalidations:?}"
    );
}

#[test]
fn a_burst_of_stale_hits_triggers_one_background_render() {
    let stack = Stack::shared();
    let family = stack.family(1, 1);
    let token = family.shares[0].token.clone();
    let path = format!("/s/{token}");
    let client = stack.client();
    client.get(&path);
    stack.control(serde_json::json!({"action": "age_share_cache", "token": token, "seconds": 320}));
    let answers: Vec<edge_tests::Response> = std::thread::scope(|s| {
        let burst: Vec<_> = (0..8).map(|_| s.spawn(|| client.get(&path))).collect();
        burst.into_iter().map(|b| b.join().unwrap()).collect()
    });
    // Until the re-render lands every answer is the stale copy; on a loaded machine the burst
    // can outlast the re-render, and what comes after it is the refreshed copy, a hit.
    for r in &answers {
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(
            matches!(r.header("x-cache-status"), Some("stale" | "hit")),
            "the burst is answered from the cache: {:?}",
            r.header("x-cache-status")
        );
    }
    // Each stale answer's own log line says whether it started the re-render or joined one
    // already running: the decision is made before the answer, so the count is final once all
    // are logged.
    let started: Vec<String> = answers
        .iter()
        .filter(|r| r.header("x-cache-status") == Some("stale"))
        .map(|r| {
            stack.request_line(r)["revalidation"]
                .as_str()
                .unwrap_or("none")
                .to_owned()
        })
        .collect();
    assert!(!started.is_empty(), "the burst met the stale copy");
    assert_eq!(
        started.iter().filter(|s| *s == "started").count(),
        1,
        "a stale burst must re-render once: {started:?}"
    );
    assert!(started.iter().all(|s| s == "started" || s == "joined"), "{started:?}");
    let short = &family.shares[0].token_hash_hex[..12];
    stack.wait_for_log(Duration::from_secs(10), "the one re-render", |l| {
        l["message"] == "share revalidation" && l["token_hash"] == short && l["result"] == "revalidated"
    });
}

#[test]
fn views_are_counted_in_the_background() {
    let stack = Stack::shared();
    let family = stack.family(1, 1);
    let path = format!("/s/{}", family.shares[0].token);
    let client = stack.client();
    for _ in 0..3 {
        assert_eq!(client.get(&path).status, 200);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let views: i64 = stack
            .db()
            .query_one(
                "SELECT view_count FROM share_link WHERE id = $1::text::uuid",
                &[&family.shares[0].id],
            )
            .unwrap()
            .get(0);
        if views >= 3 {
            // Three views, not more: a tally flushed twice, or a view counted twice, shows here.
            assert_eq!(views, 3, "three page views were counted as {views}");
            break;
        }
        assert!(Instant::now() < deadline, "views never reached the database ({views})");
        std::thread::sleep(Duration::from_millis(100)); // polling interval, bounded by the deadline
    }
}

/// Issue 17: a page view is one Worker invocation. The stylesheet is inline, allowed by its hash
/// in the CSP (never `'unsafe-inline'`), so no second request reaches the Worker for it; the
/// 404 page is styled the same way. The branded link preview stays a fingerprinted file.
#[test]
fn the_stylesheet_is_inline_under_its_csp_hash_so_a_page_view_is_one_request() {
    use base64::Engine as _;
    use sha2::Digest as _;
    let stack = Stack::shared();
    let family = stack.family(1, 1);
    for path in [format!("/s/{}", family.shares[0].token), "/s/not-a-token".to_owned()] {
        let page = stack.client().get(&path);
        let html = page.text();
        assert!(
            !html.contains("rel=\"stylesheet\""),
            "{path}: a stylesheet link is a second request"
        );
        let css = html
            .split("<style>")
            .nth(1)
            .and_then(|rest| rest.split("</style>").next())
            .unwrap_or_else(|| panic!("{path}: no inline style"));
        assert!(css.contains("--paper"), "{path}: the style is the stylesheet: {css}");
        let hash = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(css.as_bytes()));
        let csp = page.header("content-security-policy").unwrap_or_default().to_owned();
        assert!(
            csp.split(';').any(|d| d.trim() == format!("style-src 'sha256-{hash}'")),
            "{path}: the CSP does not allow exactly this style: {csp}"
        );
        assert!(!csp.contains("unsafe-inline"), "{csp}");
    }
    let og = stack.client().get(babybook_edge::share::page::og_default_path());
    assert_eq!(og.status, 200);
    assert_eq!(og.header("content-type"), Some("image/png"));
    assert!(og.header("cache-control").unwrap().contains("immutable"));
    assert_eq!(stack.client().get("/_static/other.css").status, 404);
}

#[test]
fn share_pages_survive_the_database_dying_from_the_cache_and_stale_if_error() {
    let stack = Stack::start(StackOptions {
        own_cluster: true,
        ..StackOptions::named("share-db-dies")
    });
    let family = stack.family(2, 2);
    let (cached, never_cached) = (&family.shares[0], &family.shares[1]);
    let path = format!("/s/{}", cached.token);
    let client = stack.client();
    assert_eq!(client.get(&path).header("x-cache-status"), Some("miss"));
    stack.kill_database();

    let hit = client.get(&path);
    assert_eq!(
        (hit.status, hit.header("x-cache-status")),
        (200, Some("hit")),
        "a cache hit needs no database"
    );

    stack.control(serde_json::json!({"action": "age_share_cache", "token": cached.token, "seconds": 3600}));
    let stale = client.get(&path);
    assert_eq!(
        (stale.status, stale.header("x-cache-status")),
        (200, Some("stale-if-error")),
        "{}",
        stale.text()
    );
    assert!(stale.text().contains("Primeiro sorriso"));

    let started = Instant::now();
    let missing = client.get(&format!("/s/{}", never_cached.token));
    assert_eq!(missing.status, 503);
    assert!(missing
        .header("retry-after")
        .is_some_and(|s| s.parse::<u32>().unwrap() > 0));
    assert!(missing.header("content-type").unwrap().starts_with("text/html"));
    assert!(started.elapsed() < Duration::from_millis(2_500));
    assert!(stack.alive(), "wrangler dev died with the database");
}

#[test]
fn headless_chromium_loads_a_share_page_with_its_images_and_no_csp_violations() {
    let stack = Stack::shared();
    let family = stack.family(3, 1);
    let url = format!("{}/s/{}", stack.base_url, family.shares[0].token);
    // The detector works: a page that violates its own CSP is caught.
    let violating = browser_check("data:text/html,<meta http-equiv=\"Content-Security-Policy\" content=\"img-src 'none'\"><img src=\"https://example.invalid/x.png\">");
    assert!(
        !violating["violations"].as_array().unwrap().is_empty(),
        "the CSP detector saw nothing on a violating page"
    );

    let report = browser_check(&url);
    assert_eq!(report["status"], 200);
    assert_eq!(
        report["violations"],
        serde_json::json!([]),
        "CSP violations on the share page"
    );
    let images = report["images"].as_array().unwrap();
    assert!(images.len() >= 3, "{report}");
    assert!(images.iter().all(|i| i["ok"] == true), "images did not load: {report}");
}

/// Headless Chromium (Debian's, driven by playwright-core) loading `url`: status, CSP
/// violations, failed requests and images.
fn browser_check(url: &str) -> serde_json::Value {
    let script = edge_tests::stack::repo_root().join("edge-tests/browser/csp-check.mjs");
    let output = std::process::Command::new("node")
        .arg(script)
        .arg(url)
        .output()
        .expect("node");
    assert!(
        output.status.success(),
        "browser check failed (is Debian's chromium installed?): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stdout)))
}

// ------------------------------------------------------------------ global purges (issue 15)

/// A stack whose Worker purges globally through the purge API stand-in. Its tests make the
/// stand-in fail only for their own link (`matching` its token hash), so they can share it.
fn purge_stack() -> &'static Stack {
    static STACK: std::sync::OnceLock<Stack> = std::sync::OnceLock::new();
    STACK.get_or_init(|| {
        Stack::start(StackOptions {
            purge_api: true,
            ..StackOptions::named("share-purge")
        })
    })
}

/// The cache tag of a link's pages (`share::purge::link_tag`).
fn link_tag(share: &babybook_ops::generate::Share) -> String {
    babybook_edge::share::purge::link_tag(
        &babybook_edge::share::TokenHash::from_hex(&share.token_hash_hex).expect("a token hash"),
    )
}

/// Serves a link's page in both languages, so both are in the edge cache.
fn cache_both_languages(stack: &Stack, share: &babybook_ops::generate::Share) {
    let path = format!("/s/{}", share.token);
    let client = stack.client();
    for accept in ["pt-BR", "en"] {
        let r = client.get_with(&path, &[("accept-language", accept)]);
        assert_eq!(r.status, 200, "{accept}: {}", r.text());
    }
}

/// What this data center's Cache API holds for the link's first page in `lang`: the key and the
/// stored headers, read by the Worker's test control.
fn cached_entry(stack: &Stack, share: &babybook_ops::generate::Share, lang: &str) -> serde_json::Value {
    stack
        .control(serde_json::json!({"action": "share_cache_entry", "token": share.token, "lang": lang}))
        .json()
}

/// Copies what the Worker stored for the link (both languages) into the purge stand-in's model of
/// the other data centers: the same keys with the same `Cache-Tag`, as Cloudflare would hold them
/// in every data center the page was viewed in.
fn cached_in_other_data_centers(stack: &Stack, share: &babybook_ops::generate::Share) -> Vec<String> {
    ["pt-BR", "en"]
        .iter()
        .map(|lang| {
            let entry = cached_entry(stack, share, lang);
            assert_eq!(entry["found"], true, "{lang} page cached: {entry}");
            let key = entry["key"].as_str().expect("key").to_owned();
            stack.remote_cache_put(&key, entry["headers"]["cache-tag"].as_str());
            key
        })
        .collect()
}

/// The purge requests that named this link's tag, oldest first.
fn purges_of(stack: &Stack, share: &babybook_ops::generate::Share) -> Vec<serde_json::Value> {
    let tag = link_tag(share);
    stack
        .purge_requests()
        .into_iter()
        .filter(|r| {
            r["tags"].as_array().is_some_and(|t| {
                t.iter()
                    .any(|u| u.as_str().is_some_and(|u| u.eq_ignore_ascii_case(&tag)))
            })
        })
        .collect()
}

/// Polls the stand-in's record until it holds an accepted purge of this link.
fn wait_for_accepted_purge(
    stack: &Stack,
    share: &babybook_ops::generate::Share,
    timeout: Duration,
) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + timeout;
    loop {
        let seen = purges_of(stack, share);
        if seen.iter().any(|r| r["answer"] == "accepted") {
            return seen;
        }
        assert!(
            Instant::now() < deadline,
            "no accepted purge of the link within {timeout:?}; the stand-in saw {seen:?}. Tail:\n{}",
            stack.log_tail(40)
        );
        std::thread::sleep(Duration::from_millis(100)); // polling interval, bounded by the deadline
    }
}

#[test]
fn a_cached_page_carries_its_links_tag_and_its_accounts_tag_and_never_the_token() {
    let stack = Stack::shared();
    let family = stack.family(1, 1);
    let share = &family.shares[0];
    cache_both_languages(stack, share);
    for lang in ["pt-BR", "en"] {
        let entry = cached_entry(stack, share, lang);
        let tags: Vec<&str> = entry["headers"]["cache-tag"]
            .as_str()
            .unwrap_or_else(|| panic!("{lang}: no Cache-Tag stored: {entry}"))
            .split(',')
            .collect();
        let account = babybook_jobs::Id::parse(&family.account_id).unwrap();
        assert_eq!(
            tags,
            [link_tag(share), babybook_edge::share::purge::account_tag(&account)],
            "{lang}"
        );
        assert!(!entry.to_string().contains(&share.token), "the token is never stored");
    }
    let served = stack.client().get(&format!("/s/{}", share.token));
    assert_eq!(
        served.header("cache-tag"),
        None,
        "the tags stay with the cache, not the visitor"
    );
}

#[test]
fn revoking_and_editing_a_link_purge_its_tag_so_no_other_data_center_keeps_its_pages() {
    let stack = purge_stack();
    let family = stack.family(1, 2);
    let bystander = stack.family(1, 1);
    let (revoked, edited) = (&family.shares[0], &family.shares[1]);
    let mut gone = Vec::new();
    for share in [revoked, edited] {
        cache_both_languages(stack, share);
        gone.extend(cached_in_other_data_centers(stack, share));
    }
    cache_both_languages(stack, &bystander.shares[0]);
    let kept = cached_in_other_data_centers(stack, &bystander.shares[0]);
    let s = stack.sign_in(&family);

    assert_eq!(s.write("DELETE", &format!("/shares/{}", revoked.id), None).status, 204);
    let edit = s.write(
        "PATCH",
        &format!("/shares/{}", edited.id),
        Some(&serde_json::json!({"title": "Outro título"})),
    );
    assert_eq!(edit.status, 200, "{}", edit.text());

    let zone = &stack.purge_api.as_ref().unwrap().1;
    for share in [revoked, edited] {
        let seen = wait_for_accepted_purge(stack, share, Duration::from_secs(20));
        let accepted = seen.iter().find(|r| r["answer"] == "accepted").unwrap();
        assert_eq!(accepted["zone"], zone.as_str(), "the configured zone");
        assert_eq!(
            accepted["token"],
            stack.secrets.purge_token.as_str(),
            "the CACHE_PURGE_TOKEN as a bearer token"
        );
        assert_eq!(
            accepted["kind"], "tags",
            "Cache API entries are purged by tag: {accepted}"
        );
        assert_eq!(seen.len(), 1, "an accepted purge is not repeated: {seen:?}");
    }
    let remote = stack.remote_cached_keys();
    for key in &gone {
        assert!(!remote.contains(key), "another data center still holds {key}");
    }
    for key in &kept {
        assert!(remote.contains(key), "another family's page was purged too: {key}");
    }
    assert_eq!(stack.client().get(&format!("/s/{}", revoked.token)).status, 404);
    let edited_page = stack.client().get(&format!("/s/{}", edited.token));
    assert!(
        edited_page.text().contains("Outro título"),
        "the edit shows at once here"
    );
}

#[test]
fn a_purge_the_api_refuses_is_retried_until_accepted_and_alerts_while_it_keeps_failing() {
    let stack = purge_stack();
    let family = stack.family(1, 1);
    let share = &family.shares[0];
    cache_both_languages(stack, share);
    // `success: false` in a 200: a client that reads only the status would think it purged.
    stack.purge_failure(Some(serde_json::json!({
        "mode": "success_false", "times": 3, "matching": share.token_hash_hex,
    })));
    let s = stack.sign_in(&family);

    let revoke = s.write("DELETE", &format!("/shares/{}", share.id), None);
    assert_eq!(revoke.status, 204, "{}", revoke.text());
    assert_eq!(
        stack.client().get(&format!("/s/{}", share.token)).status,
        404,
        "this data center's copies are gone at once"
    );

    let seen = wait_for_accepted_purge(stack, share, Duration::from_secs(60));
    let answers: Vec<&str> = seen.iter().map(|r| r["answer"].as_str().unwrap()).collect();
    assert_eq!(answers, ["success_false", "success_false", "success_false", "accepted"]);
    let gaps: Vec<i64> = seen
        .windows(2)
        .map(|w| w[1]["at_ms"].as_i64().unwrap() - w[0]["at_ms"].as_i64().unwrap())
        .collect();
    assert!(gaps[1] >= 1_900 && gaps[2] >= 3_900, "retries back off: {gaps:?} ms");

    let short = &share.token_hash_hex[..12];
    let alert = stack.wait_for_log(Duration::from_secs(10), "the purge_failing alert", |l| {
        l["alert"] == "purge_failing" && l["token_hash"] == short
    });
    assert_eq!(alert["level"], "ERROR");
    assert_eq!(alert["failed_attempts"], 3, "the alert fires at the third failure");
    assert!(
        !alert.to_string().contains(&share.token),
        "the raw token never reaches a log line"
    );
    stack.wait_for_log(Duration::from_secs(10), "the purge job's success", |l| {
        l["message"] == "job done" && l["job_type"] == "purge" && l["token_hash"] == short
    });
}

#[test]
fn delete_answers_at_once_while_the_purge_api_hangs_and_the_purge_lands_later() {
    let stack = purge_stack();
    let family = stack.family(1, 1);
    let share = &family.shares[0];
    cache_both_languages(stack, share);
    stack.purge_failure(Some(serde_json::json!({
        "mode": "hang", "times": 1, "matching": share.token_hash_hex,
    })));
    let s = stack.sign_in(&family);

    let started = Instant::now();
    let revoke = s.write("DELETE", &format!("/shares/{}", share.id), None);
    let took = started.elapsed();
    assert_eq!(revoke.status, 204, "{}", revoke.text());
    assert!(
        took < Duration::from_millis(2_500),
        "DELETE waited for the purge API: {took:?}"
    );

    let seen = wait_for_accepted_purge(stack, share, Duration::from_secs(60));
    assert_eq!(seen.first().unwrap()["answer"], "hang");
}

#[test]
fn a_malformed_purge_job_is_dead_lettered_as_an_invalid_message() {
    let stack = Stack::shared();
    let family = stack.family(1, 0);
    let mut job = edge_tests::fixtures::job_message(
        &family.account_id,
        "purge-poison-test",
        babybook_jobs::Job::Export {
            export_id: babybook_edge::secure_random::new_id().unwrap(),
        },
    );
    // A purge job whose token hash is not 64 hex characters (here: something like a raw token).
    job["job_type"] = "purge".into();
    job["token_hash"] = "Zm9vYmFyLXRva2VuLW5vdC1oYXNo".into();
    job.as_object_mut().unwrap().remove("export_id");
    stack.control(serde_json::json!({"action": "publish_raw", "body": job}));
    let refused = stack.wait_for_log(Duration::from_secs(20), "the malformed purge refused", |l| {
        l["message"] == "job unreadable" && l["detail"].as_str().is_some_and(|d| d.contains("token_hash"))
    });
    let at = refused["timestamp"].as_str().unwrap().to_owned();
    let dead = stack.wait_for_log(Duration::from_secs(20), "its dead-letter alert", |l| {
        l["alert"] == "dlq_item"
            && l["last_error"]["kind"] == "invalid_message"
            && l["timestamp"].as_str().is_some_and(|t| t >= at.as_str())
    });
    assert_eq!(dead["classification"], "definitive");
    assert!(stack.alive(), "a poison purge job must not crash the consumer");
}

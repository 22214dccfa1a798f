//! Issue 4: public share pages, `GET /s/:token`.

use std::time::{Duration, Instant};

use edge_tests::html::check_balanced;
use edge_tests::Response;

use crate::{Stack, StackOptions};

const SHARE_CACHE_CONTROL: &str = "public, max-age=300, stale-while-revalidate=60";

fn csp(stack: &Stack) -> String {
    format!(
        "default-src 'self'; img-src 'self' data: {}; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
        stack.media.lock().unwrap().url()
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
    assert!(
        !html.contains(&family.shares[0].token),
        "the token must not appear in the page"
    );
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
    assert!(english.text().contains("shared moments"));
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
    std::thread::sleep(Duration::from_millis(2_200));
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
    let comparable = |r: &Response| {
        let mut h: Vec<(String, String)> = r
            .headers
            .iter()
            .filter(|(n, _)| !matches!(n.as_str(), "x-trace-id" | "date"))
            .cloned()
            .collect();
        h.sort();
        (r.status, h, r.body.clone())
    };
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
fn stale_while_revalidate_serves_the_old_page_once_then_the_edited_one() {
    let stack = Stack::shared();
    let family = stack.family(1, 1);
    let token = &family.shares[0].token;
    let path = format!("/s/{token}");
    let client = stack.client();
    assert_eq!(client.get(&path).header("x-cache-status"), Some("miss"));
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
        assert!(Instant::now() < deadline, "the background revalidation never landed");
        std::thread::sleep(Duration::from_millis(100));
    }
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
    let short = &family.shares[0].token_hash_hex[..12];
    let before = stack
        .logs()
        .iter()
        .filter(|l| l["message"] == "share revalidation" && l["token_hash"] == short)
        .count();
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| assert_eq!(client.get(&path).status, 200));
        }
    });
    std::thread::sleep(Duration::from_secs(2));
    let after = stack
        .logs()
        .iter()
        .filter(|l| l["message"] == "share revalidation" && l["token_hash"] == short)
        .count();
    assert_eq!(after - before, 1, "a stale burst must re-render once");
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
            break;
        }
        assert!(Instant::now() < deadline, "views never reached the database ({views})");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_stylesheet_is_served_from_self_as_immutable_and_other_files_are_not() {
    let stack = Stack::shared();
    let family = stack.family(1, 1);
    let html = stack.client().get(&format!("/s/{}", family.shares[0].token)).text();
    let href = html
        .split("rel=\"stylesheet\" href=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("stylesheet link");
    let css = stack.client().get(href);
    assert_eq!(css.status, 200);
    assert_eq!(css.header("content-type"), Some("text/css; charset=utf-8"));
    assert!(css.header("cache-control").unwrap().contains("immutable"));
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

/// The in-isolate page memory's own limits (`src/share/page_memory.rs`), as the counters report.
const MEMORY_MAX_PAGE_BYTES: u64 = 1024 * 1024;
const MEMORY_BUDGET_BYTES: u64 = 16 * 1024 * 1024;

#[test]
fn a_huge_share_page_requested_concurrently_is_served_but_never_kept_in_isolate_memory() {
    let stack = Stack::shared();
    let family = stack.family(200, 1);
    // 20,000 characters per moment that HTML escaping turns into five or six bytes each: a page
    // of about 20 MB, which any account can make.
    stack
        .db()
        .execute(
            "UPDATE moment SET body = repeat('\"&', 10000) WHERE account_id = $1::text::uuid",
            &[&family.account_id],
        )
        .unwrap();
    let path = format!("/s/{}", family.shares[0].token);
    let requests: Vec<_> = (0..4)
        .map(|i| {
            let (client, path) = (stack.client(), path.clone());
            std::thread::spawn(move || {
                let lang = if i % 2 == 0 { "pt-BR" } else { "en" };
                client.get_with(&path, &[("accept-language", lang)])
            })
        })
        .collect();
    for request in requests {
        let r = request.join().unwrap();
        assert_eq!(r.status, 200, "{}", &r.text()[..r.text().len().min(300)]);
        assert!(
            r.body.len() as u64 > 16 * MEMORY_MAX_PAGE_BYTES,
            "the page is {} bytes: the test needs one far over the memory limit",
            r.body.len()
        );
    }
    let again = stack.client().get(&path);
    assert_eq!(again.status, 200);
    assert_eq!(again.header("x-cache-status"), Some("hit"), "served from the Cache API");
    let memory = stack.counters()["share_memory"].clone();
    let bytes = memory["bytes"]
        .as_u64()
        .unwrap_or_else(|| panic!("no byte accounting: {memory}"));
    let largest = memory["largest_entry_bytes"]
        .as_u64()
        .unwrap_or_else(|| panic!("no byte accounting: {memory}"));
    assert!(
        largest <= MEMORY_MAX_PAGE_BYTES,
        "a page of {largest} bytes is kept in isolate memory"
    );
    assert!(bytes <= MEMORY_BUDGET_BYTES, "isolate page memory holds {bytes} bytes");
}

//! A global purge of a link's cached pages through Cloudflare's zone purge API
//! (`POST /zones/{zone}/purge_cache`, purge by URL), as plain values: what the edge asks for, and
//! which answers mean the purge was accepted. The shell (`edge::share_cache`) sends it; the retry
//! policy of a purge that failed is `babybook_jobs::purge`.

use crate::config::CachePurge;
use crate::lang::Lang;
use crate::share::cache_policy::view_cache_key;
use crate::share::view::View;
use crate::share::TokenHash;

/// How long one purge call may take before it counts as failed (and is queued or retried).
pub const PURGE_TIMEOUT_MS: u32 = 5_000;

/// The cache keys of every list page any link can have, in every language: what a purge names
/// (2 x 9 = 18, within the API's 100 URLs per call). Moment views need no naming: they are served
/// only beside a cached first page of the same generation (`cache_policy::moment_view_current`).
pub fn page_urls(host: &str, hash: &TokenHash) -> Vec<String> {
    Lang::ALL
        .iter()
        .flat_map(|&lang| View::all_list_pages().map(move |view| view_cache_key(host, hash, lang, view)))
        .collect()
}

/// The most URLs one call of the zone purge API may name.
pub const MAX_URLS_PER_CALL: usize = 100;

pub fn request_url(purge: &CachePurge) -> String {
    format!("{}/zones/{}/purge_cache", purge.api_base, purge.zone_id)
}

pub fn request_body(urls: &[String]) -> String {
    serde_json::json!({ "files": urls }).to_string()
}

/// Whether the API accepted the purge: a 2xx whose JSON body says `"success": true`. Anything
/// else (another status, `success: false` with errors, a body that is not the API's) is a
/// failure with a short description for the log.
pub fn accepted(status: u16, body: &str) -> Result<(), String> {
    let json: Option<serde_json::Value> = serde_json::from_str(body).ok();
    let success = json
        .as_ref()
        .and_then(|j| j.get("success"))
        .and_then(serde_json::Value::as_bool);
    if (200..300).contains(&status) && success == Some(true) {
        return Ok(());
    }
    let errors = json
        .as_ref()
        .and_then(|j| j.get("errors"))
        .and_then(serde_json::Value::as_array)
        .map(|errors| {
            errors
                .iter()
                .take(3)
                .map(|e| format!("{} {}", e["code"], e["message"].as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join("; ")
        })
        .filter(|e| !e.is_empty());
    let mut detail = match (success, errors) {
        (_, Some(errors)) => format!("purge API answered {status}: {errors}"),
        (Some(false), None) => format!("purge API answered {status} with success false"),
        (_, None) => format!("purge API answered {status} without a success flag"),
    };
    let mut end = detail.len().min(300);
    while !detail.is_char_boundary(end) {
        end -= 1;
    }
    detail.truncate(end);
    Err(detail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    #[test]
    fn a_purge_names_every_page_in_every_language_of_the_link_on_the_share_host() {
        let hash = TokenHash([0x3c; 32]);
        let urls = page_urls("share.babybook.com", &hash);
        let hex = hash.to_hex();
        assert_eq!(urls.len(), 18, "{urls:?}");
        assert!(urls.len() <= MAX_URLS_PER_CALL);
        for lang in ["pt-BR", "en"] {
            let first = format!("https://share.babybook.com/__edge-cache/v1/page/{hex}/{lang}");
            assert!(urls.contains(&first), "{first}");
            for n in 2..=9 {
                let page = format!("{first}/{n}");
                assert!(urls.contains(&page), "{page}");
            }
        }
        let body: serde_json::Value = serde_json::from_str(&request_body(&urls)).unwrap();
        assert_eq!(body, serde_json::json!({ "files": urls }));
    }

    #[test]
    fn the_request_goes_to_the_zone_under_the_configured_api_base() {
        let purge = CachePurge {
            api_base: "https://api.cloudflare.com/client/v4".into(),
            zone_id: "0123456789abcdef0123456789abcdef".into(),
            token: Secret::for_tests("t"),
        };
        assert_eq!(
            request_url(&purge),
            "https://api.cloudflare.com/client/v4/zones/0123456789abcdef0123456789abcdef/purge_cache"
        );
    }

    #[test]
    fn only_a_2xx_that_says_success_true_is_an_accepted_purge() {
        let ok = r#"{"success":true,"errors":[],"messages":[],"result":{"id":"z"}}"#;
        let refused = r#"{"success":false,"errors":[{"code":1105,"message":"busy"}],"messages":[],"result":null}"#;
        let rows = [
            (200, ok, Ok(())),
            (200, refused, Err("purge API answered 200: 1105 busy")),
            (
                403,
                r#"{"success":false,"errors":[{"code":10000,"message":"Authentication error"}]}"#,
                Err("purge API answered 403: 10000 Authentication error"),
            ),
            (500, ok, Err("")),
            (
                500,
                "internal error",
                Err("purge API answered 500 without a success flag"),
            ),
            (
                200,
                "<html>captive portal</html>",
                Err("purge API answered 200 without a success flag"),
            ),
            (
                200,
                r#"{"success":false}"#,
                Err("purge API answered 200 with success false"),
            ),
            (200, r#"{"success":"true"}"#, Err("")),
        ];
        for (status, body, want) in rows {
            let got = accepted(status, body);
            match (&got, want) {
                (Ok(()), Ok(())) => {}
                (Err(_), Err("")) => {}
                (Err(detail), Err(want)) => assert_eq!(detail, want, "{status} {body}"),
                _ => panic!("{status} {body}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn a_long_error_list_is_cut_short_for_the_log() {
        let message = "é".repeat(400);
        let body = format!(r#"{{"success":false,"errors":[{{"code":1,"message":"{message}"}}]}}"#);
        let detail = accepted(400, &body).unwrap_err();
        assert!(detail.len() <= 300, "{}", detail.len());
    }
}

//! A global purge of cached share pages through Cloudflare's zone purge API
//! (`POST /zones/{zone}/purge_cache`, purge by cache tag), as plain values: the tags a cached page
//! carries, what the edge asks the API for, and which answers mean the purge was accepted. The
//! shell (`edge::share_cache`) sends it; the retry policy of a purge that failed is
//! `babybook_jobs::purge`; docs/share-pages.md says which change purges which tag.
//!
//! Why tags and not URLs: pages live in the Cache API under keys the Worker chose, and
//! Cloudflare's documentation ("How the Cache works", "Purge cache key resources") says such
//! entries cannot be purged by URL; Purge Everything, and purge by tag, host or prefix, reach
//! them. A tag names exactly one link's or one account's pages, in every language, view and
//! render version.

use babybook_jobs::Id;
use sha2::{Digest, Sha256};

use crate::config::CachePurge;
use crate::share::TokenHash;

/// How long one purge call may take before it counts as failed (and is queued or retried).
pub const PURGE_TIMEOUT_MS: u32 = 5_000;

/// The most tags one call of the purge API may name (Cloudflare's documented limit for every
/// plan; `ops::standin::purge` refuses more, as the API does).
pub const MAX_TAGS_PER_CALL: usize = 100;

/// What one purge is about: one link's pages, or every page of one account (a change the edge
/// cannot map to links: a moment, an asset, a child, a deleted link).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PurgeTarget {
    Link(TokenHash),
    Account(Id),
}

impl PurgeTarget {
    pub fn tag(&self) -> String {
        match self {
            PurgeTarget::Link(hash) => link_tag(hash),
            PurgeTarget::Account(id) => account_tag(id),
        }
    }
}

/// The cache tag of one link's pages: its token *hash* (never the token).
pub fn link_tag(hash: &TokenHash) -> String {
    format!("bb-link-{}", hash.to_hex())
}

/// The cache tag of every page of one account: a digest of its id (account ids are not written
/// into anything Cloudflare keeps or shows).
pub fn account_tag(account_id: &Id) -> String {
    let digest = Sha256::digest(format!("babybook-account-tag:{account_id}").as_bytes());
    format!("bb-acct-{}", crate::hex::encode(&digest[..16]))
}

/// The `Cache-Tag` header stored with a cached page: comma-separated, as the API documents.
pub fn cache_tag_header(hash: &TokenHash, account_id: &Id) -> String {
    format!("{},{}", link_tag(hash), account_tag(account_id))
}

/// Token hashes as the database lists them for a purge (comma-separated lowercase hex); anything
/// that is not one is skipped.
pub fn parse_token_hashes(text: &str) -> Vec<TokenHash> {
    text.split(',').filter_map(|h| TokenHash::from_hex(h.trim())).collect()
}

pub fn request_url(purge: &CachePurge) -> String {
    format!("{}/zones/{}/purge_cache", purge.api_base, purge.zone_id)
}

/// The body of one call: `{"tags": [...]}`, at most [`MAX_TAGS_PER_CALL`] of them.
pub fn request_body(tags: &[String]) -> String {
    debug_assert!(tags.len() <= MAX_TAGS_PER_CALL);
    serde_json::json!({ "tags": tags }).to_string()
}

/// The targets' tags in calls of at most [`MAX_TAGS_PER_CALL`], each tag once.
pub fn tag_batches(targets: &[PurgeTarget]) -> Vec<Vec<String>> {
    let mut tags: Vec<String> = Vec::with_capacity(targets.len());
    for target in targets {
        let tag = target.tag();
        if !tags.contains(&tag) {
            tags.push(tag);
        }
    }
    tags.chunks(MAX_TAGS_PER_CALL).map(<[String]>::to_vec).collect()
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

    fn account() -> Id {
        Id::parse("7d0c3b9e-8f41-4f0e-9a55-3f3c1c2f8a10").unwrap()
    }

    #[test]
    fn a_pages_tags_name_its_link_by_token_hash_and_its_account_by_a_digest_never_the_raw_ids() {
        let hash = TokenHash([0x3c; 32]);
        let header = cache_tag_header(&hash, &account());
        let tags: Vec<&str> = header.split(',').collect();
        assert_eq!(tags.len(), 2, "{header}");
        assert_eq!(tags[0], format!("bb-link-{}", hash.to_hex()));
        assert!(
            tags[1].starts_with("bb-acct-") && tags[1].len() == "bb-acct-".len() + 32,
            "{}",
            tags[1]
        );
        assert!(
            !header.contains(&account().to_string()),
            "the raw account id stays out: {header}"
        );
        assert!(!header.contains(&account().to_string().replace('-', "")));
        for tag in tags {
            assert!(
                tag.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'),
                "a tag of printable ASCII without spaces or commas: {tag}"
            );
            assert!(tag.len() <= 1024);
        }
        assert_ne!(
            account_tag(&account()),
            account_tag(&Id::parse("00000000-0000-4000-8000-000000000001").unwrap())
        );
    }

    #[test]
    fn a_purge_names_tags_in_calls_of_at_most_the_apis_limit_each_tag_once() {
        let mut targets: Vec<PurgeTarget> = (0..=250u8).map(|n| PurgeTarget::Link(TokenHash([n; 32]))).collect();
        targets.push(PurgeTarget::Link(TokenHash([7; 32])));
        targets.push(PurgeTarget::Account(account()));
        targets.push(PurgeTarget::Account(account()));
        let batches = tag_batches(&targets);
        let sizes: Vec<usize> = batches.iter().map(Vec::len).collect();
        assert_eq!(sizes, [100, 100, 52], "251 links and one account");
        let all: std::collections::HashSet<&String> = batches.iter().flatten().collect();
        assert_eq!(all.len(), 252, "each tag once");
        let body: serde_json::Value = serde_json::from_str(&request_body(&batches[2])).unwrap();
        assert_eq!(body, serde_json::json!({ "tags": batches[2] }));
        assert!(body.get("files").is_none(), "Cache API entries cannot be purged by URL");
        assert!(tag_batches(&[]).is_empty());
    }

    #[test]
    fn the_databases_list_of_token_hashes_reads_back_and_skips_what_is_not_one() {
        let (a, b) = (TokenHash([1; 32]), TokenHash([0xfe; 32]));
        let text = format!("{},{},not-hex,", a.to_hex(), b.to_hex());
        assert_eq!(parse_token_hashes(&text), [a, b]);
        assert!(parse_token_hashes("").is_empty());
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

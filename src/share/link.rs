//! Links and the page they show. A share has its own link (its token) and may have recipient
//! links, one per relative, each with its own token, expiry and revocation. Every link of a share
//! shows the share's page, cached once under the share's token hash: the link's *page key*. The
//! edge learns a recipient token's page key from the database on the first request in a data
//! center and keeps it as a *resolution* (a small Cache API entry plus an in-isolate copy), so a
//! later request for that token is a cache hit with no database trip.
//!
//! What a revocation reaches: a recipient link's tag (its own token hash) is carried only by its
//! resolution, so purging it leaves the share's page and every other link alone; the share's
//! tag is carried by the page and by every resolution to it, so revoking the share takes every
//! link's way to the page with it.

use babybook_jobs::Id;
use serde::Deserialize;

use crate::share::purge;
use crate::share::TokenHash;

/// What the database says about the link a page was read through (the line after the page in
/// `public_share_link_page`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    /// The share's token hash: where the page is cached.
    pub page_key: TokenHash,
    /// The link's fence (`share_page_fence` of its token): a resolution written from this read is
    /// kept only while it is unchanged.
    pub fence: Option<String>,
    /// The link's own expiry (a recipient link's; the share's is the page's).
    pub expires_at_ms: Option<i64>,
    /// The link has a passphrase (`share::passphrase`): its page is served only to a browser
    /// holding the link's pass.
    pub locked: bool,
}

#[derive(Deserialize)]
struct LinkLine {
    page_key: String,
    #[serde(default)]
    fence: Option<String>,
    #[serde(default)]
    expires_at_ms: Option<i64>,
    #[serde(default)]
    passphrase: bool,
}

/// Splits `public_share_link_page`'s answer into the page's JSON and the link. JSON text never
/// holds a raw newline, so the first one is the boundary.
pub fn split_link_page(text: &str) -> Result<(&str, LinkInfo), String> {
    let (page, link) = text
        .split_once('\n')
        .ok_or_else(|| "share link page: no link line".to_owned())?;
    let line: LinkLine = serde_json::from_str(link).map_err(|e| format!("share link line: {e}"))?;
    let page_key = TokenHash::from_hex(&line.page_key).ok_or_else(|| "share link line: page_key".to_owned())?;
    Ok((
        page,
        LinkInfo {
            page_key,
            fence: line.fence,
            expires_at_ms: line.expires_at_ms,
            locked: line.passphrase,
        },
    ))
}

/// A request's link: the token it came with (what its views, expiry, revocation and database
/// reads are about) and the key its share's pages are cached under (the same hash for a share's
/// own link).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LinkKey {
    pub token: TokenHash,
    pub page: TokenHash,
}

/// Where a token's request finds its page: its own key, or its share's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Resolution {
    pub page_key: TokenHash,
    /// The link's own expiry: past it the resolution is not used (the answer is the 404).
    pub expires_at_ms: Option<i64>,
    /// The link has a passphrase: no page before its pass.
    pub locked: bool,
}

impl Resolution {
    /// A resolution as the Cache API entry's body holds it: `<page key hex> <expiry ms or ->`,
    /// then ` locked` for a link with a passphrase.
    pub fn to_text(&self) -> String {
        let expiry = self.expires_at_ms.map_or_else(|| "-".to_owned(), |at| at.to_string());
        let lock = if self.locked { " locked" } else { "" };
        format!("{} {expiry}{lock}", self.page_key.to_hex())
    }

    pub fn from_text(text: &str) -> Option<Resolution> {
        let mut parts = text.trim().split(' ');
        let (Some(key), Some(expiry), lock, None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return None;
        };
        let expires_at_ms = match expiry {
            "-" => None,
            ms => Some(ms.parse().ok()?),
        };
        let locked = match lock {
            None => false,
            Some("locked") => true,
            Some(_) => return None,
        };
        Some(Resolution {
            page_key: TokenHash::from_hex(key)?,
            expires_at_ms,
            locked,
        })
    }
}

/// The `Cache-Tag` of a recipient token's resolution: its own tag (its revocation), the share's
/// (the share's revocation) and the account's.
pub fn resolution_cache_tags(token: &TokenHash, page_key: &TokenHash, account: &Id) -> String {
    format!(
        "{},{}",
        purge::cache_tag_header(token, account),
        purge::link_tag(page_key)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(b: u8) -> TokenHash {
        TokenHash([b; 32])
    }

    #[test]
    fn the_link_line_follows_the_page_after_the_first_newline() {
        let text = format!(
            "{{\"child_name\":\"A\"}}\n{{\"page_key\":\"{}\",\"fence\":\"3:1.2\",\"expires_at_ms\":1700000000000}}",
            hash(7).to_hex()
        );
        let (page, link) = split_link_page(&text).unwrap();
        assert_eq!(page, "{\"child_name\":\"A\"}");
        assert_eq!(
            link,
            LinkInfo {
                page_key: hash(7),
                fence: Some("3:1.2".into()),
                expires_at_ms: Some(1_700_000_000_000),
                locked: false,
            }
        );
    }

    #[test]
    fn an_answer_without_a_link_line_or_with_a_bad_key_is_an_error() {
        assert!(split_link_page("{\"child_name\":\"A\"}").is_err());
        assert!(split_link_page("{}\n{\"page_key\":\"zz\"}").is_err());
        assert!(split_link_page("{}\nnot json").is_err());
    }

    #[test]
    fn a_resolution_round_trips_through_its_text() {
        for r in [
            Resolution {
                page_key: hash(1),
                expires_at_ms: None,
                locked: false,
            },
            Resolution {
                page_key: hash(2),
                expires_at_ms: Some(1_800_000_000_123),
                locked: true,
            },
        ] {
            assert_eq!(Resolution::from_text(&r.to_text()), Some(r));
        }
        for junk in [
            "",
            "abc -",
            &format!("{} x", hash(1).to_hex()),
            &hash(1).to_hex(),
            &format!("{} - open", hash(1).to_hex()),
            &format!("{} - locked x", hash(1).to_hex()),
        ] {
            assert_eq!(Resolution::from_text(junk), None, "{junk:?}");
        }
    }

    #[test]
    fn a_resolution_carries_its_own_tag_and_its_shares_never_the_token() {
        let account = Id::from_random_bytes([9; 16]);
        let tags = resolution_cache_tags(&hash(1), &hash(2), &account);
        let tags: Vec<&str> = tags.split(',').collect();
        assert_eq!(
            tags,
            [
                purge::link_tag(&hash(1)).as_str(),
                purge::account_tag(&account).as_str(),
                purge::link_tag(&hash(2)).as_str()
            ]
        );
    }
}

//! The share pages' stylesheet, inline in every page and allowed by its hash in the CSP: a page
//! view is one request to the Worker (a linked stylesheet was a second one for every new
//! visitor), and the policy needs no `'unsafe-inline'`.

use std::sync::OnceLock;

use base64::Engine as _;
use sha2::{Digest, Sha256};

/// The stylesheet, exactly the bytes between `<style>` and `</style>`.
pub const STYLESHEET: &str = include_str!("../../templates/share.css");

/// The CSP source that allows exactly [`STYLESHEET`]: `'sha256-<base64 of its SHA-256>'`.
pub fn style_source() -> &'static str {
    static SOURCE: OnceLock<String> = OnceLock::new();
    SOURCE.get_or_init(|| {
        let digest = Sha256::digest(STYLESHEET.as_bytes());
        format!("'sha256-{}'", base64::engine::general_purpose::STANDARD.encode(digest))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_source_is_the_base64_sha256_of_the_stylesheet_and_the_stylesheet_cannot_end_its_element() {
        // Known answer (`printf %s … | sha256sum | xxd -r -p | base64`): standard base64 with
        // padding, as CSP hashes are written.
        let digest = Sha256::digest(b"body{margin:0}");
        assert_eq!(
            base64::engine::general_purpose::STANDARD.encode(digest),
            "IAdwN3biDCQ3brrgp1m8kBEsPQYyqfREKOEfeoREopc="
        );
        let source = style_source();
        assert!(source.starts_with("'sha256-") && source.ends_with('\''));
        assert_eq!(source.len(), "'sha256-'".len() + 44);
        assert!(
            !STYLESHEET.contains("</"),
            "the stylesheet would end its <style> element"
        );
    }
}

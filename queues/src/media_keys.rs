//! Object keys of a family's media, checked at every boundary they cross (issue 29): an
//! original is stored under `originals/<account>/…`, its derivatives under
//! `derived/<account>/…`, and a share page renders derivatives of its own account only. A key
//! from elsewhere (a media worker's bad answer, a row written by hand) could otherwise put a
//! full-resolution original, with its location metadata, or another family's photo on a public
//! page.

use crate::Id;

/// The longest key any boundary takes.
pub const MAX_KEY_BYTES: usize = 1024;

/// Whether `key` is a plain object key under `prefix`: only `A-Z a-z 0-9 . _ - ~` and `/`, no
/// empty, `.` or `..` segment, at most [`MAX_KEY_BYTES`].
fn under(key: &str, prefix: &str) -> bool {
    key.len() <= MAX_KEY_BYTES
        && key.starts_with(prefix)
        && key.len() > prefix.len()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'.' | b'_' | b'-' | b'~'))
        && key
            .split('/')
            .all(|segment| !segment.is_empty() && segment != "." && segment != "..")
}

/// An uploaded original of `account`'s.
pub fn is_original_key(key: &str, account: &Id) -> bool {
    under(key, &format!("originals/{account}/"))
}

/// A derived preview of `account`'s, the only kind of key a page may show.
pub fn is_derivative_key(key: &str, account: &Id) -> bool {
    under(key, &format!("derived/{account}/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_taken_only_under_their_accounts_prefix_and_as_plain_segments() {
        let account = Id::parse("9a1e2b3c-4d5e-4f60-8a7b-c9d0e1f2a3b4").unwrap();
        let other = Id::parse("00000000-0000-4000-8000-000000000001").unwrap();
        let ok = format!("derived/{account}/5d1e7c2a/960.webp");
        assert!(is_derivative_key(&ok, &account));
        assert!(!is_derivative_key(&ok, &other), "another family's photo");
        assert!(is_original_key(&format!("originals/{account}/x.jpg"), &account));
        let rows = [
            format!("originals/{account}/x.jpg"),
            format!("derived/{account}/../../originals/{account}/x.jpg"),
            format!("derived/{account}/./x.webp"),
            format!("derived/{account}//x.webp"),
            format!("derived/{account}/"),
            format!("/derived/{account}/x.webp"),
            format!("derived/{account}/x.webp?download=1"),
            format!("derived/{account}/x%2e%2e/y.webp"),
            format!("derived/{account}/x y.webp"),
            format!("derived/{account}/{}", "k".repeat(MAX_KEY_BYTES)),
            "derived/x.webp".to_owned(),
        ];
        for key in rows {
            assert!(!is_derivative_key(&key, &account), "{key}");
        }
        assert!(!is_original_key(&format!("derived/{account}/x.jpg"), &account));
        assert!(!is_original_key(&format!("originals/{other}/x.jpg"), &account));
    }
}

//! The render version (`share::cache_policy::render_version`): a digest of what a rendered share
//! page's bytes depend on besides its data, computed here so the Worker carries 12 hex digits
//! instead of the sources themselves.

use sha2::{Digest, Sha256};

/// The templates, the inline stylesheet, the branded preview image and the code that renders and
/// paginates a page.
const RENDER_INPUTS: [&str; 8] = [
    "templates/base.html",
    "templates/share.html",
    "templates/message.html",
    "templates/share.css",
    "templates/og-default.png",
    "src/share/page.rs",
    "src/share/view.rs",
    "src/lang.rs",
];

fn main() {
    let mut digest = Sha256::new();
    for path in RENDER_INPUTS {
        println!("cargo:rerun-if-changed={path}");
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        digest.update((bytes.len() as u64).to_le_bytes());
        digest.update(&bytes);
    }
    let hex: String = digest.finalize()[..6].iter().map(|b| format!("{b:02x}")).collect();
    println!("cargo:rustc-env=BABYBOOK_RENDER_VERSION={hex}");
}

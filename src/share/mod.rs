//! Public share pages, `GET /s/:token`: tokens, the page model and its rendering, the exact
//! headers, conditional requests, and the stale-while-revalidate decisions of the edge cache.

pub mod cache_policy;
pub mod headers;
pub mod link;
pub mod page;
pub mod page_memory;
pub mod passphrase;
pub mod purge;
pub mod style;
pub mod token;
pub mod view;
pub mod views;

pub use token::{MalformedToken, ShareToken, TokenHash};

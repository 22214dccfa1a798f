//! babybook-edge: the edge tier of Baby Book, one Rust Worker.
//!
//! The modules at this level are the functional core: plain Rust with no Worker dependency
//! (policies, parsing, tokens, rate math, rendering), unit-tested on the host target.
//! `edge` is the thin Worker shell around them; it only exists on `wasm32`.

pub mod admission;
pub mod alerts;
pub mod api_input;
pub mod body_limit;
pub mod config;
pub mod cors;
pub mod cron;
pub mod csrf;
pub mod device;
pub mod error;
pub mod hex;
pub mod hygiene;
pub mod jobs;
pub mod journal;
pub mod lang;
pub mod password;
pub mod prewarm;
pub mod proxy;
pub mod rate_limit;
pub mod reply;
pub mod request_target;
pub mod routes;
pub mod sampling;
pub mod secret;
pub mod secure_random;
pub mod session;
pub mod share;
pub mod slo;
pub mod sql_text;
pub mod switches;
pub mod telemetry;

#[cfg(target_arch = "wasm32")]
mod edge;

/// The version every log line and the `/health` answer carry.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// `service` in every log line.
pub const SERVICE: &str = "babybook-edge";

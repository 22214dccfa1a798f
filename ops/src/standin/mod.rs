//! Local stand-ins for the third-party HTTP services the Worker calls: the media worker (and the
//! object storage it fronts), the origin API, Cloudflare's cache purge API and the alert webhook. Real HTTP servers
//! on loopback; tests and `scripts/dev` start them. They keep their state in memory and write no files.

pub mod media;
pub mod origin;
pub mod purge;
pub mod sql_api;
pub mod webhook;

pub use axum::Router;

/// Serves `router` on an already bound listener (the harness binds, then hands it over).
pub async fn serve_on(listener: tokio::net::TcpListener, router: Router) -> std::io::Result<()> {
    axum::serve(listener, router).await
}

/// Binds on loopback only.
pub(crate) async fn listen(port: u16) -> Result<tokio::net::TcpListener, String> {
    tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|e| format!("bind 127.0.0.1:{port}: {e}"))
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

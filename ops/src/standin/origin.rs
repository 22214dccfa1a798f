//! The origin API stand-in, for the shielded proxy's tests:
//!
//! ```text
//! GET  /__control/requests   every request it received: method, path, headers
//! /slow/…                    answers after 15 s (longer than the edge's 10 s origin timeout)
//! /fail/…                    500 with a body full of internals (the edge must not pass it on)
//! anything else              200 {"origin": true, "method", "path"}
//! ```

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use serde_json::json;

#[derive(Debug, Clone, Serialize)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
}

type Log = Arc<Mutex<Vec<Seen>>>;

pub async fn serve(port: u16) -> Result<(), String> {
    let listener = super::listen(port).await?;
    println!("origin stand-in listening on http://127.0.0.1:{port}");
    axum::serve(listener, router()).await.map_err(|e| e.to_string())
}

pub fn router() -> Router {
    let log: Log = Arc::default();
    Router::new()
        .route(
            "/__control/requests",
            get(|State(log): State<Log>| async move { Json(log.lock().expect("log").clone()) }),
        )
        .fallback(any_request)
        .with_state(log)
}

async fn any_request(State(log): State<Log>, request: Request) -> Response {
    let path = request.uri().path().to_owned();
    let method = request.method().to_string();
    let headers = request
        .headers()
        .iter()
        .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap_or("<binary>").to_owned()))
        .collect();
    log.lock().expect("log").push(Seen {
        method: method.clone(),
        path: path.clone(),
        headers,
    });
    if path.starts_with("/slow") {
        tokio::time::sleep(Duration::from_secs(15)).await;
    }
    if path.starts_with("/fail") {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "Traceback: psycopg.OperationalError at db-internal-01:5432",
        )
            .into_response();
    }
    Json(json!({"origin": true, "method": method, "path": path})).into_response()
}

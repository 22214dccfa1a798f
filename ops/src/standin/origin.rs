//! The origin API stand-in, for the shielded proxy's tests. Behaviours are chosen per request by
//! the query parameter `behave`, so they work under any path the edge forwards:
//!
//! ```text
//! GET  /__control/requests   every request it received: method, path, headers, body size
//! ?behave=slow               answers after 15 s (longer than the edge's 10 s origin timeout)
//! ?behave=fail               500 with a body full of internals (the edge must not pass it on)
//! ?behave=redirect&to=URL    302 to URL (the edge must pass it back, never follow it)
//! anything else              200 {"origin": true, "method", "path"}
//! ```
//!
//! Every answer also carries headers a careless proxy would leak to the browser (`Set-Cookie`,
//! `Access-Control-Allow-*`, `X-Powered-By`) next to ones it should pass back (`ETag`,
//! `Cache-Control`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, Request, State};
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
    pub body_bytes: usize,
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
    let query: HashMap<String, String> = Query::try_from_uri(request.uri()).map(|q| q.0).unwrap_or_default();
    let method = request.method().to_string();
    let headers = request
        .headers()
        .iter()
        .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap_or("<binary>").to_owned()))
        .collect();
    let body_bytes = axum::body::to_bytes(request.into_body(), 64 * 1024 * 1024)
        .await
        .map_or(0, |b| b.len());
    log.lock().expect("log").push(Seen {
        method: method.clone(),
        path: path.clone(),
        headers,
        body_bytes,
    });
    let mut response = match query.get("behave").map(String::as_str) {
        Some("slow") => {
            tokio::time::sleep(Duration::from_secs(15)).await;
            Json(json!({"origin": true, "method": method, "path": path})).into_response()
        }
        Some("fail") => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "Traceback: psycopg.OperationalError at db-internal-01:5432",
        )
            .into_response(),
        Some("redirect") => {
            let to = query.get("to").cloned().unwrap_or_else(|| "/".into());
            (StatusCode::FOUND, [("location", to)], "").into_response()
        }
        _ => Json(json!({"origin": true, "method": method, "path": path})).into_response(),
    };
    let headers = response.headers_mut();
    for (name, value) in [
        ("set-cookie", "origin_session=leaked; Path=/; HttpOnly"),
        ("access-control-allow-origin", "*"),
        ("access-control-allow-credentials", "true"),
        ("x-powered-by", "origin-framework/1.0"),
        ("etag", "\"origin-etag\""),
        ("cache-control", "private, max-age=0"),
    ] {
        headers.insert(name, value.parse().expect("header value"));
    }
    response
}

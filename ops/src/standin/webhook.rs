//! The alert webhook stand-in: a chat or paging service's incoming webhook, for the end-to-end
//! tests of alerts and for `scripts/dev`. The secret is in the path, as real incoming webhooks
//! put it; a POST to any other path is refused and recorded as such.
//!
//! ```text
//! POST /hook/{secret}          the alert document (JSON); 200 when {secret} is the stand-in's
//! GET  /__control/requests     every POST received, in order: {at_ms, secret_ok, body}
//! PUT  /__control/failure      {"times": n}: the next n accepted POSTs answer 500
//! ```

use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Serialize;
use serde_json::Value;

#[derive(Debug, Clone, Serialize)]
pub struct Received {
    pub at_ms: i64,
    pub secret_ok: bool,
    /// The body as JSON (`null` when it was not JSON).
    pub body: Value,
    pub status: u16,
}

#[derive(Default)]
struct Inner {
    received: Vec<Received>,
    fail_next: u32,
}

#[derive(Clone)]
struct Shared {
    secret: String,
    inner: Arc<Mutex<Inner>>,
}

pub async fn serve(port: u16, secret: String) -> Result<(), String> {
    let listener = super::listen(port).await?;
    println!("alert webhook stand-in listening on http://127.0.0.1:{port}/hook/<secret>");
    axum::serve(listener, router(secret)).await.map_err(|e| e.to_string())
}

pub fn router(secret: String) -> Router {
    let shared = Shared {
        secret,
        inner: Arc::default(),
    };
    Router::new()
        .route("/hook/{secret}", post(receive))
        .route(
            "/__control/requests",
            get(|State(s): State<Shared>| async move { Json(s.inner.lock().expect("state").received.clone()) }),
        )
        .route(
            "/__control/failure",
            put(|State(s): State<Shared>, Json(v): Json<Value>| async move {
                s.inner.lock().expect("state").fail_next = v["times"].as_u64().unwrap_or(1) as u32;
                StatusCode::NO_CONTENT
            }),
        )
        .with_state(shared)
}

async fn receive(State(s): State<Shared>, Path(secret): Path<String>, body: String) -> StatusCode {
    let secret_ok = secret == s.secret;
    let mut inner = s.inner.lock().expect("state");
    let status = if !secret_ok {
        StatusCode::NOT_FOUND
    } else if inner.fail_next > 0 {
        inner.fail_next -= 1;
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    };
    inner.received.push(Received {
        at_ms: super::now_ms(),
        secret_ok,
        body: serde_json::from_str(&body).unwrap_or(Value::Null),
        status: status.as_u16(),
    });
    status
}

//! The Cloudflare cache purge API stand-in (`POST /zones/{zone}/purge_cache`, purge by URL), for
//! the tests of global purges on revoke and edit. The Worker's `CF_API_BASE` points at
//! `http://127.0.0.1:<port>/client/v4`.
//!
//! ```text
//! POST /client/v4/zones/{zone}/purge_cache   {"files": [url, …]}, Authorization: Bearer <token>
//! GET  /__control/requests                   every purge request received, in order
//! PUT  /__control/failure                    adds a failure rule: {"mode": "server_error" |
//!                                             "success_false" | "hang", "times": 3 (absent:
//!                                             until told otherwise), "matching": "<text one of
//!                                             the files contains>"}; the first rule a request
//!                                             matches answers it
//! DELETE /__control/failure                  drops every rule: all requests are accepted again
//! ```
//!
//! An accepted purge answers as Cloudflare does: `200 {"success": true, "errors": [],
//! "messages": [], "result": {"id": …}}`. A bearer token other than the one the stand-in was
//! started with gets `403 {"success": false, …}` (code 10000, "Authentication error"). Failure
//! modes: `server_error` (`500`), `success_false` (`200` with `"success": false`, which a client
//! that only reads the status would take for an accepted purge), `hang` (answers after 60 s).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureMode {
    ServerError,
    SuccessFalse,
    Hang,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Failure {
    pub mode: FailureMode,
    /// Fail this many matching requests, then accept again. Until told otherwise when absent.
    #[serde(default)]
    pub times: Option<u32>,
    /// Fail only requests with a file containing this text (every request when absent), so tests
    /// sharing the stand-in do not fail one another's purges.
    #[serde(default)]
    pub matching: Option<String>,
}

/// One purge request as the stand-in saw it, with what it answered.
#[derive(Debug, Clone, Serialize)]
pub struct PurgeRequest {
    pub at_ms: i64,
    pub zone: String,
    /// The bearer token sent (the test's own value, never a real secret).
    pub token: Option<String>,
    pub files: Vec<String>,
    /// `accepted`, `server_error`, `success_false`, `hang`, `unauthorized` or `bad_request`.
    pub answer: String,
}

#[derive(Default)]
struct Inner {
    failures: Vec<Failure>,
    requests: Vec<PurgeRequest>,
}

#[derive(Clone)]
struct Shared {
    token: Option<String>,
    inner: Arc<Mutex<Inner>>,
}

pub async fn serve(port: u16, token: Option<String>) -> Result<(), String> {
    let listener = super::listen(port).await?;
    println!("purge API stand-in listening on http://127.0.0.1:{port}/client/v4");
    axum::serve(listener, router(token)).await.map_err(|e| e.to_string())
}

/// `token`: the only bearer token accepted (any when `None`).
pub fn router(token: Option<String>) -> Router {
    let shared = Shared {
        token,
        inner: Arc::default(),
    };
    Router::new()
        .route("/client/v4/zones/{zone}/purge_cache", post(purge))
        .route(
            "/__control/requests",
            get(|State(s): State<Shared>| async move { Json(s.inner.lock().expect("state").requests.clone()) }),
        )
        .route(
            "/__control/failure",
            put(|State(s): State<Shared>, Json(f): Json<Failure>| async move {
                s.inner.lock().expect("state").failures.push(f);
                StatusCode::NO_CONTENT
            })
            .delete(|State(s): State<Shared>| async move {
                s.inner.lock().expect("state").failures.clear();
                StatusCode::NO_CONTENT
            }),
        )
        .with_state(shared)
}

fn cloudflare_error(status: StatusCode, code: u32, message: &str) -> Response {
    (
        status,
        Json(json!({"success": false, "errors": [{"code": code, "message": message}], "messages": [], "result": null})),
    )
        .into_response()
}

async fn purge(State(s): State<Shared>, Path(zone): Path<String>, headers: HeaderMap, body: String) -> Response {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let files: Option<Vec<String>> = serde_json::from_str::<Value>(&body).ok().and_then(|v| {
        v.get("files")?
            .as_array()?
            .iter()
            .map(|f| f.as_str().map(str::to_owned))
            .collect()
    });
    let authorized = s.token.is_none() || token == s.token;
    let answer = {
        let mut inner = s.inner.lock().expect("state");
        let rule = files.as_ref().and_then(|files| {
            inner.failures.iter().position(|f| {
                f.matching
                    .as_ref()
                    .is_none_or(|m| files.iter().any(|file| file.contains(m.as_str())))
            })
        });
        let failing = rule.map(|i| {
            let failure = &mut inner.failures[i];
            let mode = failure.mode;
            if let Some(times) = &mut failure.times {
                *times = times.saturating_sub(1);
            }
            if failure.times == Some(0) {
                inner.failures.remove(i);
            }
            mode
        });
        let answer = match (authorized, &files, failing) {
            (false, _, _) => "unauthorized",
            (true, None, _) => "bad_request",
            (true, Some(_), Some(FailureMode::ServerError)) => "server_error",
            (true, Some(_), Some(FailureMode::SuccessFalse)) => "success_false",
            (true, Some(_), Some(FailureMode::Hang)) => "hang",
            (true, Some(_), None) => "accepted",
        };
        inner.requests.push(PurgeRequest {
            at_ms: super::now_ms(),
            zone: zone.clone(),
            token,
            files: files.unwrap_or_default(),
            answer: answer.to_owned(),
        });
        answer
    };
    match answer {
        "unauthorized" => cloudflare_error(StatusCode::FORBIDDEN, 10000, "Authentication error"),
        "bad_request" => cloudflare_error(
            StatusCode::BAD_REQUEST,
            1012,
            "Request must contain one of \"purge_everything\", \"files\", \"tags\", \"hosts\" or \"prefixes\"",
        ),
        "server_error" => (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response(),
        "success_false" => cloudflare_error(StatusCode::OK, 1105, "purge temporarily unavailable"),
        "hang" => {
            tokio::time::sleep(Duration::from_secs(60)).await;
            cloudflare_error(StatusCode::GATEWAY_TIMEOUT, 1105, "too late")
        }
        _ => Json(json!({"success": true, "errors": [], "messages": [], "result": {"id": zone}})).into_response(),
    }
}

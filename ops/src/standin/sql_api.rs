//! The Workers Analytics Engine SQL API stand-in, for the tests of `scripts/slo` and
//! `scripts/canary` and for trying them locally. It does not run SQL: each query is answered by
//! the first rule whose `matching` text it contains.
//!
//! ```text
//! POST /client/v4/accounts/{account}/analytics_engine/sql   the SQL as the body, Bearer token
//! GET  /__control/requests     every query received, in order: {at_ms, account, token_ok, sql}
//! PUT  /__control/answers      adds a rule: {"matching": "<text in the SQL>" (absent: any),
//!                              "status": 200, "body": <JSON answer>, "times": n (absent: always)}
//! DELETE /__control/answers    drops every rule (queries then get an empty answer)
//! ```
//!
//! Without a matching rule a query gets `{"meta": [], "data": [], "rows": 0}`, as an empty
//! window does; a token other than the stand-in's gets `401` (the real API's error shape).

use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Rule {
    #[serde(default)]
    pub matching: Option<String>,
    #[serde(default = "ok")]
    pub status: u16,
    pub body: Value,
    #[serde(default)]
    pub times: Option<u32>,
}

fn ok() -> u16 {
    200
}

#[derive(Debug, Clone, Serialize)]
pub struct Query {
    pub at_ms: i64,
    pub account: String,
    pub token_ok: bool,
    pub sql: String,
}

#[derive(Default)]
struct Inner {
    rules: Vec<Rule>,
    queries: Vec<Query>,
}

#[derive(Clone)]
struct Shared {
    token: Option<String>,
    inner: Arc<Mutex<Inner>>,
}

pub async fn serve(port: u16, token: Option<String>) -> Result<(), String> {
    let listener = super::listen(port).await?;
    println!("Analytics Engine SQL API stand-in listening on http://127.0.0.1:{port}/client/v4");
    axum::serve(listener, router(token)).await.map_err(|e| e.to_string())
}

/// `token`: the only bearer token accepted (any when `None`).
pub fn router(token: Option<String>) -> Router {
    let shared = Shared {
        token,
        inner: Arc::default(),
    };
    Router::new()
        .route("/client/v4/accounts/{account}/analytics_engine/sql", post(query))
        .route(
            "/__control/requests",
            get(|State(s): State<Shared>| async move { Json(s.inner.lock().expect("state").queries.clone()) }),
        )
        .route(
            "/__control/answers",
            put(|State(s): State<Shared>, Json(rule): Json<Rule>| async move {
                s.inner.lock().expect("state").rules.push(rule);
                StatusCode::NO_CONTENT
            })
            .delete(|State(s): State<Shared>| async move {
                s.inner.lock().expect("state").rules.clear();
                StatusCode::NO_CONTENT
            }),
        )
        .with_state(shared)
}

async fn query(State(s): State<Shared>, Path(account): Path<String>, headers: HeaderMap, sql: String) -> Response {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let token_ok = s.token.is_none() || token == s.token.as_deref();
    let mut inner = s.inner.lock().expect("state");
    inner.queries.push(Query {
        at_ms: super::now_ms(),
        account,
        token_ok,
        sql: sql.clone(),
    });
    if !token_ok {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"success": false, "errors": [{"code": 10000, "message": "Authentication error"}]})),
        )
            .into_response();
    }
    let found = inner
        .rules
        .iter()
        .position(|r| r.matching.as_ref().is_none_or(|m| sql.contains(m.as_str())));
    let Some(i) = found else {
        return Json(json!({"meta": [], "data": [], "rows": 0})).into_response();
    };
    let rule = inner.rules[i].clone();
    if let Some(times) = &mut inner.rules[i].times {
        *times = times.saturating_sub(1);
        if *times == 0 {
            inner.rules.remove(i);
        }
    }
    let status = StatusCode::from_u16(rule.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, Json(rule.body)).into_response()
}

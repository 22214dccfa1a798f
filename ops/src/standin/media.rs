//! The media worker stand-in. It answers job calls as the real media worker would, with a
//! behaviour that tests (and demos) choose per asset, export or job id:
//!
//! ```text
//! POST /jobs                          a job call (Authorization: Bearer <MEDIA_WORKER_TOKEN>)
//! GET  /objects/{key}                 stored object metadata {"size", "etag"} (storage's HEAD)
//! GET  /derived/… /originals/…        a placeholder SVG image (PNG for `.png` keys), so pages render locally
//! PUT  /__control/behaviour/{id}      {"mode": "transient", "times": 3, "then": "ok"}; "delay_ms"
//!                                     holds the answer that long (a call outliving its lease)
//! PUT  /__control/default             {"mode": "transient"} for every id without its own
//! PUT  /__control/objects             {"key", "size", "etag"}: an uploaded original
//! GET  /__control/calls?id=…          the calls received (all, or those naming id)
//! POST /__control/reset
//! ```
//!
//! A transcode that succeeds answers the contract's derivatives: 480 and 960 wide WebP previews
//! and the link preview (`"purpose": "og"`, a 1200x630 PNG with its height).
//!
//! Modes: ok, transient (503), throttled (429), corrupt (422), forbidden (403), server_error
//! (500), bad_request (400), hang (answers 503 after 30 s), bad_output (200 with derivatives that
//! break the contract: an object, not an array), slow (a job that runs `seconds` from its first
//! call: `202 {"status": "running", "retry_after_seconds": 1}` until then, the result after).
//!
//! The contract for long jobs: the media worker runs a job at most once per `job_id`; a call for
//! a job still running answers `202` with `retry_after_seconds`, and the edge asks again then.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    #[default]
    Ok,
    Transient,
    Throttled,
    Corrupt,
    Forbidden,
    ServerError,
    BadRequest,
    Hang,
    BadOutput,
    Slow,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Behaviour {
    pub mode: Mode,
    /// Apply `mode` this many times, then `then`. Forever when absent.
    #[serde(default)]
    pub times: Option<u32>,
    #[serde(default)]
    pub then: Mode,
    /// For `slow`: how long the job runs, from its first call.
    #[serde(default)]
    pub seconds: u64,
    /// Wait this long before answering, whatever the mode: a call that outlives its lease.
    #[serde(default)]
    pub delay_ms: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Call {
    pub at_ms: i64,
    pub job_id: String,
    pub job_type: String,
    pub trace_id: String,
    pub ids: Vec<String>,
    pub status: u16,
    pub authorized: bool,
    /// The job as received (the edge sends the job message itself).
    pub body: Value,
}

#[derive(Default)]
struct Inner {
    behaviours: HashMap<String, Behaviour>,
    default: Option<Behaviour>,
    calls: Vec<Call>,
    objects: HashMap<String, (i64, String)>,
    /// When each slow job's first call came.
    started: HashMap<String, std::time::Instant>,
}

#[derive(Clone)]
struct AppState {
    inner: Arc<Mutex<Inner>>,
    media_token: Option<String>,
}

pub async fn serve(port: u16, media_token: Option<String>) -> Result<(), String> {
    let listener = super::listen(port).await?;
    println!("media stand-in listening on http://127.0.0.1:{port}");
    axum::serve(listener, router(media_token))
        .await
        .map_err(|e| e.to_string())
}

pub fn router(media_token: Option<String>) -> Router {
    let state = AppState {
        inner: Arc::default(),
        media_token,
    };
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/jobs", post(job))
        .route("/objects/{*key}", get(object))
        .route("/derived/{*key}", get(placeholder))
        .route("/originals/{*key}", get(placeholder))
        .route("/__control/behaviour/{id}", put(set_behaviour))
        .route("/__control/default", put(set_default))
        .route("/__control/objects", put(put_object))
        .route("/__control/calls", get(calls))
        .route("/__control/reset", post(reset))
        .with_state(state)
}

fn authorized(state: &AppState, headers: &HeaderMap) -> bool {
    match &state.media_token {
        None => true,
        Some(token) => headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {token}")),
    }
}

/// The ids a job names, most specific first.
fn ids_of(job: &Value) -> Vec<String> {
    let mut ids = Vec::new();
    for key in ["asset_id", "export_id", "job_id"] {
        if let Some(v) = job.get(key).and_then(Value::as_str) {
            ids.push(v.to_owned());
        }
    }
    if let Some(target) = job.get("target") {
        for key in ["asset_id", "export_id"] {
            if let Some(v) = target.get(key).and_then(Value::as_str) {
                ids.insert(0, v.to_owned());
            }
        }
    }
    ids
}

async fn job(State(state): State<AppState>, headers: HeaderMap, Json(job): Json<Value>) -> Response {
    let ids = ids_of(&job);
    let authorized = authorized(&state, &headers);
    let (mode, delay) = {
        let mut inner = state.inner.lock().expect("stand-in state");
        let key = ids.iter().find(|id| inner.behaviours.contains_key(*id)).cloned();
        let behaviour = match key {
            Some(k) => inner.behaviours.get_mut(&k),
            None => inner.default.as_mut(),
        };
        let (mode, seconds, delay_ms) = match behaviour {
            None => (Mode::Ok, 0, 0),
            Some(b) => match b.times {
                Some(0) => (b.then, b.seconds, 0),
                Some(n) => {
                    b.times = Some(n - 1);
                    (b.mode, b.seconds, b.delay_ms)
                }
                None => (b.mode, b.seconds, b.delay_ms),
            },
        };
        let delay = Duration::from_millis(delay_ms);
        let mode = if mode == Mode::Slow {
            let job_id = job.get("job_id").and_then(Value::as_str).unwrap_or("").to_owned();
            let started = *inner.started.entry(job_id).or_insert_with(std::time::Instant::now);
            if started.elapsed() < Duration::from_secs(seconds) {
                Mode::Slow
            } else {
                Mode::Ok
            }
        } else {
            mode
        };
        (mode, delay)
    };
    let mode = if authorized { mode } else { Mode::Forbidden };
    tokio::time::sleep(delay).await;
    if mode == Mode::Hang {
        tokio::time::sleep(Duration::from_secs(30)).await;
    }
    let (status, body) = answer(mode, &job);
    let call = Call {
        at_ms: super::now_ms(),
        job_id: job.get("job_id").and_then(Value::as_str).unwrap_or("").to_owned(),
        job_type: job.get("job_type").and_then(Value::as_str).unwrap_or("").to_owned(),
        trace_id: headers
            .get("x-trace-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned(),
        ids,
        status: status.as_u16(),
        authorized,
        body: job.clone(),
    };
    state.inner.lock().expect("stand-in state").calls.push(call);
    (status, Json(body)).into_response()
}

fn answer(mode: Mode, job: &Value) -> (StatusCode, Value) {
    let err = |status: StatusCode, code: &str| (status, json!({"error": {"code": code}}));
    match mode {
        Mode::Ok | Mode::BadOutput | Mode::Slow => {}
        Mode::Transient | Mode::Hang => return err(StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        Mode::Throttled => return err(StatusCode::TOO_MANY_REQUESTS, "throttled"),
        Mode::Corrupt => return err(StatusCode::UNPROCESSABLE_ENTITY, "corrupt_media"),
        Mode::Forbidden => return err(StatusCode::FORBIDDEN, "storage_forbidden"),
        Mode::ServerError => return err(StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        Mode::BadRequest => return err(StatusCode::BAD_REQUEST, "bad_request"),
    }
    if mode == Mode::Slow {
        return (
            StatusCode::ACCEPTED,
            json!({"status": "running", "retry_after_seconds": 1}),
        );
    }
    if mode == Mode::BadOutput {
        return (
            StatusCode::OK,
            json!({"status": "ready", "width": 1600, "height": 1200, "derivatives": {"480": "derived/x.webp"}}),
        );
    }
    let account = job.get("account_id").and_then(Value::as_str).unwrap_or("unknown");
    let body = match job.get("job_type").and_then(Value::as_str) {
        Some("transcode") => {
            let asset = job.get("asset_id").and_then(Value::as_str).unwrap_or("unknown");
            json!({"status": "ready", "width": 1600, "height": 1200, "derivatives": [
                {"key": format!("derived/{account}/{asset}/480.webp"), "width": 480},
                {"key": format!("derived/{account}/{asset}/960.webp"), "width": 960},
                {"key": format!("derived/{account}/{asset}/og.png"), "width": 1200, "height": 630, "purpose": "og"}]})
        }
        Some("export") => {
            let export = job.get("export_id").and_then(Value::as_str).unwrap_or("unknown");
            json!({"status": "ready", "object_key": format!("exports/{account}/{export}.zip")})
        }
        Some("delete_asset") | Some("reap") => json!({"status": "deleted"}),
        _ => json!({"status": "ready"}),
    };
    (StatusCode::OK, body)
}

async fn object(State(state): State<AppState>, headers: HeaderMap, Path(key): Path<String>) -> Response {
    if !authorized(&state, &headers) {
        return StatusCode::FORBIDDEN.into_response();
    }
    match state.inner.lock().expect("stand-in state").objects.get(&key) {
        Some((size, etag)) => Json(json!({"size": size, "etag": etag})).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// The link-preview derivative (`og.png`, 1200x630) is a real PNG, as unfurlers need.
const OG_PLACEHOLDER_PNG: &[u8] = include_bytes!("../../../templates/og-default.png");

async fn placeholder(Path(key): Path<String>) -> Response {
    if key.ends_with(".png") {
        return (
            [
                ("content-type", "image/png"),
                ("cache-control", "public, max-age=86400"),
            ],
            OG_PLACEHOLDER_PNG,
        )
            .into_response();
    }
    let hue = key
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
        % 360;
    let svg = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="1600" height="1200" viewBox="0 0 16 12"><rect width="16" height="12" fill="hsl({hue},45%,82%)"/><circle cx="8" cy="6" r="3" fill="hsl({hue},45%,62%)"/></svg>"##
    );
    (
        [
            ("content-type", "image/svg+xml"),
            ("cache-control", "public, max-age=86400"),
        ],
        svg,
    )
        .into_response()
}

async fn set_behaviour(State(state): State<AppState>, Path(id): Path<String>, Json(b): Json<Behaviour>) -> StatusCode {
    state.inner.lock().expect("stand-in state").behaviours.insert(id, b);
    StatusCode::NO_CONTENT
}

async fn set_default(State(state): State<AppState>, Json(b): Json<Behaviour>) -> StatusCode {
    state.inner.lock().expect("stand-in state").default = Some(b);
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
struct ObjectInfo {
    key: String,
    size: i64,
    etag: String,
}

async fn put_object(State(state): State<AppState>, Json(o): Json<ObjectInfo>) -> StatusCode {
    state
        .inner
        .lock()
        .expect("stand-in state")
        .objects
        .insert(o.key, (o.size, o.etag));
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
struct CallsQuery {
    id: Option<String>,
}

async fn calls(State(state): State<AppState>, Query(q): Query<CallsQuery>) -> Json<Vec<Call>> {
    let inner = state.inner.lock().expect("stand-in state");
    Json(
        inner
            .calls
            .iter()
            .filter(|c| q.id.as_ref().is_none_or(|id| c.ids.contains(id)))
            .cloned()
            .collect(),
    )
}

async fn reset(State(state): State<AppState>) -> StatusCode {
    *state.inner.lock().expect("stand-in state") = Inner::default();
    StatusCode::NO_CONTENT
}

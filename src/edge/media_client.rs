//! Calls to the media worker (and the object storage it fronts), with its own credential
//! (`MEDIA_WORKER_TOKEN`) and the trace id, bounded in time.

use wasm_bindgen::JsValue;
use worker::{AbortController, Fetch, Headers, Method, Request, RequestInit};

use babybook_jobs::{Failure, FailureKind, JobMessage, MediaOutcome};

use crate::config::Config;

use super::faults::{count, Counter};
use super::timeout::within;

/// The media worker's own budget is 300 s (seed §11); the edge never waits that long for an
/// answer: past this it retries later instead.
pub const MEDIA_CALL_TIMEOUT_MS: u32 = 30_000;
const OBJECT_HEAD_TIMEOUT_MS: u32 = 5_000;

use crate::jobs::port::MediaAnswer as Answer;

/// The longest wait between two asks about a running job.
const MAX_RETRY_AFTER_SECONDS: u32 = 300;

fn base_url(config: &Config) -> Result<&str, Failure> {
    config
        .media_worker_url
        .as_deref()
        .ok_or_else(|| Failure::new(FailureKind::Forbidden, None, "MEDIA_WORKER_URL is not configured"))
}

async fn send(
    config: &Config,
    method: Method,
    url: &str,
    trace_id: &str,
    body: Option<String>,
    timeout_ms: u32,
) -> Result<(u16, String), Failure> {
    let headers = Headers::new();
    let _ = headers.set("content-type", "application/json");
    let _ = headers.set("x-trace-id", trace_id);
    if let Some(token) = &config.media_worker_token {
        let _ = headers.set("authorization", &format!("Bearer {}", token.expose()));
    }
    let controller = AbortController::default();
    let signal = controller.signal();
    let mut init = RequestInit::new();
    init.with_method(method)
        .with_headers(headers)
        .with_body(body.map(|b| JsValue::from_str(&b)));
    let request = Request::new_with_init(url, &init)
        .map_err(|e| Failure::new(FailureKind::Rejected, None, &format!("request: {e}")))?;
    count(Counter::MediaCalls);
    let call = async {
        let mut response = Fetch::Request(request).send_with_signal(&signal).await?;
        let status = response.status_code();
        let text = response.text().await.unwrap_or_default();
        Ok::<_, worker::Error>((status, text))
    };
    match within(timeout_ms, call).await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(e)) => Err(Failure::new(FailureKind::Connection, None, &e.to_string())),
        Err(_) => {
            controller.abort();
            Err(Failure::new(
                FailureKind::Timeout,
                None,
                &format!("no answer within {timeout_ms} ms"),
            ))
        }
    }
}

/// `POST /jobs` with the job message. A job that takes longer than one call should wait (a long
/// transcode, an export) answers `202` with `retry_after_seconds`: the media worker keeps it
/// running (once per `job_id`) and the edge asks again then, with the same job message.
pub async fn run_job(config: &Config, message: &JobMessage) -> Answer {
    let url = match base_url(config) {
        Ok(base) => format!("{base}/jobs"),
        Err(f) => return Answer::failed(f),
    };
    match send(
        config,
        Method::Post,
        &url,
        message.trace_id.as_str(),
        Some(message.to_json()),
        MEDIA_CALL_TIMEOUT_MS,
    )
    .await
    {
        Ok((status, text)) => {
            let detail: String = text.chars().take(200).collect();
            let body: serde_json::Value = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
            let running = (status == 202).then(|| {
                body.get("retry_after_seconds")
                    .and_then(serde_json::Value::as_u64)
                    .map_or(5, |s| s.clamp(1, u64::from(MAX_RETRY_AFTER_SECONDS)) as u32)
            });
            Answer {
                outcome: MediaOutcome::from_status(status, &detail),
                body,
                running,
            }
        }
        Err(failure) => Answer::failed(failure),
    }
}

/// What storage holds under `key`: `Ok(None)` when there is no such object.
pub async fn object_info(config: &Config, key: &str, trace_id: &str) -> Result<Option<(i64, String)>, Failure> {
    let encoded: String = key
        .split('/')
        .map(|s| js_sys::encode_uri_component(s).as_string().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("/");
    let url = format!("{}/objects/{encoded}", base_url(config)?);
    let (status, text) = send(config, Method::Get, &url, trace_id, None, OBJECT_HEAD_TIMEOUT_MS).await?;
    match status {
        404 => Ok(None),
        200 => {
            let value: serde_json::Value = serde_json::from_str(&text)
                .map_err(|_| Failure::new(FailureKind::Rejected, Some(200), "object info is not JSON"))?;
            let size = value.get("size").and_then(serde_json::Value::as_i64);
            let etag = value
                .get("etag")
                .and_then(serde_json::Value::as_str)
                .map(|e| e.trim_matches('"').to_owned());
            match (size, etag) {
                (Some(size), Some(etag)) => Ok(Some((size, etag))),
                _ => Err(Failure::new(
                    FailureKind::Rejected,
                    Some(200),
                    "object info lacks size or etag",
                )),
            }
        }
        other => match MediaOutcome::from_status(other, &text) {
            MediaOutcome::Failed(f) => Err(f),
            MediaOutcome::Done => Err(Failure::new(FailureKind::Rejected, Some(other), "unexpected status")),
        },
    }
}

//! Alerts out of the Worker: the alert's log line is written as before, then (after the answer,
//! through `waitUntil`) the small document of `crate::alerts` is POSTed to `ALERT_WEBHOOK_URL`,
//! at most once per alert per `ALERT_DEDUP_SECONDS`. The window is kept in this isolate and in
//! the `OPS_STATE` KV namespace, so other isolates see it too (KV is eventually consistent: two
//! isolates in different places may both send within a minute of each other; never a storm).

use std::cell::RefCell;
use std::collections::BTreeMap;

use crate::alerts::{self, Alert};
use crate::config::{binding, Config};
use crate::telemetry::{Level, LogLine};

use super::context::{self, Io};

thread_local! {
    static LAST_SENT: RefCell<BTreeMap<Alert, i64>> = const { RefCell::new(BTreeMap::new()) };
}

/// How long the webhook may take before the alert counts as not delivered.
const WEBHOOK_TIMEOUT_MS: u32 = 5_000;

/// Writes the alert's log line and forwards it. `line` must carry an `alert` field naming one of
/// `crate::alerts::ALL`; a line without one is only written.
pub fn raise(io: &Io, config: &Config, line: LogLine) {
    context::emit(&line);
    let Some(alert) = line.get("alert").and_then(|v| v.as_str()).and_then(Alert::parse) else {
        return;
    };
    let Some(url) = config.alert_webhook_url.as_ref().map(|u| u.expose().to_owned()) else {
        return;
    };
    let summary = line.get("message").and_then(|v| v.as_str()).unwrap_or("").to_owned();
    let trace_id = line.get("trace_id").and_then(|v| v.as_str()).unwrap_or("").to_owned();
    let document = alerts::webhook_document(
        alert,
        &summary,
        config.environment.as_str(),
        &config.deployed,
        &trace_id,
        &config.runbook_base_url,
    );
    let window_ms = i64::try_from(config.alert_dedup_seconds.saturating_mul(1000)).unwrap_or(i64::MAX);
    let ttl_seconds = config.alert_dedup_seconds.max(60);
    let (io2, config) = (io.clone(), config.clone());
    io.lifeline.wait_until(async move {
        let now = context::now_ms();
        let outcome = forward(&io2, alert, &url, &document, now, window_ms, ttl_seconds).await;
        let (level, message) = match &outcome {
            Ok(true) => (Level::Info, "alert sent"),
            Ok(false) => (Level::Info, "alert suppressed: sent within the window"),
            Err(_) => (Level::Error, "alert webhook failed"),
        };
        let mut out = context::line(
            &config,
            &babybook_jobs::TraceId::parse(&trace_id).unwrap_or_else(|_| context::new_trace_id()),
            level,
            message,
        )
        .field("alert_name", alert.name())
        .field("window_seconds", config.alert_dedup_seconds);
        if let Err(e) = outcome {
            out = out.field("detail", e);
        }
        context::emit(&out);
    });
}

/// `Ok(true)` sent, `Ok(false)` de-duplicated, `Err` the webhook did not take it (the window
/// is not started then, so the next occurrence tries again).
async fn forward(
    io: &Io,
    alert: Alert,
    url: &str,
    document: &serde_json::Value,
    now: i64,
    window_ms: i64,
    ttl_seconds: u64,
) -> Result<bool, String> {
    let here = LAST_SENT.with(|m| m.borrow().get(&alert).copied());
    if !alerts::due(here, now, window_ms) {
        return Ok(false);
    }
    // Claimed before the first await: the same alert raised again by a concurrent invocation
    // of this isolate (two dead jobs of one batch) finds the window taken.
    LAST_SENT.with(|m| m.borrow_mut().insert(alert, now));
    let release = || {
        LAST_SENT.with(|m| match here {
            Some(previous) => m.borrow_mut().insert(alert, previous),
            None => m.borrow_mut().remove(&alert),
        });
    };
    let kv = io.kv(binding::OPS_STATE).ok();
    if let Some(kv) = &kv {
        let elsewhere = kv
            .get(&alerts::sent_key(alert))
            .text()
            .await
            .ok()
            .flatten()
            .and_then(|t| t.trim().parse::<i64>().ok());
        if !alerts::due(elsewhere, now, window_ms) {
            LAST_SENT.with(|m| m.borrow_mut().insert(alert, elsewhere.unwrap_or(now)));
            return Ok(false);
        }
    }
    if let Err(e) = post(url, document).await {
        release();
        return Err(e);
    }
    if let Some(kv) = kv {
        if let Ok(put) = kv.put(&alerts::sent_key(alert), now.to_string()) {
            let _ = put.expiration_ttl(ttl_seconds).execute().await;
        }
    }
    Ok(true)
}

async fn post(url: &str, document: &serde_json::Value) -> Result<(), String> {
    use worker::{Fetch, Headers, Method, Request, RequestInit};
    let headers = Headers::new();
    let _ = headers.set("content-type", "application/json");
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_headers(headers)
        .with_body(Some(document.to_string().into()));
    let request = Request::new_with_init(url, &init).map_err(|e| e.to_string())?;
    let call = async {
        let response = Fetch::Request(request).send().await.map_err(|e| e.to_string())?;
        match response.status_code() {
            200..=299 => Ok(()),
            // The URL is the credential: the answer's status only, never the URL.
            status => Err(format!("webhook answered {status}")),
        }
    };
    match super::timeout::within(WEBHOOK_TIMEOUT_MS, call).await {
        Ok(result) => result,
        Err(_) => Err(format!("webhook did not answer within {WEBHOOK_TIMEOUT_MS} ms")),
    }
}

//! Publishing to the queues. Messages travel as JSON objects (content type `json`) built from
//! the contract's own serialization, so what is on the queue is exactly what the schema describes.

use wasm_bindgen::JsValue;
use worker::{Env, QueueContentType, RawMessageBuilder};

use babybook_jobs::{DeadJob, JobMessage};

use crate::config::{binding, Config};

use super::test_controls;

fn json_value(text: &str) -> Result<JsValue, String> {
    js_sys::JSON::parse(text).map_err(|e| format!("JSON.parse: {e:?}"))
}

async fn send(env: &Env, queue_binding: &str, json: &str, delay_seconds: Option<u32>) -> Result<(), String> {
    let queue = env
        .queue(queue_binding)
        .map_err(|e| format!("queue binding {queue_binding}: {e}"))?;
    let mut builder = RawMessageBuilder::new(json_value(json)?);
    if let Some(delay) = delay_seconds {
        builder = builder.delay_seconds(delay);
    }
    queue
        .send_raw(builder.build_with_content_type(QueueContentType::Json))
        .await
        .map_err(|e| format!("send to {queue_binding}: {e}"))
}

/// Publishes a job to `jobs`. The `queue_publish` test fault makes it fail like an outage would.
pub async fn publish(env: &Env, config: &Config, message: &JobMessage) -> Result<(), String> {
    if test_controls::fault(config, "queue_publish") {
        return Err("queue_publish fault switched on (test control)".into());
    }
    send(env, binding::JOBS, &message.to_json(), None).await
}

/// Publishes many jobs in one call (the reaper's pages).
pub async fn publish_all(env: &Env, config: &Config, messages: &[JobMessage]) -> Result<(), String> {
    if messages.is_empty() {
        return Ok(());
    }
    if test_controls::fault(config, "queue_publish") {
        return Err("queue_publish fault switched on (test control)".into());
    }
    let queue = env.queue(binding::JOBS).map_err(|e| format!("queue binding: {e}"))?;
    let mut batch = Vec::with_capacity(messages.len());
    for message in messages {
        batch.push(
            RawMessageBuilder::new(json_value(&message.to_json())?).build_with_content_type(QueueContentType::Json),
        );
    }
    queue
        .send_raw_batch(batch)
        .await
        .map_err(|e| format!("send batch: {e}"))
}

/// Sends a dead job to `jobs-dlq` without burning the remaining retries.
pub async fn dead_letter(env: &Env, dead: &DeadJob) -> Result<(), String> {
    send(env, binding::JOBS_DLQ, &dead.to_json(), None).await
}

/// Test control: publishes an arbitrary body (poison pills, duplicates) to `jobs`.
pub async fn publish_raw(env: &Env, body: &serde_json::Value) -> Result<(), String> {
    let queue = env.queue(binding::JOBS).map_err(|e| format!("queue binding: {e}"))?;
    let message = match body {
        serde_json::Value::String(text) => {
            RawMessageBuilder::new(JsValue::from_str(text)).build_with_content_type(QueueContentType::Text)
        }
        other => {
            RawMessageBuilder::new(json_value(&other.to_string())?).build_with_content_type(QueueContentType::Json)
        }
    };
    queue.send_raw(message).await.map_err(|e| format!("send: {e}"))
}

/// Test control: publishes several bodies in one batch.
pub async fn publish_raw_batch(env: &Env, bodies: &[serde_json::Value]) -> Result<(), String> {
    let queue = env.queue(binding::JOBS).map_err(|e| format!("queue binding: {e}"))?;
    let mut batch = Vec::with_capacity(bodies.len());
    for body in bodies {
        batch.push(match body {
            serde_json::Value::String(text) => {
                RawMessageBuilder::new(JsValue::from_str(text)).build_with_content_type(QueueContentType::Text)
            }
            other => {
                RawMessageBuilder::new(json_value(&other.to_string())?).build_with_content_type(QueueContentType::Json)
            }
        });
    }
    queue
        .send_raw_batch(batch)
        .await
        .map_err(|e| format!("send batch: {e}"))
}

/// What a published job is about, for [`mark_published`].
pub enum Subject {
    Asset(babybook_jobs::Id),
    Export(babybook_jobs::Id),
}

/// Records that a job is on the queue, so the sweep of lost publishes leaves the row alone.
/// Best effort: if this fails the sweep publishes the job once more, which the consumer's
/// idempotency absorbs.
pub async fn mark_published(io: &super::context::Io, account: babybook_jobs::Id, subject: Subject) {
    use tokio_postgres::types::Type;
    let (sql, id) = match subject {
        Subject::Asset(id) => (
            "UPDATE asset SET published_at = now() WHERE id = $1::uuid RETURNING 1",
            id.to_string(),
        ),
        Subject::Export(id) => (
            "UPDATE account_export SET published_at = now() WHERE id = $1::uuid RETURNING 1",
            id.to_string(),
        ),
    };
    let _ = super::db::transaction(
        io,
        super::db::Scope::Account(account),
        super::db::Budget::Standard,
        async |tx| tx.exec(sql, &[(&id, Type::TEXT)]).await,
    )
    .await;
}

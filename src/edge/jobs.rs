//! Publishing to the queues. Messages travel as JSON objects (content type `json`) built from
//! the contract's own serialization, so what is on the queue is exactly what the schema describes.

use wasm_bindgen::JsValue;
use worker::{Env, QueueContentType, RawMessageBuilder};

use babybook_jobs::{lifecycle, DeadJob, JobMessage};

use crate::config::{binding, Config};

use super::faults::{self, Fault};

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
    publish_fault(config)?;
    send(env, binding::JOBS, &message.to_json(), None).await
}

/// Publishes `message` again, delivered after `delay_seconds`: the next ask about a job the media
/// worker is still running.
pub async fn publish_after(env: &Env, config: &Config, message: &JobMessage, delay_seconds: u32) -> Result<(), String> {
    publish_fault(config)?;
    send(env, binding::JOBS, &message.to_json(), Some(delay_seconds)).await
}

/// The `queue_publish` test fault: every publish to `jobs` fails as in an outage.
fn publish_fault(config: &Config) -> Result<(), String> {
    if faults::is_on(config, Fault::QueuePublish) {
        return Err("queue_publish fault switched on (test control)".into());
    }
    Ok(())
}

/// Publishes many jobs, in as few `sendBatch` calls as the queue's limits allow (100 messages and
/// 256 KB per call: one call over either throws, whatever it holds). A failure part-way leaves
/// the earlier batches published: the callers' transactions roll back and publish again later,
/// which the consumer's idempotency absorbs.
pub async fn publish_all(env: &Env, config: &Config, messages: &[JobMessage]) -> Result<(), String> {
    if messages.is_empty() {
        return Ok(());
    }
    publish_fault(config)?;
    let queue = env.queue(binding::JOBS).map_err(|e| format!("queue binding: {e}"))?;
    let texts: Vec<String> = messages.iter().map(JobMessage::to_json).collect();
    let sizes: Vec<usize> = texts.iter().map(String::len).collect();
    for range in lifecycle::batches(&sizes)? {
        let mut batch = Vec::with_capacity(range.len());
        for text in &texts[range] {
            batch.push(RawMessageBuilder::new(json_value(text)?).build_with_content_type(QueueContentType::Json));
        }
        queue
            .send_raw_batch(batch)
            .await
            .map_err(|e| format!("send batch: {e}"))?;
    }
    Ok(())
}

/// Sends a dead job to `jobs-dlq` without burning the remaining retries. The `dlq_publish` test
/// fault makes it fail like a DLQ outage would.
pub async fn dead_letter(env: &Env, config: &Config, dead: &DeadJob) -> Result<(), String> {
    if faults::is_on(config, Fault::DlqPublish) {
        return Err("dlq_publish fault switched on (test control)".into());
    }
    send(env, binding::JOBS_DLQ, &dead.to_json(), None).await
}

/// A dead letter back on `jobs-dlq` after `delay_seconds`: the DLQ handler's way of keeping a
/// dead job the store refused (a new message, so the runtime's `max_retries` never drops it).
pub async fn dead_letter_after(env: &Env, config: &Config, dead: &DeadJob, delay_seconds: u32) -> Result<(), String> {
    if faults::is_on(config, Fault::DlqPublish) {
        return Err("dlq_publish fault switched on (test control)".into());
    }
    send(env, binding::JOBS_DLQ, &dead.to_json(), Some(delay_seconds)).await
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

//! Operator endpoints (admin bearer token, not a user session): re-drive dead jobs, list them,
//! force a prewarm. `scripts/redrive` wraps the first for the runbook.

use babybook_jobs::{format_rfc3339_millis, FailureClass, Id};

use crate::api_input::json_object;
use crate::error::{ApiError, ErrorCode};
use crate::reply::Reply;
use crate::telemetry::Level;

use crate::share::purge::PurgeTarget;
use crate::share::{ShareToken, TokenHash};

use super::context::{self, RequestContext};
use super::cron_jobs;
use super::db::{self, Budget};
use super::dead_letters;
use super::exchange::{Incoming, Notes};
use super::share_cache::{self, PurgeIntent};
use super::{job_rows, jobs};

const MAX_PER_CALL: u32 = 500;

fn unavailable(e: String) -> ApiError {
    ApiError::new(ErrorCode::ServiceUnavailable, e)
}

/// `POST /admin/jobs/redrive` with `{"job_id": "…"}` or `{"class": "external"}`: re-publishes
/// dead jobs to `jobs` (with `redrive_count` + 1 and the original trace id) and removes them from
/// the dead-job store once published.
pub async fn redrive(cx: &RequestContext, incoming: &Incoming) -> Result<Reply, ApiError> {
    let body = json_object(&incoming.body)?;
    let keys = match (
        body.get("job_id").and_then(|v| v.as_str()),
        body.get("class").and_then(|v| v.as_str()),
    ) {
        (Some(job_id), None) => {
            let id = Id::parse(job_id)
                .map_err(|_| ApiError::validation(vec![("job_id".into(), "must be a job id (UUID)".into())]))?;
            [
                FailureClass::Definitive,
                FailureClass::WorkerBug,
                FailureClass::External,
            ]
            .iter()
            .map(|c| format!("{}/{id}.json", c.as_str()))
            .collect()
        }
        (None, Some(class)) => {
            let class = FailureClass::parse(class).map_err(|_| {
                ApiError::validation(vec![("class".into(), "definitive, worker_bug or external".into())])
            })?;
            dead_letters::list_keys(&cx.io, Some(class), MAX_PER_CALL)
                .await
                .map_err(unavailable)?
        }
        _ => {
            return Err(ApiError::validation(vec![(
                "body".into(),
                "give exactly one of job_id, class".into(),
            )]))
        }
    };
    let mut redriven = Vec::new();
    let mut skipped = Vec::new();
    for key in keys {
        let Some(dead) = dead_letters::read(&cx.io, &key).await.map_err(unavailable)? else {
            continue;
        };
        let Some(mut job) = dead.job.clone() else {
            skipped.push(
                serde_json::json!({"key": key, "reason": "not a job message; nothing to re-drive (inspect raw_body)"}),
            );
            continue;
        };
        job.redrive_count += 1;
        job.enqueued_at = format_rfc3339_millis(context::now_ms());
        let subject = job_rows::Subject::of(&job.job);
        if let Some(subject) = subject {
            // If this fails the claim still takes a failed row for a re-driven job.
            let _ = job_rows::requeue_for_redrive(&cx.io, job.account_id, subject).await;
        }
        jobs::publish(&cx.io, cx.config(), &job).await.map_err(unavailable)?;
        if let Some(subject) = subject {
            job_rows::mark_published(&cx.io, job.account_id, subject).await;
        }
        dead_letters::remove(&cx.io, &key).await.map_err(unavailable)?;
        context::emit(
            &context::line(cx.config(), &job.trace_id, Level::Info, "job re-driven")
                .account(&job.account_id)
                .field("job_id", job.job_id.to_string())
                .field("job_type", job.job_type().as_str())
                .field("redrive_count", job.redrive_count)
                .field("operator_trace_id", cx.trace_id.to_string()),
        );
        redriven.push(job.job_id.to_string());
    }
    if redriven.is_empty() && skipped.is_empty() {
        return Err(ApiError::new(ErrorCode::NotFound, "no dead job matched"));
    }
    Ok(Reply::json(
        200,
        &serde_json::json!({"redriven": redriven, "skipped": skipped}),
    ))
}

/// `GET /admin/jobs/dead`: what is waiting, classified.
pub async fn dead_jobs(cx: &RequestContext) -> Result<Reply, ApiError> {
    let keys = dead_letters::list_keys(&cx.io, None, 100).await.map_err(unavailable)?;
    let mut items = Vec::new();
    for key in keys {
        if let Some(dead) = dead_letters::read(&cx.io, &key).await.map_err(unavailable)? {
            items.push(serde_json::json!({
                "key": key,
                "classification": dead.class().as_str(),
                "failure": dead.failure,
                "job_id": dead.job.as_ref().map(|j| j.job_id.to_string()),
                "job_type": dead.job.as_ref().map(|j| j.job_type().as_str()),
                "trace_id": dead.job.as_ref().map(|j| j.trace_id.to_string()),
                "dead_at": dead.dead_at,
            }));
        }
    }
    Ok(Reply::json(200, &serde_json::json!({"dead_jobs": items})))
}

/// `POST /admin/prewarm`: the runbook's forced prewarm (seed §9.1), whatever the calendar says.
pub async fn prewarm(cx: &RequestContext) -> Result<Reply, ApiError> {
    let report = cron_jobs::prewarm(&cx.io, &cx.settings.config, &cx.trace_id, context::now_ms(), true)
        .await
        .map_err(|e| ApiError::new(ErrorCode::ServiceUnavailable, e))?;
    Ok(Reply::json(200, &report))
}

/// `GET /admin/switches`: every switch, its value and whether it comes from the switch or the
/// deploy-time default.
pub async fn switches(cx: &RequestContext) -> Result<Reply, ApiError> {
    let snapshot = super::switches::snapshot(&cx.io, cx.config()).await;
    Ok(Reply::json(
        200,
        &serde_json::json!({
            "switches": crate::switches::describe(&snapshot, cx.config().read_only),
            "effect_within_seconds": crate::switches::EFFECT_BOUND_SECONDS,
        }),
    ))
}

/// `POST /admin/switches` with `{"switch": "read-only", "on": true}`: flips a switch for every
/// isolate (within `EFFECT_BOUND_SECONDS`), no deploy; the audit line names the operator.
pub async fn set_switch(cx: &RequestContext, incoming: &Incoming) -> Result<Reply, ApiError> {
    let body = json_object(&incoming.body)?;
    let switch = body
        .get("switch")
        .and_then(|v| v.as_str())
        .ok_or_else(|| ApiError::validation(vec![("switch".into(), "required: the switch's name".into())]))
        .and_then(|name| {
            crate::switches::Switch::parse(name).map_err(|e| ApiError::validation(vec![("switch".into(), e)]))
        })?;
    let on = body
        .get("on")
        .and_then(|v| v.as_bool())
        .ok_or_else(|| ApiError::validation(vec![("on".into(), "required: true or false".into())]))?;
    super::switches::set(&cx.io, switch, on).await.map_err(unavailable)?;
    context::emit(
        &cx.line(Level::Warn, "switch flipped")
            .field("switch", switch.name())
            .field("on", on),
    );
    Ok(Reply::json(
        200,
        &serde_json::json!({
            "switch": switch.name(),
            "on": on,
            "effect_within_seconds": crate::switches::EFFECT_BOUND_SECONDS,
        }),
    ))
}

/// `POST /admin/shares/revoke` with `{"token": "<the leaked link, or its token>"}` or
/// `{"token_hash": "<64 hex>"}` (seed §9.4): revokes the link without the family's session and
/// purges it like a family's revoke (here at once, every data center by its tag). The row keeps
/// who revoked it; this line, the request's line and the purge's carry the operator and the
/// reason. `scripts/revoke-share` wraps it for docs/runbooks/leaked-share-link.md.
pub async fn revoke_share(cx: &RequestContext, incoming: &Incoming, notes: &Notes) -> Result<Reply, ApiError> {
    let body = json_object(&incoming.body)?;
    let hash = match (
        body.get("token").and_then(|v| v.as_str()),
        body.get("token_hash").and_then(|v| v.as_str()),
    ) {
        (Some(token), None) => {
            // The whole leaked URL is what an operator is usually handed.
            let text = token.rsplit("/s/").next().unwrap_or(token);
            let text = text.split(['?', '#']).next().unwrap_or(text);
            ShareToken::parse(text)
                .map_err(|_| ApiError::validation(vec![("token".into(), "not a share link or token".into())]))?
                .hash()
        }
        (None, Some(hex)) => TokenHash::from_hex(hex).ok_or_else(|| {
            ApiError::validation(vec![("token_hash".into(), "must be 64 lowercase hex digits".into())])
        })?,
        _ => {
            return Err(ApiError::validation(vec![(
                "body".into(),
                "give exactly one of token, token_hash".into(),
            )]))
        }
    };
    let operator = notes.operator.clone().unwrap_or_default();
    let reason = incoming.header("x-admin-reason").unwrap_or_default().to_owned();
    let call = format!(
        "SELECT account_id::text, version::text FROM operator_revoke_share({}, {})",
        crate::sql_text::bytea(&hash.0),
        crate::sql_text::text(&operator)
    );
    let sql = crate::sql_text::transaction(Budget::Standard.statement_ms(), None, &[call]);
    let rows = db::one_message(&cx.io, Budget::Standard, &sql).await?;
    // The first row is the settings statement's; no second row: no such link.
    let Some(row) = rows.get(1) else {
        return Err(ApiError::new(ErrorCode::NotFound, "no share link with that token"));
    };
    let text = |i: usize| row.try_get(i).ok().flatten().unwrap_or_default();
    let (account, version) = (text(0), text(1).parse::<i64>().unwrap_or(0));
    let account = Id::parse(&account).map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?;
    let intent = PurgeIntent {
        target: PurgeTarget::Link(hash),
        version,
    };
    share_cache::purge(cx, account, intent, &[hash]).await;
    context::emit(
        &cx.line(Level::Warn, "share link revoked by an operator")
            .account(&account)
            .field("token_hash", hash.short())
            .field("operator", operator.clone())
            .field("admin_reason", reason),
    );
    Ok(Reply::json(
        200,
        &serde_json::json!({
            "revoked": true,
            "token_hash": hash.short(),
            "revoked_by": operator,
            "purge": format!("this data center now; every data center by the tag {}", crate::share::purge::link_tag(&hash)),
        }),
    ))
}

//! Media routes: `GET /assets/:id`, `DELETE /assets/:id`, `POST /uploads/complete`, `POST /exports`.
//!
//! Producer pattern (seed §14.6): change the row and COMMIT, then publish. If the publish fails
//! after the commit the job is not lost: the row stays `queued` and the five-minute sweep
//! (cron `queued_sweep`) re-publishes it; the client may also simply retry, which is idempotent
//! on `asset_id`. Either way the answer is `202 queued`.

use tokio_postgres::types::Type;

use babybook_jobs::{Id, Job, JobMessage};

use crate::api_input::UploadCompleteRequest;
use crate::error::{ApiError, ErrorCode};
use crate::reply::Reply;
use crate::share::purge::PurgeTarget;
use crate::telemetry::Level;

use super::context::{self, RequestContext};
use super::db::{self, col, Budget, Scope};
use super::exchange::{new_id, path_id, Incoming};
use super::media_client;
use super::share_cache::{self, PurgeIntent};
use super::{job_rows, jobs};

pub async fn get_asset(cx: &RequestContext, incoming: &Incoming, id: &str) -> Result<Reply, ApiError> {
    let s = incoming.session()?;
    let id = path_id(id)?.to_string();
    let media = cx.config().media_origin.clone();
    let json = db::transaction(&cx.io, Scope::session(s), Budget::Hot, async |tx| {
        let row = tx
            .opt(
                "SELECT json_build_object('id', a.id, 'moment_id', a.moment_id, 'status', a.status, 'media_type', a.media_type,
                   'size_bytes', a.size_bytes, 'width', a.width, 'height', a.height,
                   'failure_reason', CASE WHEN a.status = 'failed' THEN a.failure_reason END,
                   'previews', coalesce((SELECT json_agg(json_build_object('url', $2::text || '/' || (d->>'key'), 'width', (d->>'width')::int))
                                         FROM jsonb_array_elements(a.derivatives) d WHERE d->>'purpose' IS NULL), '[]'::json),
                   'created_at', a.created_at, 'ready_at', a.ready_at)::text
                 FROM asset a WHERE a.id = $1::uuid AND a.status <> 'deleted' AND NOT a.is_probe",
                &[(&id, Type::TEXT), (&media, Type::TEXT)],
            )
            .await?
            .ok_or_else(|| ApiError::new(ErrorCode::NotFound, "no asset with that id in this account"))?;
        col::<String>(&row, 0)
    })
    .await?;
    Ok(Reply::new(200)
        .header("content-type", "application/json; charset=utf-8")
        .with_body(json.into_bytes()))
}

fn accepted(body: serde_json::Value) -> Reply {
    Reply::json(202, &body)
}

async fn publish_or_defer(cx: &RequestContext, message: &JobMessage, what: &str) {
    let subject = job_rows::Subject::of(&message.job);
    if let Err(e) = jobs::publish(&cx.io, cx.config(), message).await {
        // Committed but not published: the sweep (or the client's retry) publishes it later.
        context::emit(
            &cx.line(Level::Warn, "publish deferred")
                .account(&message.account_id)
                .field("job_type", message.job_type().as_str())
                .field("job_id", message.job_id.to_string())
                .field("subject", what)
                .field("detail", e),
        );
    } else {
        let mut line = cx
            .line(Level::Info, "job published")
            .account(&message.account_id)
            .field("job_type", message.job_type().as_str())
            .field("job_id", message.job_id.to_string());
        if let Some(asset) = message.job.asset_id() {
            line = line.field("asset_id", asset.to_string());
        }
        context::emit_success(cx.config(), &line);
        if let Some(subject) = subject {
            job_rows::mark_published(&cx.io, message.account_id, subject).await;
        }
    }
}

pub async fn upload_complete(cx: &RequestContext, incoming: &Incoming) -> Result<Reply, ApiError> {
    let s = incoming.session()?;
    let request = UploadCompleteRequest::parse(&incoming.body)?;
    let asset = request.asset_id.to_string();

    // 1. What the asset is (short transaction, no network call inside it).
    let current = db::transaction(&cx.io, Scope::session(s), Budget::Hot, async |tx| {
        let row = tx
            .opt(
                "SELECT status, original_key, media_type, job_id::text FROM asset WHERE id = $1::uuid AND NOT is_probe",
                &[(&asset, Type::TEXT)],
            )
            .await?
            .ok_or_else(|| ApiError::new(ErrorCode::NotFound, "no asset with that id in this account"))?;
        Ok((
            col::<String>(&row, 0)?,
            col::<String>(&row, 1)?,
            col::<String>(&row, 2)?,
            col::<Option<String>>(&row, 3)?,
        ))
    })
    .await?;
    let (status, original_key, media_type, job_id) = current;
    // The original's key goes to the media worker and, derived, onto pages: only this account's.
    if !babybook_jobs::media_keys::is_original_key(&original_key, &s.aid) {
        return Err(ApiError::validation(vec![(
            "asset_id".into(),
            "the upload's object key is not one of this account's originals".into(),
        )]));
    }
    let body = |status: &str| serde_json::json!({"asset_id": asset, "status": status});
    let job_for = |job_id: Id| {
        JobMessage::new(
            job_id,
            s.aid,
            cx.trace_id.clone(),
            context::now_ms(),
            Job::Transcode {
                asset_id: request.asset_id,
                original_key: original_key.clone(),
                media_type: media_type.clone(),
            },
        )
    };
    match status.as_str() {
        "ready" | "processing" => return Ok(accepted(body(&status))),
        "queued" => {
            // A retry of a completed call: publish again (the consumer is idempotent).
            let id = job_id
                .as_deref()
                .and_then(|j| Id::parse(j).ok())
                .map_or_else(new_id, Ok)?;
            publish_or_defer(cx, &job_for(id), &asset).await;
            return Ok(accepted(body("queued")));
        }
        "pending" => {}
        "failed" => {
            return Err(ApiError::new(
                ErrorCode::Conflict,
                "asset already failed; upload it again",
            ))
        }
        _ => return Err(ApiError::new(ErrorCode::NotFound, "asset is deleted")),
    }

    // 2. The client's size and ETag are claims: check them against storage.
    let (size, etag) = stored_upload(cx, &original_key, &request).await?;

    // 3. Mark it queued and COMMIT, then publish.
    let job_id = new_id()?;
    let job_text = job_id.to_string();
    let queued = db::transaction(&cx.io, Scope::session(s), Budget::Standard, async |tx| {
        tx.exec(
            "UPDATE asset SET status = 'queued', job_id = $2::uuid, queued_at = now(), size_bytes = $3, etag = $4, updated_at = now()
             WHERE id = $1::uuid AND status = 'pending' RETURNING 1",
            &[(&asset, Type::TEXT), (&job_text, Type::TEXT), (&size, Type::INT8), (&etag, Type::TEXT)],
        )
        .await
    })
    .await?;
    if queued == 1 {
        publish_or_defer(cx, &job_for(job_id), &asset).await;
    }
    Ok(accepted(body("queued")))
}

/// The stored object's size and ETag, when they are what the client says it uploaded.
async fn stored_upload(
    cx: &RequestContext,
    original_key: &str,
    request: &UploadCompleteRequest,
) -> Result<(i64, String), ApiError> {
    let stored = media_client::object_info(cx.config(), original_key, cx.trace_id.as_str())
        .await
        .map_err(|f| {
            ApiError::new(
                ErrorCode::ServiceUnavailable,
                format!("storage check: {:?} {}", f.kind, f.detail),
            )
            .with_retry_after(5)
        })?;
    let Some((size, etag)) = stored else {
        return Err(ApiError::validation(vec![(
            "asset_id".into(),
            "no uploaded object for this asset".into(),
        )]));
    };
    let mut problems = Vec::new();
    if size != request.size_bytes {
        problems.push(("size_bytes".to_owned(), "does not match the uploaded object".to_owned()));
    }
    if etag != request.etag {
        problems.push(("etag".to_owned(), "does not match the uploaded object".to_owned()));
    }
    if problems.is_empty() {
        Ok((size, etag))
    } else {
        Err(ApiError::validation(problems))
    }
}

pub async fn delete_asset(cx: &RequestContext, incoming: &Incoming, id: &str) -> Result<Reply, ApiError> {
    let s = incoming.session()?;
    let asset_id = path_id(id)?;
    let asset = asset_id.to_string();
    // Detaching a shown photo notes the account's purge in this transaction (the `asset_changed`
    // trigger); its pages go here before the answer and everywhere by the account's tag.
    let (version, links) = db::transaction(&cx.io, Scope::session(s), Budget::Standard, async |tx| {
        let found = tx
            .exec("UPDATE asset SET moment_id = NULL, updated_at = now() WHERE id = $1::uuid AND status <> 'deleted' AND NOT is_probe RETURNING 1", &[(&asset, Type::TEXT)])
            .await?;
        if found == 0 {
            return Err(ApiError::new(ErrorCode::NotFound, "no asset with that id in this account"));
        }
        share_cache::account_scope(tx, s.aid).await
    })
    .await?;
    let intent = PurgeIntent {
        target: PurgeTarget::Account(s.aid),
        version,
    };
    share_cache::purge(cx, s.aid, intent, &links).await;
    let message = JobMessage::new(
        new_id()?,
        s.aid,
        cx.trace_id.clone(),
        context::now_ms(),
        Job::DeleteAsset { asset_id },
    );
    if let Err(e) = jobs::publish(&cx.io, cx.config(), &message).await {
        // Detached from its moment, the asset is an orphan: the daily reaper deletes it anyway.
        context::emit(
            &cx.line(Level::Warn, "publish deferred to the reaper")
                .field("job_id", message.job_id.to_string())
                .field("detail", e),
        );
    }
    Ok(accepted(serde_json::json!({"asset_id": asset, "status": "deleting"})))
}

pub async fn create_export(cx: &RequestContext, incoming: &Incoming) -> Result<Reply, ApiError> {
    let s = incoming.session()?;
    let export = db::transaction(&cx.io, Scope::session(s), Budget::Standard, async |tx| {
        col::<String>(
            &tx.one(
                "INSERT INTO account_export (account_id) VALUES (current_account_id()) RETURNING id::text",
                &[],
            )
            .await?,
            0,
        )
    })
    .await?;
    let export_id = Id::parse(&export).map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?;
    let message = JobMessage::new(
        new_id()?,
        s.aid,
        cx.trace_id.clone(),
        context::now_ms(),
        Job::Export { export_id },
    );
    publish_or_defer(cx, &message, &export).await;
    Ok(accepted(serde_json::json!({"export_id": export, "status": "queued"})))
}

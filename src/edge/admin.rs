//! Operator endpoints (admin bearer token, not a user session): re-drive dead jobs, list them,
//! force a prewarm, flip switches, revoke a leaked link, re-apply the revocation journal after a
//! restore. `scripts/redrive` and `scripts/reapply-journal` wrap those for the runbooks.

use babybook_jobs::{format_rfc3339_millis, parse_rfc3339_millis, FailureClass, Id};

use crate::api_input::json_object;
use crate::error::{ApiError, ErrorCode};
use crate::journal::{self, Entry, Kind, Tally};
use crate::reply::Reply;
use crate::telemetry::{Level, LogLine};

use crate::share::purge::PurgeTarget;
use crate::share::{ShareToken, TokenHash};

use super::context::{self, RequestContext};
use super::cron_jobs;
use super::db::{self, col, Budget, Scope};
use super::dead_letters;
use super::exchange::{Incoming, Notes};
use super::share_cache::{self, PurgeIntent};
use super::{job_rows, jobs};

const MAX_PER_CALL: u32 = 500;

/// An admin action's own line, attributable by itself: the operator the admin token named and the
/// reason they gave (admission refused the call without one), not only on the request's line.
fn audited(line: LogLine, incoming: &Incoming, notes: &Notes) -> LogLine {
    line.field("audit", "admin")
        .field("operator", notes.operator.clone().unwrap_or_default())
        .field(
            "admin_reason",
            incoming.header("x-admin-reason").unwrap_or_default().to_owned(),
        )
}

fn unavailable(e: String) -> ApiError {
    ApiError::new(ErrorCode::ServiceUnavailable, e)
}

/// `POST /admin/jobs/redrive` with `{"job_id": "…"}` or `{"class": "external"}`: re-publishes
/// dead jobs to `jobs` (with `redrive_count` + 1 and the original trace id) and removes them from
/// the dead-job store once published.
pub async fn redrive(cx: &RequestContext, incoming: &Incoming, notes: &Notes) -> Result<Reply, ApiError> {
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
        context::emit(&audited(
            context::line(cx.config(), &job.trace_id, Level::Info, "job re-driven")
                .account(&job.account_id)
                .field("job_id", job.job_id.to_string())
                .field("job_type", job.job_type().as_str())
                .field("redrive_count", job.redrive_count)
                .field("operator_trace_id", cx.trace_id.to_string()),
            incoming,
            notes,
        ));
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
pub async fn set_switch(cx: &RequestContext, incoming: &Incoming, notes: &Notes) -> Result<Reply, ApiError> {
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
    context::emit(&audited(
        cx.line(Level::Warn, "switch flipped")
            .field("switch", switch.name())
            .field("on", on),
        incoming,
        notes,
    ));
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
    let call = format!(
        "SELECT account_id::text, version::text, floor(extract(epoch FROM now()) * 1000)::int8::text \
         FROM operator_revoke_share({}, {})",
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
    let (account, version, at_ms) = (
        text(0),
        text(1).parse::<i64>().unwrap_or(0),
        text(2).parse::<i64>().unwrap_or(0),
    );
    let account = Id::parse(account).map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?;
    let by = match operator.as_str() {
        "" => journal::Revoker::Family,
        name => journal::Revoker::Operator(name.to_owned()),
    };
    super::journal::record(
        cx,
        &journal::Entry::ShareRevoked {
            token_hash: hash,
            at_ms,
            by,
        },
    )
    .await;
    let intent = PurgeIntent {
        target: PurgeTarget::Link(hash),
        version,
    };
    share_cache::purge(cx, account, intent, &[hash]).await;
    context::emit(&audited(
        cx.line(Level::Warn, "share link revoked by an operator")
            .account(&account)
            .field("token_hash", hash.short()),
        incoming,
        notes,
    ));
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

/// Journal entries one call reads at most (each is an R2 read); past it the answer says where
/// the next call continues (`continue_after`), which `scripts/reapply-journal` follows.
const JOURNAL_ENTRIES_PER_CALL: u64 = 500;
/// Keys per R2 listing (R2's own maximum is 1,000).
const JOURNAL_LIST_PAGE: u32 = 100;

/// `POST /admin/journal/reapply` with `{"since": "<RFC 3339>"}` (and `"after": "<key>"` to
/// continue): after a point-in-time restore (docs/runbooks/pitr-cutover.md), revokes again every
/// link and ends again every session the journal (`crate::journal`) recorded at or after
/// `since` that the restore brought back, and purges those links like an operator's revoke.
/// Idempotent: what is still revoked or ended is left alone, so a `since` well before the restore
/// point costs only the reading.
pub async fn reapply_journal(cx: &RequestContext, incoming: &Incoming, notes: &Notes) -> Result<Reply, ApiError> {
    let body = json_object(&incoming.body)?;
    let since = body
        .get("since")
        .and_then(|v| v.as_str())
        .and_then(|t| parse_rfc3339_millis(t).ok())
        .ok_or_else(|| {
            ApiError::validation(vec![(
                "since".into(),
                "required: an RFC 3339 time before the restore point".into(),
            )])
        })?;
    let first = journal::start_after(since);
    let start = match body.get("after") {
        None | Some(serde_json::Value::Null) => first,
        Some(after) => after
            .as_str()
            .filter(|a| a.starts_with(journal::PREFIX) && *a > first.as_str() && a.len() <= 200)
            .map(str::to_owned)
            .ok_or_else(|| {
                ApiError::validation(vec![(
                    "after".into(),
                    "a journal key from continue_after, at or after since".into(),
                )])
            })?,
    };
    let mut tally = Tally::default();
    let mut cursor = None;
    let mut continue_after = None;
    loop {
        let page = super::journal::list(&cx.io, &start, cursor.as_deref(), JOURNAL_LIST_PAGE)
            .await
            .map_err(unavailable)?;
        let mut entries = Vec::new();
        for key in &page.keys {
            match super::journal::read(&cx.io, key).await.map_err(unavailable)? {
                Some(Ok(entry)) if entry.at_ms() >= since => entries.push(entry),
                Some(Ok(_)) | None => {}
                Some(Err(why)) => {
                    tally.unreadable += 1;
                    super::journal::skipped(cx, key, &why);
                }
            }
        }
        tally.entries += entries.len() as u64;
        reapply_entries(cx, &entries, &mut tally).await?;
        match page.cursor {
            None => break,
            Some(_) if tally.entries + tally.unreadable >= JOURNAL_ENTRIES_PER_CALL => {
                continue_after = page.keys.last().cloned();
                break;
            }
            Some(next) => cursor = Some(next),
        }
    }
    let mut line = cx
        .line(Level::Warn, "revocation journal re-applied")
        .field("since", format_rfc3339_millis(since))
        .field("operator", notes.operator.clone().unwrap_or_default())
        .field(
            "admin_reason",
            incoming.header("x-admin-reason").unwrap_or_default().to_owned(),
        )
        .field("journal_entries", tally.entries)
        .field("journal_unreadable", tally.unreadable);
    for kind in Kind::ALL {
        line = line.field(kind.as_str(), tally.reapplied[kind as usize]);
    }
    context::emit(&line);
    let mut answer = tally.to_value();
    answer["continue_after"] = continue_after.into();
    Ok(Reply::json(200, &answer))
}

/// One transaction for a page of entries, a statement per kind present; then the purge of each
/// link it revoked again (the trigger noted each intent, so the cron sweep retries a lost one).
async fn reapply_entries(cx: &RequestContext, entries: &[Entry], tally: &mut Tally) -> Result<(), ApiError> {
    use tokio_postgres::types::Type;
    let (mut links, mut link_at, mut link_by) = (Vec::new(), Vec::new(), Vec::new());
    let (mut sessions, mut session_at, mut users, mut user_at) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for entry in entries {
        let at = format_rfc3339_millis(entry.at_ms());
        match entry {
            Entry::ShareRevoked { token_hash, by, .. } => {
                links.push(token_hash.0.to_vec());
                link_at.push(at);
                link_by.push(by.operator().map(str::to_owned));
            }
            Entry::SessionEnded { session_id_hash, .. } => {
                sessions.push(session_id_hash.0.to_vec());
                session_at.push(at);
            }
            Entry::UserSessionsEnded { user_id, .. } => {
                users.push(user_id.to_string());
                user_at.push(at);
            }
        }
    }
    if entries.is_empty() {
        return Ok(());
    }
    let (revoked, sessions_ended, user_sessions_ended) =
        db::transaction(&cx.io, Scope::System, Budget::Standard, async |tx| {
            let mut revoked = Vec::new();
            if !links.is_empty() {
                for row in tx
                    .rows(
                        "SELECT token_hash, account_id::text, version \
                         FROM journal_reapply_share_revocations($1, $2::text[]::timestamptz[], $3)",
                        &[
                            (&links, Type::BYTEA_ARRAY),
                            (&link_at, Type::TEXT_ARRAY),
                            (&link_by, Type::TEXT_ARRAY),
                        ],
                    )
                    .await?
                {
                    revoked.push((col::<Vec<u8>>(&row, 0)?, col::<String>(&row, 1)?, col::<i64>(&row, 2)?));
                }
            }
            let mut sessions_ended = 0;
            if !sessions.is_empty() {
                let row = tx
                    .one(
                        "SELECT journal_reapply_session_ends($1, $2::text[]::timestamptz[])",
                        &[(&sessions, Type::BYTEA_ARRAY), (&session_at, Type::TEXT_ARRAY)],
                    )
                    .await?;
                sessions_ended = col::<i32>(&row, 0)?;
            }
            let mut user_sessions_ended = 0;
            if !users.is_empty() {
                let row = tx
                    .one(
                        "SELECT journal_reapply_user_session_ends($1::text[]::uuid[], $2::text[]::timestamptz[])",
                        &[(&users, Type::TEXT_ARRAY), (&user_at, Type::TEXT_ARRAY)],
                    )
                    .await?;
                user_sessions_ended = col::<i32>(&row, 0)?;
            }
            Ok((revoked, sessions_ended, user_sessions_ended))
        })
        .await?;
    tally.add_reapplied(Kind::ShareRevoked, revoked.len() as u64);
    tally.add_reapplied(Kind::SessionEnded, u64::try_from(sessions_ended).unwrap_or(0));
    tally.add_reapplied(Kind::UserSessionsEnded, u64::try_from(user_sessions_ended).unwrap_or(0));
    for (hash, account, version) in revoked {
        let (Some(hash), Ok(account)) = (TokenHash::from_bytes(&hash), Id::parse(&account)) else {
            continue;
        };
        let intent = PurgeIntent {
            target: PurgeTarget::Link(hash),
            version,
        };
        share_cache::purge(cx, account, intent, &[hash]).await;
        context::emit(
            &cx.line(Level::Warn, "share link revoked again from the journal")
                .account(&account)
                .field("token_hash", hash.short()),
        );
    }
    Ok(())
}

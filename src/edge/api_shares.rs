//! `GET /shares`, `POST /shares`, `PATCH /shares/:id`, `DELETE /shares/:id`.
//! Every query runs in the caller's account context: another account's share is simply not
//! there (404, never 403, so existence does not leak).

use tokio_postgres::types::Type;

use babybook_jobs::Id;

use crate::api_input::{CreateShareRequest, UpdateShareRequest};
use crate::error::{ApiError, ErrorCode};
use crate::journal;
use crate::reply::Reply;
use crate::share::{ShareToken, TokenHash};

use super::context::RequestContext;
use super::db::{self, col, Budget, Scope, Tx};
use super::exchange::{path_id, Incoming};
use super::share_cache::{self, PurgeIntent};
use crate::share::purge::PurgeTarget;

/// The JSON of one share (never its token: only the hash is stored).
const SHARE_JSON: &str = "json_build_object(
    'id', l.id, 'child_id', l.child_id, 'title', l.title, 'moment_ids', l.moment_ids,
    'expires_at', l.expires_at, 'revoked_at', l.revoked_at, 'view_count', l.view_count, 'created_at', l.created_at,
    'status', CASE WHEN l.revoked_at IS NOT NULL THEN 'revoked'
                   WHEN l.expires_at IS NOT NULL AND l.expires_at <= now() THEN 'expired' ELSE 'live' END)";

pub(super) fn json_reply(status: u16, json: String) -> Reply {
    Reply::new(status)
        .header("content-type", "application/json; charset=utf-8")
        .with_body(json.into_bytes())
}

pub async fn list(cx: &RequestContext, incoming: &Incoming) -> Result<Reply, ApiError> {
    let s = incoming.session()?;
    // One round trip: the session check, the account and this read in one message.
    let sql = format!(
        "SELECT coalesce(json_agg({SHARE_JSON} ORDER BY l.created_at DESC), '[]'::json)::text FROM share_link l"
    );
    let json = db::session_read(&cx.io, s, Budget::Hot, sql)
        .await?
        .unwrap_or_else(|| "[]".to_owned());
    Ok(json_reply(200, format!("{{\"shares\":{json}}}")))
}

/// Checks the moments exist in the account and belong to one child; returns the child.
async fn child_of_moments(tx: &Tx, ids: &[String]) -> Result<String, ApiError> {
    let row = tx
        .one(
            "SELECT count(*)::int8, count(DISTINCT child_id)::int8, min(child_id::text) FROM moment WHERE id = ANY ($1::text[]::uuid[]) AND visibility = 'shareable'",
            &[(&ids, Type::TEXT_ARRAY)],
        )
        .await?;
    let (found, children): (i64, i64) = (col(&row, 0)?, col(&row, 1)?);
    if found != ids.len() as i64 {
        return Err(ApiError::validation(vec![(
            "moment_ids".into(),
            "some moments do not exist or are not shareable".into(),
        )]));
    }
    if children != 1 {
        return Err(ApiError::validation(vec![(
            "moment_ids".into(),
            "all moments must be of one child".into(),
        )]));
    }
    col::<Option<String>>(&row, 2)?.ok_or_else(|| ApiError::new(ErrorCode::Internal, "no child"))
}

pub async fn create(cx: &RequestContext, incoming: &Incoming) -> Result<Reply, ApiError> {
    let s = incoming.session()?;
    let request = CreateShareRequest::parse(&incoming.body)?;
    let token = ShareToken::generate().map_err(|e| ApiError::new(ErrorCode::Internal, format!("randomness: {e}")))?;
    let hash = token.hash().0.to_vec();
    let ids: Vec<String> = request.moment_ids.iter().map(Id::to_string).collect();
    let days = request.expires_in_days.map(|d| d.to_string());
    let title = request.title.clone();
    let sql = format!(
        "INSERT INTO share_link AS l (account_id, child_id, token_hash, title, moment_ids, expires_at)
         VALUES (current_account_id(), $1::uuid, $2, $3, $4::text[]::uuid[], now() + ($5::text || ' days')::interval)
         RETURNING {SHARE_JSON}::text"
    );
    let json = db::transaction(&cx.io, Scope::session(s), Budget::Standard, async |tx| {
        let child = child_of_moments(tx, &ids).await?;
        let row = tx
            .one(
                &sql,
                &[
                    (&child, Type::TEXT),
                    (&hash, Type::BYTEA),
                    (&title, Type::TEXT),
                    (&ids, Type::TEXT_ARRAY),
                    (&days, Type::TEXT),
                ],
            )
            .await?;
        col::<String>(&row, 0)
    })
    .await?;
    Ok(created(cx, "share", &json, &token))
}

/// The `201` of a new link: `{"<what>": <json>, "token", "path", "url"}`. The token is shown once,
/// here; the database keeps only its hash.
pub(super) fn created(cx: &RequestContext, what: &str, json: &str, token: &ShareToken) -> Reply {
    let (path, url) = share_url(cx, token);
    let body = format!(
        "{{\"{what}\":{json},\"token\":\"{}\",\"path\":\"{path}\",\"url\":\"{url}\"}}",
        token.as_text()
    );
    json_reply(201, body)
}

/// A new link's path and its URL on the share host (the request's own origin in local runs).
fn share_url(cx: &RequestContext, token: &ShareToken) -> (String, String) {
    let path = format!("/s/{}", token.as_text());
    let base = match cx.config().share_hosts.first() {
        Some(host) if cx.config().environment != crate::config::Environment::Local => {
            format!("https://{host}")
        }
        _ => cx.origin.clone(),
    };
    let url = format!("{base}{path}");
    (path, url)
}

pub async fn update(cx: &RequestContext, incoming: &Incoming, id: &str) -> Result<Reply, ApiError> {
    let s = incoming.session()?;
    let id = path_id(id)?.to_string();
    let request = UpdateShareRequest::parse(&incoming.body)?;
    let ids: Option<Vec<String>> = request
        .moment_ids
        .as_ref()
        .map(|m| m.iter().map(Id::to_string).collect());
    let set_title = request.title.is_some();
    let title = request.title.clone().flatten();
    let set_expiry = request.expires_in_days.is_some();
    let days = request.expires_in_days.flatten().map(|d| d.to_string());
    let sql = format!(
        "UPDATE share_link l SET
           moment_ids = coalesce($2::text[]::uuid[], l.moment_ids),
           child_id = coalesce($3::uuid, l.child_id),
           title = CASE WHEN $4::bool THEN $5::text ELSE l.title END,
           expires_at = CASE WHEN $7::bool THEN now() + ($6::text || ' days')::interval ELSE l.expires_at END,
           updated_at = now()
         WHERE l.id = $1::uuid AND l.revoked_at IS NULL
         RETURNING {SHARE_JSON}::text, l.token_hash, l.version"
    );
    let (json, hash, version) = db::transaction(&cx.io, Scope::session(s), Budget::Standard, async |tx| {
        let child = match &ids {
            Some(ids) => Some(child_of_moments(tx, ids).await?),
            None => None,
        };
        let row = tx
            .opt(
                &sql,
                &[
                    (&id, Type::TEXT),
                    (&ids, Type::TEXT_ARRAY),
                    (&child, Type::TEXT),
                    (&set_title, Type::BOOL),
                    (&title, Type::TEXT),
                    (&days, Type::TEXT),
                    (&set_expiry, Type::BOOL),
                ],
            )
            .await?
            .ok_or_else(|| ApiError::new(ErrorCode::NotFound, "no live share with that id in this account"))?;
        Ok((col::<String>(&row, 0)?, col::<Vec<u8>>(&row, 1)?, col::<i64>(&row, 2)?))
    })
    .await?;
    purge_link(cx, s.aid, &hash, version).await;
    Ok(json_reply(200, format!("{{\"share\":{json}}}")))
}

/// Revokes a share: the next request for its page is the 404 page (the cache is purged here at
/// once, in every data center in the background).
pub async fn revoke(cx: &RequestContext, incoming: &Incoming, id: &str) -> Result<Reply, ApiError> {
    let s = incoming.session()?;
    let id = path_id(id)?.to_string();
    let (hash, version, revoked_ms) = db::transaction(&cx.io, Scope::session(s), Budget::Standard, async |tx| {
        let row = tx
            .opt(
                "UPDATE share_link SET revoked_at = coalesce(revoked_at, now()), updated_at = now() WHERE id = $1::uuid \
                 RETURNING token_hash, version, floor(extract(epoch FROM revoked_at) * 1000)::int8",
                &[(&id, Type::TEXT)],
            )
            .await?
            .ok_or_else(|| ApiError::new(ErrorCode::NotFound, "no share with that id in this account"))?;
        Ok((col::<Vec<u8>>(&row, 0)?, col::<i64>(&row, 1)?, col::<i64>(&row, 2)?))
    })
    .await?;
    Ok(revoked(cx, s.aid, &hash, version, revoked_ms).await)
}

/// After a family's revoke of a link (a share's own, or a recipient's) committed: the revocation
/// journal's entry, then the purge; `204`. Revoking again writes the same entry again (same time,
/// same key): a lost write heals.
pub(super) async fn revoked(cx: &RequestContext, account_id: Id, hash: &[u8], version: i64, revoked_ms: i64) -> Reply {
    if let Some(token_hash) = TokenHash::from_bytes(hash) {
        let entry = journal::Entry::ShareRevoked {
            token_hash,
            at_ms: revoked_ms,
            by: journal::Revoker::Family,
        };
        super::journal::record(cx, &entry).await;
    }
    purge_link(cx, account_id, hash, version).await;
    Reply::new(204)
}

/// The link's pages (a recipient link's resolution) go here at once and everywhere by its cache
/// tag (the database noted the intent in the same transaction as the change: the
/// `share_link_changed` and `share_recipient_changed` triggers).
async fn purge_link(cx: &RequestContext, account_id: Id, hash: &[u8], version: i64) {
    if let Some(hash) = TokenHash::from_bytes(hash) {
        let intent = PurgeIntent {
            target: PurgeTarget::Link(hash),
            version,
        };
        share_cache::purge(cx, account_id, intent, &[hash]).await;
    }
}

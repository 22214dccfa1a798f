//! `POST /shares/:id/links`, `GET /shares/:id/links`, `DELETE /shares/:id/links/:link_id`: a
//! share's recipient links (`crate::share::link`). Every query runs in the caller's account
//! context, like `api_shares`: another account's share or link is simply not there (404).

use tokio_postgres::types::Type;

use crate::api_input::CreateLinkRequest;
use crate::error::{ApiError, ErrorCode};
use crate::reply::Reply;
use crate::share::ShareToken;

use super::api_shares::{created, json_reply, revoked};
use super::context::RequestContext;
use super::db::{self, col, Budget, Scope};
use super::exchange::{path_id, Incoming};

/// Live recipient links a share may have at once.
pub const MAX_LIVE_LINKS_PER_SHARE: i64 = 50;

/// The JSON of one recipient link (never its token: only the hash is stored). `status` is the
/// link's own, or its share's when the share is no longer live.
const LINK_JSON: &str = "json_build_object(
    'id', r.id, 'name', r.name, 'original', false, 'passphrase', r.passphrase_hash IS NOT NULL,
    'expires_at', r.expires_at, 'revoked_at', r.revoked_at, 'view_count', r.view_count,
    'last_viewed_on', r.last_viewed_on, 'created_at', r.created_at,
    'status', CASE WHEN r.revoked_at IS NOT NULL THEN 'revoked'
                   WHEN r.expires_at IS NOT NULL AND r.expires_at <= now() THEN 'expired'
                   WHEN l.revoked_at IS NOT NULL THEN 'revoked'
                   WHEN l.expires_at IS NOT NULL AND l.expires_at <= now() THEN 'expired' ELSE 'live' END)";

pub async fn create(cx: &RequestContext, incoming: &Incoming, share_id: &str) -> Result<Reply, ApiError> {
    let s = incoming.session()?;
    let share_id = path_id(share_id)?.to_string();
    let request = CreateLinkRequest::parse(&incoming.body)?;
    let token = ShareToken::generate().map_err(|e| ApiError::new(ErrorCode::Internal, format!("randomness: {e}")))?;
    let hash = token.hash().0.to_vec();
    let days = request.expires_in_days.map(|d| d.to_string());
    let name = request.name.clone();
    // Only the salted hash is kept, derived by the runtime's Web Crypto before the transaction.
    let passphrase_hash = match &request.passphrase {
        Some(passphrase) => Some(
            super::kdf::hash_secret(passphrase)
                .await
                .map_err(|e| ApiError::new(ErrorCode::Internal, format!("passphrase hash: {e}")))?,
        ),
        None => None,
    };
    let insert = format!(
        "INSERT INTO share_recipient AS r (account_id, share_id, name, token_hash, expires_at, passphrase_hash)
         SELECT current_account_id(), l.id, $2, $3, now() + ($4::text || ' days')::interval, $5
         FROM share_link l WHERE l.id = $1::uuid
         RETURNING (SELECT {LINK_JSON} FROM share_link l WHERE l.id = r.share_id)::text"
    );
    let json = db::transaction(&cx.io, Scope::session(s), Budget::Standard, async |tx| {
        // The share row is locked, so two creations cannot both pass the count.
        let live = tx
            .opt(
                "SELECT (SELECT count(*) FROM share_recipient r WHERE r.share_id = l.id AND r.revoked_at IS NULL
                           AND (r.expires_at IS NULL OR r.expires_at > now()))::int8
                 FROM share_link l WHERE l.id = $1::uuid AND l.revoked_at IS NULL
                   AND (l.expires_at IS NULL OR l.expires_at > now())
                 FOR UPDATE OF l",
                &[(&share_id, Type::TEXT)],
            )
            .await?
            .ok_or_else(|| ApiError::new(ErrorCode::NotFound, "no live share with that id in this account"))?;
        if col::<i64>(&live, 0)? >= MAX_LIVE_LINKS_PER_SHARE {
            return Err(ApiError::validation(vec![(
                "name".into(),
                format!("a share has at most {MAX_LIVE_LINKS_PER_SHARE} live links: revoke one first"),
            )]));
        }
        let row = tx
            .one(
                &insert,
                &[
                    (&share_id, Type::TEXT),
                    (&name, Type::TEXT),
                    (&hash, Type::BYTEA),
                    (&days, Type::TEXT),
                    (&passphrase_hash, Type::TEXT),
                ],
            )
            .await?;
        col::<String>(&row, 0)
    })
    .await?;
    Ok(created(cx, "link", &json, &token))
}

/// The share's links: its own first (`original`), then its recipients' in the order they were
/// made, each with its views per day (UTC) of the last 30 days, oldest first.
pub async fn list(cx: &RequestContext, incoming: &Incoming, share_id: &str) -> Result<Reply, ApiError> {
    let s = incoming.session()?;
    let share_id = path_id(share_id)?;
    // The id is a parsed UUID: written into the one-message read as a literal.
    let days =
        "(SELECT coalesce(json_agg(json_build_object('day', d.day, 'views', d.views) ORDER BY d.day), '[]'::json)
                 FROM share_view_day d WHERE d.link_id = x.id AND d.day > (now() AT TIME ZONE 'UTC')::date - 30)";
    let sql = format!(
        "SELECT json_build_object('share_id', l.id, 'links', (
           SELECT json_agg(x.link || jsonb_build_object('views_by_day', {days}) ORDER BY x.original DESC, x.created_at, x.id)
           FROM (
             SELECT l.id, true AS original, l.created_at, jsonb_build_object(
               'id', l.id, 'name', NULL, 'original', true, 'passphrase', false, 'expires_at', l.expires_at, 'revoked_at', l.revoked_at,
               'view_count', l.view_count - coalesce((SELECT sum(r.view_count) FROM share_recipient r WHERE r.share_id = l.id), 0),
               'last_viewed_on', (SELECT max(d.day) FROM share_view_day d WHERE d.link_id = l.id),
               'created_at', l.created_at,
               'status', CASE WHEN l.revoked_at IS NOT NULL THEN 'revoked'
                              WHEN l.expires_at IS NOT NULL AND l.expires_at <= now() THEN 'expired' ELSE 'live' END) AS link
             UNION ALL
             SELECT r.id, false, r.created_at, ({LINK_JSON})::jsonb
             FROM share_recipient r WHERE r.share_id = l.id) x))::text
         FROM share_link l WHERE l.id = '{share_id}'::uuid"
    );
    let json = db::session_read(&cx.io, s, Budget::Hot, sql)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, "no share with that id in this account"))?;
    Ok(json_reply(200, json))
}

/// Revokes one recipient link: the next request for it is the 404 page, here at once and in
/// every data center by its own cache tag; the share's page and its other links stay.
pub async fn revoke(
    cx: &RequestContext,
    incoming: &Incoming,
    share_id: &str,
    link_id: &str,
) -> Result<Reply, ApiError> {
    let s = incoming.session()?;
    let share_id = path_id(share_id)?.to_string();
    let link_id = path_id(link_id)?.to_string();
    let (hash, version, revoked_ms) = db::transaction(&cx.io, Scope::session(s), Budget::Standard, async |tx| {
        let row = tx
            .opt(
                "UPDATE share_recipient SET revoked_at = coalesce(revoked_at, now())
                 WHERE id = $1::uuid AND share_id = $2::uuid
                 RETURNING token_hash, version, floor(extract(epoch FROM revoked_at) * 1000)::int8",
                &[(&link_id, Type::TEXT), (&share_id, Type::TEXT)],
            )
            .await?
            .ok_or_else(|| ApiError::new(ErrorCode::NotFound, "no such link of that share in this account"))?;
        Ok((col::<Vec<u8>>(&row, 0)?, col::<i64>(&row, 1)?, col::<i64>(&row, 2)?))
    })
    .await?;
    Ok(revoked(cx, s.aid, &hash, version, revoked_ms).await)
}

//! `GET /auth/csrf`, `POST /auth/login`, `POST /auth/logout`, `GET /me`.

use tokio_postgres::types::Type;

use babybook_jobs::Id;

use crate::alerts::Alert;
use crate::api_input::LoginRequest;
use crate::csrf;
use crate::device;
use crate::error::{ApiError, ErrorCode};
use crate::journal;
use crate::password::DUMMY_HASH;
use crate::rate_limit::{self, LOGIN_EMAIL, LOGIN_EMAIL_CEILING};
use crate::reply::Reply;
use crate::session::{self, Session};
use crate::telemetry::Level;

use super::context::RequestContext;
use super::db::{self, col, Budget, Scope};
use super::exchange::{Incoming, Notes};
use super::rate_limiter::{self, Verdict};

fn keys(cx: &RequestContext) -> Result<&crate::session::SessionKeys, ApiError> {
    cx.settings
        .session_keys
        .as_ref()
        .ok_or_else(|| ApiError::new(ErrorCode::Internal, "SESSION_KEY_CURRENT is not configured"))
}

fn random16() -> Result<[u8; 16], ApiError> {
    crate::secure_random::bytes().map_err(|e| ApiError::new(ErrorCode::Internal, format!("randomness: {e}")))
}

/// Issues a CSRF token bound to the caller's session (or to "anonymous" before sign-in), as a
/// cookie and in the body (the SPA on another host cannot read the API host's cookies).
pub fn csrf_token(cx: &RequestContext, incoming: &Incoming) -> Result<Reply, ApiError> {
    let session = incoming
        .header("cookie")
        .and_then(|c| session::cookie_value(c, session::COOKIE_NAME))
        .and_then(|v| Session::open(v, cx.settings.session_keys.as_ref()?, cx.started_ms / 1000).ok());
    let token = csrf::issue(keys(cx)?, session.as_ref().map(|s| s.sid.as_str()), random16()?);
    Ok(Reply::json(200, &serde_json::json!({ "csrf_token": token })).header("set-cookie", csrf::set_cookie(&token)))
}

/// The email-keyed sign-in limits; `Some` is the refusal. Reaching the ceiling alerts. A browser
/// that signed in as this email before (`known_device`, its device cookie) is not held to the
/// ceiling: strangers guessing from many networks cannot lock the family member out.
async fn email_limits(cx: &RequestContext, email: &str, known_device: bool, notes: &mut Notes) -> Option<Reply> {
    // The strict limit first: guesses from one network that it stops never count to the ceiling.
    let strict = rate_limit::email_and_network(email, &cx.client_ip);
    let limits = [(&LOGIN_EMAIL, strict.as_str()), (&LOGIN_EMAIL_CEILING, email)];
    let held_to = if known_device { &limits[..1] } else { &limits[..] };
    for &(policy, subject) in held_to {
        if let Verdict::Refused(reply) = rate_limiter::check(cx, policy, subject, false, None).await {
            notes.rejection = Some("rate_limited");
            notes.fields.push(("rate_limit_policy", policy.name.into()));
            if *policy == LOGIN_EMAIL_CEILING {
                super::alerts::raise(
                    &cx.io,
                    cx.config(),
                    Alert::LoginEmailCeiling
                        .on(cx.line(Level::Error, "login attempts on one email from many networks"))
                        .field("email_key", alert_email_key(cx, subject))
                        .field("client_network", rate_limit::client_network(&cx.client_ip))
                        .field("limit_per_minute", policy.limit),
                );
            }
            return Some(reply);
        }
    }
    None
}

/// The alert's handle on an email: a keyed digest (HMAC under a key derived from the session
/// key), so on-call can tell two alerts about one address apart, and nobody holding the log can
/// test guesses of the address against it.
fn alert_email_key(cx: &RequestContext, email: &str) -> String {
    cx.settings
        .session_keys
        .as_ref()
        .map(|keys| crate::alerts::keyed_email_digest(&keys.current, &rate_limit::fold_email(email)))
        .unwrap_or_default()
}

/// Whether the request carries a device cookie this edge signed for `email_key`.
fn known_device(cx: &RequestContext, incoming: &Incoming, email_key: &str, now_s: i64) -> bool {
    let cookie = incoming
        .header("cookie")
        .and_then(|c| session::cookie_value(c, device::COOKIE_NAME));
    match (cookie, cx.settings.session_keys.as_ref()) {
        (Some(value), Some(keys)) => device::vouches_for(value, keys, email_key, now_s),
        _ => false,
    }
}

pub async fn login(cx: &RequestContext, incoming: &Incoming, notes: &mut Notes) -> Result<Reply, ApiError> {
    let request = LoginRequest::parse(&incoming.body)?;
    let now_s = cx.started_ms / 1000;
    let email_key = rate_limit::email_digest(request.email.as_str());
    let known = known_device(cx, incoming, &email_key, now_s);
    if known {
        notes.fields.push(("known_device", true.into()));
    }
    if let Some(refusal) = email_limits(cx, request.email.as_str(), known, notes).await {
        return Ok(refusal);
    }
    let email = request.email.as_str().to_owned();
    let keys = keys(cx)?;
    let sid = base64_id(random16()?);
    let expires_s = (now_s + session::SESSION_TTL_SECONDS) as f64;
    let found = db::transaction(&cx.io, Scope::System, Budget::Hot, async |tx| {
        let row = tx
            .opt(
                "SELECT user_id::text, account_id::text, password_hash FROM login_lookup($1::text::citext)",
                &[(&email, Type::TEXT)],
            )
            .await?;
        row.map(|r| Ok::<_, ApiError>((col::<String>(&r, 0)?, col::<String>(&r, 1)?, col::<String>(&r, 2)?)))
            .transpose()
    })
    .await?;
    // The hash runs with no connection held: a storm of sign-ins must not hold the pool's
    // server connections through 100 000 PBKDF2 rounds each. An unknown email costs one full
    // hash too: timing does not tell which emails have accounts.
    let (stored, ids) = match &found {
        Some((user, account, hash)) => (hash.as_str(), Some((user, account))),
        None => (DUMMY_HASH, None),
    };
    let password_ok = super::kdf::check_password(&request.password, stored).await;
    let Some((user, account)) = ids.filter(|_| password_ok) else {
        return Err(ApiError::new(ErrorCode::Unauthorized, "invalid credentials"));
    };
    let (uid, aid) = (parse_id(user)?, parse_id(account)?);
    db::transaction(&cx.io, Scope::System, Budget::Hot, async |tx| {
        tx.exec(
            "SELECT begin_session($1, $2::uuid, $3::uuid, to_timestamp($4))",
            &[
                (&sid, Type::TEXT),
                (user, Type::TEXT),
                (account, Type::TEXT),
                (&expires_s, Type::FLOAT8),
            ],
        )
        .await
    })
    .await?;
    let session = Session::new(sid.clone(), uid, aid, now_s);
    let csrf_token = csrf::issue(keys, Some(&sid), random16()?);
    notes.account = Some(aid);
    let mut reply = Reply::json(
        200,
        &serde_json::json!({ "user_id": uid.to_string(), "account_id": aid.to_string(), "csrf_token": csrf_token }),
    );
    // Two cookies: the session, and the CSRF token rebound to the new session.
    reply
        .headers
        .push(("set-cookie".into(), session::set_cookie(&session.seal(keys))));
    reply.headers.push(("set-cookie".into(), csrf::set_cookie(&csrf_token)));
    // This browser is now known for this email (a new sign-in renews it).
    reply.headers.push((
        "set-cookie".into(),
        device::set_cookie(&device::issue(keys, &email_key, now_s)),
    ));
    Ok(reply)
}

/// `POST /auth/logout`: ends this session on the server (a copy of the cookie stops working
/// too) and clears both cookies. Signing out twice is not an error.
pub async fn logout(cx: &RequestContext, incoming: &Incoming) -> Result<Reply, ApiError> {
    let s = signed_in(incoming)?;
    let (ended, at_ms) = db::transaction(&cx.io, Scope::System, Budget::Hot, async |tx| {
        let row = tx
            .one(
                "SELECT end_session($1), floor(extract(epoch FROM now()) * 1000)::int8",
                &[(&s.sid, Type::TEXT)],
            )
            .await?;
        Ok((col::<bool>(&row, 0)?, col::<i64>(&row, 1)?))
    })
    .await?;
    if ended {
        let entry = journal::Entry::SessionEnded {
            session_id_hash: journal::SessionIdHash::of(&s.sid),
            at_ms,
        };
        super::journal::record(cx, &entry).await;
    }
    Ok(signed_out())
}

/// `POST /auth/logout-everywhere`: ends every session of the caller's user, this one included.
pub async fn logout_everywhere(cx: &RequestContext, incoming: &Incoming, notes: &mut Notes) -> Result<Reply, ApiError> {
    let s = signed_in(incoming)?;
    // The time is rounded up: re-applying ends the user's sessions created up to it.
    let (ended, at_ms) = db::transaction(&cx.io, Scope::System, Budget::Hot, async |tx| {
        let row = tx
            .one(
                "SELECT end_user_sessions($1), ceil(extract(epoch FROM now()) * 1000)::int8",
                &[(&s.sid, Type::TEXT)],
            )
            .await?;
        Ok((col::<i32>(&row, 0)?, col::<i64>(&row, 1)?))
    })
    .await?;
    if ended == 0 {
        return Err(ApiError::new(ErrorCode::Unauthorized, "session ended"));
    }
    let entry = journal::Entry::UserSessionsEnded { user_id: s.uid, at_ms };
    super::journal::record(cx, &entry).await;
    notes.fields.push(("sessions_ended", ended.into()));
    Ok(signed_out())
}

fn signed_in(incoming: &Incoming) -> Result<&Session, ApiError> {
    incoming
        .session
        .as_ref()
        .ok_or_else(|| ApiError::new(ErrorCode::Unauthorized, "no session"))
}

fn signed_out() -> Reply {
    let mut reply = Reply::new(204);
    reply.headers.push(("set-cookie".into(), session::clear_cookie()));
    reply.headers.push(("set-cookie".into(), csrf::clear_cookie()));
    reply
}

pub async fn me(cx: &RequestContext, incoming: &Incoming) -> Result<Reply, ApiError> {
    let session = signed_in(incoming)?;
    // One round trip: the session check, the account and this read in one message.
    let read = format!(
        "SELECT json_build_object(
           'user', json_build_object('id', u.id, 'email', u.email, 'display_name', u.display_name),
           'account', json_build_object('id', a.id, 'name', a.name, 'plan', a.plan),
           'children', coalesce((SELECT json_agg(json_build_object('id', c.id, 'name', c.name, 'birth_date', c.birth_date) ORDER BY c.created_at)
                                 FROM child c), '[]'::json))::text
         FROM app_user u JOIN account a ON a.id = u.account_id WHERE u.id = '{}'",
        session.uid
    );
    let json = db::session_read(&cx.io, session, Budget::Hot, read)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::Unauthorized, "session user no longer exists"))?;
    Ok(Reply::new(200)
        .header("content-type", "application/json; charset=utf-8")
        .with_body(json.into_bytes()))
}

pub fn parse_id(text: &str) -> Result<Id, ApiError> {
    Id::parse(text).map_err(|e| ApiError::new(ErrorCode::Internal, format!("id from the database: {e}")))
}

fn base64_id(bytes: [u8; 16]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

//! A locked recipient link's door (`share::passphrase`): the form a request without the link's
//! pass gets instead of its page, the form's guard, and `POST /s/:token`, which checks an answer
//! and hands out the pass.
//!
//! no pass, GET          → the form (200, `no-store`), with a fresh guard cookie
//! POST, guard missing   → the form again (403: it expired, or another site posted it)
//! POST, over a limit    → the form again (429, `Retry-After`); the per-link limit alerts
//! POST, link not live   → the share page's 404
//! POST, wrong answer    → the form again (403)
//! POST, right answer    → 303 to the link's view, with the pass for a day
//!
//! A request with the pass gets the page exactly as any other link's request does: same cache,
//! same headers.

use crate::alerts::Alert;
use crate::rate_limit::{self, Policy, LINK_PASSPHRASE, PASSPHRASE_IP};
use crate::reply::Reply;
use crate::session::{self, SessionKeys};
use crate::share::headers;
use crate::share::page::{render_passphrase_page, MessagePage, PassProblem};
use crate::share::passphrase::{self, Answer};
use crate::share::view::View;
use crate::share::{ShareToken, TokenHash};
use crate::telemetry::Level;

use super::context::{self, RequestContext};
use super::db::{self, Budget};
use super::exchange::{share_error_page, share_not_found as not_found, Incoming, Notes};
use super::rate_limiter::{self, Verdict};

/// Whether the request carries this link's pass. Only a locked link's request asks.
pub fn holds_pass(cx: &RequestContext, incoming: &Incoming, token: &TokenHash) -> bool {
    let pass = incoming
        .header("cookie")
        .and_then(|c| session::cookie_value(c, passphrase::PASS_COOKIE));
    match (pass, keys(cx)) {
        (Some(value), Some(keys)) => passphrase::pass_admits(value, keys, token, cx.started_ms / 1000),
        _ => false,
    }
}

fn keys(cx: &RequestContext) -> Option<&SessionKeys> {
    cx.settings.session_keys.as_ref()
}

/// The passphrase form for `view` of the link, with a new guard.
pub fn form(cx: &RequestContext, token: &ShareToken, view: View, status: u16, problem: Option<PassProblem>) -> Reply {
    let (Some(keys), Ok(random)) = (keys(cx), crate::secure_random::bytes::<16>()) else {
        return share_error_page(cx, MessagePage::Unavailable, 503).header("retry-after", "5");
    };
    let guard = crate::csrf::issue(keys, Some(&passphrase::form_binding(&token.hash())), random);
    let action = format!("{}{}", passphrase::link_path(token), view.url_suffix());
    let html = render_passphrase_page(cx.lang, &action, &guard, problem);
    let media_origin = &cx.config().media_origin;
    let mut reply = Reply::html(status, html);
    headers::apply_security_headers(&mut reply, media_origin);
    let form_action = passphrase::form_action_source(&cx.origin, token);
    reply.set_header(
        "content-security-policy",
        headers::form_content_security_policy(media_origin, &form_action),
    );
    reply.set_header("cache-control", "no-store");
    reply.set_header("content-language", cx.lang.tag());
    reply.set_header("vary", "Accept-Language");
    reply
        .headers
        .push(("set-cookie".into(), passphrase::form_set_cookie(token, &guard)));
    reply
}

/// The form's guard (`WriteGuard::LinkForm`), checked by the pipeline before the handler: the
/// hidden field equals the `SameSite=Strict` cookie and both are this edge's token for the link.
/// A refusal is the form again, so a relative whose form sat open past the hour just retries.
pub fn guard(cx: &RequestContext, incoming: &Incoming, notes: &mut Notes) -> Result<(), Reply> {
    let Some(token) = &incoming.share_token else {
        return Err(not_found(cx));
    };
    let answer = Answer::parse(&incoming.body);
    let cookie = incoming
        .header("cookie")
        .and_then(|c| session::cookie_value(c, passphrase::FORM_COOKIE));
    let checked = match keys(cx) {
        Some(keys) => crate::csrf::verify(
            keys,
            Some(&passphrase::form_binding(&token.hash())),
            answer.form_token.as_deref(),
            cookie,
        ),
        None => Err(crate::csrf::CsrfError::NotForThisSession),
    };
    checked.map_err(|e| {
        crate::telemetry::count_rejection("link_form_guard");
        notes.rejection = Some("link_form_guard");
        notes.fields.push(("form_guard", e.as_str().into()));
        let view = View::from_query(incoming.query.as_deref()).unwrap_or(View::FIRST);
        form(cx, token, view, 403, Some(PassProblem::FormExpired))
    })
}

/// `POST /s/:token`: an answer to the link's passphrase.
pub async fn answer(cx: &RequestContext, incoming: &Incoming, notes: &mut Notes) -> Reply {
    let Some(token) = &incoming.share_token else {
        return not_found(cx);
    };
    let Ok(view) = View::from_query(incoming.query.as_deref()) else {
        return not_found(cx);
    };
    let hash = token.hash();
    notes.fields.push(("token_hash", hash.short().into()));
    if let Some(refusal) = limits(cx, token, view, &hash, notes).await {
        return refusal;
    }
    let stored = match db::call_with_bytes(&cx.io, Budget::Hot, "share_link_passphrase", &hash.0).await {
        Ok(Some(stored)) => stored,
        // Unknown, expired, revoked, or a link without a passphrase: the one 404 page.
        Ok(None) => return not_found(cx),
        Err(e) => {
            notes.fields.push(("error_detail", e.detail.into()));
            return share_error_page(cx, MessagePage::Unavailable, 503).header("retry-after", "5");
        }
    };
    let given = Answer::parse(&incoming.body).passphrase;
    if given.is_empty() || !super::kdf::check_password(&given, &stored).await {
        notes.fields.push(("passphrase", "wrong".into()));
        return form(cx, token, view, 403, Some(PassProblem::Wrong));
    }
    notes.fields.push(("passphrase", "accepted".into()));
    let Some(keys) = keys(cx) else {
        return share_error_page(cx, MessagePage::Unavailable, 503).header("retry-after", "5");
    };
    let pass = passphrase::issue_pass(keys, &hash, cx.started_ms / 1000);
    let location = format!("{}{}", passphrase::link_path(token), view.url_suffix());
    let mut reply = Reply::new(303)
        .header("location", location)
        .header("cache-control", "no-store");
    headers::apply_security_headers(&mut reply, &cx.config().media_origin);
    reply
        .headers
        .push(("set-cookie".into(), passphrase::pass_set_cookie(token, &pass)));
    reply
        .headers
        .push(("set-cookie".into(), passphrase::form_clear_cookie(token)));
    reply
}

/// The two limits on answers: the client's first (one client trying many links), then the
/// link's (many clients trying one), which alerts. A refusal is the form with `Retry-After`.
async fn limits(
    cx: &RequestContext,
    token: &ShareToken,
    view: View,
    hash: &TokenHash,
    notes: &mut Notes,
) -> Option<Reply> {
    let link = rate_limit::link_subject(hash);
    let checks: [(&Policy, &str); 2] = [(&PASSPHRASE_IP, cx.client_ip.as_str()), (&LINK_PASSPHRASE, &link)];
    for (policy, subject) in checks {
        if let Verdict::Refused(_) = rate_limiter::check(cx, policy, subject, true, None).await {
            notes.rejection = Some("rate_limited");
            notes.fields.push(("rate_limit_policy", policy.name.into()));
            if *policy == LINK_PASSPHRASE {
                super::alerts::raise(
                    &cx.io,
                    cx.config(),
                    Alert::LinkPassphraseGuessed
                        .on(cx.line(Level::Error, "a locked link's passphrase is being guessed"))
                        .field("token_hash", hash.short())
                        .field("client_network", rate_limit::client_network(&cx.client_ip))
                        .field("limit_per_minute", policy.limit),
                );
            }
            let mut reply = form(cx, token, view, 429, Some(PassProblem::Throttled));
            for (name, value) in rate_limit::refusal_headers(policy, context::now_ms()) {
                reply.set_header(name, value);
            }
            return Some(reply);
        }
    }
    None
}

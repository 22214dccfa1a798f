//! The shielded proxy: calls to the origin's paths (`routes::ORIGIN_PREFIXES`) go to
//! `ORIGIN_URL` with the origin's own credential, the trace id and the signed identity, and
//! nothing of the caller's but allowlisted headers and a body read up to its limit. Redirects
//! come back to the caller as they are: the edge never follows one with the caller's identity.
//! Only allowlisted headers of the origin's answer go back.

use wasm_bindgen::JsValue;
use worker::{AbortController, Fetch, Headers, Method, Request, RequestInit, RequestRedirect};

use crate::error::{ApiError, ErrorCode};
use crate::proxy::{self as policy, MAX_PROXY_BODY, ORIGIN_TIMEOUT_MS};
use crate::reply::{header_value, Reply};
use crate::request_target::Target;
use crate::session::Session;

use crate::share::purge::PurgeTarget;
use crate::telemetry::Level;

use super::context::{self, RequestContext};
use super::faults::{count, Counter};
use super::request_body;
use super::share_cache::{self, PurgeIntent};
use super::timeout::within;

pub async fn forward(
    cx: &RequestContext,
    req: &worker::web_sys::Request,
    method: &str,
    headers: &[(String, String)],
    session: &Session,
) -> Result<Reply, ApiError> {
    let config = cx.config();
    let origin = config
        .origin_url
        .as_deref()
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, "no ORIGIN_URL"))?;
    let url = req.url();
    let request = Target::split(&url).ok_or_else(|| ApiError::new(ErrorCode::BadRequest, "not an http(s) URL"))?;
    let path = request.path;
    let target = format!(
        "{origin}{}{}",
        request.path,
        request.query.map(|q| format!("?{q}")).unwrap_or_default()
    );

    let body = if matches!(method, "GET" | "HEAD") {
        None
    } else {
        let declared = header_value(headers, "content-length").and_then(|v| v.trim().parse::<usize>().ok());
        let bytes = request_body::read(req, MAX_PROXY_BODY, declared).await?;
        Some(JsValue::from(js_sys::Uint8Array::from(bytes.as_slice())))
    };

    let out = outgoing_headers(cx, headers, session);
    let mut init = RequestInit::new();
    init.with_method(Method::from(method.to_owned()))
        .with_headers(out)
        .with_body(body)
        // A 3xx goes back to the caller; following it would carry the credential and the
        // caller's identity to wherever the origin points.
        .with_redirect(RequestRedirect::Manual);
    let request =
        Request::new_with_init(&target, &init).map_err(|e| ApiError::new(ErrorCode::BadGateway, e.to_string()))?;
    let controller = AbortController::default();
    let signal = controller.signal();
    count(Counter::OriginCalls);
    let call = async {
        let mut response = Fetch::Request(request).send_with_signal(&signal).await?;
        let status = response.status_code();
        let headers: Vec<(String, String)> = response.headers().entries().collect();
        let body = response.bytes().await?;
        Ok::<_, worker::Error>((status, headers, body))
    };
    let (status, headers, body) = match within(ORIGIN_TIMEOUT_MS, call).await {
        Ok(Ok(answer)) => answer,
        Ok(Err(e)) => return Err(ApiError::new(ErrorCode::BadGateway, format!("origin unreachable: {e}"))),
        Err(_) => {
            controller.abort();
            return Err(ApiError::new(
                ErrorCode::GatewayTimeout,
                format!("origin gave no answer within {ORIGIN_TIMEOUT_MS} ms"),
            ));
        }
    };
    let status = policy::map_origin_status(status)?;
    if (200..300).contains(&status) && policy::write_alters_pages(method, path) {
        purge_account_pages(cx, session).await;
    }
    let mut reply = Reply::new(status).with_body(body);
    for (name, value) in policy::forwardable_response_headers(status, &headers) {
        reply.headers.push((name.into(), value));
    }
    Ok(reply)
}

/// After a proxied write that may have changed share pages: the account's pages go here before
/// the answer and everywhere by the account's tag. The origin's own transaction noted the purge
/// (the V12 triggers), so if this fails the cron sweep still purges; the failure is only logged.
async fn purge_account_pages(cx: &RequestContext, session: &Session) {
    match share_cache::account_scope_now(&cx.io, session.aid).await {
        Ok((version, links)) => {
            let intent = PurgeIntent {
                target: PurgeTarget::Account(session.aid),
                version,
            };
            share_cache::purge(cx, session.aid, intent, &links).await;
        }
        Err(e) => context::emit(
            &cx.line(Level::Warn, "purge after origin write deferred to the sweep")
                .account(&session.aid)
                .field("detail", e.detail),
        ),
    }
}

/// The caller's headers the origin may see, the trace id and client address, and (with
/// `ORIGIN_API_TOKEN`) the edge's credential and the caller's signed identity.
fn outgoing_headers(cx: &RequestContext, headers: &[(String, String)], session: &Session) -> Headers {
    let out = Headers::new();
    for (name, value) in policy::forwardable_request_headers(headers) {
        let _ = out.append(name, value);
    }
    let _ = out.set(policy::TRACE_ID, cx.trace_id.as_str());
    let _ = out.set(policy::CLIENT_IP, &cx.client_ip);
    if let Some(token) = &cx.config().origin_api_token {
        let _ = out.set(policy::SERVICE_AUTH, &format!("Bearer {}", token.expose()));
        let (uid, aid) = (session.uid.to_string(), session.aid.to_string());
        let _ = out.set(policy::USER_ID, &uid);
        let _ = out.set(policy::ACCOUNT_ID, &aid);
        let _ = out.set(
            policy::IDENTITY_SIGNATURE,
            &policy::identity_signature(token.expose(), &uid, &aid, cx.trace_id.as_str()),
        );
    }
    out
}

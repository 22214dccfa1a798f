//! The fetch pipeline, cheapest work first:
//! trace id → hygiene → route → CORS preflight → guards (test, admin, origin, session, read-only,
//! CSRF) → body limit → rate limits → handler → response headers → one log line.
//! Every refusal is decided before anything touches the cache, the database or the origin.

use std::rc::Rc;

use worker::{Env, Headers, Response};

use babybook_jobs::{Id, TraceId};

use crate::cors::{self, OriginCheck};
use crate::csrf;
use crate::error::{ApiError, ErrorCode};
use crate::hygiene::{self, Rejection, RequestHead};
use crate::lang::Lang;
use crate::rate_limit::{KeyedBy, RequestClass};
use crate::reply::Reply;
use crate::routes::{self, Matched, Resolution, RouteId, Surface};
use crate::session::{self, Session};
use crate::share::headers as share_headers;
use crate::share::page::{render_message_page, MessagePage};
use crate::telemetry::{self, Level, LogLine, SampleClass, SampleRates};

use super::context::{self, RequestContext};
use super::rate_limiter::{self, Verdict};
use super::{admin, api_auth, api_media, api_shares, proxy, request_body, share_route, test_controls};

/// A request after its head was read: what handlers get.
pub struct Incoming {
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub session: Option<Session>,
}

impl Incoming {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What the pipeline reports to the log besides the status.
#[derive(Default)]
pub struct Notes {
    pub route: Option<&'static str>,
    pub surface: Option<Surface>,
    pub rejection: Option<&'static str>,
    pub account: Option<Id>,
    /// The operator an admin token named: the request's log line is then an audit record.
    pub operator: Option<String>,
    pub fields: Vec<(&'static str, serde_json::Value)>,
}

pub async fn handle(req: worker::web_sys::Request, env: Env, ctx: worker::Context) -> Response {
    let started_ms = context::now_ms();
    let headers: Vec<(String, String)> = Headers(req.headers()).entries().collect();
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let trace_id = trace_id_from(header("traceparent"), header("x-trace-id"));
    let lang = Lang::negotiate(header("accept-language"));
    let settings = match context::settings(&env) {
        Ok(settings) => settings,
        Err(e) => {
            worker::console_error!(
                "{{\"level\":\"ERROR\",\"message\":\"configuration error\",\"detail\":{:?},\"trace_id\":\"{}\"}}",
                e.to_string(),
                trace_id
            );
            let reply = ApiError::new(ErrorCode::Internal, e.to_string()).to_reply(trace_id.as_str(), lang);
            return into_response(reply, false);
        }
    };
    let url = worker::Url::parse(&req.url()).ok();
    let origin = url
        .as_ref()
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_default();
    let cx = RequestContext {
        io: context::Io {
            env,
            lifeline: context::Lifeline::Invocation(Rc::new(ctx)),
            acquire_ms: settings.config.db_acquire_timeout_ms,
        },
        settings,
        trace_id,
        lang,
        client_ip: crate::rate_limit::client_ip_key(header("cf-connecting-ip")),
        origin,
        started_ms,
    };
    let method = req.method();
    let path = url.as_ref().map(|u| u.path().to_owned()).unwrap_or_else(|| "/".into());
    let target_len = url
        .as_ref()
        .map(|u| u.path().len() + u.query().map_or(0, |q| q.len() + 1))
        .unwrap_or(0);
    let host = url
        .as_ref()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_default();
    let mut notes = Notes::default();
    let head = RequestHead {
        method: &method,
        path: &path,
        target_len,
        header_bytes: headers.iter().map(|(n, v)| n.len() + v.len() + 4).sum(),
        host: &host,
    };
    let mut reply = route(req, &cx, &head, headers.clone(), &mut notes).await;

    // Response headers every answer gets.
    reply.set_header("x-trace-id", cx.trace_id.as_str());
    if notes.surface == Some(Surface::Api) || notes.surface.is_none() && notes.rejection.is_none() {
        decorate_api(&mut reply, &cx, header("origin"));
    }
    if reply.get("cache-control").is_none() {
        reply.set_header("cache-control", "no-store");
    }
    log_request(&cx, &method, &reply, &notes);
    into_response(reply, method == "HEAD")
}

fn decorate_api(reply: &mut Reply, cx: &RequestContext, origin: Option<&str>) {
    cors::decorate(
        reply,
        cors::check_origin(origin, &cx.config().app_origin),
        &cx.config().app_origin,
    );
    reply.set_header("strict-transport-security", share_headers::HSTS);
    reply.set_header("x-content-type-options", "nosniff");
    if reply.get("content-security-policy").is_none() {
        reply.set_header("content-security-policy", "default-src 'none'; frame-ancestors 'none'");
    }
}

/// W3C `traceparent` first, then `X-Trace-Id`, else a new id.
fn trace_id_from(traceparent: Option<&str>, x_trace_id: Option<&str>) -> TraceId {
    let from_traceparent = traceparent.and_then(|tp| {
        let mut parts = tp.trim().split('-');
        let (_version, trace) = (parts.next()?, parts.next()?);
        (trace.len() == 32 && trace.bytes().all(|b| b.is_ascii_hexdigit()) && trace != "0".repeat(32))
            .then(|| TraceId::parse(&trace.to_ascii_lowercase()).ok())
            .flatten()
    });
    from_traceparent
        .or_else(|| x_trace_id.and_then(|t| TraceId::parse(t.trim()).ok()))
        .unwrap_or_else(context::new_trace_id)
}

/// Step 1, hygiene; only the `skip_hygiene` test switch passes over it.
fn screen(config: &crate::config::Config, head: &RequestHead<'_>) -> Result<(), Rejection> {
    if test_controls::fault(config, test_controls::SKIP_HYGIENE) {
        return Ok(());
    }
    hygiene::screen(head, |host| config.is_share_host(host) || config.is_api_host(host))
}

fn host_surfaces(cx: &RequestContext, host: &str) -> (bool, bool) {
    let host = host.to_ascii_lowercase();
    (cx.config().is_share_host(&host), cx.config().is_api_host(&host))
}

async fn route(
    req: worker::web_sys::Request,
    cx: &RequestContext,
    head: &RequestHead<'_>,
    headers: Vec<(String, String)>,
    notes: &mut Notes,
) -> Reply {
    let config = cx.config();
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };

    // 1. Hygiene.
    if let Err(rejection) = screen(config, head) {
        telemetry::count_rejection(rejection.log_tag());
        notes.rejection = Some(rejection.log_tag());
        let code = match rejection {
            Rejection::UriTooLong => ErrorCode::UriTooLong,
            Rejection::HeadersTooLarge => ErrorCode::HeadersTooLarge,
            Rejection::Scanner => ErrorCode::NotFound,
            Rejection::UnknownHost => ErrorCode::MisdirectedRequest,
            Rejection::UnknownMethod => ErrorCode::MethodNotAllowed,
        };
        let mut reply = ApiError::new(code, rejection.log_tag()).to_reply(cx.trace_id.as_str(), cx.lang);
        if rejection == Rejection::UnknownMethod {
            let allow = match routes::resolve(routes::table(), "TRACE", head.path, |_| true) {
                Resolution::MethodNotAllowed { allow } => allow,
                _ => "GET, HEAD, POST, PATCH, DELETE, OPTIONS".into(),
            };
            reply.set_header("allow", allow);
        }
        return reply;
    }
    let (serves_share, serves_api) = host_surfaces(cx, head.host.split(':').next().unwrap_or(""));
    let serves = |surface: Surface| match surface {
        Surface::Any => true,
        Surface::Share => serves_share,
        Surface::Api => serves_api,
    };

    // 2. CORS preflight: answered here, never routed.
    if head.method == "OPTIONS" && serves_api {
        notes.surface = Some(Surface::Api);
        notes.route = Some("OPTIONS *");
        return cors::preflight(
            cors::check_origin(header("origin").as_deref(), &config.app_origin),
            &config.app_origin,
        );
    }

    // 3. Route.
    let matched: Matched<'_> = match routes::resolve(routes::table(), head.method, head.path, serves) {
        Resolution::Found(m) => m,
        Resolution::MethodNotAllowed { allow } => {
            notes.rejection = Some("method_not_allowed");
            telemetry::count_rejection("method_not_allowed");
            return ApiError::new(ErrorCode::MethodNotAllowed, "method")
                .to_reply(cx.trace_id.as_str(), cx.lang)
                .header("allow", allow);
        }
        Resolution::NotFound if serves_api && config.origin_url.is_some() && routes::is_origin_path(head.path) => {
            notes.surface = Some(Surface::Api);
            notes.route = Some("proxy");
            return proxied(cx, &req, head, &headers, notes).await;
        }
        Resolution::NotFound => {
            if serves_share && head.path.starts_with("/s/") {
                notes.surface = Some(Surface::Share);
                return share_route::not_found(cx);
            }
            return error_reply(
                cx,
                notes,
                ApiError::new(ErrorCode::NotFound, format!("no route for {}", head.path)),
            );
        }
    };
    let route = matched.route;
    notes.route = Some(route.pattern());
    notes.surface = Some(match route.surface() {
        Surface::Any if serves_api => Surface::Api,
        other => other,
    });
    let access = route.access();

    // 4. Guards.
    if access.is_test_control() && !config.test_controls {
        return error_reply(cx, notes, ApiError::new(ErrorCode::NotFound, "test controls are off"));
    }
    if access.is_admin() {
        let tokens = match &config.admin_tokens {
            Ok(tokens) => tokens,
            Err(problem) => return error_reply(cx, notes, ApiError::new(ErrorCode::Internal, problem.clone())),
        };
        let presented = header("authorization").and_then(|a| a.strip_prefix("Bearer ").map(str::to_owned));
        let Some(operator) = presented.as_deref().and_then(|given| tokens.operator(given)) else {
            // Failures are throttled per client (fail closed): guessing meets 429, not 401.
            let refused = rate_limiter::check(cx, &crate::rate_limit::ADMIN_FAILURES, &cx.client_ip, false, None).await;
            if let Verdict::Refused(reply) = refused {
                notes.rejection = Some("rate_limited");
                notes
                    .fields
                    .push(("rate_limit_policy", crate::rate_limit::ADMIN_FAILURES.name.into()));
                return reply;
            }
            return error_reply(
                cx,
                notes,
                ApiError::new(ErrorCode::Unauthorized, "admin token missing or wrong"),
            );
        };
        // Who did what, and why: every admin call is logged whole, never sampled away.
        notes.operator = Some(operator.to_owned());
        let reason = header("x-admin-reason");
        match crate::secret::admin_reason(reason.as_deref()) {
            Ok(reason) => notes.fields.push(("admin_reason", reason.into())),
            Err(problem) => return error_reply(cx, notes, ApiError::new(ErrorCode::BadRequest, problem)),
        }
    }
    let origin_check = cors::check_origin(header("origin").as_deref(), &config.app_origin);
    if route.method().is_write() && origin_check == OriginCheck::Refused && !access.is_admin() {
        return error_reply(
            cx,
            notes,
            ApiError::new(
                ErrorCode::OriginNotAllowed,
                format!("write from origin {:?}", header("origin")),
            ),
        );
    }
    if route.changes_data() && config.read_only {
        return error_reply(cx, notes, ApiError::new(ErrorCode::ReadOnly, "READ_ONLY is on"));
    }
    let session = if route.surface() == Surface::Api {
        header("cookie").map(|c| open_session(cx, &c))
    } else {
        None
    };
    let session = match (session, access.needs_session()) {
        (Some(Ok(s)), _) => Some(s),
        (Some(Err(e)), true) => return error_reply(cx, notes, e),
        (None, true) => return error_reply(cx, notes, ApiError::new(ErrorCode::Unauthorized, "no session cookie")),
        (_, false) => None,
    };
    notes.account = session.as_ref().map(|s| s.aid);
    if access.needs_csrf() {
        // Bound to the caller's session when there is one (also at sign-in, so a token fetched
        // while signed in still works), to "anonymous" otherwise.
        if let Err(e) = verify_csrf(cx, &headers, session.as_ref()) {
            return error_reply(cx, notes, e);
        }
    }

    // 5. Body: read as a stream and refused the moment it passes the route's limit.
    let mut body = Vec::new();
    if route.method().is_write() {
        let declared = header("content-length").and_then(|l| l.trim().parse::<usize>().ok());
        body = match request_body::read(&req, route.body_limit(), declared).await {
            Ok(bytes) => bytes,
            Err(e) => return error_reply(cx, notes, e),
        };
        let json = header("content-type").is_some_and(|ct| ct.to_ascii_lowercase().starts_with("application/json"));
        if !body.is_empty() && !json {
            return error_reply(
                cx,
                notes,
                ApiError::new(ErrorCode::UnsupportedMediaType, "body is not application/json"),
            );
        }
    }

    // 6. Rate limits (the email-keyed login policy is applied by the login handler).
    let class = route.request_class(session.is_some());
    if let Some(refusal) = rate_limits(
        cx,
        &cx.client_ip,
        class,
        session.as_ref(),
        route.id() == RouteId::SharePage,
        header("accept").as_deref(),
        notes,
    )
    .await
    {
        return refusal;
    }

    // 7. The handler.
    let incoming = Incoming { headers, body, session };
    let result = match route.id() {
        RouteId::Health => Ok(Reply::json(
            200,
            &serde_json::json!({"status": "ok", "service": crate::SERVICE, "version": crate::VERSION}),
        )),
        RouteId::Ready => ready(cx).await,
        RouteId::ShareStylesheet => Ok(share_route::stylesheet(cx, matched.param("file").unwrap_or(""))),
        RouteId::SharePage => {
            let query = worker::Url::parse(&req.url())
                .ok()
                .and_then(|u| u.query().map(str::to_owned));
            let token = matched.param("token").unwrap_or("");
            Ok(share_route::serve(cx, &incoming, token, query.as_deref(), notes).await)
        }
        RouteId::CsrfToken => api_auth::csrf_token(cx, &incoming),
        RouteId::Login => api_auth::login(cx, &incoming, notes).await,
        RouteId::Logout => api_auth::logout(cx, &incoming).await,
        RouteId::LogoutEverywhere => api_auth::logout_everywhere(cx, &incoming, notes).await,
        RouteId::Me => api_auth::me(cx, &incoming).await,
        RouteId::ListShares => api_shares::list(cx, &incoming).await,
        RouteId::CreateShare => api_shares::create(cx, &incoming).await,
        RouteId::UpdateShare => api_shares::update(cx, &incoming, matched.param("id").unwrap_or("")).await,
        RouteId::RevokeShare => api_shares::revoke(cx, &incoming, matched.param("id").unwrap_or("")).await,
        RouteId::GetAsset => api_media::get_asset(cx, &incoming, matched.param("id").unwrap_or("")).await,
        RouteId::DeleteAsset => api_media::delete_asset(cx, &incoming, matched.param("id").unwrap_or("")).await,
        RouteId::UploadComplete => api_media::upload_complete(cx, &incoming).await,
        RouteId::CreateExport => api_media::create_export(cx, &incoming).await,
        RouteId::AdminRedrive => admin::redrive(cx, &incoming).await,
        RouteId::AdminDeadJobs => admin::dead_jobs(cx).await,
        RouteId::AdminPrewarm => admin::prewarm(cx).await,
        RouteId::TestControls => test_controls_route(cx, &incoming).await,
        RouteId::TestCounters => Ok(Reply::json(200, &test_controls::counters())),
    };
    match result {
        Ok(reply) => reply,
        Err(e) => error_reply(cx, notes, e),
    }
}

fn header_of<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn verify_csrf(cx: &RequestContext, headers: &[(String, String)], session: Option<&Session>) -> Result<(), ApiError> {
    let Some(keys) = cx.settings.session_keys.as_ref() else {
        return Err(ApiError::new(
            ErrorCode::Internal,
            "SESSION_KEY_CURRENT is not configured",
        ));
    };
    let cookie_token = header_of(headers, "cookie").and_then(|c| session::cookie_value(c, csrf::COOKIE_NAME));
    csrf::verify(
        keys,
        session.map(|s| s.sid.as_str()),
        header_of(headers, csrf::HEADER_NAME),
        cookie_token,
    )
    .map_err(|e| ApiError::new(ErrorCode::CsrfFailed, format!("csrf {}", e.as_str())))
}

/// Applies every policy of `class` but the email-keyed one; `Some` is the refusal.
async fn rate_limits(
    cx: &RequestContext,
    client_ip: &str,
    class: RequestClass,
    session: Option<&Session>,
    share_page: bool,
    accept: Option<&str>,
    notes: &mut Notes,
) -> Option<Reply> {
    if test_controls::fault(cx.config(), test_controls::SKIP_RATE_LIMITS) {
        return None;
    }
    for policy in class.policies().iter().filter(|p| !p.keyed_by.needs_email()) {
        let subject = match (policy.keyed_by, session) {
            (KeyedBy::User, Some(s)) => s.uid.to_string(),
            _ => client_ip.to_owned(),
        };
        if let Verdict::Refused(reply) = rate_limiter::check(cx, policy, &subject, share_page, accept).await {
            notes.rejection = Some("rate_limited");
            notes.fields.push(("rate_limit_policy", policy.name.into()));
            return Some(reply);
        }
    }
    None
}

/// What a share page meets before its handler (hygiene, then its rate limit), `n` times, each
/// time from another client address so that every one is admitted: the benchmark times this
/// through the test controls to price protection inside the runtime. Returns how many passed.
pub(super) async fn repeat_share_protection(cx: &RequestContext, n: u32) -> u32 {
    let config = cx.config();
    let host = config.share_hosts.first().cloned().unwrap_or_default();
    let path = "/s/AAAAAAAAAAAAAAAAAAAAAA";
    let head = RequestHead {
        method: "GET",
        path,
        target_len: path.len(),
        header_bytes: 512,
        host: &host,
    };
    let mut passed = 0;
    for i in 0..n {
        let client_ip = format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255);
        let mut notes = Notes::default();
        if screen(config, &head).is_ok()
            && rate_limits(cx, &client_ip, RequestClass::Share, None, true, None, &mut notes)
                .await
                .is_none()
        {
            passed += 1;
        }
    }
    passed
}

/// The origin's paths (`routes::ORIGIN_PREFIXES`) on the API host go to the origin, behind the
/// same guards as the edge's own routes: a session (every origin path is a family's data, and
/// the edge asserts the caller's identity to the origin), origin pinning, read-only mode and
/// CSRF for writes, and the API rate limits.
async fn proxied(
    cx: &RequestContext,
    req: &worker::web_sys::Request,
    head: &RequestHead<'_>,
    headers: &[(String, String)],
    notes: &mut Notes,
) -> Reply {
    let config = cx.config();
    let session = match header_of(headers, "cookie").map(|c| open_session(cx, c)) {
        Some(Ok(session)) => session,
        Some(Err(e)) => return error_reply(cx, notes, e),
        None => return error_reply(cx, notes, ApiError::new(ErrorCode::Unauthorized, "no session cookie")),
    };
    notes.account = Some(session.aid);
    let write = !matches!(head.method, "GET" | "HEAD");
    if write {
        if cors::check_origin(header_of(headers, "origin"), &config.app_origin) == OriginCheck::Refused {
            return error_reply(
                cx,
                notes,
                ApiError::new(ErrorCode::OriginNotAllowed, "proxied write from another origin"),
            );
        }
        if config.read_only {
            return error_reply(cx, notes, ApiError::new(ErrorCode::ReadOnly, "READ_ONLY is on"));
        }
        if let Err(e) = verify_csrf(cx, headers, Some(&session)) {
            return error_reply(cx, notes, e);
        }
    }
    let class = if write {
        RequestClass::ApiAuthenticatedWrite
    } else {
        RequestClass::ApiAuthenticatedRead
    };
    if let Some(refusal) = rate_limits(cx, &cx.client_ip, class, Some(&session), false, None, notes).await {
        return refusal;
    }
    // The origin trusts the identity the edge signs: only a live session gets one.
    if let Err(e) = super::db::check_session(&cx.io, &session).await {
        return error_reply(cx, notes, e);
    }
    match proxy::forward(cx, req, head.method, headers, &session).await {
        Ok(reply) => reply,
        Err(e) => error_reply(cx, notes, e),
    }
}

fn open_session(cx: &RequestContext, cookie_header: &str) -> Result<Session, ApiError> {
    let Some(value) = session::cookie_value(cookie_header, session::COOKIE_NAME).filter(|v| !v.is_empty()) else {
        return Err(ApiError::new(ErrorCode::Unauthorized, "no session cookie"));
    };
    let Some(keys) = cx.settings.session_keys.as_ref() else {
        return Err(ApiError::new(
            ErrorCode::Internal,
            "SESSION_KEY_CURRENT is not configured",
        ));
    };
    Session::open(value, keys, cx.started_ms / 1000)
        .map_err(|e| ApiError::new(ErrorCode::Unauthorized, format!("session {}", e.as_str())))
}

fn error_reply(cx: &RequestContext, notes: &mut Notes, error: ApiError) -> Reply {
    notes.fields.push(("error_detail", error.detail.clone().into()));
    if error.code == ErrorCode::Internal {
        context::emit(
            &cx.line(Level::Error, "internal error")
                .field("detail", error.detail.clone())
                .field("route", notes.route.unwrap_or("")),
        );
    }
    error.to_reply(cx.trace_id.as_str(), cx.lang)
}

/// `GET /ready`: `SELECT 1` through Hyperdrive; 503 with `Retry-After` within ~2 s when it cannot.
async fn ready(cx: &RequestContext) -> Result<Reply, ApiError> {
    super::db::transaction(&cx.io, super::db::Scope::System, super::db::Budget::Hot, async |tx| {
        tx.exec("SELECT 1", &[]).await
    })
    .await?;
    Ok(Reply::json(
        200,
        &serde_json::json!({"status": "ready", "database": "ok"}),
    ))
}

async fn test_controls_route(cx: &RequestContext, incoming: &Incoming) -> Result<Reply, ApiError> {
    let body = crate::api_input::json_object(&incoming.body)?;
    test_controls::run(cx, body).await
}

fn log_request(cx: &RequestContext, method: &str, reply: &Reply, notes: &Notes) {
    let is_health = matches!(notes.route, Some("/health") | Some("/ready"));
    let class = SampleClass::of_request(reply.status, is_health, notes.rejection.is_some());
    let rates = SampleRates {
        success: cx.config().log_sample_success,
        health: cx.config().log_sample_health,
        rejection: 0.01,
    };
    if notes.operator.is_none() && !class.keep(&rates, crate::secure_random::unit_interval()) {
        return;
    }
    let level = match reply.status {
        500.. => Level::Error,
        400.. => Level::Warn,
        _ => Level::Info,
    };
    let mut line: LogLine = cx
        .line(level, "request")
        .field("method", method)
        .field("route", notes.route.unwrap_or("unmatched"))
        .field("status", reply.status)
        .field("duration_ms", context::now_ms() - cx.started_ms);
    if let Some(account) = &notes.account {
        line = line.account(account);
    }
    if let Some(tag) = notes.rejection {
        line = line.field("rejection", tag);
    }
    if let Some(operator) = &notes.operator {
        line = line.field("audit", "admin").field("operator", operator.as_str());
    }
    // Rejections are counted always and logged by a sample: the counts since the last logged
    // line ride on whichever line is logged next.
    let counts = telemetry::take_rejection_counts();
    if !counts.is_empty() {
        line = line.field("rejections_since_last_logged", serde_json::Value::Object(counts));
    }
    for (key, value) in &notes.fields {
        line.set(key, value.clone());
    }
    context::emit(&line);
}

/// Reply → `worker::Response`. HEAD, 204 and 304 carry no body.
pub fn into_response(reply: Reply, head_request: bool) -> Response {
    // All headers cross into JavaScript as one string (a call and a decode per header were 7 %
    // of a cache hit's CPU in a profile). A NUL cannot be in a header the runtime accepts, so a
    // pair holding one is dropped here, as the runtime would refuse it.
    let mut flat = String::with_capacity(reply.headers.iter().map(|(n, v)| n.len() + v.len() + 2).sum());
    for (name, value) in reply
        .headers
        .iter()
        .filter(|(n, v)| !n.contains('\0') && !v.contains('\0'))
    {
        flat.push_str(name);
        flat.push('\0');
        flat.push_str(value);
        flat.push('\0');
    }
    let headers = headers_from(&flat);
    if head_request || reply.status == 204 || reply.status == 304 {
        super::js_body::response(reply.status, headers, None)
    } else {
        super::js_body::response(reply.status, headers, Some(&reply.body))
    }
}

#[wasm_bindgen::prelude::wasm_bindgen(inline_js = r#"
export function headers_from(flat) {
  const headers = new Headers();
  const parts = flat.split("\0");
  for (let i = 0; i + 1 < parts.length; i += 2) {
    // `append`: Set-Cookie may repeat (Reply::set_header keeps other names unique). A value the
    // runtime refuses is dropped, not a crash.
    try {
      headers.append(parts[i], parts[i + 1]);
    } catch {}
  }
  return headers;
}
"#)]
extern "C" {
    /// `Headers` from `name\0value\0…`.
    fn headers_from(flat: &str) -> worker::web_sys::Headers;
}

/// The share-surface error page (HTML) for failures a family might see.
pub fn share_error_page(cx: &RequestContext, which: MessagePage, status: u16) -> Reply {
    let mut reply = Reply::html(status, render_message_page(which, cx.lang).to_owned());
    share_headers::apply_security_headers(&mut reply, &cx.config().media_origin);
    reply.set_header("cache-control", "no-store");
    reply.set_header("content-language", cx.lang.tag());
    reply
}

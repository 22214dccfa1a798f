//! The fetch pipeline, cheapest work first:
//! trace id → hygiene → CORS preflight → route → admission (`crate::admission`: test controls,
//! operator, origin, read-only and exports switches, session, CSRF) → body → rate limits →
//! handler → response headers → one log line and one SLI point.
//! Every refusal is decided before anything touches the cache, the database or the origin.

use std::rc::Rc;

use worker::{web_sys, Env, Headers};

use babybook_jobs::TraceId;

use crate::admission::{self, Demands, Facts, Refusal, Rules};
use crate::cors;
use crate::error::{ApiError, ErrorCode};
use crate::hygiene::{Rejection, RequestHead};
use crate::lang::Lang;
use crate::rate_limit::RequestClass;
use crate::reply::{header_value, Reply};
use crate::request_target::Target;
use crate::routes::{self, Matched, Resolution, Route, RouteId, Surface};
use crate::session::Session;
use crate::share::headers as share_headers;
use crate::switches::Switch;
use crate::telemetry::{self, Level, LogLine, SampleClass};

use super::context::{self, RequestContext};
use super::exchange::{self, error_reply, Incoming, Notes};
use super::protection::{rate_limits, screen};
use super::rate_limiter::{self, Verdict};
use super::{
    admin, api_auth, api_links, api_media, api_shares, proxy, request_body, share_gate, share_route, switches,
    test_controls,
};

pub async fn handle(req: worker::web_sys::Request, env: Env, ctx: worker::Context) -> web_sys::Response {
    let started_ms = context::now_ms();
    let headers: Vec<(String, String)> = Headers(req.headers()).entries().collect();
    let header = |name: &str| header_value(&headers, name);
    let trace_id = trace_id_from(header("traceparent"), header("x-trace-id"));
    let lang = Lang::negotiate(header("accept-language"));
    let settings = match context::settings(&env) {
        Ok(settings) => settings,
        Err(e) => {
            let line = context::unconfigured_line(Level::Error, "configuration error", &trace_id);
            context::emit(&line.field("detail", e.to_string()));
            let reply = ApiError::new(ErrorCode::Internal, e.to_string()).to_reply(trace_id.as_str(), lang);
            return into_response(reply, false);
        }
    };
    let url = req.url();
    let target = Target::split(&url);
    let origin = target.as_ref().map(Target::origin).unwrap_or_default();
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
    let path = target.map_or("/", |t| t.path);
    let query = target.and_then(|t| t.query);
    let mut notes = Notes::default();
    let head = RequestHead {
        method: &method,
        path,
        target_len: target.map_or(0, |t| t.target_len()),
        header_bytes: headers.iter().map(|(n, v)| n.len() + v.len() + 4).sum(),
        host: target.map_or("", |t| t.host),
    };
    // The one request header read after routing, which takes the rest.
    let request_origin = header("origin").map(str::to_owned);
    let mut reply = route(req, &cx, &head, query, headers, &mut notes).await;

    // Response headers every answer gets.
    reply.set_header("x-trace-id", cx.trace_id.as_str());
    if notes.surface == Some(Surface::Api) || notes.surface.is_none() && notes.rejection.is_none() {
        decorate_api(&mut reply, &cx, request_origin.as_deref());
    }
    if reply.get("cache-control").is_none() {
        reply.set_header("cache-control", "no-store");
    }
    log_request(&cx, &method, &reply, &notes);
    record_sli(&cx, &reply, &notes);
    into_response(reply, method == "HEAD")
}

/// The request's SLI data point (sampled inside `sli::record`).
fn record_sli(cx: &RequestContext, reply: &Reply, notes: &Notes) {
    let cache_status = notes
        .fields
        .iter()
        .find(|(k, _)| *k == "cache_status")
        .and_then(|(_, v)| v.as_str())
        .unwrap_or("");
    super::sli::record(
        &cx.io,
        cx.config(),
        &super::sli::Point {
            surface: notes.surface,
            route: notes.route.or(notes.rejection).unwrap_or("unmatched"),
            status: reply.status,
            cache_status,
            duration_ms: context::now_ms() - cx.started_ms,
        },
    );
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

fn host_surfaces(cx: &RequestContext, host: &str) -> (bool, bool) {
    let host = host.to_ascii_lowercase();
    (cx.config().is_share_host(&host), cx.config().is_api_host(&host))
}

async fn route(
    req: worker::web_sys::Request,
    cx: &RequestContext,
    head: &RequestHead<'_>,
    query: Option<&str>,
    headers: Vec<(String, String)>,
    notes: &mut Notes,
) -> Reply {
    let config = cx.config();
    // 1. Hygiene.
    if let Err(rejection) = screen(config, head) {
        return hygiene_refusal(cx, head, rejection, notes);
    }
    let (serves_share, serves_api) = host_surfaces(cx, head.host.split(':').next().unwrap_or(""));

    // 2. CORS preflight: answered here, never routed.
    if head.method == "OPTIONS" && serves_api {
        notes.surface = Some(Surface::Api);
        notes.route = Some("OPTIONS *");
        return cors::preflight(
            cors::check_origin(header_value(&headers, "origin"), &config.app_origin),
            &config.app_origin,
        );
    }

    // 3. Route.
    let matched = match find_route(cx, &req, head, &headers, (serves_share, serves_api), notes).await {
        Ok(matched) => matched,
        Err(answer) => return answer,
    };
    let route = matched.route;
    notes.route = Some(route.pattern());
    notes.surface = Some(match route.surface() {
        Surface::Any if serves_api => Surface::Api,
        other => other,
    });
    // A share token is parsed once, here: one that cannot be one is answered at once, with
    // nothing to admit, count (it spends no rate-limit counter) or read.
    let share_token = match share_route::token_of(cx, &matched, notes) {
        Ok(token) => token,
        Err(refusal) => return refusal,
    };

    // 4. Admission: one decision over the request's facts.
    let session = match admitted(cx, Demands::of_route(route), &headers, notes).await {
        Ok(session) => session,
        Err(refusal) => return refusal,
    };

    // 5. Body.
    let body = match write_body(&req, route, &headers).await {
        Ok(body) => body,
        Err(e) => return error_reply(cx, notes, e),
    };

    // 6. Rate limits (the email-keyed login policy is applied by the login handler).
    let class = route.request_class(session.is_some());
    let share_page = matches!(route.id(), RouteId::SharePage | RouteId::SharePassphrase);
    let accept = header_value(&headers, "accept");
    if let Some(refusal) = rate_limits(cx, &cx.client_ip, class, session.as_ref(), share_page, accept, notes).await {
        return refusal;
    }

    // 7. The handler, behind a share-host form's own guard (checked once its body is read).
    let query = query.map(str::to_owned);
    let incoming = Incoming {
        headers,
        body,
        session,
        query,
        share_token,
    };
    if route.access().needs_form_token() {
        if let Err(refusal) = share_gate::guard(cx, &incoming, notes) {
            return refusal;
        }
    }
    match handler(cx, &matched, &incoming, notes).await {
        Ok(reply) => reply,
        Err(e) => error_reply(cx, notes, e),
    }
}

/// Step 3: the route, or the answer for a path none of the edge's routes serves (the origin's
/// paths are proxied, an unknown share path gets the share page 404).
async fn find_route<'p>(
    cx: &RequestContext,
    req: &worker::web_sys::Request,
    head: &RequestHead<'p>,
    headers: &[(String, String)],
    (serves_share, serves_api): (bool, bool),
    notes: &mut Notes,
) -> Result<Matched<'p>, Reply> {
    let config = cx.config();
    let serves = |surface: Surface| match surface {
        Surface::Any => true,
        Surface::Share => serves_share,
        Surface::Api => serves_api,
    };
    match routes::resolve(routes::table(), head.method, head.path, serves) {
        Resolution::Found(m) => Ok(m),
        Resolution::MethodNotAllowed { allow } => {
            notes.rejection = Some("method_not_allowed");
            telemetry::count_rejection("method_not_allowed");
            Err(ApiError::new(ErrorCode::MethodNotAllowed, "method")
                .to_reply(cx.trace_id.as_str(), cx.lang)
                .header("allow", allow))
        }
        Resolution::NotFound if serves_api && config.origin_url.is_some() && routes::is_origin_path(head.path) => {
            notes.surface = Some(Surface::Api);
            notes.route = Some("proxy");
            Err(proxied(cx, req, head, headers, notes).await)
        }
        Resolution::NotFound if serves_share && head.path.starts_with("/s/") => {
            notes.surface = Some(Surface::Share);
            Err(exchange::share_not_found(cx))
        }
        Resolution::NotFound => {
            // The path stays out of the detail (it goes to the logs): a share token in a
            // mistyped link, or anything else a caller put there, is nobody's to keep.
            let error = ApiError::new(ErrorCode::NotFound, "no route for the path");
            Err(error_reply(cx, notes, error))
        }
    }
}

/// A write's body, read as a stream and refused the moment it passes the route's limit, then
/// admitted by its content type. Reads have none.
async fn write_body(
    req: &worker::web_sys::Request,
    route: &Route,
    headers: &[(String, String)],
) -> Result<Vec<u8>, ApiError> {
    if !route.method().is_write() {
        return Ok(Vec::new());
    }
    let declared = header_value(headers, "content-length").and_then(|l| l.trim().parse::<usize>().ok());
    let body = request_body::read(req, route.body_limit(), declared).await?;
    admission::admit_body(route.body(), header_value(headers, "content-type"), &body)?;
    Ok(body)
}

/// The answer to a request the hygiene screen refused.
fn hygiene_refusal(cx: &RequestContext, head: &RequestHead<'_>, rejection: Rejection, notes: &mut Notes) -> Reply {
    telemetry::count_rejection(rejection.log_tag());
    notes.rejection = Some(rejection.log_tag());
    let code = match rejection {
        Rejection::UriTooLong => ErrorCode::UriTooLong,
        Rejection::HeadersTooLarge => ErrorCode::HeadersTooLarge,
        Rejection::Scanner => ErrorCode::NotFound,
        Rejection::UnknownHost => ErrorCode::MisdirectedRequest,
        Rejection::UnknownMethod => ErrorCode::MethodNotAllowed,
        Rejection::AmbiguousPath => ErrorCode::NotFound,
    };
    let mut reply = ApiError::new(code, rejection.log_tag()).to_reply(cx.trace_id.as_str(), cx.lang);
    if rejection == Rejection::UnknownMethod {
        let allow = match routes::resolve(routes::table(), "TRACE", head.path, |_| true) {
            Resolution::MethodNotAllowed { allow } => allow,
            _ => "GET, HEAD, POST, PATCH, DELETE, OPTIONS".into(),
        };
        reply.set_header("allow", allow);
    }
    reply
}

/// Gathers the facts, asks `admission::admit`, and acts on its answer: the caller's session, or
/// the refusal to send. A wrong operator token is counted against the client first (fail closed:
/// a guesser meets 429, not 401).
async fn admitted(
    cx: &RequestContext,
    demands: Demands,
    headers: &[(String, String)],
    notes: &mut Notes,
) -> Result<Option<Session>, Reply> {
    let config = cx.config();
    let facts = Facts {
        origin: header_value(headers, "origin"),
        cookie: header_value(headers, "cookie"),
        csrf_header: header_value(headers, crate::csrf::HEADER_NAME),
        authorization: header_value(headers, "authorization"),
        admin_reason: header_value(headers, "x-admin-reason"),
    };
    // The switches live in KV: read only for the requests they can refuse.
    let read_only = demands.changes_data && switches::is_on(&cx.io, config, Switch::ReadOnly).await;
    let exports_off = demands.exports && switches::is_on(&cx.io, config, Switch::ExportsOff).await;
    let rules = Rules {
        app_origin: &config.app_origin,
        read_only,
        exports_off,
        test_controls: config.test_controls,
        operator_tokens: &config.admin_tokens,
        session_keys: cx.settings.session_keys.as_ref(),
        now_s: cx.started_ms / 1000,
    };
    match admission::admit(demands, &facts, &rules) {
        Ok(admitted) => {
            notes.account = admitted.session.as_ref().map(|s| s.aid);
            if let Some((operator, reason)) = admitted.operator {
                // Who did what, and why: every admin call is logged whole, never sampled away.
                notes.operator = Some(operator);
                notes.fields.push(("admin_reason", reason.into()));
            }
            Ok(admitted.session)
        }
        Err(Refusal::Error(e)) => Err(error_reply(cx, notes, e)),
        Err(Refusal::OperatorWithoutReason { operator, error }) => {
            notes.operator = Some(operator);
            Err(error_reply(cx, notes, error))
        }
        Err(Refusal::OperatorCredential) => {
            let policy = &crate::rate_limit::ADMIN_FAILURES;
            if let Verdict::Refused(reply) = rate_limiter::check(cx, policy, &cx.client_ip, false, None).await {
                notes.rejection = Some("rate_limited");
                notes.fields.push(("rate_limit_policy", policy.name.into()));
                return Err(reply);
            }
            let error = ApiError::new(ErrorCode::Unauthorized, "admin token missing or wrong");
            Err(error_reply(cx, notes, error))
        }
    }
}

/// Step 7: the route's handler.
async fn handler(
    cx: &RequestContext,
    matched: &Matched<'_>,
    incoming: &Incoming,
    notes: &mut Notes,
) -> Result<Reply, ApiError> {
    let param = |name: &str| matched.param(name).unwrap_or("");
    match matched.route.id() {
        RouteId::Health => Ok(Reply::json(
            200,
            &serde_json::json!({
                "status": "ok",
                "service": crate::SERVICE,
                "version": crate::VERSION,
                "version_id": cx.config().deployed.id,
                "version_tag": cx.config().deployed.tag,
            }),
        )),
        RouteId::Ready => ready(cx).await,
        RouteId::ShareStatic => Ok(share_route::static_file(cx, param("file"))),
        RouteId::SharePage => Ok(share_route::serve(cx, incoming, notes).await),
        RouteId::SharePassphrase => Ok(share_gate::answer(cx, incoming, notes).await),
        RouteId::CsrfToken => api_auth::csrf_token(cx, incoming),
        RouteId::Login => api_auth::login(cx, incoming, notes).await,
        RouteId::Logout => api_auth::logout(cx, incoming).await,
        RouteId::LogoutEverywhere => api_auth::logout_everywhere(cx, incoming, notes).await,
        RouteId::Me => api_auth::me(cx, incoming).await,
        RouteId::ListShares => api_shares::list(cx, incoming).await,
        RouteId::CreateShare => api_shares::create(cx, incoming).await,
        RouteId::UpdateShare => api_shares::update(cx, incoming, param("id")).await,
        RouteId::RevokeShare => api_shares::revoke(cx, incoming, param("id")).await,
        RouteId::ListShareLinks => api_links::list(cx, incoming, param("id")).await,
        RouteId::CreateShareLink => api_links::create(cx, incoming, param("id")).await,
        RouteId::RevokeShareLink => api_links::revoke(cx, incoming, param("id"), param("link_id")).await,
        RouteId::GetAsset => api_media::get_asset(cx, incoming, param("id")).await,
        RouteId::DeleteAsset => api_media::delete_asset(cx, incoming, param("id")).await,
        RouteId::UploadComplete => api_media::upload_complete(cx, incoming).await,
        RouteId::CreateExport => api_media::create_export(cx, incoming).await,
        RouteId::AdminRedrive => admin::redrive(cx, incoming, notes).await,
        RouteId::AdminDeadJobs => admin::dead_jobs(cx).await,
        RouteId::AdminPrewarm => admin::prewarm(cx).await,
        RouteId::AdminSwitches => admin::switches(cx).await,
        RouteId::AdminSetSwitch => admin::set_switch(cx, incoming, notes).await,
        RouteId::AdminRevokeShare => admin::revoke_share(cx, incoming, notes).await,
        RouteId::AdminReapplyJournal => admin::reapply_journal(cx, incoming, notes).await,
        RouteId::TestControls => test_controls::run(cx, crate::api_input::json_object(&incoming.body)?).await,
        RouteId::TestCounters => Ok(Reply::json(200, &test_controls::counters())),
        RouteId::TestFloor => test_controls::floor(cx).await,
    }
}

/// The origin's paths (`routes::ORIGIN_PREFIXES`) on the API host go to the origin, admitted like
/// the edge's own routes (`Demands::of_proxied`: a session always, origin pinning, read-only mode
/// and CSRF for writes) and under the API rate limits.
async fn proxied(
    cx: &RequestContext,
    req: &worker::web_sys::Request,
    head: &RequestHead<'_>,
    headers: &[(String, String)],
    notes: &mut Notes,
) -> Reply {
    let demands = Demands::of_proxied(head.method);
    let session = match admitted(cx, demands, headers, notes).await {
        Ok(Some(session)) => session,
        Ok(None) => return error_reply(cx, notes, ApiError::new(ErrorCode::Unauthorized, "no session")),
        Err(refusal) => return refusal,
    };
    let class = if demands.changes_data {
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

fn log_request(cx: &RequestContext, method: &str, reply: &Reply, notes: &Notes) {
    let is_health = matches!(notes.route, Some("/health") | Some("/ready"));
    let class = SampleClass::of_request(reply.status, is_health, notes.rejection.is_some());
    let rates = context::sample_rates(cx.config());
    if notes.operator.is_none() && !class.keep(&rates, crate::sampling::unit_interval()) {
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

/// Reply → the runtime's `Response`. HEAD, 204 and 304 carry no body.
pub fn into_response(reply: Reply, head_request: bool) -> web_sys::Response {
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

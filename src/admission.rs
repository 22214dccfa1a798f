//! Admission: whether a routed request may reach its handler, decided in one place from the
//! request's facts and the configuration, cheapest check first. The shell gathers the facts, calls
//! `admit` once (for the edge's own routes and for the proxied origin paths alike) and acts on
//! the answer; nothing here does I/O.
//!
//! Order: test controls → operator token and reason → pinned origin for writes → read-only
//! mode → the exports switch → session → CSRF. After the body is read, `admit_body` checks its content type.

use crate::cors::{self, OriginCheck};
use crate::csrf;
use crate::error::{ApiError, ErrorCode};
use crate::routes::{BodyKind, Route, RouteId, Surface};
use crate::secret::OperatorTokens;
use crate::session::{self, Session, SessionKeys};

/// What a target demands of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Demands {
    /// Local test controls: refused unless they are switched on.
    pub test_control: bool,
    /// An operator's token and a stated reason.
    pub operator: bool,
    /// Comes from a browser and writes: the origin must be the app's (operators' tools excepted).
    pub pinned_origin: bool,
    /// Changes account data: refused in read-only mode.
    pub changes_data: bool,
    /// Starts an export: refused while the exports switch is off (the cost guardrail).
    pub exports: bool,
    /// Reads the session cookie when there is one.
    pub reads_session: bool,
    /// Refused without a valid session.
    pub needs_session: bool,
    /// A CSRF header matching its cookie, bound to the session (or to "anonymous").
    pub needs_csrf: bool,
}

impl Demands {
    /// One of the edge's own routes, from the route table.
    pub fn of_route(route: &Route) -> Demands {
        let access = route.access();
        Demands {
            test_control: access.is_test_control(),
            operator: access.is_admin(),
            // A share-host form is posted from the share host, and guarded by its own token.
            pinned_origin: route.method().is_write() && !access.is_admin() && !access.needs_form_token(),
            changes_data: route.changes_data(),
            exports: route.id() == RouteId::CreateExport,
            reads_session: route.surface() == Surface::Api,
            needs_session: access.needs_session(),
            needs_csrf: access.needs_csrf(),
        }
    }

    /// An origin API path (`routes::ORIGIN_PREFIXES`): always a family's data, so always a
    /// session; writes meet the same guards as the edge's own writes.
    pub fn of_proxied(method: &str) -> Demands {
        let write = !matches!(method, "GET" | "HEAD");
        Demands {
            test_control: false,
            operator: false,
            pinned_origin: write,
            changes_data: write,
            exports: false,
            reads_session: true,
            needs_session: true,
            needs_csrf: write,
        }
    }
}

/// The request's facts admission reads: header values as sent.
#[derive(Debug, Clone, Copy, Default)]
pub struct Facts<'a> {
    pub origin: Option<&'a str>,
    pub cookie: Option<&'a str>,
    pub csrf_header: Option<&'a str>,
    pub authorization: Option<&'a str>,
    pub admin_reason: Option<&'a str>,
}

/// The configuration admission reads.
#[derive(Debug, Clone, Copy)]
pub struct Rules<'a> {
    pub app_origin: &'a str,
    pub read_only: bool,
    pub exports_off: bool,
    pub test_controls: bool,
    pub operator_tokens: &'a Result<OperatorTokens, String>,
    pub session_keys: Option<&'a SessionKeys>,
    pub now_s: i64,
}

/// An admitted request: who it is.
#[derive(Debug, Default)]
pub struct Admitted {
    pub session: Option<Session>,
    /// The operator an admin token named, and the reason given: the log line becomes an audit record.
    pub operator: Option<(String, String)>,
}

#[derive(Debug)]
pub enum Refusal {
    /// No operator token, or a wrong one: the shell counts the failure against the client (a
    /// guesser meets 429) before answering 401.
    OperatorCredential,
    /// A known operator who gave no reason (400): the refusal is attributed to them too.
    OperatorWithoutReason { operator: String, error: ApiError },
    /// Any other refusal, with its exact answer.
    Error(ApiError),
}

impl From<ApiError> for Refusal {
    fn from(error: ApiError) -> Refusal {
        Refusal::Error(error)
    }
}

/// Admits a request to a target with `demands`, or says exactly why not.
pub fn admit(demands: Demands, facts: &Facts<'_>, rules: &Rules<'_>) -> Result<Admitted, Refusal> {
    let mut admitted = Admitted::default();
    if demands.test_control && !rules.test_controls {
        return Err(ApiError::new(ErrorCode::NotFound, "test controls are off").into());
    }
    if demands.operator {
        let tokens = rules
            .operator_tokens
            .as_ref()
            .map_err(|problem| ApiError::new(ErrorCode::Internal, problem.clone()))?;
        let presented = facts.authorization.and_then(|a| a.strip_prefix("Bearer "));
        let operator = presented
            .and_then(|given| tokens.operator(given))
            .ok_or(Refusal::OperatorCredential)?;
        let reason =
            crate::secret::admin_reason(facts.admin_reason).map_err(|problem| Refusal::OperatorWithoutReason {
                operator: operator.to_owned(),
                error: ApiError::new(ErrorCode::BadRequest, problem),
            })?;
        admitted.operator = Some((operator.to_owned(), reason.to_owned()));
    }
    if demands.pinned_origin && cors::check_origin(facts.origin, rules.app_origin) == OriginCheck::Refused {
        return Err(ApiError::new(
            ErrorCode::OriginNotAllowed,
            format!("write from origin {:?}", facts.origin),
        )
        .into());
    }
    if demands.changes_data && rules.read_only {
        return Err(ApiError::new(ErrorCode::ReadOnly, "read-only mode is on").into());
    }
    if demands.exports && rules.exports_off {
        let error = ApiError::new(ErrorCode::ServiceUnavailable, "exports are paused (exports-off switch)");
        return Err(error.into());
    }
    let session = facts
        .cookie
        .filter(|_| demands.reads_session)
        .map(|cookie| open_session(cookie, rules));
    admitted.session = match (session, demands.needs_session) {
        (Some(Ok(session)), _) => Some(session),
        (Some(Err(e)), true) => return Err(e.into()),
        (None, true) => return Err(ApiError::new(ErrorCode::Unauthorized, "no session cookie").into()),
        (_, false) => None,
    };
    if demands.needs_csrf {
        // Bound to the caller's session when there is one (also at sign-in, so a token fetched
        // while signed in still works), to "anonymous" otherwise.
        verify_csrf(facts, rules, admitted.session.as_ref())?;
    }
    Ok(admitted)
}

/// A write's body, once read: anything but the route's kind (JSON, or a share-host form's
/// URL-encoded fields) is refused (an empty body is no body).
pub fn admit_body(kind: BodyKind, content_type: Option<&str>, body: &[u8]) -> Result<(), ApiError> {
    let expected = match kind {
        BodyKind::Json => "application/json",
        BodyKind::Form => "application/x-www-form-urlencoded",
    };
    let matches = content_type.is_some_and(|ct| ct.trim_start().to_ascii_lowercase().starts_with(expected));
    if body.is_empty() || matches {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            format!("body is not {expected}"),
        ))
    }
}

fn open_session(cookie_header: &str, rules: &Rules<'_>) -> Result<Session, ApiError> {
    let Some(value) = session::cookie_value(cookie_header, session::COOKIE_NAME).filter(|v| !v.is_empty()) else {
        return Err(ApiError::new(ErrorCode::Unauthorized, "no session cookie"));
    };
    let keys = rules.session_keys.ok_or_else(keys_missing)?;
    Session::open(value, keys, rules.now_s)
        .map_err(|e| ApiError::new(ErrorCode::Unauthorized, format!("session {}", e.as_str())))
}

fn verify_csrf(facts: &Facts<'_>, rules: &Rules<'_>, session: Option<&Session>) -> Result<(), ApiError> {
    let keys = rules.session_keys.ok_or_else(keys_missing)?;
    let cookie_token = facts.cookie.and_then(|c| session::cookie_value(c, csrf::COOKIE_NAME));
    csrf::verify(keys, session.map(|s| s.sid.as_str()), facts.csrf_header, cookie_token)
        .map_err(|e| ApiError::new(ErrorCode::CsrfFailed, format!("csrf {}", e.as_str())))
}

fn keys_missing() -> ApiError {
    ApiError::new(ErrorCode::Internal, "SESSION_KEY_CURRENT is not configured")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::{table, RouteId};
    use babybook_jobs::Id;

    const APP: &str = "https://app.babybook.com";
    const NOW: i64 = 1_800_000_000;

    fn keys() -> SessionKeys {
        SessionKeys::new("admission-test-key-0123456789abcdef0123", None) // secret-scan: allow (a fixed test key)
    }

    fn tokens() -> Result<OperatorTokens, String> {
        OperatorTokens::parse("ana:operator-token-0123456789abcdef0123456789") // secret-scan: allow (a fixed test token)
    }

    fn demands(id: RouteId) -> Demands {
        Demands::of_route(table().iter().find(|r| r.id() == id).expect("route"))
    }

    /// A signed-in browser's cookie header, with a CSRF cookie bound to its session.
    fn signed_in() -> (String, String) {
        let session = Session::new(
            "sid-1".into(),
            Id::from_random_bytes([1; 16]),
            Id::from_random_bytes([2; 16]),
            NOW,
        );
        let csrf = csrf::issue(&keys(), Some("sid-1"), [7; 16]);
        let cookie = format!(
            "{}={}; {}={csrf}",
            session::COOKIE_NAME,
            session.seal(&keys()),
            csrf::COOKIE_NAME
        );
        (cookie, csrf)
    }

    /// What admission answers: "admit", "operator credential", or the refusal's error code.
    fn verdict(demands: Demands, facts: Facts<'_>, read_only: bool, test_controls: bool) -> String {
        let (keys, tokens) = (keys(), tokens());
        let rules = Rules {
            app_origin: APP,
            read_only,
            exports_off: false,
            test_controls,
            operator_tokens: &tokens,
            session_keys: Some(&keys),
            now_s: NOW,
        };
        match admit(demands, &facts, &rules) {
            Ok(_) => "admit".into(),
            Err(Refusal::OperatorCredential) => "operator credential".into(),
            Err(Refusal::OperatorWithoutReason { operator, error }) => format!("{:?} by {operator}", error.code),
            Err(Refusal::Error(e)) => format!("{:?}", e.code),
        }
    }

    #[test]
    fn every_guard_refuses_exactly_what_it_guards_and_in_order() {
        let (cookie, csrf) = signed_in();
        let (cookie, csrf) = (cookie.as_str(), csrf.as_str());
        let browser = Facts {
            origin: Some(APP),
            cookie: Some(cookie),
            csrf_header: Some(csrf),
            ..Facts::default()
        };
        let operator = Facts {
            authorization: Some("Bearer operator-token-0123456789abcdef0123456789"), // secret-scan: allow (the test token above)
            admin_reason: Some("ticket 42"),
            ..Facts::default()
        };
        let anonymous_csrf = csrf::issue(&keys(), None, [9; 16]);
        let anonymous_cookie = format!("{}={anonymous_csrf}", csrf::COOKIE_NAME);
        let signing_in = Facts {
            origin: Some(APP),
            cookie: Some(&anonymous_cookie),
            csrf_header: Some(&anonymous_csrf),
            ..Facts::default()
        };
        let create = demands(RouteId::CreateShare);
        #[rustfmt::skip]
        let rows: Vec<(&str, Demands, Facts<'_>, bool, bool, &str)> = vec![
            ("signed-in write", create, browser, false, false, "admit"),
            ("write from another site", create, Facts { origin: Some("https://evil.example"), ..browser }, false, false, "OriginNotAllowed"),
            ("write without Origin (same-origin tools)", create, Facts { origin: None, ..browser }, false, false, "admit"),
            ("write in read-only mode", create, browser, true, false, "ReadOnly"),
            ("origin is checked before read-only", create, Facts { origin: Some("https://evil.example"), ..browser }, true, false, "OriginNotAllowed"),
            ("write without a session", create, Facts { cookie: None, ..browser }, false, false, "Unauthorized"),
            ("write with a forged session", create, Facts { cookie: Some("__Host-session=v1.x.y.z"), ..browser }, false, false, "Unauthorized"),
            ("write without the CSRF header", create, Facts { csrf_header: None, ..browser }, false, false, "CsrfFailed"),
            ("write with another CSRF header", create, Facts { csrf_header: Some("AAAA.BBBB"), ..browser }, false, false, "CsrfFailed"),
            ("read-only mode lets reads through", demands(RouteId::ListShares), browser, true, false, "admit"),
            ("read without a session", demands(RouteId::Me), Facts::default(), false, false, "Unauthorized"),
            ("sign-in in read-only mode", demands(RouteId::Login), signing_in, true, false, "admit"),
            ("sign-in without the CSRF pair", demands(RouteId::Login), Facts::default(), false, false, "CsrfFailed"),
            ("public health check", demands(RouteId::Health), Facts::default(), true, false, "admit"),
            ("share page ignores cookies", demands(RouteId::SharePage), Facts { cookie: Some("__Host-session=garbage"), ..Facts::default() }, false, false, "admit"),
            ("operator with token and reason", demands(RouteId::AdminRedrive), operator, false, false, "admit"),
            ("operator from any origin", demands(RouteId::AdminRedrive), Facts { origin: Some("https://evil.example"), ..operator }, false, false, "admit"),
            ("operator without a reason", demands(RouteId::AdminRedrive), Facts { admin_reason: None, ..operator }, false, false, "BadRequest by ana"),
            ("operator with a wrong token", demands(RouteId::AdminRedrive), Facts { authorization: Some("Bearer nope"), ..operator }, false, false, "operator credential"),
            ("operator without a token", demands(RouteId::AdminDeadJobs), Facts::default(), false, false, "operator credential"),
            ("test controls switched off", demands(RouteId::TestControls), Facts::default(), false, false, "NotFound"),
            ("test controls switched on", demands(RouteId::TestControls), Facts::default(), false, true, "admit"),
            ("proxied read", Demands::of_proxied("GET"), Facts { origin: None, csrf_header: None, ..browser }, true, false, "admit"),
            ("proxied read without a session", Demands::of_proxied("GET"), Facts::default(), false, false, "Unauthorized"),
            ("proxied write", Demands::of_proxied("PUT"), browser, false, false, "admit"),
            ("proxied write in read-only mode", Demands::of_proxied("POST"), browser, true, false, "ReadOnly"),
            ("proxied write without CSRF", Demands::of_proxied("DELETE"), Facts { csrf_header: None, ..browser }, false, false, "CsrfFailed"),
            ("proxied write from another site", Demands::of_proxied("PATCH"), Facts { origin: Some("https://evil.example"), ..browser }, false, false, "OriginNotAllowed"),
        ];
        for (name, demands, facts, read_only, test_controls, want) in rows {
            assert_eq!(verdict(demands, facts, read_only, test_controls), want, "row: {name}");
        }
    }

    #[test]
    fn the_exports_switch_refuses_exports_and_nothing_else() {
        let (keys, tokens) = (keys(), tokens());
        let (cookie, csrf) = signed_in();
        let facts = Facts {
            origin: Some(APP),
            cookie: Some(&cookie),
            csrf_header: Some(&csrf),
            ..Facts::default()
        };
        let rules = |exports_off| Rules {
            app_origin: APP,
            read_only: false,
            exports_off,
            test_controls: false,
            operator_tokens: &tokens,
            session_keys: Some(&keys),
            now_s: NOW,
        };
        let export = demands(RouteId::CreateExport);
        match admit(export, &facts, &rules(true)) {
            Err(Refusal::Error(e)) => assert_eq!(e.code, ErrorCode::ServiceUnavailable),
            other => panic!("{other:?}"),
        }
        assert!(admit(export, &facts, &rules(false)).is_ok());
        assert!(admit(demands(RouteId::CreateShare), &facts, &rules(true)).is_ok());
    }

    #[test]
    fn an_unparseable_operator_list_is_a_500_on_operator_routes_only() {
        let keys = keys();
        let broken: Result<OperatorTokens, String> = Err("ADMIN_TOKENS: malformed".into());
        let rules = Rules {
            app_origin: APP,
            read_only: false,
            exports_off: false,
            test_controls: false,
            operator_tokens: &broken,
            session_keys: Some(&keys),
            now_s: NOW,
        };
        match admit(demands(RouteId::AdminDeadJobs), &Facts::default(), &rules) {
            Err(Refusal::Error(e)) => assert_eq!(e.code, ErrorCode::Internal),
            other => panic!("{other:?}"),
        }
        assert!(admit(demands(RouteId::Health), &Facts::default(), &rules).is_ok());
    }

    #[test]
    fn a_body_is_its_routes_kind_or_nothing() {
        let form = "application/x-www-form-urlencoded";
        let rows = [
            (BodyKind::Json, Some("application/json"), &b"{}"[..], true),
            (BodyKind::Json, Some("Application/JSON; charset=utf-8"), b"{}", true),
            (BodyKind::Json, Some("text/plain"), b"{}", false),
            (BodyKind::Json, Some(form), b"a=1", false),
            (BodyKind::Json, None, b"{}", false),
            (BodyKind::Json, None, b"", true),
            (BodyKind::Json, Some("text/plain"), b"", true),
            (BodyKind::Form, Some(form), b"a=1", true),
            (BodyKind::Form, Some("application/json"), b"{}", false),
            (BodyKind::Form, None, b"a=1", false),
        ];
        for (kind, content_type, body, ok) in rows {
            assert_eq!(
                admit_body(kind, content_type, body).is_ok(),
                ok,
                "{kind:?} {content_type:?} {body:?}"
            );
        }
    }

    #[test]
    fn a_share_host_form_is_not_held_to_the_apps_origin_nor_to_read_only_mode() {
        let route = crate::routes::table()
            .iter()
            .find(|r| r.id() == RouteId::SharePassphrase)
            .unwrap();
        let d = Demands::of_route(route);
        assert!(!d.pinned_origin && !d.changes_data && !d.needs_csrf && !d.needs_session && !d.reads_session);
    }
}

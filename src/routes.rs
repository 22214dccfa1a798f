//! The route table: one value listing every route the edge serves, its host, its guard and its
//! body limit. The dispatcher enforces guards from this table before any handler runs.
//!
//! A write route (POST/PATCH/DELETE) can only be built with [`Route::write`], which requires a
//! [`WriteGuard`]; every guard a user's browser can reach includes the CSRF check. [`audit`]
//! re-checks the table and a test runs it (the seed's Semgrep gate, §4.6/§10, as a test).

use crate::rate_limit::RequestClass;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteId {
    Health,
    Ready,
    ShareStatic,
    SharePage,
    SharePassphrase,
    CsrfToken,
    Login,
    Logout,
    LogoutEverywhere,
    Me,
    ListShares,
    CreateShare,
    UpdateShare,
    RevokeShare,
    ListShareLinks,
    CreateShareLink,
    RevokeShareLink,
    GetAsset,
    DeleteAsset,
    UploadComplete,
    CreateExport,
    AdminRedrive,
    AdminDeadJobs,
    AdminPrewarm,
    AdminSwitches,
    AdminSetSwitch,
    AdminRevokeShare,
    AdminReapplyJournal,
    TestControls,
    TestCounters,
    TestFloor,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Patch,
    Delete,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }

    pub fn is_write(self) -> bool {
        !matches!(self, Method::Get)
    }
}

/// Which host serves a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    Share,
    Api,
    /// Both (health probes).
    Any,
}

/// Who may call a read route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadAccess {
    Public,
    /// Works with or without a session (`GET /auth/csrf`).
    OptionalSession,
    Session,
    AdminToken,
    TestControl,
}

/// What stands in front of a write route. There is no "none".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteGuard {
    /// CSRF token bound to the caller's session, and the session itself.
    SessionAndCsrf,
    /// CSRF token bound to "anonymous": only sign-in, which has no session yet.
    CsrfBeforeSignIn,
    /// `Authorization: Bearer <an operator's token from ADMIN_TOKENS>`: no cookie, so no CSRF exposure.
    AdminToken,
    /// Local test controls; refused unless `ENVIRONMENT=local` and `TEST_CONTROLS=on`.
    TestControl,
    /// A form of the share host, posted by a browser without JavaScript (which cannot send the
    /// CSRF header): the form's own double-submit token, a `SameSite=Strict` cookie repeated in a
    /// hidden field and bound to the link (`share::passphrase`). Checked before the handler.
    LinkForm,
}

/// A route's guard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read(ReadAccess),
    Write(WriteGuard),
    #[cfg(test)]
    Unguarded,
}

/// What a write's body may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    Json,
    /// `application/x-www-form-urlencoded`, from a page's form.
    Form,
}

impl Access {
    pub fn needs_session(self) -> bool {
        matches!(
            self,
            Access::Read(ReadAccess::Session) | Access::Write(WriteGuard::SessionAndCsrf)
        )
    }

    pub fn needs_csrf(self) -> bool {
        matches!(
            self,
            Access::Write(WriteGuard::SessionAndCsrf | WriteGuard::CsrfBeforeSignIn)
        )
    }

    /// A share-host form's own token (`WriteGuard::LinkForm`), checked once the body is read.
    pub fn needs_form_token(self) -> bool {
        matches!(self, Access::Write(WriteGuard::LinkForm))
    }

    pub fn is_admin(self) -> bool {
        matches!(
            self,
            Access::Read(ReadAccess::AdminToken) | Access::Write(WriteGuard::AdminToken)
        )
    }

    pub fn is_test_control(self) -> bool {
        matches!(
            self,
            Access::Read(ReadAccess::TestControl) | Access::Write(WriteGuard::TestControl)
        )
    }
}

/// Default body limit of JSON API routes (issue 9: 64 KiB).
pub const JSON_BODY_LIMIT: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    method: Method,
    pattern: &'static str,
    id: RouteId,
    surface: Surface,
    access: Access,
    body_limit: usize,
    body: BodyKind,
}

impl Route {
    /// A GET route (HEAD is served with it).
    pub const fn read(pattern: &'static str, id: RouteId, surface: Surface, access: ReadAccess) -> Route {
        Route {
            method: Method::Get,
            pattern,
            id,
            surface,
            access: Access::Read(access),
            body_limit: 0,
            body: BodyKind::Json,
        }
    }

    /// A form of the share host (`POST`), guarded by the form's own token.
    pub const fn link_form(pattern: &'static str, id: RouteId, body_limit: usize) -> Route {
        Route {
            method: Method::Post,
            pattern,
            id,
            surface: Surface::Share,
            access: Access::Write(WriteGuard::LinkForm),
            body_limit,
            body: BodyKind::Form,
        }
    }

    /// A write route on the API host. The guard is not optional.
    pub const fn write(method: WriteMethod, pattern: &'static str, id: RouteId, guard: WriteGuard) -> Route {
        let method = match method {
            WriteMethod::Post => Method::Post,
            WriteMethod::Patch => Method::Patch,
            WriteMethod::Delete => Method::Delete,
        };
        Route {
            method,
            pattern,
            id,
            surface: Surface::Api,
            access: Access::Write(guard),
            body_limit: JSON_BODY_LIMIT,
            body: BodyKind::Json,
        }
    }

    #[cfg(test)]
    pub const fn unguarded_for_test(method: Method, pattern: &'static str, id: RouteId) -> Route {
        Route {
            method,
            pattern,
            id,
            surface: Surface::Api,
            access: Access::Unguarded,
            body_limit: JSON_BODY_LIMIT,
            body: BodyKind::Json,
        }
    }

    pub fn method(&self) -> Method {
        self.method
    }
    pub fn pattern(&self) -> &'static str {
        self.pattern
    }
    pub fn id(&self) -> RouteId {
        self.id
    }
    pub fn surface(&self) -> Surface {
        self.surface
    }
    pub fn access(&self) -> Access {
        self.access
    }
    pub fn body_limit(&self) -> usize {
        self.body_limit
    }
    pub fn body(&self) -> BodyKind {
        self.body
    }

    /// Writes of account data: what read-only mode (seed §7.3) stops. Signing in and out write
    /// only session rows, not account data, so they keep working during maintenance.
    pub fn changes_data(&self) -> bool {
        self.access.needs_csrf() && !matches!(self.id, RouteId::Login | RouteId::Logout | RouteId::LogoutEverywhere)
    }

    /// Which rate-limit policies apply, given whether the caller has a session.
    pub fn request_class(&self, has_session: bool) -> RequestClass {
        match (self.id, self.access) {
            (RouteId::Health | RouteId::Ready | RouteId::ShareStatic, _) => RequestClass::Exempt,
            (_, a) if a.is_admin() || a.is_test_control() => RequestClass::Exempt,
            (RouteId::SharePage | RouteId::SharePassphrase, _) => RequestClass::Share,
            (RouteId::Login, _) => RequestClass::Login,
            (_, _) if !has_session => RequestClass::ApiAnonymous,
            (_, Access::Write(_)) => RequestClass::ApiAuthenticatedWrite,
            _ => RequestClass::ApiAuthenticatedRead,
        }
    }
}

/// The methods a write route may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMethod {
    Post,
    Patch,
    Delete,
}

use ReadAccess as R;
use RouteId as Id;
use WriteGuard as W;
use WriteMethod as WM;

static TABLE: [Route; 31] = [
    Route::read("/health", Id::Health, Surface::Any, R::Public),
    Route::read("/ready", Id::Ready, Surface::Any, R::Public),
    Route::read("/_static/:file", Id::ShareStatic, Surface::Share, R::Public),
    Route::read("/s/:token", Id::SharePage, Surface::Share, R::Public),
    Route::link_form(
        "/s/:token",
        Id::SharePassphrase,
        crate::share::passphrase::FORM_BODY_LIMIT,
    ),
    Route::read("/auth/csrf", Id::CsrfToken, Surface::Api, R::OptionalSession),
    Route::write(WM::Post, "/auth/login", Id::Login, W::CsrfBeforeSignIn),
    Route::write(WM::Post, "/auth/logout", Id::Logout, W::SessionAndCsrf),
    Route::write(
        WM::Post,
        "/auth/logout-everywhere",
        Id::LogoutEverywhere,
        W::SessionAndCsrf,
    ),
    Route::read("/me", Id::Me, Surface::Api, R::Session),
    Route::read("/shares", Id::ListShares, Surface::Api, R::Session),
    Route::write(WM::Post, "/shares", Id::CreateShare, W::SessionAndCsrf),
    Route::write(WM::Patch, "/shares/:id", Id::UpdateShare, W::SessionAndCsrf),
    Route::write(WM::Delete, "/shares/:id", Id::RevokeShare, W::SessionAndCsrf),
    Route::read("/shares/:id/links", Id::ListShareLinks, Surface::Api, R::Session),
    Route::write(WM::Post, "/shares/:id/links", Id::CreateShareLink, W::SessionAndCsrf),
    Route::write(
        WM::Delete,
        "/shares/:id/links/:link_id",
        Id::RevokeShareLink,
        W::SessionAndCsrf,
    ),
    Route::read("/assets/:id", Id::GetAsset, Surface::Api, R::Session),
    Route::write(WM::Delete, "/assets/:id", Id::DeleteAsset, W::SessionAndCsrf),
    Route::write(WM::Post, "/uploads/complete", Id::UploadComplete, W::SessionAndCsrf),
    Route::write(WM::Post, "/exports", Id::CreateExport, W::SessionAndCsrf),
    Route::write(WM::Post, "/admin/jobs/redrive", Id::AdminRedrive, W::AdminToken),
    Route::read("/admin/jobs/dead", Id::AdminDeadJobs, Surface::Api, R::AdminToken),
    Route::write(WM::Post, "/admin/prewarm", Id::AdminPrewarm, W::AdminToken),
    Route::read("/admin/switches", Id::AdminSwitches, Surface::Api, R::AdminToken),
    Route::write(WM::Post, "/admin/switches", Id::AdminSetSwitch, W::AdminToken),
    Route::write(WM::Post, "/admin/shares/revoke", Id::AdminRevokeShare, W::AdminToken),
    Route::write(
        WM::Post,
        "/admin/journal/reapply",
        Id::AdminReapplyJournal,
        W::AdminToken,
    ),
    Route::write(WM::Post, "/__test/controls", Id::TestControls, W::TestControl),
    Route::read("/__test/counters", Id::TestCounters, Surface::Any, R::TestControl),
    Route::read("/__test/floor", Id::TestFloor, Surface::Any, R::TestControl),
];

/// Every route the edge serves.
pub fn table() -> &'static [Route] {
    &TABLE
}

/// Path prefixes of the origin API behind the edge (SPEC §3: calls not served at the edge are
/// proxied to `ORIGIN_URL`): the family's own data, which the origin API serves. A request to
/// the API host that no route above matches goes to the origin only when its path is one of
/// these or below one (`/moments`, `/moments/…`, never `/momentsx`); anything else is `404` and
/// reaches no origin. The edge's own routes win (`POST /uploads/complete`, `POST /exports`).
/// Every proxied call needs a session (see `pipeline::proxied`).
pub static ORIGIN_PREFIXES: [&str; 7] = [
    "/account",
    "/children",
    "/moments",
    "/uploads",
    "/exports",
    "/health-measurements",
    "/vault-documents",
];

/// Is `path` on the proxied surface (under one of [`ORIGIN_PREFIXES`])?
pub fn is_origin_path(path: &str) -> bool {
    ORIGIN_PREFIXES.iter().any(|prefix| {
        path.strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    })
}

/// Write routes that a browser could reach without a CSRF check. Must be empty.
pub fn audit(routes: &[Route]) -> Vec<String> {
    routes
        .iter()
        .filter(|r| r.method.is_write())
        .filter(|r| match r.access {
            Access::Write(WriteGuard::SessionAndCsrf | WriteGuard::CsrfBeforeSignIn) => false,
            // Bearer-token and local-only routes carry no cookie credentials.
            Access::Write(WriteGuard::AdminToken | WriteGuard::TestControl) => false,
            // A form's own token, only where a form can be: the share host, a form body.
            Access::Write(WriteGuard::LinkForm) => r.surface != Surface::Share || r.body != BodyKind::Form,
            _ => true,
        })
        .map(|r| format!("{} {}", r.method.as_str(), r.pattern))
        .collect()
}

/// A matched route and its path parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matched<'p> {
    pub route: &'static Route,
    pub params: Vec<(&'static str, &'p str)>,
}

impl Matched<'_> {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution<'p> {
    Found(Matched<'p>),
    /// The path exists, not with this method: `405` with `Allow`.
    MethodNotAllowed {
        allow: String,
    },
    NotFound,
}

/// Finds the route for `method` and `path` among those of a host's surfaces.
/// `HEAD` resolves like `GET`.
pub fn resolve<'p>(
    routes: &'static [Route],
    method: &str,
    path: &'p str,
    serves: impl Fn(Surface) -> bool,
) -> Resolution<'p> {
    let method = if method == "HEAD" { "GET" } else { method };
    let mut allowed: Vec<&'static str> = Vec::new();
    for route in routes.iter().filter(|r| serves(r.surface)) {
        let Some(params) = match_pattern(route.pattern, path) else {
            continue;
        };
        if route.method.as_str() == method {
            return Resolution::Found(Matched { route, params });
        }
        allowed.push(route.method.as_str());
    }
    if allowed.is_empty() {
        return Resolution::NotFound;
    }
    if allowed.contains(&"GET") {
        allowed.push("HEAD");
    }
    allowed.push("OPTIONS");
    Resolution::MethodNotAllowed {
        allow: allowed.join(", "),
    }
}

fn match_pattern<'p>(pattern: &'static str, path: &'p str) -> Option<Vec<(&'static str, &'p str)>> {
    let mut params = Vec::new();
    let mut pattern_parts = pattern.split('/');
    let mut path_parts = path.split('/');
    loop {
        match (pattern_parts.next(), path_parts.next()) {
            (None, None) => return Some(params),
            (Some(p), Some(v)) if p.starts_with(':') => {
                if v.is_empty() {
                    return None;
                }
                params.push((&p[1..], v));
            }
            (Some(p), Some(v)) if p == v => {}
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(_: Surface) -> bool {
        true
    }

    #[test]
    fn every_write_route_is_guarded() {
        assert_eq!(audit(table()), Vec::<String>::new());
    }

    #[test]
    fn the_audit_catches_an_unguarded_write_route() {
        let routes = [
            Route::write(WM::Post, "/shares", Id::CreateShare, W::SessionAndCsrf),
            Route::unguarded_for_test(Method::Post, "/oops", Id::CreateShare),
            Route::unguarded_for_test(Method::Get, "/fine", Id::Me),
        ];
        assert_eq!(audit(&routes), ["POST /oops"]);
    }

    #[test]
    fn the_audit_takes_a_forms_token_only_for_a_form_of_the_share_host() {
        let form = Route::link_form("/s/:token", Id::SharePassphrase, 2048);
        let on_the_api = Route {
            pattern: "/api-form",
            surface: Surface::Api,
            ..form
        };
        let json_body = Route {
            pattern: "/json-form",
            body: BodyKind::Json,
            ..form
        };
        assert_eq!(
            audit(&[form, on_the_api, json_body]),
            ["POST /api-form", "POST /json-form"]
        );
        let passphrase = table().iter().find(|r| r.id() == Id::SharePassphrase).unwrap();
        assert_eq!((passphrase.method(), passphrase.pattern()), (Method::Post, "/s/:token"));
        assert!(passphrase.access().needs_form_token() && !passphrase.changes_data());
    }

    #[test]
    fn every_user_write_needs_csrf_and_every_session_write_a_session() {
        for route in table().iter().filter(|r| r.method().is_write()) {
            let a = route.access();
            assert!(
                a.needs_csrf() || a.needs_form_token() || a.is_admin() || a.is_test_control(),
                "{:?}",
                route.id()
            );
            if route.id() != RouteId::Login && a.needs_csrf() {
                assert!(a.needs_session(), "{:?}", route.id());
            }
        }
    }

    #[test]
    fn read_only_mode_stops_every_data_write_and_nothing_else() {
        let stopped: Vec<RouteId> = table().iter().filter(|r| r.changes_data()).map(Route::id).collect();
        assert_eq!(
            stopped,
            [
                RouteId::CreateShare,
                RouteId::UpdateShare,
                RouteId::RevokeShare,
                RouteId::CreateShareLink,
                RouteId::RevokeShareLink,
                RouteId::DeleteAsset,
                RouteId::UploadComplete,
                RouteId::CreateExport
            ]
        );
    }

    #[test]
    fn routes_resolve_with_their_parameters() {
        match resolve(table(), "GET", "/s/AAAAAAAAAAAAAAAAAAAAAA", all) {
            Resolution::Found(m) => {
                assert_eq!(m.route.id(), RouteId::SharePage);
                assert_eq!(m.param("token"), Some("AAAAAAAAAAAAAAAAAAAAAA"));
            }
            other => panic!("{other:?}"),
        }
        match resolve(table(), "DELETE", "/shares/abc", all) {
            Resolution::Found(m) => assert_eq!(m.route.id(), RouteId::RevokeShare),
            other => panic!("{other:?}"),
        }
        assert!(matches!(resolve(table(), "HEAD", "/health", all), Resolution::Found(_)));
        assert_eq!(resolve(table(), "GET", "/s/", all), Resolution::NotFound);
        assert_eq!(resolve(table(), "GET", "/s/a/b", all), Resolution::NotFound);
        assert_eq!(resolve(table(), "GET", "/nope", all), Resolution::NotFound);
    }

    #[test]
    fn a_known_path_with_the_wrong_method_is_405_with_allow() {
        assert_eq!(
            resolve(table(), "POST", "/me", all),
            Resolution::MethodNotAllowed {
                allow: "GET, HEAD, OPTIONS".into()
            }
        );
        assert_eq!(
            resolve(table(), "GET", "/shares/x", all),
            Resolution::MethodNotAllowed {
                allow: "PATCH, DELETE, OPTIONS".into()
            }
        );
    }

    #[test]
    fn hosts_see_only_their_surfaces() {
        let share_host = |s: Surface| matches!(s, Surface::Share | Surface::Any);
        assert_eq!(resolve(table(), "GET", "/me", share_host), Resolution::NotFound);
        assert!(matches!(
            resolve(table(), "GET", "/health", share_host),
            Resolution::Found(_)
        ));
    }

    #[test]
    fn only_paths_under_a_listed_prefix_go_to_the_origin() {
        let rows = [
            ("/moments", true),
            ("/moments/", true),
            ("/moments/abc/media?x=1", true),
            ("/uploads/init", true),
            ("/exports/abc", true),
            ("/momentsx", false),
            ("/v1/moments", false),
            ("/", false),
            ("", false),
            ("/no/such/route", false),
            ("/wp-admin/install.php", false),
        ];
        for (path, proxied) in rows {
            assert_eq!(is_origin_path(path), proxied, "row {path:?}");
        }
    }

    #[test]
    fn the_origin_never_gets_the_edges_own_areas() {
        for prefix in ORIGIN_PREFIXES {
            assert!(
                prefix.starts_with('/') && prefix.len() > 1 && !prefix[1..].contains('/'),
                "{prefix}: one whole first segment"
            );
        }
        let own = [
            "/auth/login",
            "/auth/csrf",
            "/admin/jobs/dead",
            "/__test/controls",
            "/s/x",
            "/_static/x",
            "/health",
            "/ready",
            "/me",
            "/shares",
            "/shares/x",
            "/assets/x",
            "/__edge-cache/v1/page/x",
        ];
        for path in own {
            assert!(!is_origin_path(path), "{path} must never be proxied");
        }
        // Where a prefix holds edge routes, the edge's route wins: resolution runs first.
        for (method, path) in [("POST", "/uploads/complete"), ("POST", "/exports")] {
            assert!(
                matches!(resolve(table(), method, path, all), Resolution::Found(_)),
                "{method} {path}"
            );
        }
    }

    #[test]
    fn rate_limit_classes_follow_the_policy_table() {
        let find = |id| table().iter().find(|r| r.id() == id).unwrap();
        assert_eq!(find(RouteId::SharePage).request_class(false), RequestClass::Share);
        assert_eq!(find(RouteId::Login).request_class(false), RequestClass::Login);
        assert_eq!(find(RouteId::Me).request_class(false), RequestClass::ApiAnonymous);
        assert_eq!(
            find(RouteId::Me).request_class(true),
            RequestClass::ApiAuthenticatedRead
        );
        assert_eq!(
            find(RouteId::CreateShare).request_class(true),
            RequestClass::ApiAuthenticatedWrite
        );
        assert_eq!(find(RouteId::Ready).request_class(false), RequestClass::Exempt);
    }

    /// The (method, path) pairs of `openapi.yaml`'s `paths`, read from its two-level layout.
    fn openapi_operations() -> Vec<(String, String)> {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.yaml")).expect("openapi.yaml");
        let mut in_paths = false;
        let mut path = String::new();
        let mut operations = Vec::new();
        for line in text.lines() {
            if !line.starts_with(' ') && !line.is_empty() {
                in_paths = line == "paths:";
                continue;
            }
            if !in_paths {
                continue;
            }
            if let Some(p) = line.strip_prefix("  /").and_then(|p| p.strip_suffix(':')) {
                path = format!("/{p}");
            } else if let Some(m) = line.strip_prefix("    ").and_then(|m| m.strip_suffix(':')) {
                if ["get", "post", "patch", "delete", "put", "head", "options"].contains(&m) {
                    operations.push((m.to_uppercase(), path.clone()));
                }
            }
        }
        operations.sort();
        operations
    }

    #[test]
    fn the_openapi_document_describes_exactly_the_registered_routes() {
        let mut routes: Vec<(String, String)> = table()
            .iter()
            .map(|r| {
                let path = r.pattern().split('/').map(|seg| match seg.strip_prefix(':') {
                    Some(name) => format!("{{{name}}}"),
                    None => seg.to_owned(),
                });
                (r.method().as_str().to_owned(), path.collect::<Vec<_>>().join("/"))
            })
            .collect();
        routes.sort();
        assert_eq!(
            openapi_operations(),
            routes,
            "openapi.yaml and the route table disagree"
        );
    }
}

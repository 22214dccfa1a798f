//! HTTP clients for tests: an anonymous client with its own client IP (`CF-Connecting-IP`, so each
//! test is its own rate-limit subject), and a signed-in client that sends the session and CSRF
//! cookies and the `X-CSRF-Token` header the way the SPA does.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

/// Set by the stack's monitor thread when `wrangler dev` dies: every later request fails loudly.
pub type Death = Arc<Mutex<Option<String>>>;

#[derive(Clone)]
pub struct Client {
    http: reqwest::blocking::Client,
    pub base: String,
    pub ip: String,
    extra: Vec<(String, String)>,
    death: Death,
}

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}), status {}: {}", self.status, self.text()))
    }

    /// The canonical error envelope's code, checking the envelope's shape on the way.
    pub fn error_code(&self) -> String {
        let body = self.json();
        let error = body.get("error").unwrap_or_else(|| panic!("no error envelope: {body}"));
        for field in ["code", "message", "trace_id"] {
            assert!(
                error.get(field).and_then(Value::as_str).is_some_and(|s| !s.is_empty()),
                "envelope lacks {field}: {body}"
            );
        }
        assert_eq!(
            Some(error["trace_id"].as_str().unwrap_or("")),
            self.header("x-trace-id"),
            "envelope trace_id differs from X-Trace-Id"
        );
        error["code"].as_str().unwrap_or_default().to_owned()
    }
}

static NEXT_IP: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);

/// A client address no other client in this run uses (TEST-NET-3 and documentation ranges:
/// header values only, never dialled).
pub fn unique_ip() -> String {
    let n = NEXT_IP.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + std::process::id() % 1000 * 40_000;
    format!("198.{}.{}.{}", 18 + (n >> 16) % 2, (n >> 8) & 0xff, n & 0xff)
}

static NEXT_NETWORK: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);

/// A client address in a /24 no other client in this run uses (the shared address space
/// 100.64.0.0/10, apart from [`unique_ip`]'s): for limits keyed by the client's network.
pub fn unique_network_ip() -> String {
    let n = NEXT_NETWORK.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + std::process::id() % 64 * 256;
    format!("100.{}.{}.7", 64 + (n >> 8) % 64, n & 0xff)
}

impl Client {
    pub fn new(base: String, death: Death) -> Client {
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(60))
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(64)
            .build()
            .expect("http client");
        Client {
            http,
            base,
            ip: unique_ip(),
            extra: Vec::new(),
            death,
        }
    }

    /// The same server as another client, from another address.
    /// The same client from an address in a network of its own.
    pub fn with_new_network(&self) -> Client {
        self.with_ip(&unique_network_ip())
    }

    pub fn with_new_ip(&self) -> Client {
        Client {
            ip: unique_ip(),
            ..self.clone()
        }
    }

    pub fn with_ip(&self, ip: &str) -> Client {
        Client {
            ip: ip.to_owned(),
            ..self.clone()
        }
    }

    pub fn with_header(&self, name: &str, value: &str) -> Client {
        let mut c = self.clone();
        c.extra.push((name.to_owned(), value.to_owned()));
        c
    }

    pub fn get(&self, path: &str) -> Response {
        self.request("GET", path, &[], None)
    }

    pub fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Response {
        self.request("GET", path, headers, None)
    }

    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: Option<Vec<u8>>) -> Response {
        if let Some(why) = self.death.lock().expect("death").as_ref() {
            panic!("wrangler dev died during the run:\n{why}");
        }
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("cf-connecting-ip", &self.ip);
        for (n, v) in &self.extra {
            request = request.header(n.as_str(), v.as_str());
        }
        for (n, v) in headers {
            request = request.header(*n, *v);
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        let response = match request.send() {
            Ok(r) => r,
            Err(e) => {
                std::thread::sleep(Duration::from_millis(300));
                if let Some(why) = self.death.lock().expect("death").as_ref() {
                    panic!("wrangler dev died during the run:\n{why}");
                }
                panic!("request to {path} failed: {e}");
            }
        };
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect();
        let body = response.bytes().map(|b| b.to_vec()).unwrap_or_default();
        Response { status, headers, body }
    }

    pub fn post_json(&self, path: &str, headers: &[(&str, &str)], body: &Value) -> Response {
        let mut all = vec![("content-type", "application/json")];
        all.extend_from_slice(headers);
        self.request("POST", path, &all, Some(body.to_string().into_bytes()))
    }
}

/// Cookie value from `Set-Cookie` headers.
pub fn set_cookie_value(response: &Response, name: &str) -> Option<String> {
    response.headers_named("set-cookie").into_iter().find_map(|c| {
        c.split(';')
            .next()?
            .trim()
            .strip_prefix(&format!("{name}="))
            .map(str::to_owned)
    })
}

/// A client signed in as a family's user, as the SPA is after `GET /auth/csrf` → `POST /auth/login`.
#[derive(Clone)]
pub struct SignedIn {
    pub client: Client,
    pub session_cookie: String,
    pub csrf_token: String,
    pub account_id: String,
    pub user_id: String,
}

impl SignedIn {
    /// Signs in with email and password through the real routes.
    pub fn sign_in(client: &Client, email: &str, password: &str) -> SignedIn {
        let csrf = client.get("/auth/csrf");
        assert_eq!(csrf.status, 200, "GET /auth/csrf: {}", csrf.text());
        let token = csrf.json()["csrf_token"].as_str().expect("csrf_token").to_owned();
        let cookie = format!("__Host-csrf={token}");
        let login = client.post_json(
            "/auth/login",
            &[("x-csrf-token", &token), ("cookie", &cookie)],
            &serde_json::json!({"email": email, "password": password}),
        );
        assert_eq!(login.status, 200, "login: {}", login.text());
        let body = login.json();
        SignedIn {
            client: client.clone(),
            session_cookie: set_cookie_value(&login, "__Host-session").expect("session cookie"),
            csrf_token: body["csrf_token"].as_str().expect("csrf").to_owned(),
            account_id: body["account_id"].as_str().expect("account").to_owned(),
            user_id: body["user_id"].as_str().expect("user").to_owned(),
        }
    }

    pub fn cookies(&self) -> String {
        format!(
            "__Host-session={}; __Host-csrf={}",
            self.session_cookie, self.csrf_token
        )
    }

    pub fn get(&self, path: &str) -> Response {
        self.client.get_with(path, &[("cookie", &self.cookies())])
    }

    /// A write with session, CSRF cookie and matching header.
    pub fn write(&self, method: &str, path: &str, body: Option<&Value>) -> Response {
        let cookies = self.cookies();
        let mut headers = vec![("cookie", cookies.as_str()), ("x-csrf-token", self.csrf_token.as_str())];
        if body.is_some() {
            headers.push(("content-type", "application/json"));
        }
        self.client
            .request(method, path, &headers, body.map(|b| b.to_string().into_bytes()))
    }
}

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

    /// Status, headers (sorted, without the per-request `x-trace-id` and `date`) and body: what
    /// two answers that must be byte-identical are compared by.
    pub fn comparable(&self) -> (u16, Vec<(String, String)>, Vec<u8>) {
        let mut headers: Vec<(String, String)> = self
            .headers
            .iter()
            .filter(|(n, _)| !matches!(n.as_str(), "x-trace-id" | "date"))
            .cloned()
            .collect();
        headers.sort();
        (self.status, headers, self.body.clone())
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
        let started = std::time::Instant::now();
        let response = match request.send() {
            Ok(r) => r,
            Err(e) => {
                std::thread::sleep(Duration::from_millis(300));
                if let Some(why) = self.death.lock().expect("death").as_ref() {
                    panic!("wrangler dev died during the run:\n{why}");
                }
                // The whole chain: a timeout, a refused or a reset connection read alike at the top.
                let mut why = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(cause) = source {
                    why.push_str(&format!(": {cause}"));
                    source = cause.source();
                }
                panic!("request to {path} failed after {:?}: {why}", started.elapsed());
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

/// How a chunked upload ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadEnd {
    /// The final zero-length chunk is sent: an ordinary chunked body of known total size.
    Finished,
    /// The body is held open after the last byte: a server that reads a body whole before it
    /// answers never answers.
    HeldOpen,
}

impl Client {
    /// `method path` over a raw HTTP/1.1 connection with `Transfer-Encoding: chunked` and no
    /// `Content-Length` (what HTTP/2 and streaming clients send): `total` bytes of `fill` in
    /// 16 KiB chunks, ended as `end` says. The bytes are written by another thread, so an answer
    /// that comes while the body is still being written (or held open) is read as it arrives.
    /// Returns the answer, or panics when none comes within `wait`.
    ///
    /// `wrangler dev` puts a proxy of its own in front of the runtime; on a loaded machine it
    /// has answered an upload the Worker refused early with its own `503 "Your worker restarted
    /// mid-request"` (no trace id: the Worker never produced it). Such an answer is not the
    /// Worker's, so the upload is sent again, once; production has no such proxy.
    pub fn chunked_upload(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        total: usize,
        end: UploadEnd,
        wait: Duration,
    ) -> Response {
        let first = self.chunked_upload_once(method, path, headers, total, end, wait);
        let from_dev_proxy = first.status == 503
            && first.header("x-trace-id").is_none()
            && first.text().starts_with("Your worker restarted mid-request");
        if !from_dev_proxy {
            return first;
        }
        eprintln!("chunked_upload: wrangler dev's proxy answered {method} {path} itself; sending it again");
        self.chunked_upload_once(method, path, headers, total, end, wait)
    }

    fn chunked_upload_once(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        total: usize,
        end: UploadEnd,
        wait: Duration,
    ) -> Response {
        use std::io::{Read, Write};
        let authority = self
            .base
            .strip_prefix("http://")
            .expect("an http:// base URL")
            .trim_end_matches('/')
            .to_owned();
        let mut stream = std::net::TcpStream::connect(&authority).expect("connect to the edge");
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nhost: {authority}\r\ncf-connecting-ip: {}\r\ntransfer-encoding: chunked\r\n",
            self.ip
        );
        for (n, v) in self
            .extra
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .chain(headers.iter().copied())
        {
            head.push_str(&format!("{n}: {v}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).expect("request head");
        let mut writer = stream.try_clone().expect("clone the connection");
        let sender = std::thread::spawn(move || {
            const CHUNK: usize = 16 * 1024;
            let chunk = vec![b' '; CHUNK];
            let mut sent = 0;
            while sent < total {
                let n = CHUNK.min(total - sent);
                let ok = writer.write_all(format!("{n:x}\r\n").as_bytes()).is_ok()
                    && writer.write_all(&chunk[..n]).is_ok()
                    && writer.write_all(b"\r\n").is_ok();
                if !ok {
                    return sent;
                }
                sent += n;
            }
            if end == UploadEnd::Finished {
                let _ = writer.write_all(b"0\r\n\r\n");
            }
            sent
        });
        let deadline = std::time::Instant::now() + wait;
        let mut received = Vec::new();
        let mut buf = [0u8; 8192];
        let answer = loop {
            if let Some(answer) = parse_answer(&received) {
                break answer;
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                let _ = stream.shutdown(std::net::Shutdown::Both);
                let sent = sender.join().unwrap_or(0);
                panic!(
                    "{method} {path}: no answer within {wait:?} after {sent} of {total} body bytes ({end:?}); got {:?}",
                    String::from_utf8_lossy(&received)
                );
            }
            stream.set_read_timeout(Some(left)).expect("read timeout");
            match stream.read(&mut buf) {
                Ok(0) => {
                    if let Some(answer) = parse_answer(&received) {
                        break answer;
                    }
                    panic!(
                        "{method} {path}: the connection closed without a whole answer: {:?}",
                        String::from_utf8_lossy(&received)
                    );
                }
                Ok(n) => received.extend_from_slice(&buf[..n]),
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                Err(e) => panic!("{method} {path}: reading the answer: {e}"),
            }
        };
        let _ = stream.shutdown(std::net::Shutdown::Both);
        let _ = sender.join();
        answer
    }
}

/// A whole HTTP/1.1 answer (head and a `Content-Length` or chunked body) from the bytes so far.
fn parse_answer(bytes: &[u8]) -> Option<Response> {
    let head_end = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&bytes[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let rest = &bytes[head_end + 4..];
    let header = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
    let body = if let Some(length) = header("content-length") {
        let length: usize = length.parse().ok()?;
        (rest.len() >= length).then(|| rest[..length].to_vec())?
    } else if header("transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
        let mut body = Vec::new();
        let mut at = 0;
        loop {
            let line_end = at + rest[at..].windows(2).position(|w| w == b"\r\n")?;
            let size = usize::from_str_radix(std::str::from_utf8(&rest[at..line_end]).ok()?.trim(), 16).ok()?;
            at = line_end + 2;
            if size == 0 {
                break body;
            }
            if rest.len() < at + size + 2 {
                return None;
            }
            body.extend_from_slice(&rest[at..at + size]);
            at += size + 2;
        }
    } else {
        Vec::new()
    };
    Some(Response { status, headers, body })
}

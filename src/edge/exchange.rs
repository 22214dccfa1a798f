//! What the pipeline and the handlers share: the request as handlers get it, the notes that
//! become its log line, and the error answers (the API envelope, the share page's HTML).

use babybook_jobs::Id;

use crate::error::{ApiError, ErrorCode};
use crate::reply::{header_value, Reply};
use crate::routes::Surface;
use crate::session::Session;
use crate::share::headers as share_headers;
use crate::share::page::{render_message_page, MessagePage};
use crate::telemetry::Level;

use super::context::{self, RequestContext};

/// A request after its head was read: what handlers get.
pub struct Incoming {
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub session: Option<Session>,
    /// The request's query string, without the `?` (the share page's `?page=N`).
    pub query: Option<String>,
    /// A share page's token, parsed once by the pipeline.
    pub share_token: Option<crate::share::ShareToken>,
}

impl Incoming {
    pub fn header(&self, name: &str) -> Option<&str> {
        header_value(&self.headers, name)
    }

    /// The caller's session: admission guarantees one on routes that need it.
    pub fn session(&self) -> Result<&Session, ApiError> {
        self.session
            .as_ref()
            .ok_or_else(|| ApiError::new(ErrorCode::Unauthorized, "no session"))
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

/// A path id that is not a UUID names nothing: 404, like an id of another account.
pub fn path_id(text: &str) -> Result<Id, ApiError> {
    Id::parse(text).map_err(|_| ApiError::new(ErrorCode::NotFound, "path id is not a UUID"))
}

/// A new random id (a job's, an asset's); the platform CSPRNG failing is an internal error.
pub fn new_id() -> Result<Id, ApiError> {
    crate::secure_random::new_id().map_err(|e| ApiError::new(ErrorCode::Internal, format!("randomness: {e}")))
}

/// The API envelope for `error`; its detail goes to the request's log line (and an internal error
/// gets a line of its own), never into the body.
pub fn error_reply(cx: &RequestContext, notes: &mut Notes, error: ApiError) -> Reply {
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

/// The share-surface error page (HTML) for failures a family might see.
pub fn share_error_page(cx: &RequestContext, which: MessagePage, status: u16) -> Reply {
    let mut reply = Reply::html(status, render_message_page(which, cx.lang).to_owned());
    share_headers::apply_security_headers(&mut reply, &cx.config().media_origin);
    reply.set_header("cache-control", "no-store");
    reply.set_header("content-language", cx.lang.tag());
    reply
}

/// The one not-found page of the share host: byte-identical for malformed, unknown, expired and
/// revoked tokens (and a passphrase posted to any of them).
pub fn share_not_found(cx: &RequestContext) -> Reply {
    let mut reply = share_error_page(cx, MessagePage::NotFound, 404);
    reply.set_header("cache-control", share_headers::NOT_FOUND_CACHE_CONTROL);
    reply.set_header("vary", "Accept-Language");
    reply
}

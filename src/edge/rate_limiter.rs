//! Rate limits through Cloudflare's Rate Limiting bindings, one per policy (see
//! `crate::rate_limit` for the table). A refusal never reaches the cache, database or origin.

use crate::error::{ApiError, ErrorCode};
use crate::rate_limit::{self, OnLimiterError, Policy};
use crate::reply::Reply;
use crate::share::page::MessagePage;
use crate::telemetry::{self, Level};

use super::context::{self, RequestContext};
use super::exchange::share_error_page;
use super::faults::{self, Fault};
use super::limiter_binding;

pub enum Verdict {
    Allowed,
    Refused(Reply),
}

/// Counts one request against `policy` for `subject` (an IP key, a user id, an email).
/// `html` answers share-page refusals with a small HTML page for browsers.
pub async fn check(
    cx: &RequestContext,
    policy: &Policy,
    subject: &str,
    share_page: bool,
    accept: Option<&str>,
) -> Verdict {
    // A test run can take the binding away, to see each policy's failure mode at work.
    let binding = if faults::is_on(cx.config(), Fault::RateLimiterUnavailable) {
        "NO_SUCH_RATE_LIMITER"
    } else {
        policy.binding
    };
    let allowed = match limiter_binding::limit(&cx.io.env, binding, &rate_limit::key(policy, subject)).await {
        Ok(allowed) => allowed,
        Err(e) => {
            // The limiter itself failed: share pages stay up, logins stay shut.
            context::emit(
                &cx.line(Level::Error, "rate limiter failed")
                    .field("policy", policy.name)
                    .field("detail", e)
                    .field(
                        "fail_mode",
                        if policy.on_limiter_error == OnLimiterError::FailOpen {
                            "open"
                        } else {
                            "closed"
                        },
                    ),
            );
            policy.on_limiter_error == OnLimiterError::FailOpen
        }
    };
    if allowed {
        return Verdict::Allowed;
    }
    telemetry::count_rejection("rate_limited");
    let now = context::now_ms();
    let wants_html = accept.is_some_and(|a| a.contains("text/html"));
    let mut reply = if share_page && wants_html {
        share_error_page(cx, MessagePage::RateLimited, 429)
    } else {
        ApiError::new(ErrorCode::RateLimited, policy.name).to_reply(cx.trace_id.as_str(), cx.lang)
    };
    for (name, value) in rate_limit::refusal_headers(policy, now) {
        reply.set_header(name, value);
    }
    reply.set_header("cache-control", "no-store");
    Verdict::Refused(reply)
}

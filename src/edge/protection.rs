//! Protection before any handler: the hygiene screen and the rate limits of a request class.

use crate::config::Config;
use crate::hygiene::{self, Rejection, RequestHead};
use crate::rate_limit::{KeyedBy, RequestClass};
use crate::reply::Reply;
use crate::session::Session;

use super::context::RequestContext;
use super::exchange::Notes;
use super::faults::{self, Fault};
use super::rate_limiter::{self, Verdict};

/// Step 1, hygiene; only the `skip_hygiene` test switch passes over it.
pub fn screen(config: &Config, head: &RequestHead<'_>) -> Result<(), Rejection> {
    if faults::is_on(config, Fault::SkipHygiene) {
        return Ok(());
    }
    hygiene::screen(head, |host| config.is_share_host(host) || config.is_api_host(host))
}

/// Applies every policy of `class` but the email-keyed one; `Some` is the refusal.
pub async fn rate_limits(
    cx: &RequestContext,
    client_ip: &str,
    class: RequestClass,
    session: Option<&Session>,
    share_page: bool,
    accept: Option<&str>,
    notes: &mut Notes,
) -> Option<Reply> {
    if faults::is_on(cx.config(), Fault::SkipRateLimits) {
        return None;
    }
    for policy in class.policies().iter().filter(|p| !p.keyed_by.needs_email()) {
        let subject = match (policy.keyed_by, session) {
            (KeyedBy::Session, Some(s)) => crate::rate_limit::session_subject(&s.sid),
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
pub async fn repeat_share_protection(cx: &RequestContext, n: u32) -> u32 {
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

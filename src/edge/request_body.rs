//! Reads a request's body as a stream, chunk by chunk, and keeps at most the route's limit: the
//! moment a body passes it, the answer is `413`, whether or not the client declared a
//! `Content-Length` (chunked and HTTP/2 bodies need not).
//!
//! What comes past the limit is read and dropped, never kept, for a bounded while
//! ([`DRAIN_MAX_BYTES`], [`DRAIN_MAX_MS`]) before the `413` goes out: a client that sends a body
//! it was not asked to stop sending then gets the answer cleanly. (Answering with most of the
//! body unread made `wrangler dev`'s runtime restart under the request, every other time, and
//! the client got the dev proxy's `503`; a body that keeps coming past the budget is answered
//! anyway.)

use futures_util::StreamExt;
use worker::ByteStream;

use crate::body_limit::BoundedBody;
use crate::error::{ApiError, ErrorCode};

use super::timeout::within;

/// At most this much of an oversized body is read (and dropped) before the `413`.
const DRAIN_MAX_BYTES: usize = 8 * 1024 * 1024;
/// And for at most this long.
const DRAIN_MAX_MS: u32 = 2_000;

/// The body of `request`, at most `limit` bytes. `declared` is its `Content-Length`, if any.
pub async fn read(
    request: &worker::web_sys::Request,
    limit: usize,
    declared: Option<usize>,
) -> Result<Vec<u8>, ApiError> {
    let too_large = |limit: usize| {
        ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("body over the limit of {limit} bytes"),
        )
    };
    let Some(stream) = request.body() else {
        return Ok(Vec::new());
    };
    let mut chunks = ByteStream::from(stream);
    let mut body = match BoundedBody::new(limit, declared) {
        Ok(body) => body,
        Err(e) => {
            drain(&mut chunks).await;
            return Err(too_large(e.limit));
        }
    };
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|e| ApiError::new(ErrorCode::BadRequest, format!("body: {e}")))?;
        if let Err(e) = body.push(&chunk) {
            drain(&mut chunks).await;
            return Err(too_large(e.limit));
        }
    }
    Ok(body.into_bytes())
}

/// Reads and drops what is left of a body, within the drain budget. Dropping the stream
/// afterwards cancels whatever is still unread.
async fn drain(chunks: &mut ByteStream) {
    let mut dropped = 0usize;
    let _ = within(DRAIN_MAX_MS, async {
        while let Some(Ok(chunk)) = chunks.next().await {
            dropped += chunk.len();
            if dropped >= DRAIN_MAX_BYTES {
                break;
            }
        }
    })
    .await;
}

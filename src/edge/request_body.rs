//! Reads a request's body as a stream, chunk by chunk, and stops at the route's limit: the
//! moment a body passes it, the stream is cancelled and the caller answers `413`, whether or not
//! the client declared a `Content-Length` (chunked and HTTP/2 bodies need not).

use futures_util::StreamExt;
use worker::ByteStream;

use crate::body_limit::BoundedBody;
use crate::error::{ApiError, ErrorCode};

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
    let mut body = BoundedBody::new(limit, declared).map_err(|e| too_large(e.limit))?;
    let Some(stream) = request.body() else {
        return Ok(Vec::new());
    };
    // Dropping the stream cancels it: the rest of an oversized body is never read.
    let mut chunks = ByteStream::from(stream);
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|e| ApiError::new(ErrorCode::BadRequest, format!("body: {e}")))?;
        body.push(&chunk).map_err(|e| too_large(e.limit))?;
    }
    Ok(body.into_bytes())
}

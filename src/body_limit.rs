//! Request bodies are counted as they arrive and refused the moment they pass their route's
//! limit. A body without `Content-Length` (chunked, or HTTP/2) is never held whole before its
//! size is known: at most `limit` bytes of it are ever kept.

/// The body passed `limit` bytes (or declared more in `Content-Length`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverLimit {
    pub limit: usize,
}

/// The bytes of a body read so far, never more than its limit.
#[derive(Debug)]
pub struct BoundedBody {
    limit: usize,
    bytes: Vec<u8>,
}

impl BoundedBody {
    /// A body that may hold `limit` bytes. A `declared` length over the limit is refused before
    /// any byte is read; within it, it only sizes the buffer (a client may lie about it).
    pub fn new(limit: usize, declared: Option<usize>) -> Result<BoundedBody, OverLimit> {
        if declared.is_some_and(|n| n > limit) {
            return Err(OverLimit { limit });
        }
        Ok(BoundedBody {
            limit,
            bytes: Vec::with_capacity(declared.unwrap_or(0)),
        })
    }

    /// Adds the next chunk; refused (and nothing of it kept) when it would pass the limit.
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), OverLimit> {
        if chunk.len() > self.limit - self.bytes.len() {
            return Err(OverLimit { limit: self.limit });
        }
        self.bytes.extend_from_slice(chunk);
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_up_to_its_limit_is_kept_whole() {
        let mut body = BoundedBody::new(10, None).unwrap();
        for chunk in [&b"0123"[..], b"", b"456", b"789"] {
            body.push(chunk).unwrap();
        }
        assert_eq!(body.len(), 10);
        assert_eq!(body.into_bytes(), b"0123456789");
    }

    #[test]
    fn the_chunk_that_passes_the_limit_is_refused_and_not_kept() {
        let mut body = BoundedBody::new(10, None).unwrap();
        body.push(b"012345678").unwrap();
        assert_eq!(body.push(b"9a"), Err(OverLimit { limit: 10 }));
        assert_eq!(body.len(), 9, "nothing of the refused chunk is kept");
    }

    #[test]
    fn a_declared_length_over_the_limit_is_refused_before_reading() {
        assert_eq!(BoundedBody::new(10, Some(11)).unwrap_err(), OverLimit { limit: 10 });
        assert!(BoundedBody::new(10, Some(10)).is_ok());
    }

    #[test]
    fn a_declared_length_does_not_raise_the_limit() {
        // A client that declares 4 bytes and sends more is still held to the route's limit.
        let mut body = BoundedBody::new(6, Some(4)).unwrap();
        body.push(b"012345").unwrap();
        assert!(body.push(b"6").is_err());
    }

    #[test]
    fn a_zero_limit_takes_only_an_empty_body() {
        let mut body = BoundedBody::new(0, None).unwrap();
        body.push(b"").unwrap();
        assert!(body.push(b"x").is_err());
        assert!(body.is_empty());
    }
}

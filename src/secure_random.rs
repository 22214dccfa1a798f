//! Randomness from the platform CSPRNG (`crypto.getRandomValues` inside a Worker, the OS on the
//! host), for tokens, ids and nonces. A failing CSPRNG is not something to limp along without.

use babybook_jobs::{Id, TraceId};

/// Fills a fixed-size array with CSPRNG bytes.
pub fn bytes<const N: usize>() -> Result<[u8; N], getrandom::Error> {
    let mut out = [0u8; N];
    getrandom::fill(&mut out)?;
    Ok(out)
}

pub fn new_id() -> Result<Id, getrandom::Error> {
    Ok(Id::from_random_bytes(bytes::<16>()?))
}

pub fn new_trace_id() -> Result<TraceId, getrandom::Error> {
    Ok(TraceId::from_random_bytes(bytes::<16>()?))
}

//! The `jobs` queue's runner: every decision a delivery of a job goes through (a batch split into
//! the jobs that lease a row and the others, claim and lease, the media worker's answer and its
//! validation, the retry policy, the re-ask of a running job, the dead-letter hand-off, purge,
//! delete and reap jobs, the batch's record of results) as plain Rust over one small port
//! ([`port::Port`]). The Worker implements the port in `src/edge/consumer.rs` (JavaScript
//! messages, SQL, `fetch`); `tests/fuzz.rs` `job_lifecycle` drives the same runner through an
//! in-memory port that interleaves deliveries, the DLQ handler and the sweep and fails any call.

pub mod port;
pub mod purge;
pub mod runner;

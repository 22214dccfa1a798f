//! The local stack the edge runs on, as real processes: a private PostgreSQL cluster, PgBouncer in
//! transaction mode in front of it (Hyperdrive's pooling, locally), the HTTP stand-ins for the
//! media worker and the origin API, and `wrangler dev` (workerd) running the built Worker.
//!
//! Used by the `edge` test binary, by `scripts/dev` (`stack dev`) and by `scripts/bench`.
//! Every process is started in its own process group with a watchdog that kills the group when
//! this process exits, however it exits: no test run leaves a server behind.

pub mod client;
pub mod db_guard;
pub mod fixtures;
pub mod html;
pub mod logs;
pub mod postgres_cluster;
pub mod procs;
pub mod stack;
pub mod standins;

pub use client::{Client, Response, SignedIn, UploadEnd};
pub use stack::{Stack, StackOptions};

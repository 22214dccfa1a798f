//! The edge, tested as it runs: `wrangler dev` (workerd) with the built Worker, real Postgres
//! behind PgBouncer in transaction mode, wrangler's local queues, cache, rate limits and cron, and
//! real HTTP stand-ins for the media worker and the origin API. One binary, so the shared stack
//! starts once; scenarios that break something start their own.

mod api;
mod chaos;
mod contract;
mod cron;
mod data_rls;
mod foundation;
mod operations;
mod operator_tools;
mod protection;
mod queues;
mod recipient_links;
mod restore;
mod revocation;
mod sessions;
mod share;
mod share_page;
mod zero_loss;

pub use edge_tests::{Stack, StackOptions};

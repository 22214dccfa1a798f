//! The Worker shell: bindings, I/O and the three entry points, around the functional core.
//! Only compiled for `wasm32`. Handlers decide with core functions and do I/O here.

mod admin;
mod alerts;
mod api_auth;
mod api_links;
mod api_media;
mod api_shares;
mod consumer;
mod consumer_drills;
mod context;
mod cron_jobs;
mod db;
mod dead_letters;
mod entry;
mod exchange;
mod faults;
mod job_rows;
mod jobs;
mod journal;
mod js_body;
mod kdf;
mod limiter_binding;
mod media_client;
mod pipeline;
mod protection;
mod proxy;
mod rate_limiter;
mod request_body;
mod share_cache;
mod share_route;
mod sli;
mod slo_burn;
mod socket_stream;
mod switches;
mod test_controls;
mod timeout;

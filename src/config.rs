//! Typed configuration, parsed once from the Worker's vars and secrets.
//!
//! Binding and variable names are constants here and nowhere else; `wrangler.toml`, docs/configuration.md's
//! configuration table and `.dev.vars.example` list the same names.

use std::fmt;

use crate::prewarm::SeasonalWindow;

/// Names of the Worker's bindings.
pub mod binding {
    /// Hyperdrive config (created with caching disabled: every read must see revocations).
    pub const HYPERDRIVE: &str = "HYPERDRIVE";
    /// Producer for the `jobs` queue.
    pub const JOBS: &str = "JOBS";
    /// Producer for the `jobs-dlq` queue: definitive failures go there without burning retries.
    pub const JOBS_DLQ: &str = "JOBS_DLQ";
    /// R2 bucket where dead jobs wait, classified, until an operator re-drives them.
    pub const DEAD_JOBS: &str = "DEAD_JOBS";
    /// R2 bucket of the revocation journal: share revokes and session ends, kept outside
    /// Postgres so they can be re-applied after a point-in-time restore (`crate::journal`).
    pub const JOURNAL: &str = "JOURNAL";
    /// Workers Analytics Engine dataset for queue health signals.
    pub const QUEUE_METRICS: &str = "QUEUE_METRICS";
    /// Workers Analytics Engine dataset for per-request edge SLI points (`docs/slo.md`).
    pub const EDGE_METRICS: &str = "EDGE_METRICS";
    /// The version metadata binding: the deployed version id and tag.
    pub const VERSION_METADATA: &str = "CF_VERSION_METADATA";
    /// KV namespace of operations state that must not depend on the database: the switches
    /// (`crate::switches`) and when each alert was last sent (`crate::alerts`).
    pub const OPS_STATE: &str = "OPS_STATE";
}

/// Queue names as the runtime reports them to the consumer.
pub mod queue_name {
    pub const JOBS: &str = "jobs";
    pub const JOBS_DLQ: &str = "jobs-dlq";
}

/// Names of vars and secrets.
pub mod var {
    pub const ENVIRONMENT: &str = "ENVIRONMENT";
    pub const APP_ORIGIN: &str = "APP_ORIGIN";
    pub const SHARE_HOSTS: &str = "SHARE_HOSTS";
    pub const API_HOSTS: &str = "API_HOSTS";
    pub const READ_ONLY: &str = "READ_ONLY";
    pub const MEDIA_ORIGIN: &str = "MEDIA_ORIGIN";
    pub const ORIGIN_URL: &str = "ORIGIN_URL";
    pub const MEDIA_WORKER_URL: &str = "MEDIA_WORKER_URL";
    pub const LOG_SAMPLE_SUCCESS: &str = "LOG_SAMPLE_SUCCESS";
    pub const LOG_SAMPLE_HEALTH: &str = "LOG_SAMPLE_HEALTH";
    pub const PREWARM_WINDOWS: &str = "PREWARM_WINDOWS";
    pub const PREWARM_TOP_N: &str = "PREWARM_TOP_N";
    pub const PREWARM_CONCURRENCY: &str = "PREWARM_CONCURRENCY";
    pub const PREWARM_BUDGET_MS: &str = "PREWARM_BUDGET_MS";
    pub const VIEW_FLUSH_SECONDS: &str = "VIEW_FLUSH_SECONDS";
    pub const DLQ_STORE_RETRY_SECONDS: &str = "DLQ_STORE_RETRY_SECONDS";
    pub const SHARE_MEMORY_TTL_MS: &str = "SHARE_MEMORY_TTL_MS";
    pub const DB_ACQUIRE_TIMEOUT_MS: &str = "DB_ACQUIRE_TIMEOUT_MS";
    pub const CONSUMER_CONCURRENCY: &str = "CONSUMER_CONCURRENCY";
    pub const TEST_CONTROLS: &str = "TEST_CONTROLS";
    // secrets
    pub const SESSION_KEY_CURRENT: &str = "SESSION_KEY_CURRENT";
    pub const SESSION_KEY_PREVIOUS: &str = "SESSION_KEY_PREVIOUS";
    /// `Authorization: Bearer` to the origin API, and the key of the identity it is told.
    pub const ORIGIN_API_TOKEN: &str = "ORIGIN_API_TOKEN";
    /// `Authorization: Bearer` to the media worker. Its own value: a leak on one side does not
    /// open the other.
    pub const MEDIA_WORKER_TOKEN: &str = "MEDIA_WORKER_TOKEN";
    pub const ADMIN_TOKENS: &str = "ADMIN_TOKENS";
    /// Zone of the share host, with `CACHE_PURGE_TOKEN` (a secret, permission Zone → Cache Purge
    /// → Purge on that zone): revocations and edits then purge cached pages in every data
    /// center, not only the local one.
    pub const CF_ZONE_ID: &str = "CF_ZONE_ID";
    pub const CACHE_PURGE_TOKEN: &str = "CACHE_PURGE_TOKEN";
    /// Base URL of the Cloudflare API the purges go to (tests point it at a stand-in).
    pub const CF_API_BASE: &str = "CF_API_BASE";
    /// Where alerts go (a secret: the URL is the credential). Alerts are log lines only without it.
    pub const ALERT_WEBHOOK_URL: &str = "ALERT_WEBHOOK_URL";
    /// One webhook call per alert per this many seconds (default 900).
    pub const ALERT_DEDUP_SECONDS: &str = "ALERT_DEDUP_SECONDS";
    /// The account whose Analytics Engine the `slo_burn` cron job reads, with the
    /// `CF_ANALYTICS_TOKEN` secret (Account Analytics: Read). Without both the job is skipped.
    pub const CF_ACCOUNT_ID: &str = "CF_ACCOUNT_ID";
    pub const CF_ANALYTICS_TOKEN: &str = "CF_ANALYTICS_TOKEN";
    /// Base URL of the Analytics Engine SQL API (tests point it at a stand-in).
    pub const CF_ANALYTICS_API_BASE: &str = "CF_ANALYTICS_API_BASE";
    /// Prefix that turns a runbook's repository path into a link a person can open.
    pub const RUNBOOK_BASE_URL: &str = "RUNBOOK_BASE_URL";
    /// Fraction of the stable version's requests that write an edge SLI data point (default 1).
    /// Each point records the rate it was written at, so it weighs 1/rate: `1/N` for a whole N
    /// (1, 0.5, 0.25, 0.2, 0.125, 0.1, …), so that weights are whole numbers.
    pub const SLI_SAMPLE_RATE: &str = "SLI_SAMPLE_RATE";
    /// For this many minutes after its upload (`CF_VERSION_METADATA.timestamp`) a version writes
    /// every SLI point, whatever `SLI_SAMPLE_RATE`: a version under canary is compared on every
    /// one of its requests (default 60; `scripts/canary` observes at most 40). 0: never.
    pub const SLI_CANARY_MINUTES: &str = "SLI_CANARY_MINUTES";
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    Local,
    Staging,
    Production,
}

impl Environment {
    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Local => "local",
            Environment::Staging => "staging",
            Environment::Production => "production",
        }
    }
}

/// A secret value: compared and used, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// A secret built by hand, for host tests of code that takes one.
    #[cfg(test)]
    pub fn for_tests(value: &str) -> Secret {
        Secret(value.to_owned())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([REDACTED])")
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub environment: Environment,
    /// The only origin granted CORS (`https://app.babybook.com` in production).
    pub app_origin: String,
    pub share_hosts: Vec<String>,
    pub api_hosts: Vec<String>,
    pub read_only: bool,
    /// Origin of derived previews; also the CSP's only external `img-src`.
    pub media_origin: String,
    pub origin_url: Option<String>,
    pub media_worker_url: Option<String>,
    pub log_sample_success: f64,
    pub log_sample_health: f64,
    pub prewarm_windows: Vec<SeasonalWindow>,
    pub prewarm_top_n: u32,
    pub prewarm_concurrency: usize,
    pub prewarm_budget_ms: u64,
    pub view_flush_seconds: u64,
    /// How long the DLQ handler waits before it tries to store a dead job again, when the store
    /// refused it (the dead letter is re-published to `jobs-dlq` with this delay).
    pub dlq_store_retry_seconds: u64,
    /// How long a share page stays in an isolate's memory in front of the Cache API (0: off).
    pub share_memory_ttl_ms: u64,
    /// How long a unit of work waits for a connection and its first statement (seed §11: pool
    /// acquire 2 s). 1.5 s by default, so the whole 503 answer, closing included, leaves in 2 s.
    pub db_acquire_timeout_ms: u32,
    pub consumer_concurrency: usize,
    /// Test-only controls (`/__test/*`, clock offsets, fault switches): honoured only when
    /// `ENVIRONMENT` is `local` *and* `TEST_CONTROLS` is `on`.
    pub test_controls: bool,
    pub session_key_current: Option<Secret>,
    pub session_key_previous: Option<Secret>,
    /// The origin API's credential (and identity-signature key).
    pub origin_api_token: Option<Secret>,
    /// The media worker's credential.
    pub media_worker_token: Option<Secret>,
    /// `ADMIN_TOKENS`: each operator's own `/admin/*` token, by name (or why the list is unusable).
    pub admin_tokens: Result<crate::secret::OperatorTokens, String>,
    /// Zone id and token for global purges of cached share pages.
    pub cache_purge: Option<CachePurge>,
    /// The deployed version (from the version metadata binding, set by the shell after parsing).
    pub deployed: crate::telemetry::DeployedVersion,
    /// `ALERT_WEBHOOK_URL`: where alerts are sent.
    pub alert_webhook_url: Option<Secret>,
    pub alert_dedup_seconds: u64,
    pub runbook_base_url: String,
    /// The stable version's SLI sample rate (`1/N`).
    pub sli_sample_rate: f64,
    /// How long after its upload a version writes every SLI point.
    pub sli_canary_minutes: u32,
    /// Where the `slo_burn` cron job reads the SLIs (both account and token set).
    pub analytics_sql: Option<AnalyticsSql>,
}

/// The Analytics Engine SQL API of the account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnalyticsSql {
    /// No trailing `/`.
    pub api_base: String,
    pub account_id: String,
    pub token: Secret,
}

/// Where and how the edge purges cached share pages in every data center.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachePurge {
    /// `https://api.cloudflare.com/client/v4` unless `CF_API_BASE` says otherwise; no trailing `/`.
    pub api_base: String,
    /// 32 lowercase hex digits.
    pub zone_id: String,
    pub token: Secret,
}

/// Whether revocations and edits must reach every data center, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GlobalPurge<'a> {
    Configured(&'a CachePurge),
    /// A deployed environment without a zone id or token: every purge fails (and is retried and
    /// alerted on) until both are set.
    Missing,
    /// Local without a zone id or token: one data center, nothing more to purge.
    Off,
}

/// The Cloudflare API unless configured otherwise.
pub const DEFAULT_CF_API_BASE: &str = "https://api.cloudflare.com/client/v4";

/// A var still holding a placeholder `wrangler.toml` ships with (`CF_ZONE_ID`, `CF_ACCOUNT_ID`,
/// `RUNBOOK_BASE_URL`, …) counts as unset.
pub const PLACEHOLDER_PREFIX: &str = "REPLACE_WITH_";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub name: &'static str,
    pub problem: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "configuration {}: {}", self.name, self.problem)
    }
}

impl Config {
    /// Builds the configuration from a lookup of vars and secrets by name.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        // A value still holding a `REPLACE_WITH_` placeholder (wrangler.toml ships them where
        // Terraform's outputs go; scripts/preflight refuses to deploy one) counts as unset.
        let get = |name: &'static str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty() && !v.starts_with(PLACEHOLDER_PREFIX))
        };
        let environment = match get(var::ENVIRONMENT).as_deref() {
            // Missing means production: test controls and benchmark switches stay shut unless an
            // environment says it is local.
            Some("production") | None => Environment::Production,
            Some("local") => Environment::Local,
            Some("staging") => Environment::Staging,
            Some(other) => {
                return Err(ConfigError {
                    name: var::ENVIRONMENT,
                    problem: format!("unknown environment {other:?}"),
                })
            }
        };
        let secret = |name: &'static str| -> Result<Option<Secret>, ConfigError> {
            match get(name) {
                None => Ok(None),
                Some(value) if value.len() < 32 => Err(ConfigError {
                    name,
                    problem: "must be at least 32 characters of random text".into(),
                }),
                Some(value) => Ok(Some(Secret(value))),
            }
        };
        let app_origin = get(var::APP_ORIGIN).unwrap_or_else(|| "https://app.babybook.com".into());
        validate_origin(var::APP_ORIGIN, &app_origin)?;
        let media_origin = get(var::MEDIA_ORIGIN).unwrap_or_else(|| "https://media.babybook.com".into());
        validate_origin(var::MEDIA_ORIGIN, &media_origin)?;
        let prewarm_windows = match get(var::PREWARM_WINDOWS) {
            None => Vec::new(),
            Some(text) => serde_json::from_str(&text).map_err(|e| ConfigError {
                name: var::PREWARM_WINDOWS,
                problem: e.to_string(),
            })?,
        };
        let origin_api_token = secret(var::ORIGIN_API_TOKEN)?;
        let media_worker_token = secret(var::MEDIA_WORKER_TOKEN)?;
        if origin_api_token.is_some() && origin_api_token == media_worker_token {
            return Err(ConfigError {
                name: var::MEDIA_WORKER_TOKEN,
                problem: "must differ from ORIGIN_API_TOKEN (one credential per receiver)".into(),
            });
        }
        Ok(Config {
            environment,
            app_origin,
            share_hosts: host_list(get(var::SHARE_HOSTS).as_deref().unwrap_or("share.babybook.com")),
            api_hosts: host_list(get(var::API_HOSTS).as_deref().unwrap_or("api.babybook.com")),
            read_only: parse_flag(var::READ_ONLY, get(var::READ_ONLY))?,
            media_origin,
            origin_url: get(var::ORIGIN_URL)
                .map(|u| service_url(var::ORIGIN_URL, &u, environment))
                .transpose()?,
            media_worker_url: get(var::MEDIA_WORKER_URL)
                .map(|u| service_url(var::MEDIA_WORKER_URL, &u, environment))
                .transpose()?,
            log_sample_success: parse_rate(var::LOG_SAMPLE_SUCCESS, get(var::LOG_SAMPLE_SUCCESS), 0.05)?,
            log_sample_health: parse_rate(var::LOG_SAMPLE_HEALTH, get(var::LOG_SAMPLE_HEALTH), 0.001)?,
            prewarm_windows,
            prewarm_top_n: parse_number(var::PREWARM_TOP_N, get(var::PREWARM_TOP_N), 50)?,
            prewarm_concurrency: parse_number(var::PREWARM_CONCURRENCY, get(var::PREWARM_CONCURRENCY), 4)?,
            prewarm_budget_ms: parse_number(var::PREWARM_BUDGET_MS, get(var::PREWARM_BUDGET_MS), 20_000)?,
            view_flush_seconds: parse_number(var::VIEW_FLUSH_SECONDS, get(var::VIEW_FLUSH_SECONDS), 30)?,
            dlq_store_retry_seconds: parse_number(
                var::DLQ_STORE_RETRY_SECONDS,
                get(var::DLQ_STORE_RETRY_SECONDS),
                30,
            )?,
            share_memory_ttl_ms: parse_number(var::SHARE_MEMORY_TTL_MS, get(var::SHARE_MEMORY_TTL_MS), 2_000)?,
            db_acquire_timeout_ms: parse_number(var::DB_ACQUIRE_TIMEOUT_MS, get(var::DB_ACQUIRE_TIMEOUT_MS), 1_500)?,
            consumer_concurrency: match parse_number(var::CONSUMER_CONCURRENCY, get(var::CONSUMER_CONCURRENCY), 6)? {
                n @ 1..=MAX_OPEN_CONNECTIONS => n,
                n => {
                    return Err(ConfigError {
                        name: var::CONSUMER_CONCURRENCY,
                        problem: format!(
                            "{n}: between 1 and {MAX_OPEN_CONNECTIONS} (each job holds one outbound connection at a time, and an invocation may have {MAX_OPEN_CONNECTIONS} open)"
                        ),
                    })
                }
            },
            test_controls: environment == Environment::Local && get(var::TEST_CONTROLS).as_deref() == Some("on"),
            session_key_current: secret(var::SESSION_KEY_CURRENT)?,
            session_key_previous: secret(var::SESSION_KEY_PREVIOUS)?,
            origin_api_token,
            media_worker_token,
            // A malformed list shuts `/admin/*` only (its guard reports why), never the share pages.
            admin_tokens: crate::secret::OperatorTokens::parse(&get(var::ADMIN_TOKENS).unwrap_or_default())
                .map_err(|problem| format!("{}: {problem}", var::ADMIN_TOKENS)),
            cache_purge: cache_purge(environment, get(var::CF_API_BASE), get(var::CF_ZONE_ID), secret(var::CACHE_PURGE_TOKEN)?)?,
            deployed: crate::telemetry::DeployedVersion::unknown(),
            alert_webhook_url: match get(var::ALERT_WEBHOOK_URL) {
                None => None,
                Some(text) => {
                    let usable = url::Url::parse(&text).ok().is_some_and(|url| {
                        (url.scheme() == "https" || (environment == Environment::Local && url.scheme() == "http"))
                            && url.host_str().is_some_and(|h| !h.is_empty())
                    });
                    if !usable {
                        // Not echoed: the URL is the credential.
                        return Err(ConfigError {
                            name: var::ALERT_WEBHOOK_URL,
                            problem: "must be an https:// URL (http:// only in local)".into(),
                        });
                    }
                    Some(Secret(text))
                }
            },
            alert_dedup_seconds: parse_number(
                var::ALERT_DEDUP_SECONDS,
                get(var::ALERT_DEDUP_SECONDS),
                crate::alerts::DEFAULT_WINDOW_SECONDS,
            )?,
            runbook_base_url: get(var::RUNBOOK_BASE_URL).unwrap_or_default(),
            sli_sample_rate: parse_weighted_rate(var::SLI_SAMPLE_RATE, get(var::SLI_SAMPLE_RATE), 1.0)?,
            sli_canary_minutes: parse_number(var::SLI_CANARY_MINUTES, get(var::SLI_CANARY_MINUTES), 60)?,
            analytics_sql: match (get(var::CF_ACCOUNT_ID), secret(var::CF_ANALYTICS_TOKEN)?) {
                (Some(account_id), Some(token)) => {
                    let api_base = service_url(
                        var::CF_ANALYTICS_API_BASE,
                        &get(var::CF_ANALYTICS_API_BASE).unwrap_or_else(|| DEFAULT_CF_API_BASE.into()),
                        environment,
                    )?;
                    if account_id.len() != 32 || !account_id.bytes().all(|b| b.is_ascii_hexdigit()) {
                        return Err(ConfigError {
                            name: var::CF_ACCOUNT_ID,
                            problem: "must be the account's id: 32 hex digits".into(),
                        });
                    }
                    Some(AnalyticsSql {
                        api_base,
                        account_id,
                        token,
                    })
                }
                _ => None,
            },
        })
    }

    /// How revocations and edits purge every data center in this environment.
    pub fn global_purge(&self) -> GlobalPurge<'_> {
        match (&self.cache_purge, self.environment) {
            (Some(purge), _) => GlobalPurge::Configured(purge),
            (None, Environment::Local) => GlobalPurge::Off,
            (None, Environment::Staging | Environment::Production) => GlobalPurge::Missing,
        }
    }

    pub fn is_share_host(&self, host: &str) -> bool {
        self.share_hosts.iter().any(|h| h == host)
    }

    pub fn is_api_host(&self, host: &str) -> bool {
        self.api_hosts.iter().any(|h| h == host)
    }

    /// The host edge-cache keys live under (the first share host).
    pub fn cache_host(&self) -> &str {
        self.share_hosts
            .first()
            .map(String::as_str)
            .unwrap_or("share.babybook.com")
    }
}

/// The purge settings: both a zone id (not the placeholder) and a token, or none. The API base
/// must be `https://` outside `local` (a token never travels in clear text).
fn cache_purge(
    environment: Environment,
    api_base: Option<String>,
    zone: Option<String>,
    token: Option<Secret>,
) -> Result<Option<CachePurge>, ConfigError> {
    let api_base = service_url(
        var::CF_API_BASE,
        api_base.as_deref().unwrap_or(DEFAULT_CF_API_BASE),
        environment,
    )?;
    let zone = zone.filter(|z| !z.starts_with(PLACEHOLDER_PREFIX));
    if let Some(zone) = &zone {
        if zone.len() != 32 || !zone.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(ConfigError {
                name: var::CF_ZONE_ID,
                problem: "must be the zone's id: 32 lowercase hex digits".into(),
            });
        }
    }
    Ok(match (zone, token) {
        (Some(zone_id), Some(token)) => Some(CachePurge {
            api_base,
            zone_id,
            token,
        }),
        _ => None,
    })
}

fn host_list(text: &str) -> Vec<String> {
    text.split(',')
        .map(|h| h.trim().to_ascii_lowercase())
        .filter(|h| !h.is_empty())
        .collect()
}

/// A configured origin: `scheme://host[:port]` and nothing else, written as browsers send it in
/// `Origin` (lower-case host, no default port), since it is compared byte for byte.
fn validate_origin(name: &'static str, origin: &str) -> Result<(), ConfigError> {
    let canonical = url::Url::parse(origin).ok().filter(|url| {
        matches!(url.scheme(), "https" | "http") && url.username().is_empty() && url.password().is_none()
    });
    match canonical {
        Some(url) if url.origin().ascii_serialization() == origin => Ok(()),
        _ => Err(ConfigError {
            name,
            problem: format!("{origin:?} is not a scheme://host[:port] origin in canonical form"),
        }),
    }
}

/// A configured service URL the Worker sends a credential to: `https://` (plain `http://` only in
/// `local`, for the stand-ins), a host, no user, query or fragment. Returned without a trailing
/// `/`, so paths are appended as `{base}/path`.
fn service_url(name: &'static str, text: &str, environment: Environment) -> Result<String, ConfigError> {
    let parsed = url::Url::parse(text).ok().filter(|url| {
        let scheme_ok = url.scheme() == "https" || (environment == Environment::Local && url.scheme() == "http");
        scheme_ok
            && url.host_str().is_some_and(|h| !h.is_empty())
            && url.username().is_empty()
            && url.password().is_none()
            && url.query().is_none()
            && url.fragment().is_none()
    });
    match parsed {
        Some(url) => Ok(url.as_str().trim_end_matches('/').to_owned()),
        None => Err(ConfigError {
            name,
            problem: format!("{text:?} is not an https:// URL without user, query or fragment (http:// only in local)"),
        }),
    }
}

fn parse_flag(name: &'static str, value: Option<String>) -> Result<bool, ConfigError> {
    match value.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("false") | Some("0") | Some("off") => Ok(false),
        Some("true") | Some("1") | Some("on") => Ok(true),
        Some(other) => Err(ConfigError {
            name,
            problem: format!("{other:?} is not true/false"),
        }),
    }
}

fn parse_rate(name: &'static str, value: Option<String>, default: f64) -> Result<f64, ConfigError> {
    match value {
        None => Ok(default),
        Some(text) => match text.parse::<f64>() {
            Ok(rate) if (0.0..=1.0).contains(&rate) => Ok(rate),
            _ => Err(ConfigError {
                name,
                problem: format!("{text:?} is not a rate between 0 and 1"),
            }),
        },
    }
}

/// A sample rate whose points weigh a whole number (`1/N`): the weighted p95 of the canary's SQL
/// takes whole weights. 0 is refused too: a point must stand for a finite number of requests.
fn parse_weighted_rate(name: &'static str, value: Option<String>, default: f64) -> Result<f64, ConfigError> {
    let rate = parse_rate(name, value, default)?;
    let weight = 1.0 / rate;
    if rate > 0.0 && (weight - weight.round()).abs() <= 1e-9 * weight {
        Ok(rate)
    } else {
        Err(ConfigError {
            name,
            problem: format!("{rate} is not 1/N for a whole N (1, 0.5, 0.25, 0.2, 0.125, 0.1, …)"),
        })
    }
}

/// Simultaneous open connections (`fetch` and sockets alike) one Workers invocation may have;
/// more wait for one to close. A job uses one at a time (the database, then the media worker,
/// then the database), so this is also the most jobs a batch runs at once.
pub const MAX_OPEN_CONNECTIONS: usize = 6;

fn parse_number<T: std::str::FromStr>(name: &'static str, value: Option<String>, default: T) -> Result<T, ConfigError> {
    match value {
        None => Ok(default),
        Some(text) => text.parse().map_err(|_| ConfigError {
            name,
            problem: format!("{text:?} is not a number"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn defaults_are_the_production_values_of_the_spec() {
        let c = config(&[]).unwrap();
        assert_eq!(c.environment, Environment::Production);
        assert_eq!(c.app_origin, "https://app.babybook.com");
        assert_eq!(c.media_origin, "https://media.babybook.com");
        assert_eq!(c.share_hosts, ["share.babybook.com"]);
        assert!(!c.read_only);
        assert!(!c.test_controls);
    }

    #[test]
    fn consumer_concurrency_stays_within_the_open_connection_limit() {
        assert_eq!(config(&[]).unwrap().consumer_concurrency, MAX_OPEN_CONNECTIONS);
        assert_eq!(
            config(&[("CONSUMER_CONCURRENCY", "3")]).unwrap().consumer_concurrency,
            3
        );
        for refused in ["0", "7", "10"] {
            let Err(e) = config(&[("CONSUMER_CONCURRENCY", refused)]) else {
                panic!("CONSUMER_CONCURRENCY={refused} accepted")
            };
            assert_eq!(e.name, "CONSUMER_CONCURRENCY");
        }
    }

    #[test]
    fn test_controls_are_refused_outside_local() {
        assert!(
            config(&[("ENVIRONMENT", "local"), ("TEST_CONTROLS", "on")])
                .unwrap()
                .test_controls
        );
        assert!(
            !config(&[("ENVIRONMENT", "staging"), ("TEST_CONTROLS", "on")])
                .unwrap()
                .test_controls
        );
        assert!(
            !config(&[("ENVIRONMENT", "production"), ("TEST_CONTROLS", "on")])
                .unwrap()
                .test_controls
        );
    }

    #[test]
    fn bad_values_name_the_variable_at_fault() {
        let rows = [
            (("ENVIRONMENT", "prod"), "ENVIRONMENT"),
            (("READ_ONLY", "maybe"), "READ_ONLY"),
            (("APP_ORIGIN", "https://app.babybook.com/"), "APP_ORIGIN"),
            (("LOG_SAMPLE_SUCCESS", "2"), "LOG_SAMPLE_SUCCESS"),
            (("SESSION_KEY_CURRENT", "short"), "SESSION_KEY_CURRENT"),
            (("ORIGIN_API_TOKEN", "short"), "ORIGIN_API_TOKEN"),
            (("MEDIA_WORKER_TOKEN", "short"), "MEDIA_WORKER_TOKEN"),
            (("PREWARM_WINDOWS", "[{]"), "PREWARM_WINDOWS"),
        ];
        for ((name, value), want) in rows {
            let err = config(&[(name, value)]).expect_err(name);
            assert_eq!(err.name, want, "row {name}={value}");
        }
    }

    #[test]
    fn the_origin_and_the_media_worker_get_separate_credentials() {
        let (origin, media) = ("o".repeat(32), "m".repeat(32));
        let c = config(&[("ORIGIN_API_TOKEN", &origin), ("MEDIA_WORKER_TOKEN", &media)]).unwrap();
        assert_eq!(c.origin_api_token.as_ref().map(Secret::expose), Some(origin.as_str()));
        assert_eq!(c.media_worker_token.as_ref().map(Secret::expose), Some(media.as_str()));
        let same = config(&[("ORIGIN_API_TOKEN", &origin), ("MEDIA_WORKER_TOKEN", &origin)]).unwrap_err();
        assert_eq!(same.name, "MEDIA_WORKER_TOKEN");
        // The old shared secret is not read at all: neither receiver gets it.
        let old = config(&[("SERVICE_API_TOKEN", &origin)]).unwrap();
        assert!(old.origin_api_token.is_none() && old.media_worker_token.is_none());
    }

    #[test]
    fn global_purges_need_a_zone_and_a_token_and_deployed_environments_miss_them_loudly() {
        let zone = "0123456789abcdef0123456789abcdef";
        let token = "purge-token-for-this-test-only-0123456789"; // secret-scan: allow (fixed test value)
        let configured = config(&[("CF_ZONE_ID", zone), ("CACHE_PURGE_TOKEN", token)]).unwrap();
        match configured.global_purge() {
            GlobalPurge::Configured(purge) => {
                assert_eq!(purge.api_base, "https://api.cloudflare.com/client/v4");
                assert_eq!(purge.zone_id, zone);
                assert_eq!(purge.token.expose(), token);
            }
            other => panic!("{other:?}"),
        }
        assert!(!format!("{configured:?}").contains(token), "the token never prints");
        let rows: [(&[(&str, &str)], GlobalPurge); 6] = [
            (&[("ENVIRONMENT", "local")], GlobalPurge::Off),
            (&[("ENVIRONMENT", "staging")], GlobalPurge::Missing),
            (
                &[("ENVIRONMENT", "production"), ("CF_ZONE_ID", zone)],
                GlobalPurge::Missing,
            ),
            (&[("CACHE_PURGE_TOKEN", token)], GlobalPurge::Missing),
            (
                &[
                    ("CF_ZONE_ID", "REPLACE_WITH_BABYBOOK_COM_ZONE_ID"),
                    ("CACHE_PURGE_TOKEN", token),
                ],
                GlobalPurge::Missing,
            ),
            (
                &[
                    ("ENVIRONMENT", "local"),
                    ("CF_ZONE_ID", "REPLACE_WITH_BABYBOOK_COM_ZONE_ID"),
                ],
                GlobalPurge::Off,
            ),
        ];
        for (pairs, want) in rows {
            assert_eq!(config(pairs).unwrap().global_purge(), want, "{pairs:?}");
        }
        let local_standin = config(&[
            ("ENVIRONMENT", "local"),
            ("CF_API_BASE", "http://127.0.0.1:8792/client/v4/"),
            ("CF_ZONE_ID", zone),
            ("CACHE_PURGE_TOKEN", token),
        ])
        .unwrap();
        assert_eq!(
            local_standin.cache_purge.unwrap().api_base,
            "http://127.0.0.1:8792/client/v4",
            "a stand-in over http, locally, without the trailing slash"
        );
    }

    #[test]
    fn a_malformed_zone_id_or_api_base_names_its_variable() {
        let rows: [(&[(&str, &str)], &str); 5] = [
            (&[("CF_ZONE_ID", "babybook.com")], "CF_ZONE_ID"),
            (&[("CF_ZONE_ID", "0123456789ABCDEF0123456789ABCDEF")], "CF_ZONE_ID"),
            (&[("CF_API_BASE", "http://api.cloudflare.com/client/v4")], "CF_API_BASE"),
            (&[("CF_API_BASE", "https://")], "CF_API_BASE"),
            (&[("CACHE_PURGE_TOKEN", "short")], "CACHE_PURGE_TOKEN"),
        ];
        for (pairs, want) in rows {
            let err = config(pairs).expect_err(want);
            assert_eq!(err.name, want, "{pairs:?}");
        }
    }

    #[test]
    fn every_configured_url_is_parsed_and_a_malformed_one_names_its_variable() {
        let bad: [(&str, &str); 14] = [
            ("APP_ORIGIN", "https://a b"),
            ("APP_ORIGIN", "https://app.babybook.com/path"),
            ("APP_ORIGIN", "https://user@app.babybook.com"),
            ("APP_ORIGIN", "https://App.Babybook.com"),
            ("APP_ORIGIN", "ftp://app.babybook.com"),
            ("MEDIA_ORIGIN", "https://media.babybook.com:443"),
            ("MEDIA_ORIGIN", "https://media.babybook.com?x=1"),
            ("ORIGIN_URL", "https://origin babybook.com"),
            ("ORIGIN_URL", "http://origin.babybook.com"),
            ("ORIGIN_URL", "origin.babybook.com"),
            ("MEDIA_WORKER_URL", "https://media-worker.babybook.com/#frag"),
            ("MEDIA_WORKER_URL", "https://u:p@media-worker.babybook.com"),
            ("MEDIA_WORKER_URL", "https://"),
            ("CF_API_BASE", "https://api.cloudflare.com/client/v4?x"),
        ];
        for (name, value) in bad {
            let err = config(&[("ENVIRONMENT", "production"), (name, value)]).expect_err(value);
            assert_eq!(err.name, name, "{name}={value}");
        }
        let good = config(&[
            ("ENVIRONMENT", "production"),
            ("APP_ORIGIN", "https://app.babybook.com"),
            ("MEDIA_ORIGIN", "https://media.babybook.com"),
            ("ORIGIN_URL", "https://origin.babybook.com/"),
            ("MEDIA_WORKER_URL", "https://media-worker.babybook.com/v1/"),
        ])
        .unwrap();
        assert_eq!(good.origin_url.as_deref(), Some("https://origin.babybook.com"));
        assert_eq!(
            good.media_worker_url.as_deref(),
            Some("https://media-worker.babybook.com/v1")
        );
        // Locally the stand-ins speak plain http.
        let local = config(&[
            ("ENVIRONMENT", "local"),
            ("APP_ORIGIN", "http://localhost:5173"),
            ("ORIGIN_URL", "http://127.0.0.1:8791"),
            ("MEDIA_WORKER_URL", "http://127.0.0.1:8790"),
        ])
        .unwrap();
        assert_eq!(local.origin_url.as_deref(), Some("http://127.0.0.1:8791"));
    }

    #[test]
    fn secrets_never_print() {
        let c = config(&[("SESSION_KEY_CURRENT", "0123456789abcdef0123456789abcdef-secret")]).unwrap();
        assert!(!format!("{c:?}").contains("0123456789abcdef"));
    }

    #[test]
    fn every_environment_in_wrangler_toml_parses() {
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/wrangler.toml")).expect("wrangler.toml");
        let toml: toml::Table = toml::from_str(&text).expect("wrangler.toml parses");
        let mut environments = vec![("local", toml["vars"].clone())];
        for name in ["staging", "production"] {
            environments.push((name, toml["env"][name]["vars"].clone()));
        }
        for (name, vars) in environments {
            let vars = vars.as_table().expect("vars").clone();
            let config = Config::from_lookup(|key| vars.get(key).and_then(|v| v.as_str()).map(str::to_owned))
                .unwrap_or_else(|e| panic!("[{name}] {e}"));
            assert_eq!(config.environment.as_str(), name, "[{name}] ENVIRONMENT");
            assert!(
                !config.prewarm_windows.is_empty(),
                "[{name}] ships the Mother's Day window"
            );
            if name != "local" {
                assert!(
                    config.app_origin.starts_with("https://"),
                    "[{name}] APP_ORIGIN must be https"
                );
                assert!(
                    config.media_origin == "https://media.babybook.com",
                    "[{name}] MEDIA_ORIGIN"
                );
                assert!(!config.read_only, "[{name}] ships with READ_ONLY off");
                assert!(
                    !vars.contains_key("TEST_CONTROLS"),
                    "[{name}] must not mention TEST_CONTROLS"
                );
                assert!(
                    vars.get("CF_ZONE_ID")
                        .and_then(|v| v.as_str())
                        .is_some_and(|z| !z.is_empty()),
                    "[{name}] names the zone its share pages are purged in"
                );
                assert!(
                    !vars.contains_key("CF_API_BASE"),
                    "[{name}] purges through the real Cloudflare API"
                );
            }
        }
    }

    /// `bench/cost-model.json` prices production's logging and SLI settings: it must say what
    /// wrangler.toml sets, or the cost per family is priced for another Worker.
    #[test]
    fn the_cost_model_restates_productions_log_and_sli_settings() {
        let root = env!("CARGO_MANIFEST_DIR");
        let toml: toml::Table =
            toml::from_str(&std::fs::read_to_string(format!("{root}/wrangler.toml")).expect("wrangler.toml"))
                .expect("wrangler.toml parses");
        let model: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(format!("{root}/bench/cost-model.json")).expect("cost model"),
        )
        .expect("cost model parses");
        let production = &toml["env"]["production"];
        let vars = production["vars"].as_table().expect("vars").clone();
        let config = Config::from_lookup(|key| vars.get(key).and_then(|v| v.as_str()).map(str::to_owned)).unwrap();
        let invocation_logs = production
            .get("observability")
            .and_then(|o| o.get("logs"))
            .and_then(|l| l.get("invocation_logs"))
            .and_then(|v| v.as_bool())
            .unwrap_or(true);
        let logs = &model["logs"];
        assert_eq!(
            logs["invocation_logs_per_invocation"].as_f64(),
            Some(if invocation_logs { 1.0 } else { 0.0 })
        );
        // Every lever's line is computed by scripts/bench from these restated settings.
        assert_eq!(
            logs["log_sample_success"].as_f64(),
            Some(config.log_sample_success),
            "LOG_SAMPLE_SUCCESS"
        );
        let sli = &model["analytics_engine"];
        assert_eq!(
            sli["sli_sample_rate"].as_f64(),
            Some(config.sli_sample_rate),
            "SLI_SAMPLE_RATE"
        );
        assert_eq!(
            sli["sli_canary_minutes"].as_f64(),
            Some(f64::from(config.sli_canary_minutes)),
            "SLI_CANARY_MINUTES"
        );
        // The model's assumptions about the code: one point per queue batch (never sampled), two
        // success lines per job.
        assert_eq!(sli["points_per_queue_batch"].as_f64(), Some(1.0));
        assert_eq!(logs["success_lines_per_delivered_job"].as_f64(), Some(2.0));
        for key in ["always_written_share", "releases_per_year"] {
            assert!(sli[key].as_f64().is_some_and(|v| v >= 0.0), "analytics_engine.{key}");
        }
        for key in [
            "always_logged_share_of_requests",
            "retried_share_of_deliveries",
            "lines_per_cron_run",
        ] {
            assert!(logs[key].as_f64().is_some_and(|v| v >= 0.0), "logs.{key}");
        }
        let batch_timeout = production["queues"]["consumers"][0]["max_batch_timeout"]
            .as_integer()
            .expect("max_batch_timeout");
        assert_eq!(
            batch_timeout, 5,
            "the model's messages_per_batch reasons from a 5 s batch timeout"
        );
    }

    #[test]
    fn every_environment_binds_the_version_metadata_the_operations_namespace_and_the_sli_dataset() {
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/wrangler.toml")).expect("wrangler.toml");
        let toml: toml::Table = toml::from_str(&text).expect("wrangler.toml parses");
        let mut environments = vec![("local", toml::Value::Table(toml.clone()))];
        for name in ["staging", "production"] {
            environments.push((name, toml["env"][name].clone()));
        }
        for (name, env) in environments {
            assert_eq!(
                env.get("version_metadata")
                    .and_then(|v| v.get("binding"))
                    .and_then(|b| b.as_str()),
                Some(binding::VERSION_METADATA),
                "[{name}] [version_metadata] binding"
            );
            let kv = env
                .get("kv_namespaces")
                .and_then(|v| v.as_array())
                .cloned()
                .unwrap_or_default();
            assert!(
                kv.iter()
                    .any(|n| n.get("binding").and_then(|b| b.as_str()) == Some(binding::OPS_STATE)),
                "[{name}] binds the {} KV namespace",
                binding::OPS_STATE
            );
            let datasets = env
                .get("analytics_engine_datasets")
                .and_then(|v| v.as_array())
                .cloned()
                .unwrap_or_default();
            assert!(
                datasets
                    .iter()
                    .any(|d| d.get("binding").and_then(|b| b.as_str()) == Some(binding::EDGE_METRICS)),
                "[{name}] binds the {} dataset",
                binding::EDGE_METRICS
            );
        }
    }

    #[test]
    fn an_alert_webhook_must_be_a_url_and_never_prints() {
        let url = "https://hooks.example.test/services/T0/B0/abcdefabcdefabcdef"; // secret-scan: allow (a test value)
        let c = config(&[("ALERT_WEBHOOK_URL", url)]).unwrap();
        assert_eq!(c.alert_webhook_url.as_ref().map(Secret::expose), Some(url));
        assert!(!format!("{c:?}").contains("abcdefabcdef"));
        for bad in ["hooks.example.test", "http://hooks.example.test/x", "https://"] {
            let err = config(&[("ENVIRONMENT", "production"), ("ALERT_WEBHOOK_URL", bad)]).unwrap_err();
            assert_eq!(err.name, "ALERT_WEBHOOK_URL", "{bad}");
            assert!(!err.to_string().contains("hooks"), "the URL is never echoed");
        }
        assert!(config(&[
            ("ENVIRONMENT", "local"),
            ("ALERT_WEBHOOK_URL", "http://127.0.0.1:9/hook/x")
        ])
        .is_ok());
        let token = "0123456789abcdef0123456789abcdef-analytics"; // secret-scan: allow (a test value)
        let slo = config(&[
            ("CF_ACCOUNT_ID", "0123456789abcdef0123456789abcdef"),
            ("CF_ANALYTICS_TOKEN", token),
        ])
        .unwrap();
        assert_eq!(
            slo.analytics_sql.map(|a| a.api_base),
            Some("https://api.cloudflare.com/client/v4".to_owned())
        );
        assert_eq!(
            config(&[("CF_ACCOUNT_ID", "acct"), ("CF_ANALYTICS_TOKEN", token)])
                .unwrap_err()
                .name,
            "CF_ACCOUNT_ID"
        );
        assert!(config(&[("CF_ACCOUNT_ID", "0123456789abcdef0123456789abcdef")])
            .unwrap()
            .analytics_sql
            .is_none());
        assert_eq!(config(&[]).unwrap().alert_dedup_seconds, 900);
        assert_eq!(config(&[("SLI_SAMPLE_RATE", "2")]).unwrap_err().name, "SLI_SAMPLE_RATE");
        // A point weighs 1/rate, a whole number: 0.3 would weigh 3.33 requests, 0 infinitely many.
        for bad in ["0.3", "0", "0.15"] {
            assert_eq!(
                config(&[("SLI_SAMPLE_RATE", bad)]).unwrap_err().name,
                "SLI_SAMPLE_RATE",
                "{bad}"
            );
        }
        for good in ["1", "0.5", "0.25", "0.2", "0.125", "0.1", "0.05", "0.01"] {
            assert!(config(&[("SLI_SAMPLE_RATE", good)]).is_ok(), "{good}");
        }
        assert_eq!(config(&[]).unwrap().sli_canary_minutes, 60);
        assert_eq!(
            config(&[("SLI_CANARY_MINUTES", "-1")]).unwrap_err().name,
            "SLI_CANARY_MINUTES"
        );
    }

    /// wrangler.toml ships `REPLACE_WITH_` values where Terraform's outputs go: until one is
    /// filled (scripts/preflight refuses to deploy it) it counts as unset, never as a bad value
    /// that would answer every request with 500.
    #[test]
    fn a_placeholder_counts_as_unset() {
        let token = "0123456789abcdef0123456789abcdef-analytics"; // secret-scan: allow (a test value)
        let c = config(&[
            ("ENVIRONMENT", "production"),
            ("CF_ACCOUNT_ID", "REPLACE_WITH_CLOUDFLARE_ACCOUNT_ID"),
            ("CF_ANALYTICS_TOKEN", token),
            ("RUNBOOK_BASE_URL", "REPLACE_WITH_RUNBOOK_BASE_URL"),
        ])
        .unwrap();
        assert!(c.analytics_sql.is_none());
        assert_eq!(c.runbook_base_url, "");
    }
}

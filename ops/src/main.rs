//! `bbops`: the tools around the Worker. `bbops --help` lists the commands, `bbops <command>
//! --help` their flags.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use babybook_ops::{generate, migrate, seed, slo, standin, supply_chain};

#[derive(Parser)]
#[command(
    name = "bbops",
    version,
    about = "Tools around the babybook-edge Worker: migrations, demo data, the data generator, \
             local stand-ins, the secret scan and the SBOM",
    after_help = "A database URL may ask for TLS with sslmode=require, verify-ca or verify-full \
                  (the certificate is always verified, against the system's roots or \
                  sslrootcert=FILE)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Applies migrations/: each file once, in version order, each in its own transaction.
    Migrate {
        #[arg(long, value_name = "URL")]
        database_url: String,
    },
    /// Loads the demo family, its moments and the demo share link (idempotent).
    SeedDemo {
        #[arg(long, value_name = "URL")]
        database_url: String,
        /// The share host printed in the demo URL.
        #[arg(long, value_name = "URL")]
        base_url: Option<String>,
    },
    /// Generates families with moments and share links; prints (or writes) what it made as JSON.
    Generate {
        #[arg(long, value_name = "URL")]
        database_url: String,
        #[arg(long, default_value_t = 10)]
        accounts: u32,
        #[arg(long, default_value_t = 12)]
        moments: u32,
        #[arg(long, default_value_t = 1)]
        shares: u32,
        /// Write the JSON here instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Runs a local stand-in of a third-party HTTP service, until interrupted.
    #[command(subcommand)]
    Standin(Standin),
    /// Scans a tree for anything that looks like a secret; exits 1 when it finds one.
    ScanSecrets {
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
    /// Prints a CycloneDX SBOM of the workspace's dependencies (JSON) on standard output.
    Sbom {
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
    /// Prints a query of scripts/slo (the edge or the queue SLIs over the last N hours).
    SloSql {
        #[arg(long, value_name = "ENVIRONMENT")]
        env: String,
        #[arg(long, value_parser = ["edge", "queue"])]
        what: String,
        #[arg(long, default_value_t = 1)]
        hours: u32,
    },
    /// Prints the SLI table from the four answers of the SQL API; exits 1 on a fast burn.
    SloReport {
        #[arg(long = "edge-1h", value_name = "FILE")]
        edge_1h: PathBuf,
        #[arg(long = "edge-6h", value_name = "FILE")]
        edge_6h: PathBuf,
        #[arg(long = "queue-1h", value_name = "FILE")]
        queue_1h: PathBuf,
        #[arg(long = "queue-6h", value_name = "FILE")]
        queue_6h: PathBuf,
    },
    /// Prints the query of scripts/canary (every version's requests, 5xx and p95).
    CanarySql {
        #[arg(long, value_name = "ENVIRONMENT")]
        env: String,
        #[arg(long, default_value_t = 5)]
        minutes: u32,
    },
    /// Prints the stable version: the one serving most traffic in `wrangler deployments status --json`.
    CanaryStable {
        #[arg(long, value_name = "FILE")]
        status: PathBuf,
    },
    /// Prints the queue query of scripts/canary (per consumer version: jobs, retried, dead, age p99).
    CanaryQueueSql {
        #[arg(long, value_name = "ENVIRONMENT")]
        env: String,
        #[arg(long, default_value_t = 5)]
        minutes: u32,
    },
    /// Prints every freezing SLI's 30-day error budget; exits 1 when one is spent (release freeze).
    SloFreeze {
        /// The answer to `bbops slo-sql --what edge --hours 720`.
        #[arg(long = "edge-30d", value_name = "FILE")]
        edge_30d: PathBuf,
    },
    /// Judges a canary step: exit 0 promote, 1 breach, 4 undecided (too little traffic), 3 unreadable.
    CanaryCheck {
        #[arg(long, value_name = "FILE")]
        answer: PathBuf,
        #[arg(long, value_name = "VERSION_ID")]
        canary: String,
        #[arg(long, value_name = "VERSION_ID")]
        baseline: String,
        #[arg(long = "max-5xx-excess", default_value_t = babybook_edge::slo::SEED_GUARDRAILS.max_5xx_excess)]
        max_5xx_excess: f64,
        #[arg(long = "max-p95-ratio", default_value_t = babybook_edge::slo::SEED_GUARDRAILS.max_p95_ratio)]
        max_p95_ratio: f64,
        #[arg(long = "min-requests", default_value_t = 50.0)]
        min_requests: f64,
        /// The answer to `bbops canary-queue-sql`: the queue guardrails are judged too.
        #[arg(long = "queue-answer", value_name = "FILE")]
        queue_answer: Option<PathBuf>,
        #[arg(long = "max-queue-age-ms", default_value_t = slo::SEED_QUEUE_GUARDRAILS.max_oldest_ms)]
        max_queue_age_ms: f64,
        #[arg(long = "max-job-failure-rate", default_value_t = slo::SEED_QUEUE_GUARDRAILS.max_failure_rate)]
        max_job_failure_rate: f64,
    },
}

#[derive(Subcommand)]
enum Standin {
    /// The media worker (transcodes and derivatives, with per-asset behaviours).
    Media {
        #[arg(long, default_value_t = 8790)]
        port: u16,
        /// The MEDIA_WORKER_TOKEN it requires as a bearer token.
        #[arg(long)]
        media_token: Option<String>,
    },
    /// The origin API behind the proxied paths.
    Origin {
        #[arg(long, default_value_t = 8791)]
        port: u16,
    },
    /// Cloudflare's zone purge API.
    Purge {
        #[arg(long, default_value_t = 8792)]
        port: u16,
        /// The bearer token it requires.
        #[arg(long)]
        token: Option<String>,
    },
    /// An alert webhook (a chat or paging service's incoming webhook) at /hook/SECRET.
    Webhook {
        #[arg(long, default_value_t = 8793)]
        port: u16,
        /// The secret in the webhook's path.
        #[arg(long)]
        secret: String,
    },
    /// The Workers Analytics Engine SQL API, answering canned rules (see its module).
    SqlApi {
        #[arg(long, default_value_t = 8794)]
        port: u16,
        /// The bearer token it requires.
        #[arg(long)]
        token: Option<String>,
    },
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let command = Cli::parse().command;
    let result = match command {
        Command::Migrate { database_url } => migrate::run(&database_url).await,
        Command::SeedDemo { database_url, base_url } => seed::demo(&database_url, base_url.as_deref()).await,
        Command::Generate {
            database_url,
            accounts,
            moments,
            shares,
            out,
        } => {
            generate_to(
                &database_url,
                generate::Spec {
                    accounts,
                    moments,
                    shares,
                },
                out.as_deref(),
            )
            .await
        }
        Command::Standin(Standin::Media { port, media_token }) => standin::media::serve(port, media_token).await,
        Command::Standin(Standin::Origin { port }) => standin::origin::serve(port).await,
        Command::Standin(Standin::Purge { port, token }) => standin::purge::serve(port, token).await,
        Command::Standin(Standin::Webhook { port, secret }) => standin::webhook::serve(port, secret).await,
        Command::Standin(Standin::SqlApi { port, token }) => standin::sql_api::serve(port, token).await,
        command @ (Command::SloSql { .. }
        | Command::SloReport { .. }
        | Command::CanarySql { .. }
        | Command::CanaryQueueSql { .. }
        | Command::SloFreeze { .. }
        | Command::CanaryStable { .. }
        | Command::CanaryCheck { .. }) => return operations(command),
        Command::ScanSecrets { dir } => return scan_secrets(&dir),
        Command::Sbom { dir } => sbom(&dir),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("bbops: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn generate_to(database_url: &str, spec: generate::Spec, out: Option<&Path>) -> Result<(), String> {
    let made = generate::run(database_url, spec).await?;
    let json = serde_json::to_string_pretty(&made).map_err(|e| e.to_string())?;
    match out {
        Some(path) => std::fs::write(path, json).map_err(|e| format!("{}: {e}", path.display())),
        None => {
            println!("{json}");
            Ok(())
        }
    }
}

fn scan_secrets(dir: &Path) -> ExitCode {
    let findings = supply_chain::scan_tree(dir);
    for f in &findings {
        println!("{}:{}: possible secret ({})", f.file.display(), f.line, f.rule);
    }
    if findings.is_empty() {
        println!("scan-secrets: no secrets found");
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "scan-secrets: {} finding(s); remove the secret (and rotate it), or mark a documented fake with `{}`",
            findings.len(),
            supply_chain::ALLOW_MARKER
        );
        ExitCode::FAILURE
    }
}

fn sbom(dir: &Path) -> Result<(), String> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let bom = supply_chain::sbom(dir, &babybook_jobs::format_rfc3339_millis(now))?;
    println!("{}", serde_json::to_string_pretty(&bom).map_err(|e| e.to_string())?);
    Ok(())
}

fn read_json(path: &Path) -> Result<serde_json::Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|_| {
        let start: String = text.chars().take(200).collect();
        format!("{}: the SQL API did not answer JSON: {start:?}", path.display())
    })
}

/// The SLO and canary helpers of `scripts/slo` and `scripts/canary` (see `slo`). Errors exit 3,
/// which the canary treats as "not shown healthy".
fn operations(command: Command) -> ExitCode {
    let result: Result<ExitCode, String> = (|| match command {
        Command::SloSql { env, what, hours } => {
            match what.as_str() {
                "edge" => println!("{}", slo::edge_window_sql(&env, hours)),
                _ => println!("{}", slo::queue_window_sql(&env, hours)),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::CanarySql { env, minutes } => {
            println!("{}", slo::canary_sql(&env, minutes));
            Ok(ExitCode::SUCCESS)
        }
        Command::CanaryQueueSql { env, minutes } => {
            println!("{}", slo::canary_queue_sql(&env, minutes));
            Ok(ExitCode::SUCCESS)
        }
        Command::SloFreeze { edge_30d } => {
            let (table, frozen) = slo::freeze_report(&slo::budgets(&read_json(&edge_30d)?)?);
            print!("{table}");
            Ok(if frozen { ExitCode::from(1) } else { ExitCode::SUCCESS })
        }
        Command::CanaryStable { status } => {
            println!("{}", slo::stable_version(&read_json(&status)?)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::SloReport {
            edge_1h,
            edge_6h,
            queue_1h,
            queue_6h,
        } => {
            let one = slo::measure(&read_json(&edge_1h)?, &read_json(&queue_1h)?)?;
            let six = slo::measure(&read_json(&edge_6h)?, &read_json(&queue_6h)?)?;
            let (table, fast) = slo::report(&one, &six);
            print!("{table}");
            Ok(if fast { ExitCode::from(1) } else { ExitCode::SUCCESS })
        }
        Command::CanaryCheck {
            answer,
            canary,
            baseline,
            max_5xx_excess,
            max_p95_ratio,
            min_requests,
            queue_answer,
            max_queue_age_ms,
            max_job_failure_rate,
        } => {
            let limits = babybook_edge::slo::Guardrails {
                max_5xx_excess,
                max_p95_ratio,
            };
            // The queue first: a consumer failing its jobs is rolled back even on a quiet night.
            let mut queue_summary = String::new();
            if let Some(path) = queue_answer {
                let queue_limits = slo::QueueGuardrails {
                    max_oldest_ms: max_queue_age_ms,
                    max_failure_rate: max_job_failure_rate,
                };
                match slo::queue_health(&read_json(&path)?, &canary)? {
                    Some(health) => {
                        if let Some(why) = slo::queue_breach(&health, &queue_limits) {
                            println!("breach: {why}");
                            return Ok(ExitCode::from(1));
                        }
                        queue_summary = format!(
                            "; queue: {:.0} jobs, failure rate {:.2} %, age p99 {:.0} ms",
                            health.jobs,
                            health.failure_rate * 100.0,
                            health.oldest_p99_ms
                        );
                    }
                    None => queue_summary = "; queue: no jobs consumed by the new version".into(),
                }
            }
            Ok(
                match slo::canary_step(&read_json(&answer)?, &canary, &baseline, &limits, min_requests)? {
                    slo::Step::Promote { canary, baseline } => {
                        println!(
                            "ok: new version {:.0} requests, 5xx {:.3} %, p95 {:.0} ms; stable 5xx {:.3} %, p95 {:.0} ms{queue_summary}",
                            canary.requests,
                            canary.error_rate * 100.0,
                            canary.p95_ms,
                            baseline.error_rate * 100.0,
                            baseline.p95_ms
                        );
                        ExitCode::SUCCESS
                    }
                    slo::Step::Breach(why) => {
                        println!("breach: {why}");
                        ExitCode::from(1)
                    }
                    slo::Step::Undecided(why) => {
                        println!("undecided: {why}");
                        ExitCode::from(4)
                    }
                },
            )
        }
        _ => Err("not an SLO or canary command".into()),
    })();
    result.unwrap_or_else(|e| {
        eprintln!("bbops: {e}");
        ExitCode::from(3)
    })
}

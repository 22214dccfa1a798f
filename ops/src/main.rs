//! `bbops`: the tools around the Worker. `bbops --help` lists the commands, `bbops <command>
//! --help` their flags.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use babybook_ops::{generate, migrate, seed, standin, supply_chain};

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

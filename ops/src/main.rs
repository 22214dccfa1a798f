//! `bbops`: the tools around the Worker.
//!
//! ```text
//! bbops migrate        --database-url URL
//! bbops seed-demo      --database-url URL [--base-url URL]
//! bbops generate       --database-url URL --accounts N --moments M --shares K [--out FILE]
//! bbops standin media  --port P [--media-token T]  (the MEDIA_WORKER_TOKEN it requires)
//! bbops standin origin --port P
//! bbops standin purge  --port P [--token T]
//! bbops standin webhook --port P --secret S  (alerts arrive at /hook/S)
//! bbops standin sql-api --port P --token T  (the Analytics Engine SQL API, canned answers)
//! bbops slo-sql        --env E --what edge|queue --hours H   (a query of scripts/slo)
//! bbops canary-sql     --env E --minutes M                   (the query of scripts/canary)
//! bbops slo-report     --edge-1h F --edge-6h F --queue-1h F --queue-6h F
//!                      (the SLI table; exit 1 on a fast burn)
//! bbops canary-stable  --status F   (the version at the highest share of `wrangler deployments
//!                      status --json`)
//! bbops canary-check   --answer F --canary V --baseline V [--max-5xx-excess 0.005]
//!                      [--max-p95-ratio 1.2] [--min-requests 50]
//!                      (exit 0 promote, 1 breach, 3 undecided or unreadable)
//! bbops scan-secrets   DIR            (exit 1 when anything looks like a secret)
//! bbops sbom           [DIR]          (CycloneDX JSON on stdout)
//! ```

use std::collections::HashMap;
use std::process::ExitCode;

use babybook_ops::{generate, migrate, seed, slo, standin, supply_chain};

fn usage() -> ExitCode {
    eprintln!(
        "usage: bbops migrate|seed-demo|generate|standin media|standin origin|standin purge|standin webhook [--flag value …] (see src/main.rs)"
    );
    ExitCode::from(2)
}

fn flags(args: &[String]) -> Result<HashMap<String, String>, String> {
    let mut map = HashMap::new();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let name = flag
            .strip_prefix("--")
            .ok_or_else(|| format!("unexpected argument {flag:?}"))?;
        let value = it.next().ok_or_else(|| format!("--{name} needs a value"))?;
        map.insert(name.to_owned(), value.clone());
    }
    Ok(map)
}

fn required<'a>(flags: &'a HashMap<String, String>, name: &str) -> Result<&'a str, String> {
    flags
        .get(name)
        .map(String::as_str)
        .ok_or_else(|| format!("--{name} is required"))
}

fn number(flags: &HashMap<String, String>, name: &str, default: u32) -> Result<u32, String> {
    flags.get(name).map_or(Ok(default), |v| {
        v.parse().map_err(|_| format!("--{name} must be a number"))
    })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(command) = args.first() else {
        return usage();
    };
    let (command, rest) = match (command.as_str(), args.get(1).map(String::as_str)) {
        ("standin", Some(kind)) => (format!("standin {kind}"), &args[2..]),
        ("scan-secrets", dir) => return scan_secrets(dir.unwrap_or(".")),
        ("sbom", dir) => return sbom(dir.unwrap_or(".")),
        ("slo-sql" | "canary-sql" | "slo-report" | "canary-check" | "canary-stable", _) => {
            return match flags(&args[1..]) {
                Ok(f) => operations(command, &f),
                Err(e) => {
                    eprintln!("bbops {command}: {e}");
                    usage()
                }
            }
        }
        (c, _) => (c.to_owned(), &args[1..]),
    };
    let result: Result<(), String> = async {
        let f = flags(rest)?;
        match command.as_str() {
            "migrate" => migrate::run(required(&f, "database-url")?).await,
            "seed-demo" => seed::demo(required(&f, "database-url")?, f.get("base-url").map(String::as_str)).await,
            "generate" => {
                let spec = generate::Spec {
                    accounts: number(&f, "accounts", 10)?,
                    moments: number(&f, "moments", 12)?,
                    shares: number(&f, "shares", 1)?,
                };
                let out = generate::run(required(&f, "database-url")?, spec).await?;
                let json = serde_json::to_string_pretty(&out).map_err(|e| e.to_string())?;
                match f.get("out") {
                    Some(path) => std::fs::write(path, json).map_err(|e| format!("{path}: {e}")),
                    None => {
                        println!("{json}");
                        Ok(())
                    }
                }
            }
            "standin media" => {
                standin::media::serve(number(&f, "port", 8790)? as u16, f.get("media-token").cloned()).await
            }
            "standin origin" => standin::origin::serve(number(&f, "port", 8791)? as u16).await,
            "standin purge" => standin::purge::serve(number(&f, "port", 8792)? as u16, f.get("token").cloned()).await,
            "standin sql-api" => {
                standin::sql_api::serve(number(&f, "port", 8794)? as u16, f.get("token").cloned()).await
            }
            "standin webhook" => {
                let secret = f.get("secret").cloned().ok_or("standin webhook needs --secret")?;
                standin::webhook::serve(number(&f, "port", 8793)? as u16, secret).await
            }
            _ => Err(format!("unknown command {command:?}")),
        }
    }
    .await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("bbops {command}: {message}");
            if message.contains("required") || message.contains("unknown command") {
                return usage();
            }
            ExitCode::FAILURE
        }
    }
}

fn scan_secrets(dir: &str) -> ExitCode {
    let findings = supply_chain::scan_tree(std::path::Path::new(dir));
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

fn sbom(dir: &str) -> ExitCode {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    match supply_chain::sbom(std::path::Path::new(dir), &babybook_jobs::format_rfc3339_millis(now)) {
        Ok(bom) => {
            println!("{}", serde_json::to_string_pretty(&bom).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bbops sbom: {e}");
            ExitCode::FAILURE
        }
    }
}

fn read_json(path: &str) -> Result<serde_json::Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    serde_json::from_str(&text).map_err(|_| {
        let start: String = text.chars().take(200).collect();
        format!("{path}: the SQL API did not answer JSON: {start:?}")
    })
}

fn fraction(flags: &HashMap<String, String>, name: &str, default: f64) -> Result<f64, String> {
    flags.get(name).map_or(Ok(default), |v| {
        v.parse().map_err(|_| format!("--{name} must be a number"))
    })
}

/// The SLO and canary helpers of `scripts/slo` and `scripts/canary` (see `slo`).
fn operations(command: &str, f: &HashMap<String, String>) -> ExitCode {
    let result: Result<ExitCode, String> = (|| match command {
        "slo-sql" => {
            let (env, hours) = (required(f, "env")?, number(f, "hours", 1)?);
            match required(f, "what")? {
                "edge" => println!("{}", slo::edge_window_sql(env, hours)),
                "queue" => println!("{}", slo::queue_window_sql(env, hours)),
                other => return Err(format!("--what {other:?}: edge or queue")),
            }
            Ok(ExitCode::SUCCESS)
        }
        "canary-stable" => {
            println!("{}", slo::stable_version(&read_json(required(f, "status")?)?)?);
            Ok(ExitCode::SUCCESS)
        }
        "canary-sql" => {
            println!("{}", slo::canary_sql(required(f, "env")?, number(f, "minutes", 5)?));
            Ok(ExitCode::SUCCESS)
        }
        "slo-report" => {
            let one = slo::measure(
                &read_json(required(f, "edge-1h")?)?,
                &read_json(required(f, "queue-1h")?)?,
            )?;
            let six = slo::measure(
                &read_json(required(f, "edge-6h")?)?,
                &read_json(required(f, "queue-6h")?)?,
            )?;
            let (table, fast) = slo::report(&one, &six);
            print!("{table}");
            Ok(if fast { ExitCode::from(1) } else { ExitCode::SUCCESS })
        }
        "canary-check" => {
            let limits = babybook_edge::slo::Guardrails {
                max_5xx_excess: fraction(f, "max-5xx-excess", babybook_edge::slo::SEED_GUARDRAILS.max_5xx_excess)?,
                max_p95_ratio: fraction(f, "max-p95-ratio", babybook_edge::slo::SEED_GUARDRAILS.max_p95_ratio)?,
            };
            let step = slo::canary_step(
                &read_json(required(f, "answer")?)?,
                required(f, "canary")?,
                required(f, "baseline")?,
                &limits,
                fraction(f, "min-requests", 50.0)?,
            )?;
            Ok(match step {
                slo::Step::Promote { canary, baseline } => {
                    println!(
                        "ok: new version {:.0} requests, 5xx {:.3} %, p95 {:.0} ms; stable 5xx {:.3} %, p95 {:.0} ms",
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
                    ExitCode::from(3)
                }
            })
        }
        _ => Err(format!("unknown command {command:?}")),
    })();
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("bbops {command}: {e}");
            ExitCode::from(3)
        }
    }
}

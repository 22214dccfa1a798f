//! `bbops`: the tools around the Worker.
//!
//! ```text
//! bbops migrate        --database-url URL
//! bbops seed-demo      --database-url URL [--base-url URL]
//! bbops generate       --database-url URL --accounts N --moments M --shares K [--out FILE]
//! bbops standin media  --port P [--media-token T]  (the MEDIA_WORKER_TOKEN it requires)
//! bbops standin origin --port P
//! bbops standin purge  --port P [--token T]
//! bbops scan-secrets   DIR            (exit 1 when anything looks like a secret)
//! bbops sbom           [DIR]          (CycloneDX JSON on stdout)
//! ```

use std::collections::HashMap;
use std::process::ExitCode;

use babybook_ops::{generate, migrate, seed, standin, supply_chain};

fn usage() -> ExitCode {
    eprintln!(
        "usage: bbops migrate|seed-demo|generate|standin media|standin origin|standin purge [--flag value …] (see src/main.rs)"
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

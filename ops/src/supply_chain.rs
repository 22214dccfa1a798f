//! Supply-chain gates that need no network: a secret scan of the tree and a CycloneDX SBOM of
//! what the build pulls in (Cargo.lock and package-lock.json).

use std::path::{Path, PathBuf};

use regex::Regex;
use serde_json::{json, Value};

/// A suspected secret: where, and which rule matched (never the value itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub file: PathBuf,
    pub line: usize,
    pub rule: &'static str,
}

/// Lines carrying this marker are allowed (documented fakes, test fixtures built at run time).
pub const ALLOW_MARKER: &str = "secret-scan: allow";

struct Rule {
    name: &'static str,
    pattern: Regex,
    /// For assignment-style rules: the captured value must look random (Shannon entropy).
    min_entropy: Option<f64>,
}

fn rules() -> Vec<Rule> {
    let rule = |name, pattern: &str, min_entropy| Rule {
        name,
        pattern: Regex::new(pattern).expect("rule compiles"),
        min_entropy,
    };
    vec![
        rule(
            "private-key",
            r"-----BEGIN (?:RSA |EC |DSA |OPENSSH |PGP |ENCRYPTED )?PRIVATE KEY-----",
            None,
        ),
        rule("aws-access-key", r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b", None),
        rule("github-token", r"\bgh[pousr]_[A-Za-z0-9]{36,}\b", None),
        rule("slack-token", r"\bxox[abprs]-[A-Za-z0-9-]{10,}\b", None),
        rule("stripe-live-key", r"\b[rs]k_live_[0-9A-Za-z]{20,}\b", None),
        rule("google-api-key", r"\bAIza[0-9A-Za-z_\-]{35}\b", None),
        rule(
            "jwt",
            r"\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}",
            None,
        ),
        rule(
            "url-with-password",
            r"[a-z][a-z0-9+.-]*://[^/\s:@]+:([^@\s/]{8,})@",
            Some(3.0),
        ),
        rule(
            "assigned-secret",
            r#"(?i)\b[A-Z0-9_]*(?:SECRET|TOKEN|PASSWORD|PASSWD|API_KEY|SESSION_KEY|PRIVATE_KEY)[A-Z0-9_]*\s*[:=]\s*["']?([A-Za-z0-9+/_\-=]{24,})(?:["'\s,;]|$)"#,
            Some(3.5),
        ),
    ]
}

fn entropy(text: &str) -> f64 {
    let mut counts = std::collections::HashMap::new();
    for c in text.chars() {
        *counts.entry(c).or_insert(0usize) += 1;
    }
    let n = text.chars().count() as f64;
    counts
        .values()
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.log2()
        })
        .sum()
}

/// Random keys mix letters and digits and have high entropy; identifiers rarely have both.
fn looks_random(value: &str, min_entropy: f64) -> bool {
    value.chars().any(|c| c.is_ascii_digit())
        && value.chars().any(|c| c.is_ascii_alphabetic())
        && entropy(value) >= min_entropy
}

/// Scans one text. Line numbers are 1-based.
pub fn scan_text(file: &Path, text: &str) -> Vec<Finding> {
    let rules = rules();
    let mut findings = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.contains(ALLOW_MARKER) {
            continue;
        }
        for rule in &rules {
            let hit = rule
                .pattern
                .captures_iter(line)
                .any(|c| match (rule.min_entropy, c.get(1)) {
                    (Some(min), Some(value)) => looks_random(value.as_str(), min),
                    _ => true,
                });
            if hit {
                findings.push(Finding {
                    file: file.to_owned(),
                    line: i + 1,
                    rule: rule.name,
                });
            }
        }
    }
    findings
}

const SKIPPED_DIRS: [&str; 6] = [".git", "target", "node_modules", "build", ".wrangler", ".dev"];

/// Scans what git would commit under `root` (tracked files and untracked ones not ignored); every
/// text file but build output and dependencies when `root` is not a git checkout.
pub fn scan_tree(root: &Path) -> Vec<Finding> {
    let listed = std::process::Command::new("git")
        .args(["ls-files", "-z", "--cached", "--others", "--exclude-standard"])
        .current_dir(root)
        .output()
        .ok()
        .filter(|o| o.status.success());
    if let Some(output) = listed {
        let mut findings = Vec::new();
        for name in output.stdout.split(|b| *b == 0).filter(|n| !n.is_empty()) {
            let relative = PathBuf::from(String::from_utf8_lossy(name).into_owned());
            if let Ok(text) = std::fs::read_to_string(root.join(&relative)) {
                findings.extend(scan_text(&relative, &text));
            }
        }
        findings.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
        return findings;
    }
    walk_tree(root)
}

fn walk_tree(root: &Path) -> Vec<Finding> {
    let mut findings = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            match entry.file_type() {
                Ok(t) if t.is_dir() && !SKIPPED_DIRS.contains(&name.as_str()) => stack.push(path),
                Ok(t) if t.is_file() => {
                    if let Ok(text) = std::fs::read_to_string(&path) {
                        findings.extend(scan_text(path.strip_prefix(root).unwrap_or(&path), &text));
                    }
                }
                _ => {}
            }
        }
    }
    findings.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
    findings
}

/// A CycloneDX 1.5 SBOM of the crates in `Cargo.lock` and the packages in `package-lock.json`.
pub fn sbom(root: &Path, timestamp: &str) -> Result<Value, String> {
    let lock: toml::Table = std::fs::read_to_string(root.join("Cargo.lock"))
        .map_err(|e| format!("Cargo.lock: {e}"))?
        .parse()
        .map_err(|e| format!("Cargo.lock: {e}"))?;
    let mut components = Vec::new();
    for package in lock.get("package").and_then(|p| p.as_array()).into_iter().flatten() {
        let (Some(name), Some(version)) = (
            package.get("name").and_then(|v| v.as_str()),
            package.get("version").and_then(|v| v.as_str()),
        ) else {
            continue;
        };
        let local = package.get("source").is_none();
        components.push(json!({
            "type": if local { "application" } else { "library" },
            "name": name,
            "version": version,
            "purl": format!("pkg:cargo/{name}@{version}"),
            "scope": "required",
        }));
    }
    if let Ok(text) = std::fs::read_to_string(root.join("package-lock.json")) {
        let npm: Value = serde_json::from_str(&text).map_err(|e| format!("package-lock.json: {e}"))?;
        for (path, package) in npm["packages"].as_object().into_iter().flatten() {
            let Some(name) = path.rsplit("node_modules/").next().filter(|n| !n.is_empty()) else {
                continue;
            };
            let Some(version) = package["version"].as_str() else {
                continue;
            };
            let purl_name = name.replace('@', "%40");
            components.push(json!({
                "type": "library",
                "name": name,
                "version": version,
                "purl": format!("pkg:npm/{purl_name}@{version}"),
                "scope": if package["dev"].as_bool() == Some(true) { "optional" } else { "required" },
            }));
        }
    }
    Ok(json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "version": 1,
        "metadata": {
            "timestamp": timestamp,
            "component": {"type": "application", "name": "babybook-edge", "version": babybook_edge::VERSION},
        },
        "components": components,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Fixtures are assembled at run time so this file never holds a secret-shaped literal.
    fn planted() -> Vec<(&'static str, String)> {
        vec![
            ("private-key", format!("-----BEGIN {}PRIVATE KEY-----", "RSA ")),
            ("aws-access-key", format!("key = {}{}", "AKIA", "Z7Q4M2N8P5R1T6V3")),
            (
                "github-token",
                format!("token: {}_{}", "ghp", "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5b"),
            ),
            (
                "assigned-secret",
                format!("SESSION_KEY_CURRENT={}", "q8F2kL9vX3mZ7wR1tY5uB4nC6hJ0gD2s"),
            ),
            (
                "url-with-password",
                format!("DATABASE_URL=postgres://app:{}@db.example:5432/x", "Xk93!vQ2mP7w"),
            ),
        ]
    }

    #[test]
    fn planted_secrets_are_found_by_their_rule() {
        for (rule, line) in planted() {
            let findings = scan_text(Path::new("planted.env"), &line);
            assert!(
                findings.iter().any(|f| f.rule == rule),
                "{rule} not found in {line:?}: {findings:?}"
            );
        }
    }

    #[test]
    fn placeholders_and_allowed_lines_are_not_findings() {
        // secretlint-disable -- the placeholders below are what the test feeds the scanner
        let text = "SESSION_KEY_CURRENT=\nADMIN_API_TOKEN=<set with wrangler secret put>\n\
                    url = postgres://app_rw:local@127.0.0.1:5432/babybook\n\
                    PASSWORD_PLACEHOLDER = aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n";
        // secretlint-enable
        assert_eq!(scan_text(Path::new("x"), text), vec![]);
        let allowed = format!("{} # {ALLOW_MARKER}", planted()[3].1);
        assert_eq!(scan_text(Path::new("x"), &allowed), vec![]);
    }

    #[test]
    fn a_planted_secret_in_a_new_file_of_a_checkout_is_found() {
        let dir = std::env::temp_dir().join(format!("scan-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let git = |args: &[&str]| {
            std::process::Command::new("git")
                .args(args)
                .current_dir(&dir)
                .output()
                .unwrap()
        };
        git(&["init", "-q"]);
        std::fs::write(dir.join(".gitignore"), "ignored.env\n").unwrap();
        std::fs::write(dir.join("config.env"), format!("{}\n", planted()[3].1)).unwrap();
        std::fs::write(dir.join("ignored.env"), format!("{}\n", planted()[3].1)).unwrap();
        let findings = scan_tree(&dir);
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(
            findings
                .iter()
                .map(|f| f.file.display().to_string())
                .collect::<Vec<_>>(),
            ["config.env"]
        );
    }

    #[test]
    fn identifiers_next_to_secret_words_are_not_findings() {
        let text = "let session_keys = config.session_key_current.as_ref();\nlet token_hash = share_token_hash_for_lookup_value;";
        assert_eq!(scan_text(Path::new("x.rs"), text), vec![]);
    }

    #[test]
    fn the_sbom_lists_crates_and_npm_packages_with_purls() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("repo");
        let bom = sbom(root, "2026-11-29T00:00:00Z").expect("sbom");
        assert_eq!(bom["bomFormat"], "CycloneDX");
        let purls: Vec<&str> = bom["components"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|c| c["purl"].as_str())
            .collect();
        assert!(
            purls.iter().any(|p| p.starts_with("pkg:cargo/worker@")),
            "the worker crate is listed"
        );
        assert!(
            purls.iter().any(|p| p.starts_with("pkg:npm/wrangler@")),
            "wrangler is listed"
        );
    }
}

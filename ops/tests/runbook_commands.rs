//! Every command a runbook tells an operator to type exists as written (issue 30 item 5): each
//! `wrangler …` / `npx wrangler …` line of docs/runbooks/*.md and the operations docs names a
//! command of the pinned wrangler (its `--help` answers for exactly that command) with flags that
//! command lists, and each `scripts/…` line names a script that exists, with flags its `--help`
//! lists and, for the scripts that reach an environment, the environment said explicitly.
//!
//! wrangler's help is asked once per command and kept in the target directory, per wrangler
//! version (`CARGO_TARGET_TMPDIR/wrangler-help-<version>/`).

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

/// The documents whose commands an operator runs.
fn documents() -> Vec<PathBuf> {
    let mut docs: Vec<PathBuf> = std::fs::read_dir(repo().join("docs/runbooks"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    for doc in ["operations.md", "logging.md", "slo.md", "queues.md"] {
        docs.push(repo().join("docs").join(doc));
    }
    docs
}

/// A command found in a document: where, the text, and whether it came from a code block (a
/// line to type) or an inline code span in prose (often just a name).
#[derive(Debug, Clone)]
struct Found {
    at: String,
    text: String,
    block: bool,
}

/// Command candidates of one Markdown text: every line of a shell code block (continuations
/// joined) and every inline code span outside blocks.
fn candidates(name: &str, markdown: &str) -> Vec<Found> {
    let mut out = Vec::new();
    let mut fence: Option<String> = None;
    let mut pending = String::new();
    let mut pending_at = 0;
    let (mut prose, mut prose_at) = (String::new(), 0);
    for (i, line) in markdown.lines().enumerate() {
        let trimmed = line.trim_start();
        if let Some(rest) = trimmed.strip_prefix("```") {
            fence = match fence {
                None => Some(rest.trim().to_owned()),
                Some(_) => None,
            };
            continue;
        }
        match &fence {
            Some(lang) => {
                if !matches!(lang.as_str(), "" | "sh" | "bash" | "shell" | "console") {
                    continue;
                }
                if pending.is_empty() {
                    pending_at = i + 1;
                }
                let body = trimmed.strip_prefix("$ ").unwrap_or(trimmed);
                match body.strip_suffix('\\') {
                    Some(head) => {
                        pending.push_str(head);
                        pending.push(' ');
                    }
                    None => {
                        pending.push_str(body);
                        out.push(Found {
                            at: format!("{name}:{pending_at}"),
                            text: std::mem::take(&mut pending),
                            block: true,
                        });
                    }
                }
            }
            None => {
                // A code span may run over a line break: join lines until the backticks pair up.
                if prose.is_empty() {
                    prose_at = i + 1;
                }
                prose.push_str(line);
                prose.push(' ');
                if prose.matches('`').count() % 2 == 0 {
                    for (k, span) in std::mem::take(&mut prose).split('`').enumerate() {
                        if k % 2 == 1 {
                            out.push(Found {
                                at: format!("{name}:{prose_at}"),
                                text: span.to_owned(),
                                block: false,
                            });
                        }
                    }
                }
            }
        }
    }
    out
}

/// Shell-like words of one command line, split into commands at `|`, `;`, `&&` and `||`, with
/// a comment dropped. Quotes group words; `$(…)` inside quotes is kept as text.
fn commands(line: &str) -> Vec<Vec<String>> {
    let mut all = Vec::new();
    let mut words: Vec<String> = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars().peekable();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        if let Some(q) = quote {
            if c == q {
                quote = None;
            } else {
                word.push(c);
            }
            continue;
        }
        match c {
            '\'' | '"' => {
                quote = Some(c);
                in_word = true;
            }
            '\\' => {
                if let Some(n) = chars.next() {
                    word.push(n);
                    in_word = true;
                }
            }
            '#' if !in_word => break,
            ' ' | '\t' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '|' | ';' | '&' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
                if matches!(chars.peek(), Some('|') | Some('&')) {
                    chars.next();
                }
                all.push(std::mem::take(&mut words));
            }
            _ => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    all.push(words);
    all.into_iter().filter(|w| !w.is_empty()).collect()
}

/// What a command invokes: wrangler (with its arguments) or a script of scripts/.
enum Invocation {
    Wrangler(Vec<String>),
    Script(String, Vec<String>),
}

fn invocation(words: &[String]) -> Option<Invocation> {
    let words: Vec<&String> = words
        .iter()
        .skip_while(|w| {
            w.split_once('=').is_some_and(|(k, _)| {
                !k.is_empty()
                    && k.chars()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
            })
        })
        .collect();
    let (first, rest) = words.split_first()?;
    let rest: Vec<String> = rest.iter().map(|w| w.to_string()).collect();
    match first.as_str() {
        "wrangler" => Some(Invocation::Wrangler(rest)),
        "npx" => {
            let mut args = rest.into_iter().skip_while(|w| w.starts_with('-'));
            (args.next()? == "wrangler").then(|| Invocation::Wrangler(args.collect()))
        }
        script if script.starts_with("scripts/") => {
            let name = &script["scripts/".len()..];
            if name.is_empty() || name.contains('/') || name.contains('*') || name.contains('.') {
                return None; // scripts/lib/…, a glob, a file name
            }
            Some(Invocation::Script(name.to_owned(), rest))
        }
        _ => None,
    }
}

/// The pinned wrangler's help for a command, asked once and kept on disk per version.
struct Wrangler {
    bin: PathBuf,
    cache: PathBuf,
    memo: HashMap<Vec<String>, (bool, String)>,
}

impl Wrangler {
    fn new() -> Wrangler {
        let bin = repo().join("node_modules/.bin/wrangler");
        assert!(
            bin.exists(),
            "node_modules/.bin/wrangler is missing: run `npm ci` (scripts/test does) first"
        );
        let package: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(repo().join("node_modules/wrangler/package.json")).unwrap())
                .unwrap();
        let version = package["version"].as_str().unwrap().to_owned();
        let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("wrangler-help-{version}"));
        std::fs::create_dir_all(&cache).unwrap();
        Wrangler {
            bin,
            cache,
            memo: HashMap::new(),
        }
    }

    /// (exit 0, the help text) of `wrangler <path…> --help`.
    fn help(&mut self, path: &[String]) -> (bool, String) {
        if let Some(hit) = self.memo.get(path) {
            return hit.clone();
        }
        let file = self.cache.join(format!(
            "{}.txt",
            if path.is_empty() {
                "_".to_owned()
            } else {
                path.join("_")
            }
        ));
        let answer = match std::fs::read_to_string(&file) {
            Ok(text) => (text.starts_with("ok\n"), text[3..].to_owned()),
            Err(_) => {
                let out = Command::new(&self.bin)
                    .args(path)
                    .arg("--help")
                    .current_dir(repo())
                    .env("WRANGLER_SEND_METRICS", "false")
                    .env("NO_COLOR", "1")
                    .env("FORCE_COLOR", "0")
                    .output()
                    .unwrap();
                let text = format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
                let ok = out.status.success();
                std::fs::write(&file, format!("{}\n{text}", if ok { "ok" } else { "no" })).unwrap();
                (ok, text)
            }
        };
        self.memo.insert(path.to_vec(), answer.clone());
        answer
    }

    /// The subcommands a help text lists (its COMMANDS section) under `path`.
    fn children(help: &str, path: &[String]) -> BTreeSet<String> {
        help.lines()
            .filter_map(|l| l.trim_start().strip_prefix("wrangler "))
            .filter_map(|l| {
                let words: Vec<&str> = l.split_whitespace().collect();
                (words.len() > path.len() && words[..path.len()].iter().zip(path).all(|(a, b)| a == b))
                    .then(|| words[path.len()].to_owned())
            })
            .filter(|w| {
                w.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            })
            .collect()
    }

    fn name(path: &[String]) -> String {
        std::iter::once("wrangler")
            .chain(path.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Checks one wrangler command line; the problem when it would not run as written.
    fn check(&mut self, args: &[String]) -> Result<(), String> {
        let mut path: Vec<String> = Vec::new();
        let mut i = 0;
        let help = loop {
            let (ok, help) = self.help(&path);
            if !ok {
                return Err(format!("`{} --help` fails", Self::name(&path)));
            }
            let children = Self::children(&help, &path);
            match args.get(i) {
                Some(next) if children.contains(next) => {
                    path.push(next.clone());
                    i += 1;
                }
                next if !children.is_empty() => {
                    return Err(format!(
                        "`{}{}` is not a command of the pinned wrangler; `{}` has: {}",
                        Self::name(&path),
                        next.map(|n| format!(" {n}")).unwrap_or_default(),
                        Self::name(&path),
                        children.into_iter().collect::<Vec<_>>().join(", ")
                    ))
                }
                _ => break help,
            }
        };
        let usage = help.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        if !usage.starts_with(&Self::name(&path)) {
            return Err(format!(
                "`{}` answers another command's help: {usage}",
                Self::name(&path)
            ));
        }
        for flag in &args[i..] {
            if !flag.starts_with('-') || flag == "-" || flag == "--" {
                continue;
            }
            let name = flag.split('=').next().unwrap();
            let listed = |f: &str| {
                help.match_indices(f).any(|(at, _)| {
                    let after = help[at + f.len()..].chars().next();
                    !after.is_some_and(|c| c.is_ascii_alphanumeric() || c == '-')
                })
            };
            let positive = name.strip_prefix("--no-").map(|n| format!("--{n}"));
            if !(listed(name) || positive.as_deref().is_some_and(listed)) {
                return Err(format!("`{}` has no flag {name}", Self::name(&path)));
            }
        }
        Ok(())
    }
}

/// Scripts that reach an environment: their lines must say which (`--env` or `--url`).
const TARGETED: [&str; 5] = ["redrive", "switch", "slo", "revoke-share", "reapply-journal"];

fn check_script(helps: &mut HashMap<String, String>, name: &str, args: &[String], block: bool) -> Result<(), String> {
    let path = repo().join("scripts").join(name);
    if !path.is_file() {
        return Err(format!("scripts/{name} does not exist"));
    }
    if !block && args.is_empty() {
        return Ok(()); // prose naming the script
    }
    let help = helps
        .entry(name.to_owned())
        .or_insert_with(|| {
            let out = Command::new(&path).arg("--help").current_dir(repo()).output().unwrap();
            String::from_utf8_lossy(&out.stdout).into_owned()
        })
        .clone();
    for flag in args.iter().filter(|a| a.starts_with("--")) {
        let name_only = flag.split('=').next().unwrap();
        if !help.contains(name_only) {
            return Err(format!("scripts/{name} does not list {name_only} in its --help"));
        }
    }
    let asks_help = args.iter().any(|a| a == "--help" || a == "-h");
    if TARGETED.contains(&name) && !asks_help && !args.iter().any(|a| a == "--env" || a == "--url") {
        return Err(format!(
            "scripts/{name} without --env or --url (there is no default environment)"
        ));
    }
    Ok(())
}

/// Every problem of the commands in `docs` (file name, text).
fn problems(docs: &[(String, String)]) -> Vec<String> {
    let mut wrangler = Wrangler::new();
    let mut script_helps = HashMap::new();
    let mut problems = Vec::new();
    let mut checked = 0;
    for (name, text) in docs {
        for found in candidates(name, text) {
            for words in commands(&found.text) {
                let result = match invocation(&words) {
                    Some(Invocation::Wrangler(args)) if !found.block && args.is_empty() => continue, // prose naming it
                    Some(Invocation::Wrangler(args)) => wrangler.check(&args),
                    Some(Invocation::Script(script, args)) => {
                        check_script(&mut script_helps, &script, &args, found.block)
                    }
                    None => continue,
                };
                checked += 1;
                if let Err(why) = result {
                    problems.push(format!("{}: {}\n    {why}", found.at, found.text.trim()));
                }
            }
        }
    }
    assert!(checked > 0, "no command found at all");
    problems
}

#[test]
fn every_runbook_command_exists_in_the_pinned_wrangler_and_in_scripts() {
    let docs: Vec<(String, String)> = documents()
        .iter()
        .map(|p| {
            (
                p.strip_prefix(repo()).unwrap().display().to_string(),
                std::fs::read_to_string(p).unwrap(),
            )
        })
        .collect();
    let found = problems(&docs);
    assert!(
        found.is_empty(),
        "{} runbook command(s) would not run as written:\n{}",
        found.len(),
        found.join("\n")
    );
}

/// The checker itself: what it must refuse, and what it must let through.
#[test]
fn the_checker_refuses_commands_and_flags_that_do_not_exist() {
    let doc = r#"
Check the bucket with `npx wrangler r2 object list babybook-logs-production --prefix workers/`.

```sh
npx wrangler deployments status --env production
printf %s "$NEW" | npx wrangler versions secret put SESSION_KEY_CURRENT --env production
npx wrangler versions deploy "$ID@100%" --env production -y --no-such-flag
CF_ACCOUNT_ID=… scripts/slo --freeze-check
scripts/redrive --env production --class external
scripts/no-such-script --env production
```
"#;
    let found = problems(&[("example.md".to_owned(), doc.to_owned())]);
    let all = found.join("\n");
    assert!(all.contains("`wrangler r2 object list` is not a command"), "{all}");
    assert!(all.contains("has no flag --no-such-flag"), "{all}");
    assert!(all.contains("scripts/slo without --env"), "{all}");
    assert!(all.contains("scripts/no-such-script does not exist"), "{all}");
    assert_eq!(found.len(), 4, "{all}");
}

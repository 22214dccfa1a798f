//! The Cloudflare account as code (issue 30 item 1): every `.tf` file under infra/terraform parses
//! (hcl-rs), and what it declares is what wrangler.toml binds. Terraform and its provider cannot
//! be downloaded here, so this is the check that runs everywhere; CI's `terraform-plan` job adds
//! `fmt -check`, `validate` and `plan` where they can run.
//!
//! Checked, per deployed environment: every binding (queues, R2 buckets, KV, Hyperdrive) has its
//! resource under the same name; nothing is declared twice (in a module, or as a name both
//! environments use); every `REPLACE_WITH_` value is a Terraform output; Hyperdrive caching is
//! off; the lifecycle rules, Logpush jobs, DNS records and health checks say what the seed and
//! scripts/logpush say.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use hcl::eval::{Context, Evaluate, FuncArgs, FuncDef, ParamType};
use hcl::{Block, Body, Expression};
use serde_json::{json, Value};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repo root")
        .to_owned()
}

const ENVIRONMENTS: [&str; 2] = ["staging", "production"];

/// The `.tf` files of one directory (a module or a root configuration), parsed.
struct Module {
    dir: PathBuf,
    files: Vec<(String, Body)>,
}

impl Module {
    fn blocks<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = (&'a str, &'a Block)> + 'a {
        self.files.iter().flat_map(move |(file, body)| {
            body.blocks()
                .filter(move |b| b.identifier() == kind)
                .map(move |b| (file.as_str(), b))
        })
    }

    /// `resource "<type>" "<name>"` blocks of a type.
    fn resources<'a>(&'a self, kind: &'a str) -> Vec<&'a Block> {
        self.blocks("resource")
            .filter(|(_, b)| label(b, 0) == kind)
            .map(|(_, b)| b)
            .collect()
    }

    /// Every `locals` attribute, by name.
    fn locals(&self) -> BTreeMap<String, Expression> {
        self.blocks("locals")
            .flat_map(|(_, b)| b.body().attributes().map(|a| (a.key().to_owned(), a.expr().clone())))
            .collect()
    }
}

fn label(block: &Block, i: usize) -> &str {
    block.labels().get(i).map(|l| l.as_str()).unwrap_or("")
}

fn attr<'a>(block: &'a Block, key: &str) -> Option<&'a Expression> {
    block.body().attributes().find(|a| a.key() == key).map(|a| a.expr())
}

/// Parses every `.tf` file under `root`, by directory; a file that does not parse is a problem.
fn parse_tree(root: &Path, problems: &mut Vec<String>) -> BTreeMap<PathBuf, Module> {
    let mut modules = BTreeMap::new();
    let mut dirs = vec![root.to_owned()];
    while let Some(dir) = dirs.pop() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.expect("entry").path())
            .collect();
        entries.sort();
        for path in entries {
            if path.is_dir() && !path.ends_with(".terraform") {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "tf") {
                let text = std::fs::read_to_string(&path).expect("read .tf");
                match hcl::parse(&text) {
                    Ok(body) => modules
                        .entry(dir.clone())
                        .or_insert_with(|| Module {
                            dir: dir.clone(),
                            files: Vec::new(),
                        })
                        .files
                        .push((path.file_name().unwrap().to_string_lossy().into_owned(), body)),
                    Err(e) => problems.push(format!("{} does not parse: {e}", path.display())),
                }
            }
        }
    }
    modules
}

/// Evaluates a Terraform expression that uses only `var.*` (given) and `jsonencode`.
fn eval(expr: &Expression, vars: Value) -> Result<Value, String> {
    fn jsonencode(args: FuncArgs) -> Result<hcl::Value, String> {
        let value = serde_json::to_value(&args[0]).map_err(|e| e.to_string())?;
        Ok(hcl::Value::String(value.to_string()))
    }
    let mut ctx = Context::new();
    ctx.declare_var("var", hcl::to_value(&vars).map_err(|e| e.to_string())?);
    ctx.declare_func("jsonencode", FuncDef::builder().param(ParamType::Any).build(jsonencode));
    let value = expr.evaluate(&ctx).map_err(|e| e.to_string())?;
    serde_json::to_value(&value).map_err(|e| e.to_string())
}

fn literal(expr: Option<&Expression>) -> Value {
    expr.map(|e| eval(e, json!({})).unwrap_or(Value::Null))
        .unwrap_or(Value::Null)
}

/// The Logpush jobs of scripts/logpush for an environment: name suffix → (prefix, days, filter).
fn logpush_script_jobs(script: &str, env: &str) -> BTreeMap<String, (String, u64, Value)> {
    let line = regex::Regex::new(r#""babybook-edge-\$env-(\w+)\|([^|]+)\|(\d+)\|(.*)"$"#).unwrap();
    script
        .lines()
        .filter_map(|l| line.captures(l.trim()))
        .map(|c| {
            let filter = c[4]
                .replace("\\\"", "\"")
                .replace("$script", &format!("babybook-edge-{env}"));
            (
                c[1].to_owned(),
                (
                    c[2].to_owned(),
                    c[3].parse().unwrap(),
                    serde_json::from_str(&filter).expect("scripts/logpush filter is JSON"),
                ),
            )
        })
        .collect()
}

fn logpush_script_fields(script: &str) -> Vec<String> {
    let at = script.find("field_names: [").expect("field_names in scripts/logpush");
    let list = &script[at + "field_names: ".len()..];
    let list = &list[..=list.find(']').unwrap()];
    serde_json::from_str(list).expect("a JSON list of fields")
}

/// `placeholder` → the output that fills it in `env` (scripts/tf-outputs-to-wrangler's rule).
fn output_for(placeholder: &str, env: &str) -> String {
    let name = placeholder.trim_start_matches("REPLACE_WITH_");
    let prefix = format!("{}_", env.to_uppercase());
    name.strip_prefix(&prefix).unwrap_or(name).to_lowercase()
}

fn placeholders(value: &toml::Value, path: &str, out: &mut Vec<(String, String)>) {
    match value {
        toml::Value::String(s) if s.starts_with("REPLACE_WITH_") => out.push((path.to_owned(), s.clone())),
        toml::Value::Table(t) => t.iter().for_each(|(k, v)| placeholders(v, &format!("{path}.{k}"), out)),
        toml::Value::Array(a) => a
            .iter()
            .enumerate()
            .for_each(|(i, v)| placeholders(v, &format!("{path}[{i}]"), out)),
        _ => {}
    }
}

/// binding → name, from an array of tables of wrangler.toml's environment.
fn bindings(env: &toml::Value, key: &str, binding: &str, name: &str) -> BTreeMap<String, String> {
    env.get(key)
        .and_then(|v| v.as_array())
        .into_iter()
        .flatten()
        .map(|t| {
            (
                t[binding].as_str().unwrap_or_default().to_owned(),
                t.get(name).and_then(|v| v.as_str()).unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn string_map(value: &Value) -> BTreeMap<String, String> {
    value
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
        .collect()
}

/// Everything wrong with `tf_root` against `wrangler` and `logpush` (the texts of wrangler.toml
/// and scripts/logpush). Empty when they agree.
fn problems(tf_root: &Path, wrangler: &str, logpush: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let modules = parse_tree(tf_root, &mut problems);
    let wrangler: toml::Value = toml::from_str(wrangler).expect("wrangler.toml parses");

    // Nothing declared twice within a module (Terraform refuses it; so do we, before CI).
    for module in modules.values() {
        let mut seen = BTreeMap::new();
        for (file, body) in &module.files {
            for block in body.blocks() {
                let address = match block.identifier() {
                    "resource" | "data" => format!("{} {}.{}", block.identifier(), label(block, 0), label(block, 1)),
                    "module" | "variable" | "output" => format!("{} {}", block.identifier(), label(block, 0)),
                    "locals" => {
                        for a in block.body().attributes() {
                            if let Some(first) = seen.insert(format!("local.{}", a.key()), file.clone()) {
                                problems.push(format!(
                                    "{}: local.{} is declared twice ({first}, {file})",
                                    module.dir.display(),
                                    a.key()
                                ));
                            }
                        }
                        continue;
                    }
                    _ => continue,
                };
                if let Some(first) = seen.insert(address.clone(), file.clone()) {
                    problems.push(format!(
                        "{}: {address} is declared twice ({first}, {file})",
                        module.dir.display()
                    ));
                }
            }
        }
    }

    let edge = modules.get(&tf_root.join("modules/edge"));
    let Some(edge) = edge else {
        problems.push("infra/terraform/modules/edge is missing".into());
        return problems;
    };

    // The module declares each binding's resource from the maps the roots pass.
    for (kind, var) in [
        ("cloudflare_queue", "var.queues"),
        ("cloudflare_r2_bucket", "var.r2_buckets"),
        ("cloudflare_workers_kv_namespace", "var.kv_namespaces"),
        ("cloudflare_hyperdrive_config", "var.hyperdrive"),
    ] {
        let found = edge
            .resources(kind)
            .iter()
            .any(|b| attr(b, "for_each").is_some_and(|e| e.to_string() == var));
        if !found {
            problems.push(format!("modules/edge: no {kind} for each of {var}"));
        }
    }
    for block in edge.resources("cloudflare_hyperdrive_config") {
        let caching = literal(attr(block, "caching"));
        if caching["disabled"] != json!(true) {
            problems.push(format!(
                "modules/edge: cloudflare_hyperdrive_config.{} must have caching = {{ disabled = true }} (revocations on the next request)",
                label(block, 1)
            ));
        }
    }
    for block in edge.resources("cloudflare_dns_record") {
        let proxied = literal(attr(block, "proxied"));
        let ttl = literal(attr(block, "ttl")).as_u64().unwrap_or(0);
        if proxied != json!(true) || !(ttl == 1 || (300..=600).contains(&ttl)) {
            problems.push(format!(
                "modules/edge: cloudflare_dns_record.{} must be proxied with TTL auto (300 s) or 300–600 s",
                label(block, 1)
            ));
        }
    }
    let tokens: BTreeSet<&str> = edge
        .resources("cloudflare_api_token")
        .iter()
        .map(|b| label(b, 1))
        .collect();
    for token in ["cache_purge", "analytics", "logpush_r2"] {
        if !tokens.contains(token) {
            problems.push(format!("modules/edge: no scoped API token {token}"));
        }
    }
    let locals = edge.locals();
    let fields = locals.get("logpush_fields").map(|e| eval(e, json!({})));
    let script_fields = logpush_script_fields(logpush);
    if fields != Some(Ok(json!(script_fields))) {
        problems.push(format!(
            "modules/edge: local.logpush_fields {fields:?} is not scripts/logpush's {script_fields:?}"
        ));
    }
    if script_fields.iter().any(|f| f == "Event") {
        problems.push("scripts/logpush keeps `Event` (the request URL: share tokens)".into());
    }
    let probe_vars =
        json!({"api_host": "api.example", "share_host": "share.example", "probe_share_path": "/s/probe-token"});
    let probes = locals.get("probes").map(|e| eval(e, probe_vars.clone()));
    let paths: BTreeSet<String> = match &probes {
        Some(Ok(p)) => p
            .as_object()
            .into_iter()
            .flatten()
            .map(|(_, v)| {
                format!(
                    "{}{}",
                    v["host"].as_str().unwrap_or(""),
                    v["path"].as_str().unwrap_or("")
                )
            })
            .collect(),
        _ => BTreeSet::new(),
    };
    for want in ["api.example/health", "api.example/ready", "share.example/s/probe-token"] {
        if !paths.contains(want) {
            problems.push(format!(
                "modules/edge: no health check for {want} (seed §5.6) in local.probes {probes:?}"
            ));
        }
    }
    if edge.resources("cloudflare_healthcheck").is_empty() {
        problems.push("modules/edge: no cloudflare_healthcheck".into());
    }

    let mut names_by_env: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for env in ENVIRONMENTS {
        let Some(w) = wrangler.get("env").and_then(|e| e.get(env)) else {
            problems.push(format!("wrangler.toml has no [env.{env}]"));
            continue;
        };
        let Some(root) = modules.get(&tf_root.join(env)) else {
            problems.push(format!("infra/terraform/{env}: no root configuration"));
            continue;
        };
        let calls: Vec<&Block> = root
            .blocks("module")
            .filter(|(_, b)| literal(attr(b, "source")) == json!("../modules/edge"))
            .map(|(_, b)| b)
            .collect();
        let [call] = calls[..] else {
            problems.push(format!(
                "infra/terraform/{env}: {} calls of ../modules/edge, not one",
                calls.len()
            ));
            continue;
        };
        let arg = |key: &str| literal(attr(call, key));
        if arg("environment") != json!(env) {
            problems.push(format!("infra/terraform/{env}: environment = {}", arg("environment")));
        }
        if arg("worker_name") != json!(w["name"].as_str()) {
            problems.push(format!(
                "infra/terraform/{env}: worker_name {} is not wrangler.toml's name {}",
                arg("worker_name"),
                w["name"]
            ));
        }

        // Every binding has its resource, under the same name, and nothing more.
        let r2 = arg("r2_buckets");
        let r2_names: BTreeMap<String, String> = r2
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v["name"].as_str().unwrap_or_default().to_owned()))
            .collect();
        for (what, wrangler_side, tf_side) in [
            (
                "r2_buckets",
                bindings(w, "r2_buckets", "binding", "bucket_name"),
                r2_names.clone(),
            ),
            (
                "kv_namespaces",
                bindings(w, "kv_namespaces", "binding", "id"),
                string_map(&arg("kv_namespaces")),
            ),
            (
                "hyperdrive",
                bindings(w, "hyperdrive", "binding", "id"),
                string_map(&arg("hyperdrive")),
            ),
        ] {
            let want: BTreeSet<&String> = wrangler_side.keys().collect();
            let have: BTreeSet<&String> = tf_side.keys().collect();
            for missing in want.difference(&have) {
                problems.push(format!(
                    "infra/terraform/{env}: binding {missing} ({what}) has no resource"
                ));
            }
            for extra in have.difference(&want) {
                problems.push(format!(
                    "infra/terraform/{env}: {what} {extra} is bound by no wrangler.toml binding"
                ));
            }
            if what == "r2_buckets" {
                for (binding, bucket) in &wrangler_side {
                    if let Some(declared) = tf_side.get(binding) {
                        if declared != bucket {
                            problems.push(format!(
                                "infra/terraform/{env}: bucket of {binding} is {declared:?}, wrangler.toml binds {bucket:?}"
                            ));
                        }
                    }
                }
            }
        }
        let producers: BTreeMap<String, String> = w
            .get("queues")
            .and_then(|q| q.get("producers"))
            .and_then(|p| p.as_array())
            .into_iter()
            .flatten()
            .map(|p| {
                (
                    p["binding"].as_str().unwrap_or("").to_owned(),
                    p["queue"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect();
        let queues = string_map(&arg("queues"));
        if producers != queues {
            problems.push(format!(
                "infra/terraform/{env}: queues {queues:?} are not wrangler.toml's producers {producers:?}"
            ));
        }
        let consumed = w
            .get("queues")
            .and_then(|q| q.get("consumers"))
            .and_then(|c| c.as_array())
            .into_iter()
            .flatten()
            .flat_map(|c| [c.get("queue"), c.get("dead_letter_queue")])
            .flatten()
            .filter_map(|q| q.as_str());
        for queue in consumed {
            if !queues.values().any(|q| q == queue) {
                problems.push(format!(
                    "infra/terraform/{env}: queue {queue} (a consumer's) has no resource"
                ));
            }
        }

        // Lifecycle: dead jobs 30 days; the journal at least the point-in-time window (14 days).
        match r2["DEAD_JOBS"]["expire_days"].as_u64() {
            Some(30) => {}
            other => problems.push(format!(
                "infra/terraform/{env}: DEAD_JOBS expires after {other:?} days, not 30"
            )),
        }
        match r2["JOURNAL"]["expire_days"].as_u64() {
            Some(days) if days >= 14 => {}
            None if r2["JOURNAL"]["expire_days"].is_null() => {}
            other => problems.push(format!(
                "infra/terraform/{env}: JOURNAL expires after {other:?} days, shorter than the 14-day PITR window"
            )),
        }

        // Logs: scripts/logpush's bucket, jobs, filters and days.
        if arg("logs_bucket") != json!(format!("babybook-logs-{env}"))
            || !logpush.contains("bucket=\"babybook-logs-$env\"")
        {
            problems.push(format!(
                "infra/terraform/{env}: logs_bucket {} is not scripts/logpush's",
                arg("logs_bucket")
            ));
        }
        let script_jobs = logpush_script_jobs(logpush, env);
        let days: BTreeMap<String, u64> = script_jobs.iter().map(|(k, (_, d, _))| (k.clone(), *d)).collect();
        let tf_days: BTreeMap<String, u64> = arg("logs_retention_days")
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
            .collect();
        if days != tf_days || days.is_empty() {
            problems.push(format!(
                "infra/terraform/{env}: logs_retention_days {tf_days:?} is not scripts/logpush's {days:?}"
            ));
        }
        let worker = json!({"worker_name": w["name"].as_str()});
        match locals.get("logpush_jobs").map(|e| eval(e, worker)) {
            Some(Ok(jobs)) => {
                for (job, (prefix, _, filter)) in &script_jobs {
                    let tf = &jobs[job];
                    if tf["prefix"] != json!(prefix) {
                        problems.push(format!(
                            "modules/edge: logpush job {job} prefix {} is not {prefix}",
                            tf["prefix"]
                        ));
                    }
                    if &tf["filter"] != filter {
                        problems.push(format!(
                            "modules/edge: logpush job {job} filter for {env} {} is not scripts/logpush's {filter}",
                            tf["filter"]
                        ));
                    }
                }
            }
            other => problems.push(format!("modules/edge: local.logpush_jobs does not evaluate: {other:?}")),
        }

        // The Worker's hosts: its routes, SHARE_HOSTS and API_HOSTS.
        let routes: BTreeSet<String> = w["routes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r["pattern"].as_str())
            .map(|p| p.trim_end_matches("/*").to_owned())
            .collect();
        for (key, var) in [("share_host", "SHARE_HOSTS"), ("api_host", "API_HOSTS")] {
            let host = arg(key);
            let host = host.as_str().unwrap_or("");
            if !routes.contains(host) || w["vars"][var].as_str() != Some(host) {
                problems.push(format!(
                    "infra/terraform/{env}: {key} {host:?} is not a route and {var} of wrangler.toml"
                ));
            }
        }
        let regions = arg("probe_regions");
        if regions.as_array().map_or(0, Vec::len) < 3 || arg("probe_interval_seconds") != json!(300) {
            problems.push(format!(
                "infra/terraform/{env}: probes must run every 300 s from 3 regions or more (seed §5.6)"
            ));
        }

        // Every placeholder of this environment is an output of its root.
        let outputs: BTreeSet<&str> = root.blocks("output").map(|(_, b)| label(b, 0)).collect();
        let mut found = Vec::new();
        placeholders(w, &format!("env.{env}"), &mut found);
        for (path, placeholder) in found {
            let output = output_for(&placeholder, env);
            if !outputs.contains(output.as_str()) {
                problems.push(format!(
                    "wrangler.toml {path} = {placeholder:?}: infra/terraform/{env} has no output {output:?} to fill it"
                ));
            }
        }
        for (name, binding) in [("hyperdrive_id", "HYPERDRIVE"), ("ops_state_kv_id", "OPS_STATE")] {
            if !outputs.contains(name) {
                problems.push(format!("infra/terraform/{env}: no output {name} ({binding}'s id)"));
            }
        }

        let names = names_by_env.entry(env.to_owned()).or_default();
        names.extend(r2_names.values().cloned());
        names.extend(queues.values().cloned());
        names.extend(string_map(&arg("kv_namespaces")).into_values());
        names.extend(string_map(&arg("hyperdrive")).into_values());
        names.extend(arg("logs_bucket").as_str().map(str::to_owned));
        let zone_calls = root
            .blocks("module")
            .filter(|(_, b)| literal(attr(b, "source")) == json!("../modules/zone"))
            .count();
        let want_zone = usize::from(env == "production");
        if zone_calls != want_zone {
            problems.push(format!(
                "infra/terraform/{env}: {zone_calls} calls of ../modules/zone; the zone's settings are applied from production only"
            ));
        }
    }
    // No name is used by both environments (staging must never write production's bucket).
    if let (Some(staging), Some(production)) = (names_by_env.get("staging"), names_by_env.get("production")) {
        for name in staging.iter().filter(|n| production.contains(n)) {
            problems.push(format!("{name:?} is declared by both staging and production"));
        }
        for (env, names) in &names_by_env {
            let unique: BTreeSet<_> = names.iter().collect();
            if unique.len() != names.len() {
                problems.push(format!("infra/terraform/{env}: a name is declared twice: {names:?}"));
            }
        }
    }
    // Placeholders only where Terraform's outputs fill them: none in the local environment.
    let mut local = Vec::new();
    let mut top = wrangler.clone();
    top.as_table_mut().unwrap().remove("env");
    placeholders(&top, "", &mut local);
    for (path, placeholder) in local {
        problems.push(format!(
            "wrangler.toml {path} = {placeholder:?} outside a deployed environment"
        ));
    }

    // The zone module: the seed's settings.
    if let Some(zone) = modules.get(&tf_root.join("modules/zone")) {
        let settings = zone.locals().get("zone_settings").map(|e| eval(e, json!({})));
        for setting in ["http3", "brotli"] {
            if !matches!(&settings, Some(Ok(s)) if s[setting] == json!("on")) {
                problems.push(format!("modules/zone: zone setting {setting} is not on (seed §2.1)"));
            }
        }
        if !zone
            .resources("cloudflare_bot_management")
            .iter()
            .any(|b| literal(attr(b, "fight_mode")) == json!(true))
        {
            problems.push("modules/zone: no bot fight mode (seed §2.2)".into());
        }
        if !zone
            .resources("cloudflare_ruleset")
            .iter()
            .any(|b| literal(attr(b, "phase")) == json!("http_request_firewall_managed"))
        {
            problems.push("modules/zone: no WAF managed rules (seed §2.2)".into());
        }
    } else {
        problems.push("infra/terraform/modules/zone is missing".into());
    }
    problems
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A copy of infra/terraform to break.
fn copy_tree(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bb-infra-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let status = Command::new("cp")
        .arg("-r")
        .arg(repo().join("infra/terraform"))
        .arg(&dir)
        .status()
        .unwrap();
    assert!(status.success());
    dir
}

fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{} has no {from:?}", path.display());
    std::fs::write(path, text.replacen(from, to, 1)).unwrap();
}

#[test]
fn terraform_declares_every_binding_of_wrangler_toml_and_nothing_twice() {
    let problems = problems(
        &repo().join("infra/terraform"),
        &read("wrangler.toml"),
        &read("scripts/logpush"),
    );
    assert!(
        problems.is_empty(),
        "infra/terraform against wrangler.toml:\n{}",
        problems.join("\n")
    );
}

#[test]
fn a_renamed_bucket_a_missing_output_or_a_second_declaration_is_named() {
    let wrangler = read("wrangler.toml");
    let logpush = read("scripts/logpush");

    let tree = copy_tree("renamed");
    edit(
        &tree.join("production/main.tf"),
        "\"babybook-dead-jobs\"",
        "\"babybook-deadjobs\"",
    );
    let found = problems(&tree, &wrangler, &logpush);
    assert!(
        found
            .iter()
            .any(|p| p.contains("DEAD_JOBS") && p.contains("babybook-deadjobs") && p.contains("production")),
        "{found:#?}"
    );

    let tree = copy_tree("output");
    let broken = wrangler.replace(
        "id = \"REPLACE_WITH_PRODUCTION_OPS_STATE_KV_ID\"",
        "id = \"REPLACE_WITH_PRODUCTION_OPS_STATE_NAMESPACE\"",
    );
    let found = problems(&tree, &broken, &logpush);
    assert!(
        found
            .iter()
            .any(|p| p.contains("REPLACE_WITH_PRODUCTION_OPS_STATE_NAMESPACE") && p.contains("ops_state_namespace")),
        "{found:#?}"
    );

    let tree = copy_tree("twice");
    let extra = "\nresource \"cloudflare_queue\" \"queue\" {\n  for_each   = var.queues\n  account_id = var.account_id\n  queue_name = each.value\n}\n";
    let mut dns = std::fs::read_to_string(tree.join("modules/edge/dns.tf")).unwrap();
    dns.push_str(extra);
    std::fs::write(tree.join("modules/edge/dns.tf"), dns).unwrap();
    edit(
        &tree.join("staging/main.tf"),
        "\"babybook-journal-staging\"",
        "\"babybook-journal\"",
    );
    let found = problems(&tree, &wrangler, &logpush);
    assert!(
        found
            .iter()
            .any(|p| p.contains("resource cloudflare_queue.queue is declared twice")),
        "{found:#?}"
    );
    assert!(
        found
            .iter()
            .any(|p| p.contains("\"babybook-journal\" is declared by both staging and production")),
        "{found:#?}"
    );

    let tree = copy_tree("caching");
    edit(
        &tree.join("modules/edge/main.tf"),
        "disabled = true",
        "disabled = false",
    );
    edit(
        &tree.join("modules/edge/logpush.tf"),
        "\"Exceptions\", \"Logs\"]",
        "\"Exceptions\", \"Logs\", \"Event\"]",
    );
    let found = problems(&tree, &wrangler, &logpush);
    assert!(
        found.iter().any(|p| p.contains("caching = { disabled = true }")),
        "{found:#?}"
    );
    assert!(found.iter().any(|p| p.contains("local.logpush_fields")), "{found:#?}");

    let tree = copy_tree("parse");
    std::fs::write(tree.join("staging/broken.tf"), "resource \"cloudflare_queue\" {\n").unwrap();
    let found = problems(&tree, &wrangler, &logpush);
    assert!(
        found.iter().any(|p| p.contains("broken.tf does not parse")),
        "{found:#?}"
    );
}

/// scripts/tf-outputs-to-wrangler fills one environment's placeholders from `terraform output
/// -json` (a fixture here), never a sensitive output, and leaves the other environment alone.
#[test]
fn terraform_outputs_fill_the_placeholders_of_one_environment() {
    let dir = std::env::temp_dir().join(format!("bb-tf-outputs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("wrangler.toml");
    std::fs::copy(repo().join("wrangler.toml"), &config).unwrap();
    let fixture = repo().join("ops/tests/fixtures/tf-outputs-staging.json");
    let run = |extra: &[&str]| {
        Command::new(repo().join("scripts/tf-outputs-to-wrangler"))
            .args(["--env", "staging", "--outputs"])
            .arg(&fixture)
            .arg("--config")
            .arg(&config)
            .args(extra)
            .output()
            .unwrap()
    };
    let out = run(&[]);
    assert!(out.status.success(), "{out:?}");
    let filled: toml::Table = toml::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    let staging = &filled["env"]["staging"];
    assert_eq!(
        staging["vars"]["CF_ZONE_ID"].as_str(),
        Some("0123456789abcdef0123456789abcdef")
    );
    assert_eq!(
        staging["vars"]["CF_ACCOUNT_ID"].as_str(),
        Some("fedcba9876543210fedcba9876543210")
    );
    assert_eq!(
        staging["hyperdrive"][0]["id"].as_str(),
        Some("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")
    );
    assert_eq!(
        staging["kv_namespaces"][0]["id"].as_str(),
        Some("bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb")
    );
    let mut left = Vec::new();
    placeholders(staging, "env.staging", &mut left);
    assert!(left.is_empty(), "{left:?}");
    let mut production = Vec::new();
    placeholders(&filled["env"]["production"], "env.production", &mut production);
    assert_eq!(production.len(), 5, "production is untouched: {production:?}");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(!text.contains("fixture-not-a-token"), "no sensitive output is written");
    assert!(run(&["--check"]).status.success(), "nothing left to fill");

    // An output missing from Terraform's: named, and the exit says so.
    std::fs::copy(repo().join("wrangler.toml"), &config).unwrap();
    let mut outputs: Value = serde_json::from_str(&std::fs::read_to_string(&fixture).unwrap()).unwrap();
    outputs.as_object_mut().unwrap().remove("ops_state_kv_id");
    let partial = dir.join("partial.json");
    std::fs::write(&partial, outputs.to_string()).unwrap();
    let out = Command::new(repo().join("scripts/tf-outputs-to-wrangler"))
        .args(["--env", "staging", "--outputs"])
        .arg(&partial)
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("REPLACE_WITH_STAGING_OPS_STATE_KV_ID") && stderr.contains("ops_state_kv_id"),
        "{stderr}"
    );
}

/// CI runs `terraform fmt -check`, `validate` and `plan` on infrastructure changes.
#[test]
fn ci_checks_terraform_on_infrastructure_changes() {
    let workflow = read(".github/workflows/terraform.yml");
    for needle in [
        "infra/terraform/**",
        "terraform fmt -check",
        "terraform validate",
        "terraform plan",
        "[staging, production]",
    ] {
        assert!(workflow.contains(needle), "terraform.yml lacks {needle:?}");
    }
    let ci = read(".github/workflows/ci.yml");
    for job in ["deploy-staging", "deploy-production"] {
        let body = ci.split(&format!("\n  {job}:")).nth(1).expect(job);
        let preflight = body.find("scripts/preflight --env").unwrap_or(usize::MAX);
        let deploy = ["wrangler deploy", "versions upload", "scripts/canary"]
            .iter()
            .filter_map(|d| body.find(d))
            .min()
            .unwrap_or(0);
        assert!(
            preflight < deploy,
            "{job}: scripts/preflight must run before the deploy"
        );
    }
}

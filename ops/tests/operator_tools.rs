//! The operator tools behave like tools: `--help` answers with usage and does nothing else, and a
//! flag they do not know is refused.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repo root")
        .to_owned()
}

fn bbops(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bbops"))
        .args(args)
        .output()
        .expect("run bbops")
}

/// `git status` of the checkout, untracked files included: what a side effect would change.
fn tree_state() -> String {
    let out = Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=all", "--ignored=no"])
        .current_dir(repo())
        .output()
        .expect("git status");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a script, killing it if it is still going after `limit` (a help that starts work would).
fn run_script(script: &Path, arg: &str, limit: Duration) -> Output {
    let mut child = Command::new(script)
        .arg(arg)
        .current_dir(repo())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("run script");
    let started = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if started.elapsed() > limit {
            // The whole group: a script that got as far as starting a build must not outlive us.
            // SAFETY: kill(2) with a negative pid signals that process group; no memory is shared.
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            let _ = child.wait();
            panic!("{} {arg} still ran after {limit:?}", script.display());
        }
        std::thread::sleep(Duration::from_millis(20)); // polling interval, bounded by `limit`
    }
    child.wait_with_output().expect("output")
}

#[test]
fn bbops_help_lists_every_command_and_unknown_flags_are_refused() {
    let help = bbops(&["--help"]);
    assert!(help.status.success(), "{help:?}");
    let text = String::from_utf8_lossy(&help.stdout);
    for command in ["migrate", "seed-demo", "generate", "standin", "scan-secrets", "sbom"] {
        assert!(text.contains(command), "bbops --help does not list {command}:\n{text}");
    }
    let flags = bbops(&["generate", "--help"]);
    let flags_text = String::from_utf8_lossy(&flags.stdout);
    assert!(
        flags.status.success() && flags_text.contains("--database-url"),
        "{flags_text}"
    );

    for args in [
        &["migrate", "--database-url", "x", "--frobnicate"][..],
        &["migrate"],
        &["no-such-command"],
    ] {
        let out = bbops(args);
        assert_eq!(out.status.code(), Some(2), "bbops {args:?}: {out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("Usage"),
            "bbops {args:?} did not show its usage"
        );
    }
}

#[test]
fn every_script_answers_help_with_its_usage_and_changes_nothing() {
    let mut scripts: Vec<PathBuf> = std::fs::read_dir(repo().join("scripts"))
        .expect("scripts/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.is_file())
        .collect();
    scripts.sort();
    assert!(scripts.len() >= 6, "{scripts:?}");
    let before = tree_state();
    for script in &scripts {
        for flag in ["--help", "-h"] {
            let out = run_script(script, flag, Duration::from_secs(20));
            let usage = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success(), "{} {flag}: {out:?}", script.display());
            let name = script.file_name().and_then(|n| n.to_str()).expect("name");
            assert!(
                usage.lines().count() >= 2 && (usage.contains(name) || usage.contains("usage")),
                "{} {flag} printed no usage:\n{usage}",
                script.display()
            );
        }
    }
    assert_eq!(tree_state(), before, "a script's --help changed the checkout");
}

#[test]
fn scripts_refuse_arguments_they_do_not_know_before_doing_anything() {
    for name in [
        "bench",
        "build-worker",
        "dev",
        "test",
        "redrive",
        "switch",
        "slo",
        "canary",
        "logpush",
        "revoke-share",
        "preflight",
        "tf-outputs-to-wrangler",
    ] {
        let out = run_script(
            &repo().join("scripts").join(name),
            "--no-such-flag",
            Duration::from_secs(20),
        );
        assert_eq!(out.status.code(), Some(2), "scripts/{name} --no-such-flag: {out:?}");
    }
}

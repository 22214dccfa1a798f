//! `openapi.yaml` against the running Worker. schemathesis (PyPI; `scripts/lib/tools.sh`
//! installs it into `target/tools/schemathesis`) generates requests for every operation, valid
//! and invalid, signed in as a family with its CSRF token and with the admin token, and checks
//! that nothing answers 5xx and that every answer's status, content type, headers and body are
//! what the document says. The test controls (`/__test/*`) are left out: they reshape the stack.

use std::path::Path;
use std::process::{Command, Output};

use edge_tests::stack::repo_root;
use edge_tests::SignedIn;

use super::{Stack, StackOptions};

const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
                      response_headers_conformance,response_schema_conformance";

#[test]
fn schemathesis_finds_no_server_error_and_no_answer_the_openapi_document_does_not_describe() {
    // A stack of its own, with the rate limits off (hundreds of requests as one user from one
    // address would otherwise meet mostly 429s; the limits have their own tests), hygiene on.
    let stack = Stack::start(StackOptions::named("schemathesis"));
    stack.fault("skip_rate_limits", true);
    let family = stack.family(3, 2);
    let signed_in = stack.sign_in(&family);

    // 1. Every operation, every parameter generated: mostly unknown ids and malformed input.
    //    Signing out ends the session on the server, so those two run last, on a session of their own.
    let free = schemathesis(
        &stack,
        &signed_in,
        "free",
        None,
        // Flipping the switches (read-only mode on) would turn the rest of the run into 503s; the
        // switch routes have their own tests (tests/edge/operations.rs).
        &["--exclude-path-regex", "^/(__test/|auth/logout|admin/switches)"],
    );
    assert_ran(&free, 24);

    // 2. The operations that take an id, with ids that exist: the answers of the handlers'
    //    happy paths (a live share page, a share link, an asset) meet the document too. A new
    //    family: the first run learns ids from `GET /shares` and revokes those links.
    let family = stack.family(3, 2);
    let signed_in = stack.sign_in(&family);
    let asset = stack.queued_asset(&family.account_id);
    let config = stack.dir.join("schemathesis.toml");
    std::fs::write(
        &config,
        format!(
            "[[operations]]\ninclude-path = \"/s/{{token}}\"\nparameters = {{ token = \"{token}\" }}\n\n\
             [[operations]]\ninclude-path = \"/shares/{{id}}\"\nparameters = {{ id = \"{share}\" }}\n\n\
             [[operations]]\ninclude-path = \"/shares/{{id}}/links\"\nparameters = {{ id = \"{share}\" }}\n\n\
             [[operations]]\ninclude-path = \"/assets/{{id}}\"\nparameters = {{ id = \"{asset}\" }}\n",
            token = family.shares[0].token,
            share = family.shares[1].id,
        ),
    )
    .expect("schemathesis.toml");
    let pinned = schemathesis(
        &stack,
        &signed_in,
        "pinned",
        Some(&config),
        &[
            "--include-path-regex",
            "^/(s/\\{token\\}|shares/\\{id\\}|shares/\\{id\\}/links|assets/\\{id\\})$",
        ],
    );
    assert_ran(&pinned, 8);

    // 3. Signing out, and out everywhere.
    let signed_in = stack.sign_in(&family);
    let logout = schemathesis(
        &stack,
        &signed_in,
        "logout",
        None,
        &["--include-path-regex", "^/auth/logout"],
    );
    assert_ran(&logout, 2);
    assert!(stack.alive());
}

/// One schemathesis run against `stack`; panics with its report when it finds a problem.
fn schemathesis(stack: &Stack, signed_in: &SignedIn, name: &str, config: Option<&Path>, selection: &[&str]) -> String {
    let executable = repo_root().join("target/tools/schemathesis/bin/schemathesis");
    assert!(
        executable.exists(),
        "{} is missing: scripts/test installs it (ensure_schemathesis in scripts/lib/tools.sh)",
        executable.display()
    );
    let mut command = Command::new(&executable);
    // Run from the stack's directory: schemathesis keeps a cache in `.schemathesis/` there.
    command.current_dir(&stack.dir);
    if let Some(config) = config {
        command.arg("--config-file").arg(config);
    }
    let run: Output = command
        .arg("run")
        .arg(repo_root().join("openapi.yaml"))
        .args(["--url", &stack.base_url])
        .args(selection)
        .args(["--checks", CHECKS])
        .args(["--phases", "examples,coverage,fuzzing"])
        // One worker: with two threads, Python 3.11.7's ast module (used by hypothesis to describe
        // its filters) can fail with "AST constructor recursion depth mismatch" (CPython
        // gh-106905, fixed in 3.11.8), which failed one fresh-clone run of this suite.
        .args(["--max-examples", "30", "--seed", "20261129", "--workers", "1"])
        .args(["--request-timeout", "15", "--no-color", "--generation-database", "none"])
        .args(["--report", "junit,ndjson", "--report-ndjson-path"])
        .arg(stack.dir.join(format!("schemathesis-{name}.ndjson")))
        .args(["--report-junit-path"])
        .arg(stack.dir.join(format!("schemathesis-{name}.junit.xml")))
        .args(["-H", &format!("Cookie: {}", signed_in.cookies())])
        .args(["-H", &format!("X-CSRF-Token: {}", signed_in.csrf_token)])
        .args(["-H", "Origin: http://localhost:5173"])
        .args(["-H", &format!("Authorization: Bearer {}", stack.secrets.admin_token)])
        .args(["-H", "X-Admin-Reason: contract test"])
        .output()
        .expect("run schemathesis");
    let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
    eprintln!("schemathesis ({name}):\n{stdout}");
    assert!(
        run.status.success(),
        "schemathesis ({name}) found problems:\n{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    stdout
}

/// The run's summary says it tested `operations` operations (not zero because of a filter or a
/// schema it could not load).
fn assert_ran(stdout: &str, operations: usize) {
    let tested = stdout
        .lines()
        .find_map(|line| line.trim().strip_prefix("Tested: "))
        .and_then(|n| n.trim().parse::<usize>().ok());
    assert_eq!(tested, Some(operations), "{stdout}");
}

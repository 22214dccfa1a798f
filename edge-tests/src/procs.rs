//! Child processes that cannot outlive the harness.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

/// Watchdog pipes: dropped only when this process exits, which closes them and wakes the
/// watchdogs.
static WATCHDOGS: Mutex<Vec<ChildStdin>> = Mutex::new(Vec::new());

/// A process running in its own process group, killed with the group.
pub struct Guarded {
    pub child: Child,
    pgid: i32,
}

/// Are we root? Postgres and PgBouncer refuse to run as root, so they run as `postgres` then.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// `command` as the `postgres` user when we are root.
pub fn as_service_user(program: &str) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--", program]);
        c
    } else {
        Command::new(program)
    }
}

impl Guarded {
    /// Spawns `command` in a new process group and arms a watchdog for that group.
    pub fn spawn(mut command: Command) -> std::io::Result<Guarded> {
        command.process_group(0);
        let child = command.spawn()?;
        let pgid = child.id() as i32;
        let mut watchdog = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "while read -r _; do :; done; kill -TERM -{pgid} 2>/dev/null; sleep 3; kill -KILL -{pgid} 2>/dev/null"
            ))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()?;
        if let Some(pipe) = watchdog.stdin.take() {
            WATCHDOGS.lock().expect("watchdogs").push(pipe);
        }
        Ok(Guarded { child, pgid })
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// CPU seconds (user + system) used so far by the live processes of the group: for
    /// `wrangler dev` that is Node and workerd, the whole server side of a benchmark.
    pub fn cpu_seconds(&self) -> f64 {
        group_cpu_seconds(self.pgid, None)
    }

    /// User + system CPU of the Worker's own runtime alone: the `workerd` process of the group
    /// that runs the Worker (started with `--inspector-addr`, which wrangler gives the user
    /// Worker's runtime and not its proxy), without Node (wrangler) or the proxy's `workerd`.
    pub fn runtime_cpu_seconds(&self) -> f64 {
        group_cpu_seconds(self.pgid, Some("--inspector-addr"))
    }

    /// Sends `signal` to the whole group.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill with a negative pid signals a process group; no memory is involved.
        unsafe {
            libc::kill(-self.pgid, signal);
        }
    }

    /// TERM, then KILL after `grace`; reaps the child.
    pub fn stop(&mut self, grace: Duration) {
        self.signal(libc::SIGTERM);
        let deadline = std::time::Instant::now() + grace;
        while std::time::Instant::now() < deadline {
            if !self.is_running() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.signal(libc::SIGKILL);
        let _ = self.child.wait();
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        if self.is_running() {
            self.stop(Duration::from_secs(3));
        }
    }
}

/// Sums `utime + stime` from `/proc/<pid>/stat` over the processes in group `pgid`.
/// CPU seconds of the processes in group `pgid`; with `only`, of those whose command line holds it.
fn group_cpu_seconds(pgid: i32, only: Option<&str>) -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks_per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    let ticks: u64 = entries
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
        })
        .filter(|e| {
            only.is_none_or(|needle| {
                std::fs::read(e.path().join("cmdline"))
                    .is_ok_and(|c| c.split(|b| *b == 0).any(|arg| arg.starts_with(needle.as_bytes())))
            })
        })
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter_map(|stat| {
            // Fields after the parenthesised command name: state ppid pgrp … utime(12) stime(13).
            let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
            (fields.get(2)?.parse::<i32>().ok()? == pgid)
                .then(|| Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?))
                .flatten()
        })
        .sum();
    ticks as f64 / ticks_per_second
}

/// A TCP port nobody listens on right now, never handed out twice by this process.
///
/// Picked below the kernel's ephemeral range (`ip_local_port_range`, 32768–60999 by default), not
/// with a bind to :0: an ephemeral port is what the kernel gives outgoing connections, and
/// `wrangler dev` rebinds its port each time it restarts workerd (after its first rebuild), so a
/// port from that range can be taken by some connection in between ("Address already in use").
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let (low, high) = port_range();
    let span = high - low;
    // Processes running at once start at different places.
    let offset = std::process::id().wrapping_mul(7_919) % span;
    let candidates = (0..span).map(|_| (low + (offset + NEXT.fetch_add(1, Ordering::Relaxed)) % span) as u16);
    pick_port(candidates).unwrap_or_else(|| panic!("no free port in {low}..{high}"))
}

/// The first of `candidates` that is free on 127.0.0.1 and that `fetch` may reach.
pub fn pick_port(candidates: impl IntoIterator<Item = u16>) -> Option<u16> {
    candidates
        .into_iter()
        .find(|&port| !is_fetch_bad_port(port) && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok())
}

/// Where [`free_port`] looks: from 10 000 up to the kernel's ephemeral range (which outgoing
/// connections take from).
pub fn port_range() -> (u32, u32) {
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32_768);
    (10_000, ephemeral_low.clamp(12_000, 65_535))
}

/// The Fetch Standard's bad ports (<https://fetch.spec.whatwg.org/#block-bad-port>, "A port is a
/// bad port if it is listed in the first column of the following table"; undici, Node's fetch,
/// keeps the same list): a fetch to one is a network error. `wrangler dev` reaches its own
/// address with `fetch`, so on one of them it prints "Ready" and never answers: a stack on 10080
/// did just that, twice, in a fresh-clone run
/// (`foundation::wrangler_dev_on_a_port_fetch_blocks_never_answers_so_no_stack_gets_one`).
pub const FETCH_BAD_PORTS: [u16; 82] = [
    1, 7, 9, 11, 13, 15, 17, 19, 20, 21, 22, 23, 25, 37, 42, 43, 53, 69, 77, 79, 87, 95, 101, 102, 103, 104, 109, 110,
    111, 113, 115, 117, 119, 123, 135, 137, 139, 143, 161, 179, 389, 427, 465, 512, 513, 514, 515, 526, 530, 531, 532,
    540, 548, 554, 556, 563, 587, 601, 636, 989, 990, 993, 995, 1719, 1720, 1723, 2049, 3659, 4045, 4190, 5060, 5061,
    6000, 6566, 6665, 6666, 6667, 6668, 6669, 6679, 6697, 10080,
];

pub fn is_fetch_bad_port(port: u16) -> bool {
    FETCH_BAD_PORTS.contains(&port)
}

/// Waits until `port` accepts connections, or `timeout`.
/// `wrangler dev` (the npm-installed one) for the project in `dir`, on 127.0.0.1:`port`, with its
/// local state (cache, queues, rate limits) under `state` and no interactive session.
pub fn wrangler_dev(dir: &std::path::Path, port: u16, state: &std::path::Path) -> Command {
    let mut command = Command::new(crate::stack::repo_root().join("node_modules/.bin/wrangler"));
    command
        .current_dir(dir)
        .args(["dev", "--port", &port.to_string(), "--ip", "127.0.0.1"])
        .args(["--inspector-port", &free_port().to_string()])
        .arg("--persist-to")
        .arg(state)
        .args(["--show-interactive-dev-session=false"])
        .env("WRANGLER_SEND_METRICS", "false")
        .env("NODE_OPTIONS", node_options_with_guard());
    command
}

/// `NODE_OPTIONS` for `wrangler dev`: whatever the caller had, and the preload that keeps a socket
/// reset in Miniflare's local Hyperdrive proxy from ending the dev server
/// (`edge-tests/node/hyperdrive-proxy-guard.cjs`, which says why).
pub fn node_options_with_guard() -> String {
    let guard = crate::stack::repo_root().join("edge-tests/node/hyperdrive-proxy-guard.cjs");
    let mut options = std::env::var("NODE_OPTIONS").unwrap_or_default();
    if !options.is_empty() {
        options.push(' ');
    }
    options.push_str(&format!("--require={}", guard.display()));
    options
}

/// The repository's `wrangler.toml` for test stacks, written once per run under `dir`: the same
/// configuration without the `[build]` table (custom build command and watched folders), and
/// with `main` made absolute. With the build table, `wrangler dev` runs the build again once its
/// watcher is ready and restarts workerd on the same port, and under load that restart can fail
/// with "Address already in use" and end the dev server. The harness builds the Worker once
/// itself ([`build_worker_once`]) instead. `scripts/dev` keeps the normal configuration, so a
/// developer's edits still rebuild.
pub fn watch_free_config(repo: &std::path::Path, dir: &std::path::Path) -> std::path::PathBuf {
    let text = std::fs::read_to_string(repo.join("wrangler.toml")).expect("read wrangler.toml");
    let mut out = String::new();
    let mut in_build = false;
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            in_build = trimmed == "[build]";
        }
        if in_build {
            continue;
        }
        match trimmed.strip_prefix("main = \"").and_then(|m| m.strip_suffix('"')) {
            Some(main) => out.push_str(&format!("main = \"{}\"\n", repo.join(main).display())),
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    let path = dir.join("wrangler.test.toml");
    std::fs::write(&path, out).expect("write the test wrangler config");
    path
}

/// Runs `scripts/build-worker` once per process (fast when nothing changed: it keeps a stamp).
pub fn build_worker_once(repo: &std::path::Path) {
    static BUILT: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| {
        let status = Command::new(repo.join("scripts/build-worker"))
            .current_dir(repo)
            .stdin(Stdio::null())
            .status()
            .expect("run scripts/build-worker");
        assert!(status.success(), "scripts/build-worker failed");
    });
}

pub fn wait_for_port(port: u16, timeout: Duration) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Writes `text` to `path`, readable by the service user.
pub fn write_file(path: &std::path::Path, text: &str) {
    let mut f = std::fs::File::create(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    f.write_all(text.as_bytes()).expect("write");
}

/// Gives a directory to the service user (when root), recursively.
pub fn chown_service_user(path: &std::path::Path) {
    if is_root() {
        let status = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(path)
            .status()
            .expect("chown");
        assert!(status.success(), "chown {}", path.display());
    }
}

//! A private PostgreSQL cluster per run, and PgBouncer in transaction mode per stack.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::procs::{as_service_user, chown_service_user, free_port, wait_for_port, write_file, Guarded};

/// The newest `/usr/lib/postgresql/*/bin` (Debian's layout).
pub fn pg_bindir() -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL server binaries under /usr/lib/postgresql (apt-get install postgresql)")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    dirs.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    dirs.pop().expect("no initdb under /usr/lib/postgresql/*/bin")
}

pub const TEMPLATE_DB: &str = "babybook_template";

pub struct Cluster {
    pub port: u16,
    pub dir: PathBuf,
    process: Guarded,
}

impl Cluster {
    /// initdb + start + a migrated template database, in `dir`.
    pub fn start(dir: &Path) -> Cluster {
        let cluster = Cluster::spawn(dir, &[], None);
        cluster.wait_ready();
        cluster.create_template();
        cluster
    }

    /// A cluster that, over TCP, only speaks TLS (with `tls`'s server certificate) and asks for a
    /// SCRAM password: what the seed's managed Postgres does. The superuser `postgres` gets
    /// `password`; the local socket stays open for setup (`socket_superuser`).
    pub fn start_requiring_tls(dir: &Path, tls: &TlsFiles, password: &str) -> Cluster {
        let hba = "local all all trust\n\
                   hostssl all all 127.0.0.1/32 scram-sha-256\n\
                   hostnossl all all 127.0.0.1/32 reject\n";
        let settings = [
            "ssl=on".to_owned(),
            format!("ssl_cert_file={}", tls.server_cert.display()),
            format!("ssl_key_file={}", tls.server_key.display()),
        ];
        let cluster = Cluster::spawn(dir, &settings, Some(hba));
        let mut client = cluster.wait_for_socket();
        client
            .batch_execute(&format!(
                "ALTER ROLE postgres PASSWORD '{}'",
                password.replace('\'', "''")
            ))
            .expect("set the password");
        cluster
    }

    /// initdb, then the server with `settings` (`-c` values) and `hba` as its pg_hba.conf.
    fn spawn(dir: &Path, settings: &[String], hba: Option<&str>) -> Cluster {
        let bin = pg_bindir();
        let data = dir.join("pgdata");
        std::fs::create_dir_all(dir).expect("cluster dir");
        chown_service_user(dir);
        let out = as_service_user(bin.join("initdb").to_str().expect("path"))
            .args([
                "-D",
                data.to_str().expect("path"),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "-N",
            ])
            .stdout(Stdio::null())
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if let Some(hba) = hba {
            write_file(&data.join("pg_hba.conf"), hba);
            chown_service_user(dir);
        }
        let port = free_port();
        let mut command = as_service_user(bin.join("postgres").to_str().expect("path"));
        command
            .args([
                "-D",
                data.to_str().expect("path"),
                "-p",
                &port.to_string(),
                "-k",
                dir.to_str().expect("path"),
            ])
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ])
            .args([
                "-c",
                "max_connections=300",
                "-c",
                "shared_buffers=64MB",
                "-c",
                "log_min_messages=warning",
            ])
            .args(settings.iter().flat_map(|s| ["-c", s.as_str()]))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("postgres.log")).expect("log file"));
        let process = Guarded::spawn(command).expect("start postgres");
        assert!(
            wait_for_port(port, Duration::from_secs(30)),
            "postgres did not listen on {port}"
        );
        Cluster {
            port,
            dir: dir.to_owned(),
            process,
        }
    }

    /// The superuser over the cluster's Unix socket, once the server accepts connections.
    pub fn wait_for_socket(&self) -> postgres::Client {
        let config = format!(
            "host={} port={} user=postgres dbname=postgres",
            self.dir.display(),
            self.port
        );
        for _ in 0..100 {
            if let Ok(client) = postgres::Client::connect(&config, postgres::NoTls) {
                return client;
            }
            std::thread::sleep(Duration::from_millis(100)); // polling interval, bounded by the loop
        }
        panic!("postgres never accepted connections on its socket");
    }

    fn wait_ready(&self) {
        for _ in 0..100 {
            if postgres::Client::connect(&self.url("postgres", "postgres"), postgres::NoTls).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("postgres never accepted connections");
    }

    pub fn url(&self, user: &str, db: &str) -> String {
        format!("postgres://{user}@127.0.0.1:{}/{db}", self.port)
    }

    pub fn superuser(&self, db: &str) -> postgres::Client {
        postgres::Client::connect(&self.url("postgres", db), postgres::NoTls)
            .unwrap_or_else(|e| panic!("connect {db}: {e}"))
    }

    fn create_template(&self) {
        self.superuser("postgres")
            .batch_execute(&format!("CREATE DATABASE {TEMPLATE_DB}"))
            .expect("create template");
        let url = self.url("postgres", TEMPLATE_DB);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime
            .block_on(babybook_ops::migrate::run(&url))
            .expect("migrations apply on an empty database");
    }

    /// A fresh, migrated database (a copy of the template).
    pub fn create_database(&self, name: &str) {
        self.superuser("postgres")
            .batch_execute(&format!("CREATE DATABASE {name} TEMPLATE {TEMPLATE_DB}"))
            .expect("create database");
    }

    pub fn is_running(&mut self) -> bool {
        self.process.is_running()
    }

    /// Stops the server hard (SIGKILL to the group): "the database died".
    pub fn kill(&mut self) {
        self.process.signal(libc::SIGKILL);
        let _ = self.process.child.wait();
    }
}

/// A throwaway certificate authority and a server certificate it signed for `127.0.0.1` and
/// `localhost`, made with the `openssl` command in `dir`.
pub struct TlsFiles {
    pub ca_cert: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
}

impl TlsFiles {
    pub fn throwaway(dir: &Path) -> TlsFiles {
        std::fs::create_dir_all(dir).expect("tls dir");
        let path = |name: &str| dir.join(name);
        write_file(
            &path("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
        );
        let openssl = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(dir)
                .output()
                .expect("run openssl (apt-get install openssl)");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=babybook test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ]);
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ]);
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "server.ext",
            "-out",
            "server.pem",
        ]);
        // Postgres refuses a key others can read.
        std::fs::set_permissions(path("server.key"), std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .expect("chmod server.key");
        chown_service_user(dir);
        TlsFiles {
            ca_cert: path("ca.pem"),
            server_cert: path("server.pem"),
            server_key: path("server.key"),
        }
    }
}

/// PgBouncer in `pool_mode = transaction`: what Hyperdrive does to connections, locally. Named
/// prepared statements and session `SET` break behind it, exactly as they would in production.
pub struct Bouncer {
    pub port: u16,
    pub pool_size: u32,
    process: Guarded,
    dir: PathBuf,
}

fn spawn_bouncer(dir: &Path, port: u16) -> Guarded {
    let mut command = as_service_user("pgbouncer");
    command
        .arg(dir.join("pgbouncer.ini"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("pgbouncer.log")).expect("log"));
    let process = Guarded::spawn(command).expect("start pgbouncer (apt-get install pgbouncer)");
    assert!(
        wait_for_port(port, Duration::from_secs(15)),
        "pgbouncer did not listen on {port}: {}",
        std::fs::read_to_string(dir.join("pgbouncer.log")).unwrap_or_default()
    );
    process
}

impl Bouncer {
    pub fn start(dir: &Path, cluster_port: u16, databases: &[&str], pool_size: u32) -> Bouncer {
        std::fs::create_dir_all(dir).expect("bouncer dir");
        let port = free_port();
        let dbs: String = databases
            .iter()
            .map(|db| format!("{db} = host=127.0.0.1 port={cluster_port} dbname={db}\n"))
            .collect();
        let config = format!(
            "[databases]\n{dbs}\n[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n\
             auth_type = trust\nauth_file = {auth}\nadmin_users = postgres\npool_mode = transaction\n\
             default_pool_size = {pool_size}\nmin_pool_size = 0\nreserve_pool_size = 0\nmax_client_conn = 1000\n\
             server_reset_query =\nignore_startup_parameters = extra_float_digits,options\nlog_connections = 0\nlog_disconnections = 0\n\
             server_login_retry = 1\nquery_wait_timeout = 30\n",
            auth = dir.join("users.txt").display()
        );
        write_file(
            &dir.join("users.txt"),
            "\"postgres\" \"\"\n\"app_rw\" \"\"\n\"app_ro\" \"\"\n\"operator_ro\" \"\"\n\"migrator\" \"\"\n",
        );
        write_file(&dir.join("pgbouncer.ini"), &config);
        chown_service_user(dir);
        Bouncer {
            port,
            pool_size,
            process: spawn_bouncer(dir, port),
            dir: dir.to_owned(),
        }
    }

    /// SIGKILLs PgBouncer: "the pooler died". Its client connections end as the kernel ends them.
    pub fn kill(&mut self) {
        self.process.signal(libc::SIGKILL);
        let _ = self.process.child.wait();
    }

    /// Starts PgBouncer again on the same port, with the same configuration.
    pub fn restart(&mut self) {
        self.process.stop(Duration::from_secs(2));
        self.process = spawn_bouncer(&self.dir, self.port);
    }

    pub fn url(&self, user: &str, db: &str) -> String {
        format!("postgres://{user}@127.0.0.1:{}/{db}", self.port)
    }

    /// Runs a command on PgBouncer's admin console (`PAUSE`, `RESUME`, `KILL db`, `SHOW POOLS`…).
    pub fn admin(&self, command: &str) -> Vec<postgres::SimpleQueryMessage> {
        let mut client = postgres::Client::connect(&self.url("postgres", "pgbouncer"), postgres::NoTls)
            .expect("pgbouncer admin console");
        client
            .simple_query(command)
            .unwrap_or_else(|e| panic!("pgbouncer {command}: {e}"))
    }

    pub fn is_running(&mut self) -> bool {
        self.process.is_running()
    }

    pub fn stop(&mut self) {
        self.process.stop(Duration::from_secs(2));
    }
}

/// `psql`-free helper: is `pid` alive?
pub fn pid_alive(pid: u32) -> bool {
    Command::new("kill")
        .args(["-0", &pid.to_string()])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

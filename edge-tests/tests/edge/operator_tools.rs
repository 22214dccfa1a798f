//! The operator tools against what they meet in production.

use edge_tests::postgres_cluster::{Cluster, TlsFiles};
use edge_tests::stack::scratch_dir;

const PASSWORD: &str = "migrator-pw-for-a-throwaway-cluster"; // secret-scan: allow (a local test cluster's password)

fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(future)
}

#[test]
fn migrations_run_over_verified_tls_and_never_in_clear_or_against_an_unknown_certificate() {
    let dir = scratch_dir("tls-cluster");
    let tls = TlsFiles::throwaway(&dir.join("certs"));
    let cluster = Cluster::start_requiring_tls(&dir.join("cluster"), &tls, PASSWORD);
    let url = |query: &str| {
        format!(
            "postgres://postgres:{PASSWORD}@127.0.0.1:{}/postgres{query}",
            cluster.port
        )
    };

    // The server refuses a connection in clear: whatever succeeds below spoke TLS.
    let clear = block_on(babybook_ops::connect(&url(""))).map(|_| ()).unwrap_err();
    assert!(clear.contains("no encryption") || clear.contains("pg_hba"), "{clear}");
    assert!(!clear.contains(PASSWORD), "the error showed the password: {clear}");

    // TLS asked for, but the server's certificate is signed by nobody the system trusts.
    let unknown = block_on(babybook_ops::connect(&url("?sslmode=require")))
        .map(|_| ())
        .unwrap_err();
    assert!(unknown.to_lowercase().contains("certificate"), "{unknown}");

    // With the cluster's CA: the migrations apply, over a connection the server sees as TLS.
    let verified = url(&format!("?sslmode=verify-full&sslrootcert={}", tls.ca_cert.display()));
    block_on(babybook_ops::migrate::run(&verified)).expect("migrations over TLS");
    let (ssl, tables) = block_on(async {
        let client = babybook_ops::connect(&verified).await.expect("connect over TLS");
        let ssl: bool = client
            .query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[])
            .await
            .expect("pg_stat_ssl")
            .get(0);
        let tables: i64 = client
            .query_one("SELECT count(*) FROM refinery_schema_history", &[])
            .await
            .expect("history")
            .get(0);
        (ssl, tables)
    });
    assert!(ssl, "the server saw a connection in clear");
    assert!(tables > 0, "no migration was recorded");
}

//! Issue 3: the schema, roles and row-level security, proven through PgBouncer in transaction
//! mode (as the Worker reaches Postgres through Hyperdrive).

use postgres::SimpleQueryMessage;

use crate::Stack;

/// Every table that carries account data, found in the catalog (not listed by hand), with the
/// column that names the account.
fn account_scoped_tables(stack: &Stack) -> Vec<(String, String)> {
    let rows = stack
        .db()
        .query(
            "SELECT c.relname::text, CASE WHEN c.relname = 'account' THEN 'id' ELSE 'account_id' END
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = 'public' AND c.relkind = 'r'
               AND (c.relname = 'account' OR EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'account_id' AND NOT a.attisdropped))
             ORDER BY 1",
            &[],
        )
        .expect("catalog");
    rows.iter().map(|r| (r.get(0), r.get(1))).collect()
}

fn count(client: &mut postgres::Client, sql: &str) -> i64 {
    let messages = client.simple_query(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    messages
        .iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(r) => r.get(0).map(|v| v.parse::<i64>().expect("number")),
            _ => None,
        })
        .unwrap_or_else(|| panic!("{sql}: no row"))
}

/// Rows a write touched; a write the role may not make at all (`user_session` is read-only to
/// `app_rw`: sessions change only through their functions) touches none.
fn affected(client: &mut postgres::Client, sql: &str) -> u64 {
    client.batch_execute("SAVEPOINT probe").expect("savepoint");
    match client.simple_query(sql) {
        Ok(messages) => messages
            .iter()
            .find_map(|m| match m {
                SimpleQueryMessage::CommandComplete(n) => Some(*n),
                _ => None,
            })
            .unwrap_or(0),
        Err(e) if e.code() == Some(&postgres::error::SqlState::INSUFFICIENT_PRIVILEGE) => {
            client
                .batch_execute("ROLLBACK TO SAVEPOINT probe")
                .expect("rollback to savepoint");
            0
        }
        Err(e) => panic!("{sql}: {e}"),
    }
}

/// Health, vault, usage, export, session, recipient-link and view rows for an account (the family
/// fixture has the rest; it must have a share).
fn add_sensitive_rows(stack: &Stack, account: &str, child: &str) {
    stack
        .db()
        .batch_execute(&format!(
            "INSERT INTO health_measurement (account_id, child_id, kind, value) VALUES ('{account}', '{child}', 'weight_g', 4200);
             INSERT INTO vault_document (account_id, child_id, kind, title, object_key) VALUES ('{account}', '{child}', 'birth_certificate', 'Certidão', 'vault/{account}/c.pdf');
             INSERT INTO usage_counter (account_id, metric, period_start, value) VALUES ('{account}', 'moments', date '2026-11-01', 3);
             INSERT INTO account_export (account_id) VALUES ('{account}');
             INSERT INTO share_recipient (account_id, share_id, name, token_hash)
               SELECT account_id, id, 'Vovó', sha256(gen_random_uuid()::text::bytea) FROM share_link WHERE account_id = '{account}' LIMIT 1;
             INSERT INTO share_view_day (account_id, share_id, link_id, day, views)
               SELECT account_id, id, id, current_date, 1 FROM share_link WHERE account_id = '{account}' LIMIT 1;
             SELECT begin_session(gen_random_uuid()::text, id, account_id, now() + interval '1 day')
               FROM app_user WHERE account_id = '{account}';"
        ))
        .expect("sensitive rows");
}

const SET_ACCOUNT: &str = "SELECT set_config('app.account_id', '{}', true)";

/// The SQLSTATE an `INSERT` fails with, or `None` when it is accepted (undone either way: it runs
/// under a savepoint of the caller's transaction).
fn insert_refusal(client: &mut postgres::Client, sql: &str) -> Option<String> {
    client.batch_execute("SAVEPOINT probe").expect("savepoint");
    let outcome = client
        .simple_query(sql)
        .err()
        .map(|e| e.code().unwrap_or_else(|| panic!("{sql}: {e}")).code().to_owned());
    client
        .batch_execute("ROLLBACK TO SAVEPOINT probe")
        .expect("rollback to savepoint");
    outcome
}

/// An `INSERT` of a copy of one of account `from`'s rows, with its account key set to `to` and
/// a new `id` where the table has one.
fn copy_row_to(table: &str, key: &str, from: &str, to: &str) -> String {
    format!(
        "INSERT INTO {table} SELECT (jsonb_populate_record(NULL::{table}, to_jsonb(r) || jsonb_build_object('id', gen_random_uuid(), '{key}', '{to}'))).* FROM {table} r WHERE {key} = '{from}' LIMIT 1"
    )
}

#[test]
fn every_account_scoped_table_forces_rls_and_one_account_never_touches_another() {
    let stack = Stack::shared();
    let (a, b) = (stack.family(2, 1), stack.family(2, 1));
    add_sensitive_rows(stack, &a.account_id, &a.child_id);
    add_sensitive_rows(stack, &b.account_id, &b.child_id);
    let tables = account_scoped_tables(stack);
    assert!(
        tables.len() >= 10,
        "expected the ten account-scoped tables, found {tables:?}"
    );

    let mut superuser = stack.db();
    for (table, key) in &tables {
        let row = superuser
            .query_one("SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE relname = $1 AND relnamespace = 'public'::regnamespace", &[table])
            .expect("pg_class");
        assert!(
            row.get::<_, bool>(0) && row.get::<_, bool>(1),
            "table {table} lacks ENABLE + FORCE ROW LEVEL SECURITY"
        );

        let mut pooled = stack.pooled_as("app_rw");
        pooled.batch_execute("BEGIN").expect("begin");
        pooled
            .simple_query(&SET_ACCOUNT.replace("{}", &a.account_id))
            .expect("set account");
        let own = count(
            &mut pooled,
            &format!("SELECT count(*) FROM {table} WHERE {key} = '{}'", a.account_id),
        );
        let others = count(
            &mut pooled,
            &format!("SELECT count(*) FROM {table} WHERE {key} = '{}'", b.account_id),
        );
        let updated = affected(
            &mut pooled,
            &format!("UPDATE {table} SET {key} = {key} WHERE {key} = '{}'", b.account_id),
        );
        let deleted = affected(
            &mut pooled,
            &format!("DELETE FROM {table} WHERE {key} = '{}'", b.account_id),
        );
        // WITH CHECK: a row written into another account is refused (42501: the policy, or no
        // INSERT right at all). The same statement aimed at A's own account is not refused by
        // RLS (it may meet a unique constraint), so the refusal is the policy's, not the SQL's.
        let into_b = insert_refusal(&mut pooled, &copy_row_to(table, key, &a.account_id, &b.account_id));
        let may_insert: bool = superuser
            .query_one("SELECT has_table_privilege('app_rw', $1, 'INSERT')", &[table])
            .expect("privilege")
            .get(0);
        if may_insert {
            let into_a = insert_refusal(&mut pooled, &copy_row_to(table, key, &a.account_id, &a.account_id));
            assert_ne!(
                into_a.as_deref(),
                Some("42501"),
                "{table}: RLS refused a row of A's own account"
            );
        }
        pooled.batch_execute("ROLLBACK").expect("rollback");
        assert_eq!(
            into_b.as_deref(),
            Some("42501"),
            "{table}: account A wrote a row into account B"
        );

        assert!(own > 0, "{table}: account A cannot see its own rows");
        assert_eq!(
            (others, updated, deleted),
            (0, 0, 0),
            "{table}: account A read/updated/deleted account B's rows"
        );
        let b_rows = count(
            &mut superuser,
            &format!("SELECT count(*) FROM {table} WHERE {key} = '{}'", b.account_id),
        );
        assert!(b_rows > 0, "{table}: B's rows are gone");
    }
}

#[test]
fn without_the_account_setting_queries_see_nothing_and_never_error() {
    let stack = Stack::shared();
    let a = stack.family(3, 1);
    let mut pooled = stack.pooled_as("app_rw");
    for (table, _) in account_scoped_tables(stack) {
        assert_eq!(
            count(&mut pooled, &format!("SELECT count(*) FROM {table}")),
            0,
            "{table} visible without app.account_id"
        );
    }
    // A transaction that set the account ends; the same pooled server connection forgets it.
    pooled
        .batch_execute(&format!("BEGIN; {}; COMMIT;", SET_ACCOUNT.replace("{}", &a.account_id)))
        .expect("tx");
    assert_eq!(count(&mut pooled, "SELECT count(*) FROM moment"), 0);
}

#[test]
fn under_concurrent_transaction_pooling_an_account_setting_never_leaks_into_the_next_transaction() {
    let stack = Stack::shared();
    let families: Vec<_> = (0..4).map(|_| stack.family(2, 0)).collect();
    std::thread::scope(|scope| {
        for family in &families {
            scope.spawn(move || {
                let mut pooled = stack.pooled_as("app_rw");
                for round in 0..40 {
                    pooled.batch_execute("BEGIN").expect("begin");
                    pooled
                        .simple_query(&SET_ACCOUNT.replace("{}", &family.account_id))
                        .expect("set");
                    let mine = count(&mut pooled, "SELECT count(*) FROM moment");
                    pooled.batch_execute("COMMIT").expect("commit");
                    assert_eq!(mine, 2, "round {round}: saw another account's moments");
                    let leaked = count(&mut pooled, "SELECT count(*) FROM moment");
                    assert_eq!(leaked, 0, "round {round}: the account setting survived its transaction");
                }
            });
        }
    });
}

/// Rows `role` reads of `table` when it names the account itself: a refusal counts as none.
fn rows_read_naming_the_account(client: &mut postgres::Client, table: &str, account: &str) -> i64 {
    let sql = format!("SELECT count(*) FROM (SELECT set_config('app.account_id', '{account}', false)) s, {table}");
    match client.simple_query(&sql) {
        Ok(messages) => messages
            .iter()
            .find_map(|m| match m {
                SimpleQueryMessage::Row(r) => r.get(0).map(|v| v.parse::<i64>().expect("number")),
                _ => None,
            })
            .unwrap_or(0),
        Err(e) if e.code() == Some(&postgres::error::SqlState::INSUFFICIENT_PRIVILEGE) => 0,
        Err(e) => panic!("{sql}: {e}"),
    }
}

/// Issue 29: `app_ro` is the observability role; on-call never reads a family's rows. Whoever
/// holds its credential and names an account (account ids are in every share page's image URLs)
/// reads nothing of any account-scoped table, found in the catalog, and still reads the
/// aggregates it is for.
#[test]
fn the_observability_role_reads_aggregates_and_no_row_of_any_family() {
    let stack = Stack::shared();
    let a = stack.family(2, 1);
    add_sensitive_rows(stack, &a.account_id, &a.child_id);
    let mut observer = stack.db_as("app_ro");
    let tables = account_scoped_tables(stack);
    assert!(tables.len() >= 10, "{tables:?}");
    for (table, _) in &tables {
        assert_eq!(
            rows_read_naming_the_account(&mut observer, table, &a.account_id),
            0,
            "app_ro read {table} rows of a family it named"
        );
    }
    for view in [
        "ops_asset_status",
        "ops_export_status",
        "ops_share_links",
        "ops_accounts",
    ] {
        observer
            .simple_query(&format!("SELECT * FROM {view}"))
            .unwrap_or_else(|e| panic!("app_ro cannot read {view}: {e}"));
    }
    assert!(
        count(&mut observer, "SELECT live + revoked FROM ops_share_links") > 0,
        "the aggregates count across accounts"
    );
}

/// Issue 29: break-glass reads leave a record: the server logs every statement of operator_ro.
#[test]
fn every_statement_of_the_break_glass_role_is_logged_by_the_server() {
    let stack = Stack::shared();
    let settings: Vec<String> = stack
        .db()
        .query(
            "SELECT unnest(setconfig) FROM pg_db_role_setting WHERE setrole = 'operator_ro'::regrole",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        settings.iter().any(|s| s == "log_statement=all"),
        "operator_ro's settings: {settings:?}"
    );
}

#[test]
fn break_glass_operator_reads_operational_tables_but_never_health_or_vault_rows() {
    let stack = Stack::shared();
    let a = stack.family(1, 1);
    add_sensitive_rows(stack, &a.account_id, &a.child_id);
    let mut operator = stack.db_as("operator_ro");
    assert!(
        count(&mut operator, "SELECT count(*) FROM share_link") > 0,
        "operator_ro should see operational rows"
    );
    for attempt in [
        "SELECT count(*) FROM health_measurement".to_owned(),
        "SELECT count(*) FROM vault_document".to_owned(),
        format!(
            "SELECT count(*) FROM (SELECT set_config('app.account_id', '{}', false)) s, health_measurement",
            a.account_id
        ),
        format!(
            "SELECT count(*) FROM (SELECT set_config('app.account_id', '{}', false)) s, vault_document",
            a.account_id
        ),
    ] {
        assert_eq!(
            count(&mut operator, &attempt),
            0,
            "operator_ro read sensitive rows with: {attempt}"
        );
    }
    for door in ["public_share_page", "public_share_link_page"] {
        assert!(
            operator
                .simple_query(&format!("SELECT {door}('\\x00'::bytea)"))
                .is_err(),
            "operator_ro may not call the edge's door {door}"
        );
    }
    assert!(
        operator.simple_query("SET ROLE app_rw").is_err(),
        "operator_ro may not become app_rw"
    );

    let mut app = stack.pooled_as("app_rw");
    app.batch_execute("BEGIN").expect("begin");
    app.simple_query(&SET_ACCOUNT.replace("{}", &a.account_id))
        .expect("set");
    assert_eq!(count(&mut app, "SELECT count(*) FROM health_measurement"), 1);
    assert_eq!(count(&mut app, "SELECT count(*) FROM vault_document"), 1);
    app.batch_execute("ROLLBACK").expect("rollback");
}

#[test]
fn migrations_reapply_as_a_noop_and_the_schema_has_no_enums_outbox_or_dlq() {
    let stack = Stack::shared();
    let url = format!("postgres://postgres@127.0.0.1:{}/{}", port_of(stack), stack.db_name);
    let mut db = stack.db();
    let before: i64 = db
        .query_one("SELECT count(*) FROM refinery_schema_history", &[])
        .expect("history")
        .get(0);
    edge_tests::standins::runtime()
        .block_on(babybook_ops::migrate::run(&url))
        .expect("re-apply");
    let after: i64 = db
        .query_one("SELECT count(*) FROM refinery_schema_history", &[])
        .expect("history")
        .get(0);
    assert_eq!(before, after, "re-applying migrations changed the history");
    let enums: i64 = db.query_one("SELECT count(*) FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE t.typtype = 'e' AND n.nspname = 'public'", &[]).expect("types").get(0);
    assert_eq!(enums, 0, "enum types break behind Hyperdrive");
    let forbidden: i64 = db
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE tablename IN ('outbox_event', 'dlq')",
            &[],
        )
        .expect("tables")
        .get(0);
    assert_eq!(forbidden, 0, "seed §13: no outbox_event or dlq table");
    let extensions: i64 = db
        .query_one(
            "SELECT count(*) FROM pg_extension WHERE extname IN ('citext', 'pgcrypto')",
            &[],
        )
        .expect("ext")
        .get(0);
    assert_eq!(extensions, 2);
}

#[test]
fn a_malicious_account_id_is_refused_before_sql_or_is_inert_data() {
    let stack = Stack::shared();
    let family = stack.family(1, 1);
    let signed_in = stack.sign_in(&family);
    // Through the API: ids are parsed into UUIDs before any SQL.
    let response = signed_in.write(
        "POST",
        "/shares",
        Some(&serde_json::json!({"moment_ids": ["1; DROP TABLE moment; --"]})),
    );
    assert_eq!(response.status, 422, "{}", response.text());
    assert_eq!(
        signed_in
            .write("DELETE", "/shares/'%3B%20DROP%20TABLE%20share_link%3B%20--", None)
            .status,
        404
    );
    // At the database: a non-UUID account setting errors (never matches) and drops nothing.
    let mut pooled = stack.pooled_as("app_rw");
    for evil in ["1; DROP TABLE account; --", "", "not-a-uuid"] {
        pooled.batch_execute("BEGIN").expect("begin");
        pooled
            .simple_query(&format!(
                "SELECT set_config('app.account_id', '{}', true)",
                evil.replace('\'', "''")
            ))
            .expect("set");
        let result = pooled.simple_query("SELECT count(*) FROM account");
        pooled.batch_execute("ROLLBACK").expect("rollback");
        match result {
            // No account: the policy compares with NULL and matches nothing.
            Ok(messages) if evil.is_empty() => {
                let n = messages.iter().find_map(|m| match m {
                    SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
                    _ => None,
                });
                assert_eq!(n.as_deref(), Some("0"), "{evil:?} matched rows");
            }
            // Not a UUID: the cast in current_account_id() refuses it, so no row is ever read.
            Err(e) if !evil.is_empty() => assert_eq!(
                e.code(),
                Some(&postgres::error::SqlState::INVALID_TEXT_REPRESENTATION),
                "{evil:?}: {e}"
            ),
            other => panic!("{evil:?}: {other:?}"),
        }
    }
    let tables: i64 = stack
        .db()
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE tablename IN ('account', 'moment', 'share_link')",
            &[],
        )
        .expect("tables")
        .get(0);
    assert_eq!(tables, 3, "a table was dropped");
}

fn port_of(stack: &Stack) -> u16 {
    let port: String = stack.db().query_one("SHOW port", &[]).expect("port").get(0);
    port.parse().expect("port")
}

/// The same, through the Worker's own settings statement: a PgBouncer pool of ONE server
/// connection, so every transaction of every account runs on it, one after another; each
/// signed-in request still sees exactly its own account's shares. A sampler proves the
/// transactions shared one server connection (never more than one `app_rw` backend, and one there).
#[test]
fn through_the_workers_settings_statement_on_one_shared_server_connection_each_request_sees_only_its_account() {
    let stack = Stack::start(
        crate::StackOptions {
            pool_size: 1,
            ..crate::StackOptions::named("rls-pool-of-one")
        }
        .var("DB_ACQUIRE_TIMEOUT_MS", "10000"),
    );
    let families: Vec<_> = (0..3).map(|_| stack.family(1, 2)).collect();
    let signed_in: Vec<_> = families.iter().map(|f| stack.sign_in(f)).collect();
    let done = std::sync::atomic::AtomicBool::new(false);
    let (max_backends, samples) = std::thread::scope(|scope| {
        let sampler = scope.spawn(|| {
            let (mut max, mut seen) = (0i64, Vec::new());
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let n = stack.server_connections("app_rw");
                max = max.max(n);
                seen.push(n);
                std::thread::sleep(std::time::Duration::from_millis(20)); // sampling interval
            }
            (max, seen)
        });
        let workers: Vec<_> = families
            .iter()
            .zip(&signed_in)
            .flat_map(|(family, s)| [(family, s), (family, s)])
            .map(|(family, s)| {
                scope.spawn(move || {
                    let mut want: Vec<String> = family.shares.iter().map(|sh| sh.id.clone()).collect();
                    want.sort();
                    for round in 0..10 {
                        let r = s.get("/shares");
                        assert_eq!(r.status, 200, "round {round}: {}", r.text());
                        let mut got: Vec<String> = r.json()["shares"]
                            .as_array()
                            .expect("shares")
                            .iter()
                            .map(|sh| sh["id"].as_str().unwrap().to_owned())
                            .collect();
                        got.sort();
                        assert_eq!(got, want, "round {round}: another account's shares, or none of its own");
                    }
                })
            })
            .collect();
        // Every worker is joined and the sampler stopped before any failure is raised: a panic
        // raised first would leave the sampler running and the scope waiting on it.
        let outcomes: Vec<_> = workers.into_iter().map(|w| w.join()).collect();
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        let sampled = sampler.join().unwrap();
        for outcome in outcomes {
            if let Err(panic) = outcome {
                std::panic::resume_unwind(panic);
            }
        }
        sampled
    });
    assert_eq!(
        max_backends, 1,
        "the pool of one opened {max_backends} server connections: {samples:?}"
    );
    assert!(stack.alive());
}

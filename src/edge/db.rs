//! Postgres through Hyperdrive: one connection and ONE transaction per unit of work.
//!
//! ```text
//! BEGIN
//! SELECT set_config('statement_timeout', $1, true), set_config('app.account_id', $2, true)
//! … the work …
//! COMMIT            (ROLLBACK if the work failed)
//! ```
//!
//! The account id is a bound parameter of `set_config(…, true)` (SET LOCAL): under transaction
//! pooling it lives and dies with the transaction, so RLS can never leak between requests.
//! Every statement goes through `query_typed`: no named prepared statements (they break behind
//! transaction pooling) and one protocol per connection. The connection is closed, and its task
//! awaited, before the unit of work returns: a socket left open when a request ends kills
//! `wrangler dev`'s local socket proxy.

use futures_util::FutureExt;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Row};
use worker::postgres_tls::PassthroughTls;
use worker::{Env, SecureTransport, Socket};

use babybook_jobs::Id;

use crate::config::binding;
use crate::error::{ApiError, ErrorCode};

use super::test_controls::{count, Counter};
use super::timeout::within;

/// How long to wait for a connection and the first statement (seed §11: pool acquire 2 s).
const ACQUIRE_TIMEOUT_MS: u32 = 2_000;

/// Whose rows the unit of work may see.
#[derive(Debug, Clone, Copy)]
pub enum Scope {
    Account(Id),
    /// No account: only the SECURITY DEFINER doors (share page, popularity, reaper, sweep) see rows.
    System,
}

/// `statement_timeout` per seed §11: 5 s on hot paths, 10 s otherwise.
#[derive(Debug, Clone, Copy)]
pub enum Budget {
    Hot,
    Standard,
}

impl Budget {
    fn statement_ms(self) -> u32 {
        match self {
            Budget::Hot => 5_000,
            Budget::Standard => 10_000,
        }
    }
}

pub type Param<'a> = (&'a (dyn ToSql + Sync), Type);

/// An open transaction.
pub struct Tx {
    client: Client,
    budget: Budget,
}

impl Tx {
    pub async fn rows(&self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>, ApiError> {
        // The server enforces statement_timeout; this bounds a connection that stops answering.
        match within(self.budget.statement_ms() + 1_000, self.client.query_typed(sql, params)).await {
            Ok(result) => result.map_err(map_error),
            Err(_) => Err(ApiError::new(ErrorCode::DatabaseUnavailable, "statement did not answer in time")),
        }
    }

    pub async fn opt(&self, sql: &str, params: &[Param<'_>]) -> Result<Option<Row>, ApiError> {
        Ok(self.rows(sql, params).await?.into_iter().next())
    }

    pub async fn one(&self, sql: &str, params: &[Param<'_>]) -> Result<Row, ApiError> {
        self.opt(sql, params).await?.ok_or_else(|| ApiError::new(ErrorCode::Internal, "expected a row"))
    }

    pub async fn exec(&self, sql: &str, params: &[Param<'_>]) -> Result<u64, ApiError> {
        Ok(self.rows(sql, params).await?.len() as u64)
    }
}

/// Reads a column without the panic `Row::get` has on a type mismatch.
pub fn col<'a, T: tokio_postgres::types::FromSql<'a>>(row: &'a Row, index: usize) -> Result<T, ApiError> {
    row.try_get(index).map_err(|e| ApiError::new(ErrorCode::Internal, format!("column {index}: {e}")))
}

/// Runs `work` in one transaction under `scope`; commits if it returns `Ok`, rolls back otherwise.
pub async fn transaction<T>(
    env: &Env,
    scope: Scope,
    budget: Budget,
    work: impl AsyncFnOnce(&Tx) -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    let (client, finished) = within(ACQUIRE_TIMEOUT_MS, connect(env))
        .await
        .map_err(|_| ApiError::new(ErrorCode::DatabaseUnavailable, "connect timed out"))??;
    let tx = Tx { client, budget };
    let result = run(&tx, scope, budget, work).await;
    // Closing: drop the client (the connection task sends Terminate and ends), then wait for the
    // task, so no socket outlives the request.
    drop(tx);
    let _ = within(1_000, finished).await;
    result
}

async fn run<T>(tx: &Tx, scope: Scope, budget: Budget, work: impl AsyncFnOnce(&Tx) -> Result<T, ApiError>) -> Result<T, ApiError> {
    let account = match scope {
        Scope::Account(id) => id.to_string(),
        Scope::System => String::new(),
    };
    let statement_ms = budget.statement_ms().to_string();
    let begin = async {
        tx.client.query_typed("BEGIN", &[]).await.map_err(map_error)?;
        tx.client
            .query_typed(
                "SELECT set_config('statement_timeout', $1, true), set_config('app.account_id', $2, true)",
                &[(&statement_ms, Type::TEXT), (&account, Type::TEXT)],
            )
            .await
            .map_err(map_error)
    };
    // Behind a transaction pooler the server connection is assigned at the first statement:
    // this is where a saturated pool shows, so it gets the acquire timeout too.
    within(ACQUIRE_TIMEOUT_MS, begin)
        .await
        .map_err(|_| ApiError::new(ErrorCode::DatabaseUnavailable, "no server connection within the acquire timeout"))??;
    match work(tx).await {
        Ok(value) => {
            within(budget.statement_ms(), tx.client.query_typed("COMMIT", &[]))
                .await
                .map_err(|_| ApiError::new(ErrorCode::DatabaseUnavailable, "commit timed out"))?
                .map_err(map_error)?;
            Ok(value)
        }
        Err(error) => {
            let _ = within(2_000, tx.client.query_typed("ROLLBACK", &[])).await;
            Err(error)
        }
    }
}

type Finished = futures_util::future::LocalBoxFuture<'static, ()>;

async fn connect(env: &Env) -> Result<(Client, Finished), ApiError> {
    let unavailable = |what: &str, e: &dyn std::fmt::Display| ApiError::new(ErrorCode::DatabaseUnavailable, format!("{what}: {e}"));
    let hyperdrive = env.hyperdrive(binding::HYPERDRIVE).map_err(|e| unavailable("hyperdrive binding", &e))?;
    let config: tokio_postgres::Config =
        hyperdrive.connection_string().parse().map_err(|e| unavailable("hyperdrive connection string", &e))?;
    let socket = Socket::builder()
        .secure_transport(SecureTransport::StartTls)
        .connect(hyperdrive.host(), hyperdrive.port())
        .map_err(|e| unavailable("socket", &e))?;
    count(Counter::DbConnections);
    let (client, connection) = config.connect_raw(socket, PassthroughTls).await.map_err(|e| unavailable("connect", &e))?;
    let (sender, receiver) = futures_channel::oneshot::channel::<()>();
    wasm_bindgen_futures::spawn_local(async move {
        // Ends when the client is dropped (clean) or the server goes away (the work sees it).
        let _ = connection.await;
        let _ = sender.send(());
    });
    Ok((client, receiver.map(|_| ()).boxed_local()))
}

/// The SPEC's mapping: unreachable or timed out → 503; constraint violations → 409/422; anything
/// else → 500. The database's message goes to the log detail only.
fn map_error(e: tokio_postgres::Error) -> ApiError {
    let Some(db) = e.as_db_error() else {
        return ApiError::new(ErrorCode::DatabaseUnavailable, format!("connection: {e}"));
    };
    let state = db.code().code();
    let code = match state {
        "23505" => ErrorCode::Conflict,
        "23503" | "23502" | "23514" | "22P02" | "22001" | "22003" | "22007" | "22008" => ErrorCode::ValidationFailed,
        // query_canceled (statement_timeout), too many connections, cannot connect now, admin shutdown
        "57014" | "53300" | "57P03" | "57P01" | "08006" | "08001" | "08004" => ErrorCode::DatabaseUnavailable,
        _ => ErrorCode::Internal,
    };
    let mut error = ApiError::new(code, format!("postgres {state}: {}", db.message()));
    if code == ErrorCode::ValidationFailed {
        error.fields = vec![("body".into(), "refers to data that does not exist or breaks a rule".into())];
    }
    error
}

//! Postgres through Hyperdrive: one connection and ONE transaction per unit of work (a queue
//! batch: one message of a few transactions, [`one_message`]).
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
//! Statements go through `query_typed`: no named prepared statements (they break behind
//! transaction pooling). The share page's read is the one exception: [`call_with_bytes`] sends
//! its whole transaction as one simple-query message, for latency (see there). The connection is
//! closed, and its task awaited, before the unit of work returns: a socket left open when a
//! request ends kills `wrangler dev`'s local socket proxy.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use futures_util::FutureExt;
use tokio_postgres::tls::TlsConnect;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Row, SimpleQueryMessage, SimpleQueryRow};
use wasm_bindgen::JsValue;

use super::context::Io;

use babybook_jobs::Id;

use crate::config::binding;
use crate::error::{ApiError, ErrorCode};

use super::faults::{count, Counter};
use super::socket_stream::SocketStream;
use super::timeout::within;

/// Whose rows the unit of work may see.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'s> {
    /// Work the edge does for an account on its own (queue jobs, cron).
    Account(Id),
    /// A signed-in request: the account of a session that must still be live. The check is the
    /// settings statement itself (`session_account`), so it costs no round trip of its own; an
    /// ended session gets `401` and sees no row.
    Session { sid: &'s str, aid: Id },
    /// No account: only the SECURITY DEFINER doors (share page, popularity, reaper, sweep) see rows.
    System,
}

impl<'s> Scope<'s> {
    /// The scope of a signed-in request.
    pub fn session(session: &'s crate::session::Session) -> Scope<'s> {
        Scope::Session {
            sid: &session.sid,
            aid: session.aid,
        }
    }
}

/// `statement_timeout` per seed §11: 5 s on hot paths, 10 s otherwise.
#[derive(Debug, Clone, Copy)]
pub enum Budget {
    Hot,
    Standard,
}

impl Budget {
    pub fn statement_ms(self) -> u32 {
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
    acquire_ms: u32,
    socket: RawSocket,
}

impl Tx {
    pub async fn rows(&self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>, ApiError> {
        count(Counter::DbRoundTrips);
        // The server enforces statement_timeout; this bounds a connection that stops answering.
        match within(self.budget.statement_ms() + 1_000, self.client.query_typed(sql, params)).await {
            Ok(result) => result.map_err(|e| self.failed(e)),
            Err(_) => Err(ApiError::new(
                ErrorCode::DatabaseUnavailable,
                "statement did not answer in time",
            )),
        }
    }

    /// Maps a driver error, first noting a server that is closing the connection: a FATAL error
    /// (PgBouncer's "server conn crashed?", an administrator's shutdown) is followed by the
    /// server's close, and nothing more may be written to it — no ROLLBACK, no Terminate.
    fn failed(&self, e: tokio_postgres::Error) -> ApiError {
        let fatal = e
            .as_db_error()
            .is_some_and(|db| matches!(db.severity(), "FATAL" | "PANIC"));
        if fatal || e.is_closed() {
            self.socket.server_gone.set(true);
        }
        map_error(e)
    }

    pub async fn opt(&self, sql: &str, params: &[Param<'_>]) -> Result<Option<Row>, ApiError> {
        Ok(self.rows(sql, params).await?.into_iter().next())
    }

    pub async fn one(&self, sql: &str, params: &[Param<'_>]) -> Result<Row, ApiError> {
        self.opt(sql, params)
            .await?
            .ok_or_else(|| ApiError::new(ErrorCode::Internal, "expected a row"))
    }

    pub async fn exec(&self, sql: &str, params: &[Param<'_>]) -> Result<u64, ApiError> {
        Ok(self.rows(sql, params).await?.len() as u64)
    }
}

/// Reads a column without the panic `Row::get` has on a type mismatch.
pub fn col<'a, T: tokio_postgres::types::FromSql<'a>>(row: &'a Row, index: usize) -> Result<T, ApiError> {
    row.try_get(index)
        .map_err(|e| ApiError::new(ErrorCode::Internal, format!("column {index}: {e}")))
}

/// Runs `work` in one transaction under `scope`; commits if it returns `Ok`, rolls back otherwise.
pub async fn transaction<T>(
    io: &Io,
    scope: Scope<'_>,
    budget: Budget,
    work: impl AsyncFnOnce(&Tx) -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    with_connection(io, budget, async |tx| run(tx, scope, budget, work).await).await
}

/// Whether a signed-in caller's session is still live, in one statement outside any
/// transaction: for the proxy, whose requests make no database round trip of their own.
pub async fn check_session(io: &Io, session: &crate::session::Session) -> Result<(), ApiError> {
    let aid = session.aid.to_string();
    with_connection(io, Budget::Hot, async |tx| {
        let params = [(&session.sid as &(dyn ToSql + Sync), Type::TEXT), (&aid, Type::TEXT)];
        count(Counter::DbRoundTrips);
        match within(
            tx.acquire_ms + Budget::Hot.statement_ms(),
            tx.client.query_typed("SELECT session_account($1, $2)", &params),
        )
        .await
        {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(ended_session(&e).unwrap_or_else(|| tx.failed(e))),
            Err(_) => Err(ApiError::new(
                ErrorCode::DatabaseUnavailable,
                "session check did not answer in time",
            )),
        }
    })
    .await
}

/// Calls `function(argument)` in its own system-scoped transaction and returns the single text
/// column it answers (`None` for SQL NULL). For the share page's read, the hottest query there is.
///
/// The whole transaction goes out as ONE simple-query message:
///
/// ```text
/// BEGIN; SELECT set_config('statement_timeout', '5000', true), set_config('app.account_id', '', true);
/// SELECT public_share_page('\x…'::bytea); COMMIT
/// ```
///
/// One message is one Sync, so the server flushes one reply. Four pipelined extended-protocol
/// statements cost four Syncs and four small replies, and a TCP hop that forwards them as
/// separate writes (wrangler's local Hyperdrive proxy does) meets Nagle's algorithm and the
/// peer's 40 ms delayed ACK: the page waited ~45 ms for a 3 ms query. The simple protocol has no
/// bound parameters, so nothing from the request is ever written into the text: the argument is
/// bytes (a token hash) written as hex digits, the function name is a constant and the timeout a
/// number.
pub async fn call_with_bytes(
    io: &Io,
    budget: Budget,
    function: &'static str,
    argument: &[u8],
) -> Result<Option<String>, ApiError> {
    debug_assert!(function.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
    let call = format!(
        "SELECT {function}('\\x{hex}'::bytea)",
        hex = crate::hex::encode(argument)
    );
    let sql = crate::sql_text::transaction(budget.statement_ms(), None, &[call]);
    // Rows in order: the settings row, then the call's row.
    match one_message(io, budget, &sql).await?.into_iter().nth(1) {
        Some(row) => row
            .try_get(0)
            .map(|v| v.map(str::to_owned))
            .map_err(|e| ApiError::new(ErrorCode::Internal, format!("{function}: {e}"))),
        None => Err(ApiError::new(
            ErrorCode::Internal,
            format!("{function} returned no row"),
        )),
    }
}

/// A signed-in read in ONE round trip: the session check, the account setting and `read` (one
/// statement with no parameters; values as `crate::sql_text` writes them) as one simple-query
/// message. The first column of `read`'s first row, as text (`None`: no row). An ended session
/// is `401`, as on the extended-protocol path.
pub async fn session_read(
    io: &Io,
    session: &crate::session::Session,
    budget: Budget,
    read: String,
) -> Result<Option<String>, ApiError> {
    let sql = crate::sql_text::session_transaction(budget.statement_ms(), &session.sid, session.aid, &[read]);
    // Rows in order: the settings row, then the read's.
    Ok(one_message(io, budget, &sql)
        .await?
        .into_iter()
        .nth(1)
        .and_then(|row| row.try_get(0).ok().flatten().map(str::to_owned)))
}

/// Sends `sql` (built by `crate::sql_text`: whole transactions, values as hex) as ONE
/// simple-query message on a connection of its own, and returns every row it answered, in order.
/// One message is one Sync and one reply, whatever the number of statements: a queue batch claims
/// or records all its rows, one transaction per account, in one round trip.
pub async fn one_message(io: &Io, budget: Budget, sql: &str) -> Result<Vec<SimpleQueryRow>, ApiError> {
    use futures_util::StreamExt;
    with_connection(io, budget, async |tx| {
        count(Counter::DbRoundTrips);
        let fail = |e: tokio_postgres::Error| ended_session(&e).unwrap_or_else(|| tx.failed(e));
        let unavailable = |what: &str| ApiError::new(ErrorCode::DatabaseUnavailable, what.to_owned());
        // The server answers a multi-statement message only when all of it has run, so the
        // opening `BEGIN` goes as a message of its own, pipelined with the rest (sent at once, no
        // wait: still one round trip). Its answer comes as soon as a server connection takes it:
        // a pool with no server to give is `503` within the acquire budget, and the work then has
        // the statement budget, as on the other paths.
        let (opening, work) = match sql.strip_prefix("BEGIN; ") {
            Some(work) => (Some(tx.client.simple_query_raw("BEGIN").await.map_err(fail)?), work),
            None => (None, sql),
        };
        let mut rest = std::pin::pin!(tx.client.simple_query_raw(work).await.map_err(fail)?);
        if let Some(opening) = opening {
            let mut opening = std::pin::pin!(opening);
            let begun = within(tx.acquire_ms, async {
                while let Some(message) = opening.next().await {
                    message?;
                }
                Ok::<(), tokio_postgres::Error>(())
            })
            .await
            .map_err(|_| unavailable("no server connection within the acquire budget"))?;
            begun.map_err(fail)?;
        }
        let mut rows = Vec::new();
        let answered = within(tx.acquire_ms + budget.statement_ms(), async {
            while let Some(message) = rest.next().await {
                if let SimpleQueryMessage::Row(row) = message? {
                    rows.push(row);
                }
            }
            Ok::<(), tokio_postgres::Error>(())
        })
        .await;
        match answered {
            Ok(Ok(())) => Ok(rows),
            Ok(Err(e)) => Err(fail(e)),
            Err(_) => Err(unavailable("no answer within the statement budget")),
        }
    })
    .await
}

/// Sends `sql` (a constant) as one simple-query message on a connection of its own, outside
/// any transaction, and reads the answer: the benchmark's floor under a share page miss
/// (`/__test/floor`).
pub async fn bare_query(io: &Io, sql: &'static str) -> Result<(), ApiError> {
    with_connection(io, Budget::Hot, async |tx| {
        count(Counter::DbRoundTrips);
        match within(tx.acquire_ms + Budget::Hot.statement_ms(), tx.client.simple_query(sql)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(tx.failed(e)),
            Err(_) => Err(ApiError::new(ErrorCode::DatabaseUnavailable, "no answer in time")),
        }
    })
    .await
}

/// Opens a connection, lends it to `work`, and makes sure it is closed without the socket ever
/// outliving the invocation: the client is dropped (it sends Terminate; the server closes) and
/// the end of the connection is awaited. A connection whose statement is stuck is left to end
/// by itself in `waitUntil`, and closed by force only after
/// [`LINGER_LIMIT_MS`]: closing under the server's feet would leave its late answer with nowhere
/// to go, which `wrangler dev`'s local Hyperdrive proxy does not survive.
async fn with_connection<T>(
    io: &Io,
    budget: Budget,
    work: impl AsyncFnOnce(&Tx) -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    let socket = RawSocket::default();
    let connected = within(io.acquire_ms, connect(io, socket.clone())).await;
    let (client, finished) = match connected {
        Ok(Ok(pair)) => pair,
        Ok(Err(e)) => {
            // A server that said FATAL has nothing more to send: close now. Any other refused
            // handshake is followed by the server closing its side; closing ours first races its
            // last bytes, so let it finish.
            if socket.server_gone.get() {
                socket.close();
            } else {
                socket.linger(io);
            }
            return Err(e);
        }
        Err(_) => {
            // The handshake is still in flight: let it end on its own, as for a stuck statement.
            socket.linger(io);
            return Err(ApiError::new(ErrorCode::DatabaseUnavailable, "connect timed out"));
        }
    };
    let tx = Tx {
        client,
        budget,
        acquire_ms: io.acquire_ms,
        socket: socket.clone(),
    };
    let result = work(&tx).await;
    drop(tx);
    if socket.server_gone.get() {
        // The server closed or said FATAL: nothing more will come, and nothing more may be sent.
        // Close at once (production Hyperdrive, and the local database guard, wait for it).
        socket.close();
        return result;
    }
    // Wait here, before the answer goes out, for the server to close after Terminate: sockets
    // still open when a response completes get ended by the runtime, and data the server sends
    // after that is what the local proxy cannot take. Only a connection that does not close
    // quickly (a stuck statement) is left to linger in `waitUntil`.
    let mut finished = finished;
    if within(if result.is_ok() { 1_000 } else { 50 }, &mut finished)
        .await
        .is_err()
    {
        io.lifeline.wait_until(async move {
            if within(LINGER_LIMIT_MS, finished).await.is_err() {
                socket.close();
            }
        });
    }
    result
}

const SETTINGS_SQL: &str = "SELECT set_config('statement_timeout', $1, true), set_config('app.account_id', $2, true)";
/// The same, for a signed-in request: the account is set only if the session is live
/// (migrations/V11), else SQLSTATE 28000.
const SESSION_SETTINGS_SQL: &str =
    "SELECT set_config('statement_timeout', $1, true), set_config('app.account_id', session_account($3, $2), true)";

/// What `session_account` raises for a session that has ended (SQLSTATE 28000).
fn ended_session(e: &tokio_postgres::Error) -> Option<ApiError> {
    e.code()
        .is_some_and(|c| c.code() == "28000")
        .then(|| ApiError::new(ErrorCode::Unauthorized, "session ended"))
}

/// The account setting of `scope`, and the session it must be checked against, if any.
fn settings_of<'s>(scope: Scope<'s>) -> (String, Option<&'s str>) {
    match scope {
        Scope::Account(id) => (id.to_string(), None),
        Scope::Session { sid, aid } => (aid.to_string(), Some(sid)),
        Scope::System => (String::new(), None),
    }
}

/// How long a stuck connection may linger after its invocation answered.
const LINGER_LIMIT_MS: u32 = 25_000;

/// The JS socket under a connection (after a TLS upgrade, the upgraded one), kept so the unit of
/// work can close it by force: `worker::Socket` has no `Drop` that closes.
#[derive(Clone, Default)]
struct RawSocket {
    js: Rc<RefCell<Option<worker::worker_sys::Socket>>>,
    /// Set once the server has closed, or said it will (a FATAL error): from then on the
    /// connection's writes are dropped, see [`ServerCloses`].
    server_gone: Rc<Cell<bool>>,
}

/// A Worker socket that never half-closes: tokio-postgres sends Terminate and then shuts down its
/// write side, and a server still answering after that FIN (PgBouncer reporting a crashed server
/// connection, say) makes wrangler's local Hyperdrive proxy write to an ended socket and exit.
/// After Terminate the server closes the connection itself; that close ends ours.
///
/// For the same reason it never writes to a server that has gone: once the server's end of the
/// stream has been read, or it reported a FATAL error, writes (a ROLLBACK, the Terminate) are
/// dropped instead of sent into a socket the proxy has already ended.
struct ServerCloses {
    stream: SocketStream,
    server_gone: Rc<Cell<bool>>,
}

impl tokio::io::AsyncRead for ServerCloses {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = std::pin::Pin::new(&mut self.stream).poll_read(cx, buf);
        if matches!(polled, std::task::Poll::Ready(Ok(()))) && buf.filled().len() == before {
            self.server_gone.set(true);
        }
        polled
    }
}

impl tokio::io::AsyncWrite for ServerCloses {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        if self.server_gone.get() {
            return std::task::Poll::Ready(Ok(buf.len()));
        }
        std::pin::Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if self.server_gone.get() {
            return std::task::Poll::Ready(Ok(()));
        }
        std::pin::Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

impl tokio_postgres::tls::TlsStream for ServerCloses {
    fn channel_binding(&self) -> tokio_postgres::tls::ChannelBinding {
        tokio_postgres::tls::ChannelBinding::none()
    }
}

impl RawSocket {
    fn close(&self) {
        if let Some(socket) = self.js.borrow_mut().take() {
            let _ = socket.close();
        }
    }

    /// Keeps the invocation alive until the server closes the socket, closing it ourselves only
    /// after [`LINGER_LIMIT_MS`].
    fn linger(&self, io: &Io) {
        let closed = self.js.borrow().as_ref().and_then(|s| s.closed().ok());
        let socket = self.clone();
        io.lifeline.wait_until(async move {
            let server_closed = match closed {
                Some(promise) => within(LINGER_LIMIT_MS, wasm_bindgen_futures::JsFuture::from(promise))
                    .await
                    .is_ok(),
                None => false,
            };
            if !server_closed {
                socket.close();
            }
        });
    }
}

/// TLS for tokio-postgres over a Worker socket (StartTLS, as Hyperdrive expects), remembering
/// the upgraded socket for [`RawSocket::close`].
struct TrackedTls(RawSocket);

#[derive(Debug)]
struct TlsUpgradeFailed(String);

impl std::fmt::Display for TlsUpgradeFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TLS upgrade failed: {}", self.0)
    }
}

impl std::error::Error for TlsUpgradeFailed {}

impl TlsConnect<ServerCloses> for TrackedTls {
    type Stream = ServerCloses;
    type Error = TlsUpgradeFailed;
    type Future = std::future::Ready<Result<ServerCloses, TlsUpgradeFailed>>;

    fn connect(self, plain: ServerCloses) -> Self::Future {
        // The upgrade takes over the plain socket, whose streams must be unlocked first.
        plain.stream.release();
        let upgraded = match self.0.js.borrow().as_ref() {
            Some(raw) => raw.start_tls().map_err(|e| TlsUpgradeFailed(format!("{e:?}"))),
            None => Err(TlsUpgradeFailed("socket already closed".into())),
        };
        let upgraded = upgraded.and_then(|raw| {
            *self.0.js.borrow_mut() = Some(raw.clone());
            let stream = SocketStream::new(&raw).map_err(|e| TlsUpgradeFailed(format!("{e:?}")))?;
            Ok(ServerCloses {
                stream,
                server_gone: self.0.server_gone.clone(),
            })
        });
        std::future::ready(upgraded)
    }
}

async fn run<T>(
    tx: &Tx,
    scope: Scope<'_>,
    budget: Budget,
    work: impl AsyncFnOnce(&Tx) -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    let (account, session) = settings_of(scope);
    let statement_ms = budget.statement_ms().to_string();
    // BEGIN and the settings go out together (pipelined: one round trip, not two).
    count(Counter::DbRoundTrips);
    let begin = async {
        let sid = session.unwrap_or_default();
        let params = [
            (&statement_ms as &(dyn ToSql + Sync), Type::TEXT),
            (&account, Type::TEXT),
            (&sid, Type::TEXT),
        ];
        let (sql, params) = match session {
            Some(_) => (SESSION_SETTINGS_SQL, &params[..]),
            None => (SETTINGS_SQL, &params[..2]),
        };
        futures_util::future::try_join(tx.client.query_typed("BEGIN", &[]), tx.client.query_typed(sql, params))
            .await
            .map_err(|e| match ended_session(&e).filter(|_| session.is_some()) {
                Some(ended) => ended,
                None => tx.failed(e),
            })
    };
    // Behind a transaction pooler the server connection is assigned at the first statement:
    // this is where a saturated pool shows, so it gets the acquire timeout too.
    within(tx.acquire_ms, begin).await.map_err(|_| {
        ApiError::new(
            ErrorCode::DatabaseUnavailable,
            "no server connection within the acquire timeout",
        )
    })??;
    match work(tx).await {
        Ok(value) => {
            count(Counter::DbRoundTrips);
            within(budget.statement_ms(), tx.client.query_typed("COMMIT", &[]))
                .await
                .map_err(|_| ApiError::new(ErrorCode::DatabaseUnavailable, "commit timed out"))?
                .map_err(|e| tx.failed(e))?;
            Ok(value)
        }
        Err(error) => {
            // Best effort: if it does not answer quickly, dropping the client (Terminate) aborts the
            // transaction on the server anyway.
            if !tx.socket.server_gone.get() {
                count(Counter::DbRoundTrips);
                let _ = within(200, tx.client.query_typed("ROLLBACK", &[])).await;
            }
            Err(error)
        }
    }
}

type Finished = futures_util::future::LocalBoxFuture<'static, ()>;

async fn connect(io: &Io, raw: RawSocket) -> Result<(Client, Finished), ApiError> {
    let unavailable =
        |what: &str, e: &dyn std::fmt::Display| ApiError::new(ErrorCode::DatabaseUnavailable, format!("{what}: {e}"));
    let hyperdrive = io
        .hyperdrive(binding::HYPERDRIVE)
        .map_err(|e| unavailable("hyperdrive binding", &e))?;
    let config: tokio_postgres::Config = hyperdrive
        .connection_string()
        .parse()
        .map_err(|e| unavailable("hyperdrive connection string", &e))?;
    let address = js_sys::Object::new();
    let _ = js_sys::Reflect::set(&address, &"hostname".into(), &hyperdrive.host().into());
    let _ = js_sys::Reflect::set(&address, &"port".into(), &JsValue::from(hyperdrive.port()));
    let options = js_sys::Object::new();
    let _ = js_sys::Reflect::set(&options, &"secureTransport".into(), &"starttls".into());
    let _ = js_sys::Reflect::set(&options, &"allowHalfOpen".into(), &false.into());
    let socket = worker::worker_sys::connect(address.into(), options.into())
        .map_err(|e| unavailable("socket", &format!("{e:?}")))?;
    *raw.js.borrow_mut() = Some(socket.clone());
    let stream = SocketStream::new(&socket).map_err(|e| unavailable("socket streams", &format!("{e:?}")))?;
    let server_gone = raw.server_gone.clone();
    count(Counter::DbConnections);
    let (client, connection) = config
        .connect_raw(
            ServerCloses {
                stream,
                server_gone: raw.server_gone.clone(),
            },
            TrackedTls(raw),
        )
        .await
        .map_err(|e| {
            if e.is_closed()
                || e.as_db_error()
                    .is_some_and(|db| matches!(db.severity(), "FATAL" | "PANIC"))
            {
                server_gone.set(true);
            }
            unavailable("connect", &e)
        })?;
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
        // Connection exceptions (08, also what PgBouncer says when it cannot reach the server),
        // insufficient resources (53: too many connections) and operator intervention (57:
        // statement timeout, shutdown): the database is unavailable, not the request wrong.
        _ if state.starts_with("08") || state.starts_with("53") || state.starts_with("57") => {
            ErrorCode::DatabaseUnavailable
        }
        _ => ErrorCode::Internal,
    };
    let mut error = ApiError::new(code, format!("postgres {state}: {}", db.message()));
    if code == ErrorCode::ValidationFailed {
        error.fields = vec![(
            "body".into(),
            "refers to data that does not exist or breaks a rule".into(),
        )];
    }
    error
}

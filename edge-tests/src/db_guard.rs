//! A polite hop between `wrangler dev`'s local Hyperdrive proxy and PgBouncer.
//!
//! Production Hyperdrive speaks Postgres to the Worker itself: when the database or the pooler
//! dies, the Worker gets an error message and an orderly close. Locally the Worker's sockets go
//! through Miniflare's Hyperdrive proxy, two `net.Socket`s piped into each other with no error
//! handlers, so one reset (`read ECONNRESET`) or one write after the far side's FIN ("This socket
//! has been ended by the other party") is an uncaught exception that ends `wrangler dev`. A
//! database killed under load produces both. This hop sits where the proxy connects and gives it
//! what production gives the Worker:
//!
//! - it reads everything the proxy sends, always, so closing never resets the connection;
//! - it forwards the server's bytes in whole protocol messages only;
//! - when the server side fails (reset, close without a FATAL, refused connect), it sends one
//!   FATAL `ErrorResponse` (SQLSTATE 08006) in place of the lost stream and then **waits for the
//!   proxy to close first**; only after a `Terminate` does a server close pass straight through,
//!   since that close is what the client asked for;
//! - when the proxy closes first, the server's remaining bytes are dropped, never written into a
//!   socket the proxy has ended.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::standins::runtime;

/// How long the hop waits for the client to close after the server failed, before it closes
/// anyway (the Worker closes at once on a FATAL error, and lingers 25 s at most otherwise).
const CLIENT_CLOSE_GRACE: Duration = Duration::from_secs(30);

pub struct DbGuard {
    pub port: u16,
    task: Option<JoinHandle<()>>,
}

impl DbGuard {
    /// Listens on a free loopback port and relays every connection to `upstream_port`.
    pub fn start(upstream_port: u16) -> DbGuard {
        let listener = runtime()
            .block_on(TcpListener::bind(("127.0.0.1", 0)))
            .expect("bind the database guard");
        let port = listener.local_addr().expect("guard address").port();
        let task = runtime().spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(serve(client, upstream_port));
            }
        });
        DbGuard { port, task: Some(task) }
    }

    pub fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl Drop for DbGuard {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn serve(client: TcpStream, upstream_port: u16) {
    let _ = client.set_nodelay(true);
    let (client_in, client_out) = client.into_split();
    let upstream = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(("127.0.0.1", upstream_port))).await;
    let mut wire = Wire::default();
    match upstream {
        Ok(Ok(server)) => {
            let _ = server.set_nodelay(true);
            relay(client_in, client_out, server, wire).await;
        }
        _ => {
            wire.withheld_fatal = Some(fatal_message("the connection pooler is unreachable"));
            server_lost(client_in, client_out, wire, Vec::new()).await;
        }
    }
}

async fn relay(mut client_in: OwnedReadHalf, mut client_out: OwnedWriteHalf, server: TcpStream, mut wire: Wire) {
    let (mut server_in, mut server_out) = server.into_split();
    let (mut from_client, mut from_server) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
    let mut unsent = Vec::new();
    loop {
        tokio::select! {
            read = client_in.read(&mut from_client) => match read {
                Ok(0) | Err(_) => {
                    // The client closed first: end the server side, and send the client nothing more.
                    let _ = server_out.shutdown().await;
                    drop((server_in, server_out));
                    let _ = client_out.shutdown().await;
                    return;
                }
                Ok(n) => {
                    wire.client_bytes(&from_client[..n]);
                    if server_out.write_all(&from_client[..n]).await.is_err() {
                        // The server is gone: the client's request was not delivered.
                        break;
                    }
                }
            },
            read = server_in.read(&mut from_server) => match read {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let whole = wire.server_bytes(&from_server[..n]);
                    if wire.withheld_fatal.is_some() {
                        // The server said FATAL to a client that asked nothing: it is gone.
                        unsent = whole;
                        break;
                    }
                    if !whole.is_empty() && client_out.write_all(&whole).await.is_err() {
                        // The client is gone under us: nothing to be polite to.
                        return;
                    }
                }
            },
        }
    }
    drop((server_in, server_out));
    server_lost(client_in, client_out, wire, unsent).await;
}

/// The server side has ended. A client that waits for an answer gets one FATAL error (the
/// server's own, or ours) and is then waited for to close. An idle client is told nothing until it
/// asks something: it may be about to close (it sent, or is sending, Terminate, and the runtime
/// ends its socket when the invocation ends), and bytes arriving after that close are exactly what
/// the local proxy cannot take.
async fn server_lost(mut client_in: OwnedReadHalf, mut client_out: OwnedWriteHalf, mut wire: Wire, unsent: Vec<u8>) {
    if wire.raw {
        // Nothing we can frame (TLS): pass the close on.
        let _ = client_out.shutdown().await;
        drain(&mut client_in, Duration::from_secs(5)).await;
        return;
    }
    if !unsent.is_empty() && client_out.write_all(&unsent).await.is_err() {
        return;
    }
    let deadline = tokio::time::Instant::now() + CLIENT_CLOSE_GRACE;
    let mut sink = vec![0u8; 16 * 1024];
    loop {
        if wire.client_terminated {
            // The close the client asked for.
            break;
        }
        if wire.awaiting > 0 && !wire.last_was_fatal {
            let fatal = wire
                .withheld_fatal
                .take()
                .unwrap_or_else(|| fatal_message("the database connection was lost"));
            if client_out.write_all(&fatal).await.is_err() {
                return;
            }
            wire.last_was_fatal = true;
        }
        match tokio::time::timeout_at(deadline, client_in.read(&mut sink)).await {
            Ok(Ok(n)) if n > 0 => wire.client_bytes(&sink[..n]),
            _ => break,
        }
    }
    let _ = client_out.shutdown().await;
    drain(&mut client_in, Duration::from_secs(5)).await;
}

/// Reads and drops what the client sends until it closes or `limit` passes.
async fn drain(client_in: &mut OwnedReadHalf, limit: Duration) {
    let mut sink = vec![0u8; 16 * 1024];
    let _ = tokio::time::timeout(limit, async {
        while matches!(client_in.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
}

/// A FATAL `ErrorResponse` with SQLSTATE 08006 (connection failure).
fn fatal_message(text: &str) -> Vec<u8> {
    let mut fields = Vec::new();
    for (code, value) in [
        (b'S', "FATAL"),
        (b'V', "FATAL"),
        (b'C', "08006"),
        (b'M', &format!("{text} (local database guard)")),
    ] {
        fields.push(code);
        fields.extend_from_slice(value.as_bytes());
        fields.push(0);
    }
    fields.push(0);
    let mut message = vec![b'E'];
    message.extend_from_slice(&(fields.len() as u32 + 4).to_be_bytes());
    message.extend_from_slice(&fields);
    message
}

/// What the hop knows of the Postgres protocol on one connection: enough to forward the server's
/// messages whole, to see a FATAL error go by, and to see the client's `Terminate`.
#[derive(Default)]
struct Wire {
    /// Server bytes not yet forming a whole message.
    server_partial: Vec<u8>,
    /// The last message forwarded was a FATAL error.
    last_was_fatal: bool,
    /// Requests the client has sent that the server has not yet finished with `ReadyForQuery`
    /// (the startup message, simple queries, Syncs).
    awaiting: u32,
    /// A FATAL error the server sent while the client asked nothing, kept for its next request.
    withheld_fatal: Option<Vec<u8>>,
    /// One-byte answers the server owes (to SSLRequest / GSSENCRequest).
    single_bytes_owed: u32,
    /// The client's stream: in the untyped startup phase, the header so far, bytes to skip.
    client_started: bool,
    client_header: Vec<u8>,
    client_skip: usize,
    client_terminated: bool,
    /// Something we cannot frame (TLS, a malformed length): plain relay from then on.
    raw: bool,
}

const SSL_REQUEST: u32 = 80_877_103;
const GSSENC_REQUEST: u32 = 80_877_104;

fn be32(bytes: &[u8]) -> u32 {
    u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

impl Wire {
    fn client_bytes(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() && !self.raw {
            if self.client_skip > 0 {
                let n = self.client_skip.min(bytes.len());
                self.client_skip -= n;
                bytes = &bytes[n..];
                continue;
            }
            let need = if self.client_started { 5 } else { 8 };
            let take = (need - self.client_header.len()).min(bytes.len());
            self.client_header.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.client_header.len() < need {
                return;
            }
            let header = std::mem::take(&mut self.client_header);
            if self.client_started {
                let len = be32(&header[1..5]) as usize;
                if len < 4 {
                    self.raw = true;
                    return;
                }
                match header[0] {
                    b'X' => self.client_terminated = true,
                    b'Q' | b'S' | b'F' => self.awaiting += 1,
                    _ => {}
                }
                self.client_skip = len - 4;
            } else {
                let (len, code) = (be32(&header[0..4]) as usize, be32(&header[4..8]));
                if len < 8 {
                    self.raw = true;
                    return;
                }
                if code == SSL_REQUEST || code == GSSENC_REQUEST {
                    self.single_bytes_owed += 1;
                } else {
                    self.client_started = true;
                    self.awaiting += 1;
                }
                self.client_skip = len - 8;
            }
        }
    }

    /// Takes server bytes and returns those that complete whole messages.
    fn server_bytes(&mut self, bytes: &[u8]) -> Vec<u8> {
        if self.raw {
            return bytes.to_vec();
        }
        self.server_partial.extend_from_slice(bytes);
        let buf = &self.server_partial;
        let mut end = 0;
        while self.single_bytes_owed > 0 && end < buf.len() {
            self.single_bytes_owed -= 1;
            if buf[end] != b'N' {
                // TLS or GSS encryption follows: nothing to frame.
                self.raw = true;
                return std::mem::take(&mut self.server_partial);
            }
            end += 1;
        }
        while buf.len() - end >= 5 {
            let len = be32(&buf[end + 1..end + 5]) as usize;
            if len < 4 {
                self.raw = true;
                return std::mem::take(&mut self.server_partial);
            }
            if buf.len() - end < 1 + len {
                break;
            }
            let message = &buf[end..end + 1 + len];
            let fatal = message[0] == b'E' && is_fatal(&message[5..]);
            if fatal && self.awaiting == 0 {
                self.withheld_fatal = Some(message.to_vec());
                let forward = buf[..end].to_vec();
                self.server_partial.clear();
                return forward;
            }
            if message[0] == b'Z' {
                self.awaiting = self.awaiting.saturating_sub(1);
            }
            self.last_was_fatal = fatal;
            end += 1 + len;
        }
        self.server_partial.drain(..end).collect()
    }
}

/// Whether an `ErrorResponse` body says FATAL or PANIC.
fn is_fatal(mut fields: &[u8]) -> bool {
    while let Some((&code, rest)) = fields.split_first() {
        if code == 0 {
            break;
        }
        let Some(nul) = rest.iter().position(|&b| b == 0) else {
            break;
        };
        let value = &rest[..nul];
        if (code == b'S' || code == b'V') && (value == b"FATAL" || value == b"PANIC") {
            return true;
        }
        fields = &rest[nul + 1..];
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![kind];
        m.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
        m.extend_from_slice(body);
        m
    }

    #[test]
    fn server_messages_are_forwarded_whole_whatever_the_reads() {
        let stream = [message(b'R', &[0, 0, 0, 0]), message(b'Z', b"I")].concat();
        for cut in 0..stream.len() {
            let mut wire = Wire {
                client_started: true,
                ..Wire::default()
            };
            let first = wire.server_bytes(&stream[..cut]);
            let boundary = if cut >= 9 { 9 } else { 0 };
            assert_eq!(first.len(), boundary, "cut at {cut}");
            let rest = wire.server_bytes(&stream[cut..]);
            assert_eq!([first, rest].concat(), stream);
        }
    }

    #[test]
    fn a_fatal_error_answering_a_request_is_forwarded_and_one_to_an_idle_client_withheld() {
        let mut wire = Wire {
            client_started: true,
            ..Wire::default()
        };
        wire.client_bytes(&message(b'Q', b"SELECT 1\0"));
        let error = message(b'E', b"SERROR\0C42601\0Mbad\0\0");
        let answer = [error.clone(), message(b'Z', b"I")].concat();
        assert_eq!(wire.server_bytes(&answer), answer);
        assert!(!wire.last_was_fatal);
        assert_eq!(wire.awaiting, 0, "ReadyForQuery answered the query");

        // Idle: the server's FATAL is kept back, with what came before it forwarded.
        let notice = message(b'N', b"SNOTICE\0Mhi\0\0");
        let stream = [notice.clone(), fatal_message("gone")].concat();
        assert_eq!(wire.server_bytes(&stream), notice);
        assert_eq!(wire.withheld_fatal, Some(fatal_message("gone")));

        // Asked something, the FATAL goes through as it is.
        let mut asked = Wire {
            client_started: true,
            ..Wire::default()
        };
        asked.client_bytes(&message(b'S', b""));
        assert_eq!(asked.server_bytes(&fatal_message("gone")), fatal_message("gone"));
        assert!(asked.last_was_fatal && asked.withheld_fatal.is_none());
    }

    #[test]
    fn the_clients_terminate_is_seen_after_startup_in_any_split() {
        let startup = {
            let body = [&196_608u32.to_be_bytes()[..], b"user\0app_rw\0\0"].concat();
            [&(body.len() as u32 + 4).to_be_bytes()[..], &body].concat()
        };
        let stream = [startup, message(b'Q', b"SELECT 1\0"), message(b'X', b"")].concat();
        for cut in 0..stream.len() {
            let mut wire = Wire::default();
            wire.client_bytes(&stream[..cut]);
            assert!(!wire.client_terminated || cut == stream.len());
            wire.client_bytes(&stream[cut..]);
            assert!(wire.client_terminated, "cut at {cut}");
            assert!(!wire.raw);
        }
    }

    #[test]
    fn an_ssl_request_answered_no_keeps_framing() {
        let mut wire = Wire::default();
        wire.client_bytes(&[0, 0, 0, 8, 4, 210, 22, 47]);
        let answer = [&b"N"[..], &message(b'R', &[0, 0, 0, 0])].concat();
        assert_eq!(wire.server_bytes(&answer), answer);
        assert!(!wire.raw);
    }
}

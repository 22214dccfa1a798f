//! tokio's `AsyncRead` and `AsyncWrite` over a Worker TCP socket, holding one reader and one
//! writer for the connection's life. (`worker::Socket` takes a stream's lock before every read and
//! every write and releases it after: `getReader`, `getWriter` and `releaseLock` were 12 % of a
//! share page miss's CPU in a profile, where a Postgres exchange is a few dozen reads and writes.)
//!
//! Writes keep `worker::Socket`'s contract: a write is done when the runtime has taken its chunk,
//! and a `Pending` write is polled again with the same bytes, as tokio's codecs do.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::FutureExt;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use worker::web_sys::{ReadableStreamDefaultReader, WritableStreamDefaultWriter};

pub struct SocketStream {
    reader: ReadableStreamDefaultReader,
    writer: WritableStreamDefaultWriter,
    /// The read under way, if any.
    reading: Option<JsFuture>,
    /// What a read brought beyond what its caller had room for, and how much of it is consumed.
    leftover: Vec<u8>,
    consumed: usize,
    /// The write under way and its length.
    writing: Option<(JsFuture, usize)>,
}

impl SocketStream {
    /// Locks the socket's two streams for this connection.
    pub fn new(socket: &worker::worker_sys::Socket) -> Result<SocketStream, JsValue> {
        let reader = socket
            .readable()?
            .get_reader()
            .dyn_into::<ReadableStreamDefaultReader>()?;
        let writer = socket.writable()?.get_writer()?;
        Ok(SocketStream {
            reader,
            writer,
            reading: None,
            leftover: Vec::new(),
            consumed: 0,
            writing: None,
        })
    }

    /// Unlocks the streams (a TLS upgrade takes over a socket whose streams are free).
    pub fn release(self) {
        self.reader.release_lock();
        self.writer.release_lock();
    }
}

fn io_error(value: JsValue) -> std::io::Error {
    let text = value
        .dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| value.as_string())
        .unwrap_or_else(|| format!("{value:?}"));
    std::io::Error::other(text)
}

impl tokio::io::AsyncRead for SocketStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.consumed < this.leftover.len() {
                let n = buf.remaining().min(this.leftover.len() - this.consumed);
                buf.put_slice(&this.leftover[this.consumed..this.consumed + n]);
                this.consumed += n;
                return Poll::Ready(Ok(()));
            }
            let reading = this.reading.get_or_insert_with(|| JsFuture::from(this.reader.read()));
            let result = match reading.poll_unpin(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(result) => result,
            };
            this.reading = None;
            let result = result.map_err(io_error)?;
            let done = js_sys::Reflect::get(&result, &"done".into()).map_err(io_error)?;
            if done.is_truthy() {
                // The server's end: a read that fills nothing.
                return Poll::Ready(Ok(()));
            }
            let chunk: js_sys::Uint8Array = js_sys::Reflect::get(&result, &"value".into())
                .map_err(io_error)?
                .unchecked_into();
            let len = chunk.length() as usize;
            if len <= buf.remaining() {
                if len == 0 {
                    continue;
                }
                chunk.copy_to(buf.initialize_unfilled_to(len));
                buf.advance(len);
                return Poll::Ready(Ok(()));
            }
            this.leftover = chunk.to_vec();
            this.consumed = 0;
        }
    }
}

impl SocketStream {
    fn poll_written(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<usize>> {
        let Some((writing, len)) = self.writing.as_mut() else {
            return Poll::Ready(Ok(0));
        };
        let len = *len;
        match writing.poll_unpin(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(result) => {
                self.writing = None;
                Poll::Ready(result.map(|_| len).map_err(io_error))
            }
        }
    }
}

impl tokio::io::AsyncWrite for SocketStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        if this.writing.is_none() {
            let chunk = js_sys::Uint8Array::from(data);
            this.writing = Some((JsFuture::from(this.writer.write_with_chunk(&chunk)), data.len()));
        }
        this.poll_written(cx)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.get_mut().poll_written(cx).map_ok(|_| ())
    }

    /// Never half-closes: the connection's owner closes the socket (see `db::ServerCloses`).
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

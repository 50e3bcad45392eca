//! Our HTTP/1.1 server for client connections (issue 16, replacing hyper's on the data path).
//! One task per connection: it waits for the next request without holding a buffer, reads the
//! head into a buffer allocated for that request, runs the handler, feeds the request body to it
//! through a one-frame [`pipe`](crate::body::pipe) as the upstream side asks for it, and writes
//! the response itself. No other task or channel per connection. Between requests the buffer is
//! dropped unless a pipelined request is already in it, so an idle keep-alive connection is the
//! task, the socket and its small state.
//!
//! Timeouts stay where they were: `client_header_timeout` and `keepalive_timeout` in the
//! socket wrapper (`conn::TimedIo`), `client_body_timeout` and `read_timeout` in the bodies.

mod encode;
mod exchange;

use super::error::ProxyError;
use super::handler::ConnCtx;
use crate::config::ClientLimits;
use crate::h1::{request, ParseError};
use bytes::BytesMut;
use exchange::Exchange;
use std::future::{poll_fn, Future};
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;

/// First read of a request head. Most heads fit; a larger one doubles the buffer up to
/// `large_client_header_buffers`. Small enough for the allocator's per-thread cache.
const HEAD_READ: usize = 1 << 10;

/// A client connection our server can drive.
pub trait ClientIo: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// Whether [`ClientIo::poll_read_ready`] really waits (a read after it may still find
    /// nothing: the wait then starts again without a buffer).
    const WAITS_WITHOUT_BUFFER: bool = false;

    /// Resolves when a read would not block, without a buffer (an error ends the connection:
    /// `keepalive_timeout`). The default is "ready at once".
    fn poll_read_ready(&mut self, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// TLS: ready when rustls holds decrypted bytes (or the peer closed), else when the socket is.
impl<T: ClientIo> ClientIo for tokio_rustls::server::TlsStream<T> {
    const WAITS_WITHOUT_BUFFER: bool = T::WAITS_WITHOUT_BUFFER;

    fn poll_read_ready(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let (io, conn) = self.get_mut();
        match conn.process_new_packets() {
            Ok(s) if s.plaintext_bytes_to_read() > 0 || s.peer_has_closed() => Poll::Ready(Ok(())),
            Ok(_) => io.poll_read_ready(cx),
            Err(e) => Poll::Ready(Err(std::io::Error::other(e))),
        }
    }
}

/// Serves requests on `io` until the client closes, a response ends the connection, or
/// shutdown (signalled on `shutdown`) finds it idle.
#[allow(clippy::manual_async_fn)] // see the comment inside
pub fn serve<'a, I: ClientIo>(
    mut io: I,
    cx: Arc<ConnCtx>,
    limits: &'a ClientLimits,
    mut shutdown: watch::Receiver<bool>,
) -> impl std::future::Future<Output = ()> + Send + 'a {
    // Not an `async fn` (those keep a second copy of their arguments): only what an idle
    // connection needs lives in this future; a request's state is boxed (`one`) and freed
    // when it ends.
    async move {
        let mut rbuf = BytesMut::new();
        loop {
            if *shutdown.borrow() || cx.state.is_closing() {
                break;
            }
            if rbuf.is_empty() {
                // Idle: no buffer until the client sends something.
                rbuf = BytesMut::new();
                let ready = tokio::select! {
                    r = poll_fn(|c| io.poll_read_ready(c)) => r,
                    _ = shutdown.changed() => break,
                };
                if ready.is_err() {
                    break;
                }
            }
            match Box::pin(one(&mut io, &mut rbuf, &cx, limits, &mut shutdown)).await {
                Step::Next => {}
                Step::End => break,
                Step::Upgrade(up) => {
                    // The connection is a byte stream now: no request timeouts apply.
                    cx.state.set_tunnel();
                    super::upgrade::spawn_tunnel(io, rbuf, up);
                    return;
                }
            }
        }
        Box::pin(close_write(&mut io)).await;
    }
}

/// Longest wait for the client to take the end of the connection (TLS `close_notify`).
const CLOSE_WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// Ends the write side cleanly before the socket closes: on TLS a `close_notify`, so that a
/// close-delimited body is known complete (hyper did this too).
async fn close_write<I: ClientIo>(io: &mut I) {
    use tokio::io::AsyncWriteExt;
    let _ = tokio::time::timeout(CLOSE_WRITE_TIMEOUT, io.shutdown()).await;
}

/// What follows one request.
enum Step {
    /// Wait for the next request (after a kept-alive response, or a wake-up with nothing to
    /// read).
    Next,
    End,
    Upgrade(super::upgrade::UpstreamUpgrade),
}

/// Reads a request head and serves the request.
async fn one<I: ClientIo>(
    io: &mut I,
    rbuf: &mut BytesMut,
    cx: &Arc<ConnCtx>,
    limits: &ClientLimits,
    shutdown: &mut watch::Receiver<bool>,
) -> Step {
    let state = &cx.state;
    // Shutdown does not wait for a head that is still arriving. Most heads are complete after
    // the first read: only a head that is not races the shutdown signal (whose wait costs a
    // registration on a channel shared by every connection).
    let read = {
        let fut = read_head(io, rbuf, limits);
        tokio::pin!(fut);
        match poll_fn(|c| Poll::Ready(fut.as_mut().poll(c))).await {
            Poll::Ready(r) => r,
            Poll::Pending => tokio::select! {
                r = &mut fut => r,
                _ = shutdown.changed() => return Step::End,
            },
        }
    };
    let head = match read {
        Ok(Some(Ok(h))) => h,
        Ok(Some(Err(e))) => {
            // The client may still be sending the rest of its head.
            state.set_linger();
            Box::pin(exchange::answer_error(io, &e, limits)).await; // rare: kept out of `one`
            return Step::End;
        }
        Ok(None) => return Step::Next, // a spurious wake-up: wait again without the buffer
        Err(Closed) => return Step::End,
    };
    let mut ex = Exchange::new(head, cx);
    let outcome = {
        let run = poll_fn(|c| ex.poll(io, rbuf, limits, state.is_closing(), c));
        tokio::pin!(run);
        tokio::select! {
            o = &mut run => o,
            _ = shutdown.changed() => {
                // In-flight requests finish; the response says the connection closes when it
                // is still to be written.
                state.set_closing();
                run.await
            }
        }
    };
    drop(ex);
    match outcome {
        exchange::Outcome::KeepAlive => Step::Next,
        exchange::Outcome::Close => Step::End,
        exchange::Outcome::Upgrade(up) => Step::Upgrade(up),
    }
}

/// The connection ended before a complete head (closed, reset, timed out).
struct Closed;

/// Reads until `rbuf` holds a complete request head and takes it off. `Ok(None)`: nothing was
/// there to read after all (the caller waits again).
async fn read_head<I: ClientIo>(
    io: &mut I,
    rbuf: &mut BytesMut,
    limits: &ClientLimits,
) -> Result<Option<Result<request::Head, ProxyError>>, Closed> {
    loop {
        if !rbuf.is_empty() {
            let before = rbuf.len();
            let parsed = match request::parse_buf(rbuf, limits.max_headers) {
                Ok(Some(_)) if before - rbuf.len() > limits.max_header_size => {
                    Err(ParseError::TooLarge)
                }
                Ok(None) if rbuf.len() >= limits.max_header_size => Err(ParseError::TooLarge),
                other => other,
            };
            match parsed {
                Ok(Some(head)) => return Ok(Some(Ok(head))),
                Ok(None) => {}
                Err(ParseError::TooLarge) => return Ok(Some(Err(ProxyError::HeadTooLarge))),
                Err(e) => {
                    tracing::debug!(error = %e, "bad request head");
                    return Ok(Some(Err(ProxyError::BadRequest("malformed request head"))));
                }
            }
        }
        if rbuf.capacity() - rbuf.len() < 512 {
            let grow = if rbuf.capacity() == 0 {
                HEAD_READ
            } else {
                rbuf.capacity()
            };
            rbuf.reserve(grow.min(limits.max_header_size.saturating_sub(rbuf.len()) + 1));
        }
        let may_give_up = I::WAITS_WITHOUT_BUFFER && rbuf.is_empty();
        let read = poll_fn(|c| {
            match tokio_util::io::poll_read_buf(std::pin::Pin::new(&mut *io), c, rbuf) {
                Poll::Pending if may_give_up => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
                Poll::Ready(r) => Poll::Ready(Some(r)),
            }
        })
        .await;
        match read {
            None => return Ok(None),
            Some(Ok(0)) | Some(Err(_)) => return Err(Closed),
            Some(Ok(_)) => {}
        }
    }
}

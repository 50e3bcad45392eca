//! HTTP/2 on client connections, on the `h2` crate: h2c prior knowledge recognised by its
//! preface on plain listeners, h2 chosen by ALPN on TLS ones, the server configured from
//! `http2:` with the limits against stream abuse (rapid reset, header lists, reset floods).
//!
//! Every stream of a connection runs inside the connection's own task (`stream.rs`), not in a
//! task of its own: a wake-up reads every frame that came, runs every stream that can move, and
//! one write carries all they produced. So a burst of calls costs one task poll, not one task
//! (and its wake-ups) per call, and the connection steps aside once per wake-up (`crate::batch`)
//! so that responses that arrive together leave together.

mod stream;

use super::handler::ConnCtx;
use crate::config::{ClientLimits, Http2Settings};
use crate::h2ping::KeepAlive;
use bytes::Bytes;
use futures_util::stream::{FuturesUnordered, StreamExt};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// The client connection preface (RFC 9113 §3.4).
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Streams a client may reset before the server has accepted them, after which the connection
/// is closed with ENHANCE_YOUR_CALM (CVE-2023-44487, "rapid reset"). hyper's default.
const MAX_PENDING_ACCEPT_RESETS: usize = 20;
/// Streams swarmgate may reset because of the client's protocol errors before it gives up on
/// the connection.
const MAX_LOCAL_ERROR_RESETS: usize = 256;

/// What a plain connection's first bytes say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sniffed {
    Http1,
    H2,
    /// Closed, or nothing within the header timeout.
    Nothing,
}

/// Looks at (without consuming) the first bytes of a plain connection: the HTTP/2 preface, or
/// anything else (HTTP/1.1). Waits at most `timeout` for them.
pub async fn sniff(stream: &TcpStream, timeout: Duration) -> Sniffed {
    let look = async {
        let mut buf = [0u8; PREFACE.len()];
        loop {
            let n = match stream.peek(&mut buf).await {
                Ok(0) | Err(_) => return Sniffed::Nothing,
                Ok(n) => n,
            };
            if buf[..n] != PREFACE[..n] {
                return Sniffed::Http1;
            }
            if n == PREFACE.len() {
                return Sniffed::H2;
            }
            // A prefix of the preface: the rest is on its way (peek does not wait for more
            // than is already there).
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    };
    tokio::time::timeout(timeout, look)
        .await
        .unwrap_or(Sniffed::Nothing)
}

/// The HTTP/2 server for client connections.
fn builder(h2: &Http2Settings, limits: &ClientLimits) -> h2::server::Builder {
    let mut b = h2::server::Builder::new();
    b.max_concurrent_streams(h2.max_concurrent_streams)
        .initial_window_size(h2.initial_stream_window)
        .initial_connection_window_size(connection_window(h2))
        .max_header_list_size(u32::try_from(limits.max_header_size).unwrap_or(u32::MAX))
        .max_pending_accept_reset_streams(MAX_PENDING_ACCEPT_RESETS)
        .max_local_error_reset_streams(Some(MAX_LOCAL_ERROR_RESETS))
        .max_send_buffer_size(h2.initial_stream_window as usize);
    b
}

/// The connection-level window: room for a few streams at full speed.
pub fn connection_window(h2: &Http2Settings) -> u32 {
    h2.initial_stream_window
        .saturating_mul(4)
        .min(u32::MAX >> 1)
}

/// Why a client connection ended early.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    #[error("{0}")]
    H2(#[from] h2::Error),
    #[error("PING not answered within keepalive_timeout")]
    KeepAliveTimeout,
}

/// The HTTP/2 handshake on a client connection; the connection is then driven by [`Conn`].
pub async fn handshake<I>(
    io: I,
    cx: Arc<ConnCtx>,
    h2: &Http2Settings,
    limits: &ClientLimits,
) -> Result<Conn<I>, ConnError>
where
    I: AsyncRead + AsyncWrite + Unpin,
{
    let mut conn = builder(h2, limits).handshake::<_, Bytes>(io).await?;
    let keepalive = conn
        .ping_pong()
        .map(|p| KeepAlive::new(p, h2.keepalive_interval, h2.keepalive_timeout));
    Ok(Conn {
        conn,
        keepalive,
        ping_timeout: h2.keepalive_timeout,
        closing_after_timeout: None,
        streams: FuturesUnordered::new(),
        cx,
    })
}

/// A client HTTP/2 connection and the streams running on it; resolves when the connection is
/// closed (its streams are dropped then: nobody is left to answer).
pub struct Conn<I> {
    conn: h2::server::Connection<I, Bytes>,
    keepalive: Option<KeepAlive>,
    /// `http2.keepalive_timeout`.
    ping_timeout: Duration,
    /// Set when a PING went unanswered: the GOAWAY is on its way; the connection closes when
    /// it is out, or when this fires.
    closing_after_timeout: Option<Pin<Box<tokio::time::Sleep>>>,
    streams: FuturesUnordered<stream::Stream>,
    cx: Arc<ConnCtx>,
}

impl<I: AsyncRead + AsyncWrite + Unpin> Conn<I> {
    /// GOAWAY: no new streams; the open ones finish, then the connection closes.
    pub fn graceful_shutdown(&mut self) {
        self.conn.graceful_shutdown();
    }

    /// Reads what came, writes what is queued, and takes the new streams: how many, or `None`
    /// when the connection is closed.
    fn drive(&mut self, cx: &mut Context<'_>) -> Result<Option<usize>, h2::Error> {
        let mut accepted = 0;
        loop {
            match self.conn.poll_accept(cx) {
                Poll::Ready(Some(Ok((req, respond)))) => {
                    self.streams
                        .push(stream::Stream::new(req, respond, &self.cx));
                    accepted += 1;
                }
                Poll::Ready(Some(Err(e))) => return Err(e),
                Poll::Ready(None) => return Ok(None),
                Poll::Pending => return Ok(Some(accepted)),
            }
        }
    }

    /// Polls every stream that was woken (or is new).
    fn run_streams(&mut self, cx: &mut Context<'_>) {
        while let Poll::Ready(Some(())) = self.streams.poll_next_unpin(cx) {}
    }
}

impl<I: AsyncRead + AsyncWrite + Unpin> Future for Conn<I> {
    type Output = Result<(), ConnError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        // The connection first (new frames, new streams), then the streams, then the
        // connection again to write what they queued; again while that brings new streams.
        let mut first = true;
        loop {
            match this.drive(cx) {
                Ok(None) if this.closing_after_timeout.is_some() => {
                    return Poll::Ready(Err(ConnError::KeepAliveTimeout))
                }
                Ok(None) => return Poll::Ready(Ok(())),
                Err(e) => return Poll::Ready(Err(e.into())),
                Ok(Some(0)) if !first => break,
                Ok(Some(0)) => {}
                Ok(Some(_)) => {
                    if let Some(k) = this.keepalive.as_mut() {
                        k.active();
                    }
                }
            }
            first = false;
            this.run_streams(cx);
        }
        if let Some(deadline) = this.closing_after_timeout.as_mut() {
            // The GOAWAY after an unanswered PING had `keepalive_timeout` to go out.
            return match deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(ConnError::KeepAliveTimeout)),
                Poll::Pending => Poll::Pending,
            };
        }
        if crate::h2ping::poll_timed_out(&mut this.keepalive, cx) {
            // GOAWAY, then close; a peer that does not even read gets `timeout` more.
            this.conn.abrupt_shutdown(h2::Reason::NO_ERROR);
            this.closing_after_timeout = Some(Box::pin(tokio::time::sleep(this.ping_timeout)));
            this.keepalive = None;
            cx.waker().wake_by_ref(); // drive the connection: the GOAWAY goes out
        }
        Poll::Pending
    }
}

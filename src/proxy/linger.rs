//! nginx's lingering close. Closing a socket whose receive queue still holds unread bytes (or
//! that receives more after the close) makes the kernel send a reset; a client that writes its
//! whole request body before reading (Python's http.client, many SDKs) then fails its write and
//! never reads the 413 it was sent. So when swarmgate closes a client connection that may still
//! be sending, it shuts down its write side (the response and a FIN have gone out) and reads and
//! discards until the client closes, `lingering_timeout` passes without data, `lingering_time`
//! passes in all, or [`MAX_DISCARD`] bytes were read; only then the socket closes.
//!
//! [`LingerOnDrop`] is the client socket under everything else (TLS, timeouts, hyper): when the
//! connection is dropped it hands the socket to a lingering task if it should linger, else
//! closes it. Lingering sockets no longer count against `max_connections` or the shutdown drain.

use super::conn::ConnState;
use crate::config::{Lingering, LingeringMode};
use crate::metrics::metrics;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

/// Most bytes one lingering close reads and discards.
pub const MAX_DISCARD: u64 = 1 << 30;

/// A client socket that lingers when dropped (see the module docs).
pub struct LingerOnDrop {
    stream: Option<TcpStream>,
    state: Arc<ConnState>,
    config: Lingering,
}

impl LingerOnDrop {
    pub fn new(stream: TcpStream, state: Arc<ConnState>, config: Lingering) -> Self {
        LingerOnDrop {
            stream: Some(stream),
            state,
            config,
        }
    }

    fn stream(&mut self) -> std::io::Result<&mut TcpStream> {
        self.stream
            .as_mut()
            .ok_or_else(|| std::io::ErrorKind::NotConnected.into())
    }
}

impl Drop for LingerOnDrop {
    fn drop(&mut self) {
        let Some(stream) = self.stream.take() else {
            return;
        };
        let wanted = match self.config.mode {
            LingeringMode::Off => false,
            LingeringMode::Always => true,
            LingeringMode::On => self.state.wants_linger() || unread_bytes_waiting(&stream),
        };
        if !wanted {
            return;
        }
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(linger(stream, self.config));
        }
    }
}

/// Whether the client sent bytes nobody read (consumes a few of them: they are discarded
/// anyway). `false` at EOF: the client closed its side and sends nothing more.
fn unread_bytes_waiting(stream: &TcpStream) -> bool {
    let mut probe = [0u8; 512];
    matches!(stream.try_read(&mut probe), Ok(n) if n > 0)
}

/// How a lingering close ended (the `result` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    /// The client closed (or reset) its side.
    ClientClosed,
    /// `lingering_timeout` without data, or `lingering_time` in all.
    Timeout,
    /// [`MAX_DISCARD`] bytes read.
    Limit,
}

async fn linger(mut stream: TcpStream, config: Lingering) {
    let _ = stream.shutdown().await;
    let start = Instant::now();
    let mut discarded = 0u64;
    let mut buf = vec![0u8; 64 << 10];
    let ended = loop {
        let left = config.time.saturating_sub(start.elapsed());
        if left.is_zero() {
            break Ended::Timeout;
        }
        let wait = config.timeout.min(left).max(Duration::from_millis(1));
        match tokio::time::timeout(wait, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break Ended::ClientClosed,
            Ok(Ok(n)) => {
                discarded += n as u64;
                if discarded >= MAX_DISCARD {
                    break Ended::Limit;
                }
            }
            Err(_) => break Ended::Timeout,
        }
    };
    let m = metrics();
    let label = match ended {
        Ended::ClientClosed => "client_closed",
        Ended::Timeout => "timeout",
        Ended::Limit => "limit",
    };
    m.lingering_closes_total.with_label_values(&[label]).inc();
    m.lingering_bytes_total
        .with_label_values::<&str>(&[])
        .inc_by(discarded);
    tracing::debug!(result = label, discarded, elapsed = ?start.elapsed(), "lingering close");
}

impl super::h1::ClientIo for LingerOnDrop {
    const WAITS_WITHOUT_BUFFER: bool = true;

    fn poll_read_ready(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.stream() {
            Ok(s) => s.poll_read_ready(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl AsyncRead for LingerOnDrop {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.stream() {
            Ok(s) => Pin::new(s).poll_read(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl AsyncWrite for LingerOnDrop {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.stream() {
            Ok(s) => Pin::new(s).poll_write(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match self.stream() {
            Ok(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.stream() {
            Ok(s) => Pin::new(s).poll_flush(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.stream() {
            Ok(s) => Pin::new(s).poll_shutdown(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

//! HTTP/1.1 upgrades (WebSocket and others): after the upstream's 101, bytes are copied both
//! ways until either side closes, or until neither side has sent anything for the upstream's
//! `read_timeout` (nginx applies `proxy_read_timeout` to upgraded connections the same way, which
//! is why WebSocket setups raise it). The handler hands the upstream's upgraded connection to
//! the client connection's loop (`h1::serve`) in the 101 response's extensions; the loop writes
//! the 101 and then joins the two connections in a task of their own.

use crate::timer::LazyDeadline;
use crate::upstream::h1::Upgraded;
use bytes::{Buf, BytesMut};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};

/// The upstream's side of an upgrade, riding in the 101 response's extensions.
#[derive(Clone)]
pub struct UpstreamUpgrade {
    conn: Arc<Mutex<Option<Upgraded>>>,
    server: String,
    /// The tunnel ends after this long with no byte from either side (`read_timeout`).
    idle_timeout: Duration,
}

impl UpstreamUpgrade {
    pub fn new(conn: Upgraded, server: String, idle_timeout: Duration) -> Self {
        UpstreamUpgrade {
            conn: Arc::new(Mutex::new(Some(conn))),
            server,
            idle_timeout,
        }
    }

    fn take(&self) -> Option<Upgraded> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// Joins the client's connection (after the 101 went out; `prefix`: bytes the client sent
/// after its request head, already read) and the upstream's in a background task.
pub fn spawn_tunnel<C>(client: C, mut prefix: BytesMut, upstream: UpstreamUpgrade)
where
    C: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let server = upstream.server.clone();
    let idle = upstream.idle_timeout;
    let Some(mut up) = upstream.take() else {
        return;
    };
    tokio::spawn(async move {
        while prefix.has_remaining() {
            match up.write(&prefix).await {
                Ok(0) | Err(_) => return,
                Ok(n) => prefix.advance(n),
            }
        }
        drop(prefix);
        let activity = Activity::new();
        let mut client = Watched {
            io: client,
            activity: &activity,
        };
        let mut up = Watched {
            io: up,
            activity: &activity,
        };
        let copy = tokio::io::copy_bidirectional(&mut client, &mut up);
        tokio::pin!(copy);
        let mut timer = LazyDeadline::default();
        let ended = std::future::poll_fn(|cx| {
            if let Poll::Ready(r) = copy.as_mut().poll(cx) {
                return Poll::Ready(Some(r));
            }
            timer
                .poll_expired(cx, activity.last() + idle)
                .map(|()| None)
        })
        .await;
        match ended {
            Some(Ok((up, down))) => tracing::debug!(server, up, down, "tunnel closed"),
            Some(Err(e)) => tracing::debug!(server, error = %e, "tunnel ended"),
            None => tracing::debug!(server, idle_timeout = ?idle, "tunnel idle, closed"),
        }
    });
}

/// When either side of a tunnel last sent something (milliseconds after `start`).
struct Activity {
    start: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Activity {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }
}

/// One side of a tunnel, recording every read that brought bytes.
struct Watched<'a, T> {
    io: T,
    activity: &'a Activity,
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<'_, T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.io).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<'_, T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

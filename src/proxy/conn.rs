//! Client-connection timing that hyper does not give: `keepalive_timeout` while idle between
//! requests and `client_header_timeout` from the first byte of a head (or from accept) to its end.
//! hyper's own `header_read_timeout` also runs while a keepalive connection is idle, which would
//! cut Kuscia's 20-minute keepalive to the header timeout, so it is off and this wrapper decides.

use crate::timer::LazyDeadline;
use futures_util::task::AtomicWaker;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// State of one client connection shared by its I/O wrapper and its requests.
#[derive(Debug)]
pub struct ConnState {
    base: Instant,
    /// Requests whose response has not finished.
    in_flight: AtomicU32,
    /// Requests started on this connection.
    requests: AtomicU64,
    /// When the last response finished (nanoseconds after `base`).
    idle_since: AtomicU64,
    /// Set on shutdown: responses carry `Connection: close`.
    closing: AtomicBool,
    /// An HTTP/2 connection: requests are streams, so bytes read while no request is in flight
    /// (PINGs, SETTINGS, WINDOW_UPDATEs) do not start a request head; only `keepalive_timeout`
    /// applies while it is idle.
    multiplexed: AtomicBool,
    /// The client may still be sending when the connection closes (a response went out before
    /// its request body was read, or the head was rejected): close it lingering (`linger.rs`).
    linger: AtomicBool,
    /// Upgraded (101): a tunnel, to which no request timeout applies.
    tunnel: AtomicBool,
    /// The connection's task while it waits with a request in flight: woken when the request
    /// ends so that the idle timer (`keepalive_timeout`) gets armed. hyper does not poll the
    /// socket again after a response unless something wakes it.
    idle_waker: AtomicWaker,
}

impl ConnState {
    pub fn new() -> Self {
        ConnState {
            base: Instant::now(),
            in_flight: AtomicU32::new(0),
            requests: AtomicU64::new(0),
            idle_since: AtomicU64::new(0),
            closing: AtomicBool::new(false),
            multiplexed: AtomicBool::new(false),
            linger: AtomicBool::new(false),
            tunnel: AtomicBool::new(false),
            idle_waker: AtomicWaker::new(),
        }
    }

    /// The client may still be sending: linger when closing.
    pub fn set_linger(&self) {
        self.linger.store(true, Ordering::Relaxed);
    }

    pub fn wants_linger(&self) -> bool {
        self.linger.load(Ordering::Relaxed)
    }

    /// A request head was parsed; returns its sequence number on the connection (1-based).
    pub fn begin(&self) -> u64 {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.requests.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// A response finished (or was abandoned).
    pub fn end(&self) {
        let nanos = self.base.elapsed().as_nanos() as u64;
        self.idle_since.store(nanos, Ordering::Relaxed);
        if self.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.idle_waker.wake();
        }
    }

    pub fn set_closing(&self) {
        self.closing.store(true, Ordering::Relaxed);
    }

    pub fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Relaxed)
    }

    /// The connection was upgraded (see the field).
    pub fn set_tunnel(&self) {
        self.tunnel.store(true, Ordering::Relaxed);
    }

    /// The connection speaks HTTP/2 (see the field).
    pub fn set_multiplexed(&self) {
        self.multiplexed.store(true, Ordering::Relaxed);
    }
}

impl Default for ConnState {
    fn default() -> Self {
        Self::new()
    }
}

/// Timeouts applied by [`TimedIo`].
#[derive(Debug, Clone, Copy)]
pub struct ConnTimeouts {
    pub header: Duration,
    pub keepalive: Duration,
}

/// A client socket that fails its reads with `TimedOut` when the connection sits idle longer
/// than `keepalive` or a request head takes longer than `header` to arrive.
pub struct TimedIo<T> {
    inner: T,
    state: std::sync::Arc<ConnState>,
    timeouts: ConnTimeouts,
    /// When the head being read started, and the request count at that moment.
    head: Option<(Instant, u64)>,
    timer: LazyDeadline,
}

impl<T> TimedIo<T> {
    pub fn new(inner: T, state: std::sync::Arc<ConnState>, timeouts: ConnTimeouts) -> Self {
        let now = Instant::now();
        TimedIo {
            inner,
            // The first request's head is due `header` after accept.
            head: Some((now, 0)),
            state,
            timeouts,
            timer: LazyDeadline::default(),
        }
    }

    /// While a read waits: `Pending` (woken at the deadline, or when the request in flight
    /// ends and the idle clock starts), or `TimedOut` once the deadline has passed.
    fn poll_timeout(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let deadline = match self.deadline() {
            Some(d) => d,
            None => {
                self.state.idle_waker.register(cx.waker());
                // The request may have ended between the check and the registration.
                match self.deadline() {
                    Some(d) => d,
                    None => return Poll::Pending,
                }
            }
        };
        match self.timer.poll_expired(cx, deadline) {
            Poll::Ready(()) => Poll::Ready(Err(std::io::ErrorKind::TimedOut.into())),
            Poll::Pending => Poll::Pending,
        }
    }

    fn deadline(&mut self) -> Option<Instant> {
        let requests = self.state.requests.load(Ordering::Relaxed);
        if matches!(self.head, Some((_, seq)) if seq != requests) {
            self.head = None; // that head was parsed
        }
        if self.state.in_flight.load(Ordering::Acquire) > 0
            || self.state.tunnel.load(Ordering::Relaxed)
        {
            return None;
        }
        Some(match self.head {
            Some((start, _)) => start + self.timeouts.header,
            None => {
                let idle = Duration::from_nanos(self.state.idle_since.load(Ordering::Relaxed));
                self.state.base + idle + self.timeouts.keepalive
            }
        })
    }
}

impl<T: super::h1::ClientIo> super::h1::ClientIo for TimedIo<T> {
    const WAITS_WITHOUT_BUFFER: bool = T::WAITS_WITHOUT_BUFFER;

    /// Readiness of the socket, failing with `TimedOut` like a read would.
    fn poll_read_ready(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.inner.poll_read_ready(cx) {
            Poll::Pending => self.poll_timeout(cx),
            ready => ready,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for TimedIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before
                    && this.head.is_none()
                    && this.state.in_flight.load(Ordering::Relaxed) == 0
                    && !this.state.multiplexed.load(Ordering::Relaxed)
                {
                    let seq = this.state.requests.load(Ordering::Relaxed);
                    this.head = Some((Instant::now(), seq));
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => this.poll_timeout(cx),
            other => other,
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for TimedIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

//! Streaming bodies, no buffering either way. [`ReqBody`] carries the client's body upstream
//! with `client_max_body_size` and `client_body_timeout` enforced frame by frame; [`ResBody`]
//! carries the upstream's body to the client with `read_timeout` enforced between reads, puts
//! the upstream connection back in its pool once the body is complete, and ends the request's
//! accounting (access log, metrics, in-flight counts) when dropped.

use super::guard::RequestGuard;
use super::timer::LazyDeadline;
use crate::upstream::{Conn, PoolLimits, Server};
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// Why a body stream stopped early.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("request body larger than client_max_body_size")]
    TooLarge,
    #[error("client stopped sending the request body")]
    ClientAborted,
    #[error("timed out waiting for the request body")]
    ClientTimeout,
    #[error("timed out reading from the upstream")]
    UpstreamTimeout,
    #[error("upstream response body failed")]
    Upstream,
}

/// What became of the request body, shared between [`ReqBody`] and the forwarder.
#[derive(Debug)]
pub struct BodyStatus {
    error: AtomicU8,
    finished: AtomicBool,
    /// The body is waiting for the client (its last poll returned `Pending`), as opposed to
    /// waiting for the upstream connection to take the frame it last returned.
    awaiting_client: AtomicBool,
    base: Instant,
    /// When a frame was last handed to the upstream connection (nanoseconds after `base`).
    last_handed: AtomicU64,
}

impl Default for BodyStatus {
    fn default() -> Self {
        BodyStatus {
            error: AtomicU8::new(0),
            finished: AtomicBool::new(false),
            awaiting_client: AtomicBool::new(true),
            base: Instant::now(),
            last_handed: AtomicU64::new(0),
        }
    }
}

impl BodyStatus {
    /// Whether the whole body has been read from the client.
    pub fn finished(&self) -> bool {
        self.finished.load(Ordering::Relaxed)
    }

    fn set(&self, e: BodyError) {
        let code = match e {
            BodyError::TooLarge => 1,
            BodyError::ClientAborted => 2,
            BodyError::ClientTimeout => 3,
            _ => return,
        };
        self.error.store(code, Ordering::Relaxed);
    }

    /// The client-side error that ended the body, if any.
    pub fn error(&self) -> Option<BodyError> {
        match self.error.load(Ordering::Relaxed) {
            1 => Some(BodyError::TooLarge),
            2 => Some(BodyError::ClientAborted),
            3 => Some(BodyError::ClientTimeout),
            _ => None,
        }
    }

    fn handed(&self) {
        let nanos = self.base.elapsed().as_nanos() as u64;
        self.last_handed.store(nanos, Ordering::Relaxed);
        self.awaiting_client.store(false, Ordering::Relaxed);
    }

    /// While the body is still being sent and the upstream has not asked for more since the
    /// last frame (the connection is blocked writing it): when that frame was handed over.
    /// `None` when the body is waiting for the client, finished, or failed.
    pub fn upstream_stalled_since(&self) -> Option<Instant> {
        if self.finished() || self.error().is_some() || self.awaiting_client.load(Ordering::Relaxed)
        {
            return None;
        }
        Some(self.base + Duration::from_nanos(self.last_handed.load(Ordering::Relaxed)))
    }
}

/// A body's idle timeout: `timeout` after the last frame, checked whenever the stream waits.
#[derive(Debug, Default)]
struct IdleTimer {
    timer: LazyDeadline,
    deadline: Option<Instant>,
    progressed: bool,
}

impl IdleTimer {
    /// Call when the inner stream is pending; true when `timeout` passed without progress.
    fn expired(&mut self, cx: &mut Context<'_>, timeout: Duration) -> bool {
        let deadline = match self.deadline {
            Some(d) if !self.progressed => d,
            _ => {
                self.progressed = false;
                *self.deadline.insert(Instant::now() + timeout)
            }
        };
        self.timer.poll_expired(cx, deadline).is_ready()
    }
}

/// The body sent upstream: the client's body, streamed, or nothing.
#[derive(Debug, Default)]
pub struct ReqBody {
    inner: Option<Incoming>,
    remaining: u64,
    timeout: Duration,
    timer: IdleTimer,
    status: Option<Arc<BodyStatus>>,
}

impl ReqBody {
    pub fn empty() -> Self {
        ReqBody::default()
    }

    /// Streams `inner`, failing once more than `limit` bytes (0 = unlimited) have come or
    /// `timeout` passes between two reads.
    pub fn streaming(inner: Incoming, limit: u64, timeout: Duration) -> (Self, Arc<BodyStatus>) {
        let status = Arc::new(BodyStatus::default());
        (
            ReqBody {
                inner: Some(inner),
                remaining: if limit == 0 { u64::MAX } else { limit },
                timeout,
                timer: IdleTimer::default(),
                status: Some(status.clone()),
            },
            status,
        )
    }

    fn mark_finished(&self) {
        if let Some(s) = &self.status {
            s.finished.store(true, Ordering::Relaxed);
        }
    }

    fn fail(&mut self, e: BodyError) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        if let Some(s) = &self.status {
            s.set(e);
        }
        self.inner = None;
        Poll::Ready(Some(Err(e)))
    }
}

impl Body for ReqBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        match Pin::new(inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(d) = frame.data_ref() {
                    let n = d.len() as u64;
                    if n > this.remaining {
                        return this.fail(BodyError::TooLarge);
                    }
                    this.remaining -= n;
                }
                this.timer.progressed = true;
                if let Some(s) = &this.status {
                    s.handed();
                }
                if this.inner.as_ref().is_some_and(|b| b.is_end_stream()) {
                    this.mark_finished();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(_))) => this.fail(BodyError::ClientAborted),
            Poll::Ready(None) => {
                this.mark_finished();
                Poll::Ready(None)
            }
            Poll::Pending => {
                if let Some(s) = &this.status {
                    s.awaiting_client.store(true, Ordering::Relaxed);
                }
                if this.timer.expired(cx, this.timeout) {
                    return this.fail(BodyError::ClientTimeout);
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Some(b) => b.size_hint(),
            None => SizeHint::with_exact(0),
        }
    }
}

/// An upstream connection on loan to one response; back to the pool when the body completed.
#[derive(Debug)]
pub struct Lease {
    pub conn: Conn,
    pub server: Arc<Server>,
    pub limits: PoolLimits,
}

impl Lease {
    fn release(self) {
        if !self.server.is_draining() {
            self.server
                .pool
                .checkin(self.conn, self.limits, Instant::now());
        }
    }
}

/// The upstream response body on its way to the client.
#[derive(Debug)]
pub struct Streamed {
    inner: Incoming,
    timeout: Duration,
    timer: IdleTimer,
    lease: Option<Lease>,
    /// The upstream body ended cleanly. hyper's `Incoming::is_end_stream` never turns true for
    /// a chunked body, so the end is recorded here to give the connection back to the pool.
    done: bool,
}

/// The body of every response swarmgate sends to a client.
#[derive(Debug)]
pub struct ResBody {
    kind: Kind,
    guard: Option<RequestGuard>,
}

#[derive(Debug)]
enum Kind {
    Full(Option<Bytes>),
    Streamed(Streamed),
}

impl ResBody {
    /// A complete body (errors, admin pages).
    pub fn full(b: impl Into<Bytes>) -> Self {
        let b = b.into();
        ResBody {
            kind: Kind::Full((!b.is_empty()).then_some(b)),
            guard: None,
        }
    }

    pub fn empty() -> Self {
        ResBody {
            kind: Kind::Full(None),
            guard: None,
        }
    }

    /// The upstream's body, streamed with `read_timeout` between reads.
    pub fn streamed(inner: Incoming, timeout: Duration, lease: Option<Lease>) -> Self {
        ResBody {
            kind: Kind::Streamed(Streamed {
                inner,
                timeout,
                timer: IdleTimer::default(),
                lease,
                done: false,
            }),
            guard: None,
        }
    }

    /// Attaches the request's accounting; it ends when this body is dropped.
    pub fn with_guard(mut self, guard: RequestGuard) -> Self {
        self.guard = Some(guard);
        self
    }
}

impl Drop for Streamed {
    fn drop(&mut self) {
        if let Some(lease) = self.lease.take() {
            if self.done || self.inner.is_end_stream() {
                lease.release();
            }
        }
    }
}

impl Body for ResBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        match &mut this.kind {
            Kind::Full(b) => Poll::Ready(b.take().map(|b| {
                if let Some(g) = &mut this.guard {
                    g.add_bytes(b.len() as u64);
                }
                Ok(Frame::data(b))
            })),
            Kind::Streamed(s) => match Pin::new(&mut s.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    s.timer.progressed = true;
                    if let (Some(d), Some(g)) = (frame.data_ref(), &mut this.guard) {
                        g.add_bytes(d.len() as u64);
                    }
                    Poll::Ready(Some(Ok(frame)))
                }
                Poll::Ready(Some(Err(e))) => {
                    s.lease = None;
                    if let Some(g) = &mut this.guard {
                        g.body_error(&e.to_string());
                    }
                    Poll::Ready(Some(Err(BodyError::Upstream)))
                }
                Poll::Ready(None) => {
                    s.done = true;
                    Poll::Ready(None)
                }
                Poll::Pending => {
                    if s.timer.expired(cx, s.timeout) {
                        s.lease = None;
                        if let Some(g) = &mut this.guard {
                            g.body_error("upstream read timed out");
                        }
                        return Poll::Ready(Some(Err(BodyError::UpstreamTimeout)));
                    }
                    Poll::Pending
                }
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full(b) => b.is_none(),
            Kind::Streamed(s) => s.inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::Streamed(s) => s.inner.size_hint(),
        }
    }
}

//! The response body on its way to the client. [`ResBody`] carries the upstream's body with
//! `read_timeout` enforced between reads, puts the upstream connection back in its pool once the
//! body is complete, and ends the request's accounting (access log, metrics, in-flight counts)
//! when dropped.

use super::error::ProxyError;
use super::guard::RequestGuard;
use crate::body::{BodyError, IdleTimer};
use crate::upstream::{Conn, PoolLimits, Sender, Server, UpBody};
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// Bytes a response body relays before its connection task yields to the others: one default
/// `proxy_buffer_size` read. Without it a connection whose upstream always has data ready keeps
/// the worker for many reads in a row while other streams wait (issue 11).
const YIELD_EVERY: usize = 256 << 10;

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
    inner: UpBody,
    /// A gRPC call: a failure mid-body ends the response with `grpc-status` trailers (which a
    /// gRPC client reads as that status) instead of resetting the stream.
    grpc: bool,
    timeout: Duration,
    timer: IdleTimer,
    lease: Option<Lease>,
    /// The upstream body ended cleanly (recorded here: hyper's `Incoming::is_end_stream` never
    /// turns true for a chunked HTTP/2 body).
    done: bool,
    /// Bytes relayed since the last yield (see [`YIELD_EVERY`]).
    since_yield: usize,
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
    pub fn streamed(inner: UpBody, timeout: Duration, lease: Option<Lease>) -> Self {
        ResBody {
            kind: Kind::Streamed(Streamed {
                inner,
                timeout,
                timer: IdleTimer::default(),
                lease,
                done: false,
                since_yield: 0,
                grpc: false,
            }),
            guard: None,
        }
    }

    /// Marks the body as a gRPC call's (see [`Streamed`]).
    pub fn grpc(mut self) -> Self {
        if let Kind::Streamed(s) = &mut self.kind {
            s.grpc = true;
        }
        self
    }

    /// The bytes of a complete body (`None`: empty or streamed).
    pub fn into_full(mut self) -> Option<Bytes> {
        match &mut self.kind {
            Kind::Full(b) => b.take(),
            Kind::Streamed(_) => None,
        }
    }

    /// A streamed upstream body (a complete one carries no trailers).
    pub fn may_have_trailers(&self) -> bool {
        matches!(self.kind, Kind::Streamed(_))
    }

    /// Attaches the request's accounting; it ends when this body is dropped.
    pub fn with_guard(mut self, guard: RequestGuard) -> Self {
        self.guard = Some(guard);
        self
    }
}

impl Drop for Streamed {
    fn drop(&mut self) {
        if let Some(mut lease) = self.lease.take() {
            if self.done || self.inner.is_end_stream() {
                if let Sender::H1(slot) = &mut lease.conn.tx {
                    // The connection comes back from the body, if it can carry another request.
                    match self.inner.take_reusable() {
                        Some(c) => *slot = Some(c),
                        None => return,
                    }
                }
                lease.release();
            }
        }
    }
}

impl ResBody {
    /// The response body broke off upstream: a gRPC call ends with the matching `grpc-status`
    /// trailers (the body ends there), anything else with an error (the client sees the
    /// response cut).
    fn fail(&mut self, e: BodyError) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let grpc = matches!(&self.kind, Kind::Streamed(s) if s.grpc);
        if !grpc {
            return Poll::Ready(Some(Err(e)));
        }
        let err = ProxyError::from_response_body(e);
        if let Some(g) = &mut self.guard {
            g.set_grpc_status(err.grpc_status());
        }
        self.kind = Kind::Full(None);
        Poll::Ready(Some(Ok(Frame::trailers(err.grpc_trailers()))))
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
            Kind::Streamed(s) if s.since_yield >= YIELD_EVERY => {
                // Back of the run queue: woken now, polled after the tasks already waiting.
                s.since_yield = 0;
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            Kind::Streamed(s) => match Pin::new(&mut s.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    s.timer.progressed = true;
                    if let Some(d) = frame.data_ref() {
                        s.since_yield += d.len();
                    }
                    if let Some(g) = &mut this.guard {
                        if let Some(d) = frame.data_ref() {
                            g.add_bytes(d.len() as u64);
                        } else if let Some(code) =
                            frame.trailers_ref().and_then(super::grpc::status_of)
                        {
                            g.set_grpc_status(code);
                        }
                    }
                    Poll::Ready(Some(Ok(frame)))
                }
                Poll::Ready(Some(Err(e))) => {
                    s.lease = None;
                    if let Some(g) = &mut this.guard {
                        g.body_error(&e.to_string());
                    }
                    this.fail(BodyError::Upstream)
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
                        return this.fail(BodyError::UpstreamTimeout);
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

//! The request body on its way upstream, below both `proxy` (which makes it) and `upstream`
//! (whose connections carry it). [`ReqBody`] streams the client's body with
//! `client_max_body_size` and `client_body_timeout` enforced frame by frame; [`BodyStatus`] tells
//! the forwarder what became of it. Nothing is buffered.

pub mod h2;
pub mod pipe;

use crate::timer::LazyDeadline;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
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
    /// The body's data as read so far, kept (up to [`REPLAY_LIMIT`]) when the upstream speaks
    /// HTTP/2: a stream the server refused unprocessed can then go to another server. `None`
    /// when not recording or past the limit.
    recorded: std::sync::Mutex<Option<Recorded>>,
}

/// Largest request body kept for a replay after an HTTP/2 refusal (gRPC calls are small).
pub const REPLAY_LIMIT: usize = 64 << 10;

#[derive(Debug, Default)]
struct Recorded {
    frames: Vec<Bytes>,
    bytes: usize,
}

impl Default for BodyStatus {
    fn default() -> Self {
        BodyStatus {
            error: AtomicU8::new(0),
            finished: AtomicBool::new(false),
            awaiting_client: AtomicBool::new(true),
            base: Instant::now(),
            last_handed: AtomicU64::new(0),
            recorded: std::sync::Mutex::new(None),
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

    fn recorded(&self) -> std::sync::MutexGuard<'_, Option<Recorded>> {
        self.recorded.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn record(&self, data: &Bytes) {
        let mut rec = self.recorded();
        if let Some(r) = rec.as_mut() {
            r.bytes += data.len();
            if r.bytes > REPLAY_LIMIT {
                *rec = None;
            } else {
                r.frames.push(data.clone());
            }
        }
    }

    /// The whole body, when it was recorded, read completely and is within [`REPLAY_LIMIT`].
    pub fn replayable(&self) -> Option<Vec<Bytes>> {
        if !self.finished() || self.error().is_some() {
            return None;
        }
        self.recorded().as_ref().map(|r| r.frames.clone())
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
pub struct IdleTimer {
    timer: LazyDeadline,
    deadline: Option<Instant>,
    /// Set by the stream when a frame arrived since the timer was last consulted.
    pub progressed: bool,
}

impl IdleTimer {
    /// Call when the inner stream is pending; true when `timeout` passed without progress.
    pub fn expired(&mut self, cx: &mut Context<'_>, timeout: Duration) -> bool {
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

/// A client's request body as it arrives: from an HTTP/2 stream (`proxy::h2`), or from our
/// HTTP/1.1 connection loop (`proxy::h1`) through a [`pipe`].
#[derive(Debug)]
pub enum ClientBody {
    /// An HTTP/1.1 request without a body.
    Empty,
    H2(self::h2::H2Body),
    H1(pipe::PipeBody),
}

impl Body for ClientBody {
    type Data = Bytes;
    /// Why is not kept: any failure means the client's body broke off.
    type Error = pipe::Aborted;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, pipe::Aborted>>> {
        match self.get_mut() {
            ClientBody::Empty => Poll::Ready(None),
            ClientBody::H2(b) => Pin::new(b)
                .poll_frame(cx)
                .map(|o| o.map(|r| r.map_err(|_| pipe::Aborted))),
            ClientBody::H1(b) => Pin::new(b).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ClientBody::Empty => true,
            ClientBody::H2(b) => b.is_end_stream(),
            ClientBody::H1(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ClientBody::Empty => SizeHint::with_exact(0),
            ClientBody::H2(b) => b.size_hint(),
            ClientBody::H1(b) => b.size_hint(),
        }
    }
}

/// The body sent upstream: the client's body, streamed, or nothing (or a recorded body sent
/// again).
#[derive(Debug, Default)]
pub struct ReqBody {
    inner: Option<ClientBody>,
    /// Frames of a replayed body, sent before (instead of) `inner`.
    replay: std::collections::VecDeque<Bytes>,
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
    /// With `record`, the data is also kept for [`BodyStatus::replayable`].
    pub fn streaming(
        inner: ClientBody,
        limit: u64,
        timeout: Duration,
        record: bool,
    ) -> (Self, Arc<BodyStatus>) {
        let status = Arc::new(BodyStatus::default());
        if record {
            *status.recorded() = Some(Recorded::default());
        }
        (
            ReqBody {
                inner: Some(inner),
                replay: Default::default(),
                remaining: if limit == 0 { u64::MAX } else { limit },
                timeout,
                timer: IdleTimer::default(),
                status: Some(status.clone()),
            },
            status,
        )
    }

    /// A recorded body (see [`BodyStatus::replayable`]), sent again.
    pub fn replay(frames: Vec<Bytes>) -> Self {
        ReqBody {
            replay: frames.into(),
            ..ReqBody::default()
        }
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
        if let Some(b) = this.replay.pop_front() {
            return Poll::Ready(Some(Ok(Frame::data(b))));
        }
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
                    if let Some(s) = &this.status {
                        s.record(d);
                    }
                } else if let Some(s) = &this.status {
                    *s.recorded() = None; // trailers: not replayed
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
        self.replay.is_empty() && self.inner.as_ref().is_none_or(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Some(b) => b.size_hint(),
            None => SizeHint::with_exact(self.replay.iter().map(|b| b.len() as u64).sum()),
        }
    }
}

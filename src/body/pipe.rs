//! A request body handed over from the client connection that reads it (our HTTP/1.1 server,
//! `proxy::h1`) to whoever sends it upstream (possibly another task: hyper's HTTP/2 client).
//! It holds at most one frame: the connection reads the socket only when the consumer has asked
//! for data and the previous frame was taken, so a slow upstream stops the client's upload.

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

/// The client's body broke off (reset, closed early, malformed framing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("client request body broke off")]
pub struct Aborted;

#[derive(Debug, Default)]
struct State {
    frame: Option<Frame<Bytes>>,
    /// No frame follows the one in `frame` (if any).
    ended: bool,
    aborted: bool,
    /// The consumer has polled at least once (an `Expect: 100-continue` client may now send).
    started: bool,
    /// The consumer is gone: nobody will read what the connection would read.
    dropped: bool,
    /// Exact size still to come, when known.
    remaining: Option<u64>,
    consumer: Option<Waker>,
    producer: Option<Waker>,
}

#[derive(Debug, Default)]
struct Shared(Mutex<State>);

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The consumer end: the request body as an `http_body::Body`.
#[derive(Debug)]
pub struct PipeBody(Arc<Shared>);

/// The producer end, kept by the connection.
#[derive(Debug)]
pub struct Feeder(Arc<Shared>);

/// What the feeder may do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// The slot is free and the consumer has asked: read and push a frame.
    Data,
    /// The consumer is gone.
    Dropped,
}

/// A body of `len` bytes (`None`: unknown, chunked) fed by the returned [`Feeder`].
pub fn pipe(len: Option<u64>) -> (PipeBody, Feeder) {
    let shared = Arc::new(Shared::default());
    shared.lock().remaining = len;
    (PipeBody(shared.clone()), Feeder(shared))
}

impl Feeder {
    /// Ready when the consumer wants the next frame.
    pub fn poll_want(&mut self, cx: &mut Context<'_>) -> Poll<Want> {
        let mut s = self.0.lock();
        if s.dropped {
            return Poll::Ready(Want::Dropped);
        }
        if s.started && s.frame.is_none() {
            return Poll::Ready(Want::Data);
        }
        if !s.producer.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            s.producer = Some(cx.waker().clone());
        }
        Poll::Pending
    }

    /// Whether the consumer has asked for data yet.
    pub fn started(&self) -> bool {
        self.0.lock().started
    }

    fn put(&mut self, frame: Option<Frame<Bytes>>, ended: bool, aborted: bool) {
        let waker = {
            let mut s = self.0.lock();
            if let Some(f) = frame {
                if let (Some(r), Some(d)) = (s.remaining.as_mut(), f.data_ref()) {
                    *r = r.saturating_sub(d.len() as u64);
                }
                s.frame = Some(f);
            }
            s.ended |= ended;
            s.aborted |= aborted;
            s.consumer.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Whether the consumer is gone (nobody will read the rest of the body).
    pub fn consumer_gone(&self) -> bool {
        self.0.lock().dropped
    }

    /// Hands over data; `last`: nothing follows.
    pub fn data(&mut self, b: Bytes, last: bool) {
        self.put(Some(Frame::data(b)), last, false);
    }

    /// Hands over the trailer section, which ends the body.
    pub fn trailers(&mut self, t: HeaderMap) {
        self.put(Some(Frame::trailers(t)), true, false);
    }

    /// The body is complete.
    pub fn finish(&mut self) {
        self.put(None, true, false);
    }

    /// The body broke off.
    pub fn abort(&mut self) {
        self.put(None, true, true);
    }
}

impl Drop for Feeder {
    fn drop(&mut self) {
        // A connection that goes away mid-body aborts it.
        let ended = self.0.lock().ended;
        if !ended {
            self.abort();
        }
    }
}

impl Drop for PipeBody {
    fn drop(&mut self) {
        let waker = {
            let mut s = self.0.lock();
            s.dropped = true;
            s.producer.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl Body for PipeBody {
    type Data = Bytes;
    type Error = Aborted;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Aborted>>> {
        let (out, waker) = {
            let mut s = self.0.lock();
            s.started = true;
            if let Some(f) = s.frame.take() {
                (Poll::Ready(Some(Ok(f))), s.producer.take())
            } else if s.aborted {
                (Poll::Ready(Some(Err(Aborted))), None)
            } else if s.ended {
                (Poll::Ready(None), None)
            } else {
                if !s.consumer.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    s.consumer = Some(cx.waker().clone());
                }
                (Poll::Pending, s.producer.take())
            }
        };
        if let Some(w) = waker {
            w.wake();
        }
        out
    }

    fn is_end_stream(&self) -> bool {
        let s = self.0.lock();
        s.frame.is_none() && s.ended && !s.aborted
    }

    fn size_hint(&self) -> SizeHint {
        let s = self.0.lock();
        let pending = s
            .frame
            .as_ref()
            .and_then(|f| f.data_ref())
            .map_or(0, |d| d.len() as u64);
        match s.remaining {
            Some(r) => SizeHint::with_exact(r + pending),
            None => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::task::noop_waker;

    #[test]
    fn one_frame_at_a_time_and_only_after_the_consumer_asked() {
        let (mut body, mut feeder) = pipe(Some(5));
        let w = noop_waker();
        let mut cx = Context::from_waker(&w);
        assert!(feeder.poll_want(&mut cx).is_pending(), "nobody asked yet");
        assert!(Pin::new(&mut body).poll_frame(&mut cx).is_pending());
        assert_eq!(feeder.poll_want(&mut cx), Poll::Ready(Want::Data));
        feeder.data(Bytes::from_static(b"hel"), false);
        assert!(feeder.poll_want(&mut cx).is_pending(), "slot full");
        assert_eq!(body.size_hint().exact(), Some(5));
        let f = Pin::new(&mut body).poll_frame(&mut cx);
        assert!(matches!(f, Poll::Ready(Some(Ok(ref f))) if f.data_ref().unwrap() == "hel"));
        feeder.data(Bytes::from_static(b"lo"), true);
        assert!(!body.is_end_stream());
        assert!(matches!(
            Pin::new(&mut body).poll_frame(&mut cx),
            Poll::Ready(Some(Ok(_)))
        ));
        assert!(body.is_end_stream());
        assert!(matches!(
            Pin::new(&mut body).poll_frame(&mut cx),
            Poll::Ready(None)
        ));
    }

    #[test]
    fn a_dropped_feeder_aborts_and_a_dropped_body_is_seen() {
        let (mut body, feeder) = pipe(None);
        drop(feeder);
        let w = noop_waker();
        let mut cx = Context::from_waker(&w);
        assert!(matches!(
            Pin::new(&mut body).poll_frame(&mut cx),
            Poll::Ready(Some(Err(Aborted)))
        ));
        let (body, mut feeder) = pipe(None);
        drop(body);
        assert_eq!(feeder.poll_want(&mut cx), Poll::Ready(Want::Dropped));
    }
}

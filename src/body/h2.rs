//! Bodies on `h2` streams, for both sides of the proxy: [`H2Body`] reads a stream (a client's
//! request body, an upstream's response body) and gives flow-control capacity back as data is
//! taken; [`Pump`] writes a body onto a stream (a request body upstream, a response body to a
//! client) only as fast as the peer's window allows, so nothing piles up in memory.

use super::BodyError;
use bytes::Bytes;
use h2::{Reason, RecvStream, SendStream};
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::task::{Context, Poll};

/// A body read from an HTTP/2 stream; the capacity of each frame is released as it is taken,
/// so the peer sends no more than a window ahead of whoever consumes the body.
#[derive(Debug)]
pub struct H2Body {
    recv: RecvStream,
    data_done: bool,
}

impl H2Body {
    pub fn new(recv: RecvStream) -> Self {
        H2Body {
            recv,
            data_done: false,
        }
    }
}

impl Body for H2Body {
    type Data = Bytes;
    type Error = h2::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, h2::Error>>> {
        let this = self.get_mut();
        if !this.data_done {
            match std::task::ready!(this.recv.poll_data(cx)) {
                Some(Ok(data)) => {
                    let _ = this.recv.flow_control().release_capacity(data.len());
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                None => this.data_done = true,
            }
        }
        match std::task::ready!(this.recv.poll_trailers(cx)) {
            Ok(Some(t)) => Poll::Ready(Some(Ok(Frame::trailers(t)))),
            Ok(None) => Poll::Ready(None),
            Err(e) => Poll::Ready(Some(Err(e))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.recv.is_end_stream()
    }

    /// Exact only for a message that has no body (its head ended the stream); a declared
    /// length travels in its `content-length` field (and h2 holds the peer to it).
    fn size_hint(&self) -> SizeHint {
        if self.recv.is_end_stream() {
            SizeHint::with_exact(0)
        } else {
            SizeHint::default()
        }
    }
}

/// Why a [`Pump`] stopped before the body's end.
#[derive(Debug)]
pub enum PumpError {
    /// The body being sent broke off; the stream was reset.
    Body(BodyError),
    /// The peer reset the stream, or the connection failed.
    Stream(h2::Error),
}

/// A body copied frame by frame onto an h2 stream as the peer's window allows: a frame is
/// taken from the body only when the stream has send capacity, except the first (a new stream
/// has no capacity until its head is written, and at most that one frame is then buffered by
/// h2). Trailers end the stream; so does the body's end.
pub struct Pump<B> {
    body: B,
    tx: SendStream<Bytes>,
    first: bool,
    /// Sent to the peer when the body breaks off.
    reset: Reason,
}

impl<B> Pump<B>
where
    B: Body<Data = Bytes, Error = BodyError> + Unpin,
{
    /// `reset`: the RST_STREAM code when `body` fails.
    pub fn new(body: B, tx: SendStream<Bytes>, reset: Reason) -> Self {
        Pump {
            body,
            tx,
            first: true,
            reset,
        }
    }

    pub fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), PumpError>> {
        loop {
            if !self.first {
                if self.tx.capacity() == 0 {
                    self.tx.reserve_capacity(1);
                    loop {
                        match std::task::ready!(self.tx.poll_capacity(cx)) {
                            Some(Ok(0)) => continue,
                            Some(Ok(_)) => break,
                            Some(Err(e)) => return Poll::Ready(Err(PumpError::Stream(e))),
                            None => {
                                return Poll::Ready(Err(PumpError::Stream(
                                    Reason::STREAM_CLOSED.into(),
                                )))
                            }
                        }
                    }
                } else if let Poll::Ready(r) = self.tx.poll_reset(cx) {
                    let e = r.map_or_else(|e| e, h2::Error::from);
                    return Poll::Ready(Err(PumpError::Stream(e)));
                }
            }
            let frame = match Pin::new(&mut self.body).poll_frame(cx) {
                Poll::Pending => {
                    // Waiting for the body: a peer that resets the stream meanwhile (it
                    // answered early, or gave up) ends the copy now.
                    if let Poll::Ready(r) = self.tx.poll_reset(cx) {
                        let e = r.map_or_else(|e| e, h2::Error::from);
                        return Poll::Ready(Err(PumpError::Stream(e)));
                    }
                    return Poll::Pending;
                }
                Poll::Ready(None) => {
                    let r = self.tx.send_data(Bytes::new(), true);
                    return Poll::Ready(r.map_err(PumpError::Stream));
                }
                Poll::Ready(Some(Err(e))) => {
                    self.tx.send_reset(self.reset);
                    return Poll::Ready(Err(PumpError::Body(e)));
                }
                Poll::Ready(Some(Ok(f))) => f,
            };
            self.first = false;
            match frame.into_data() {
                Ok(data) => {
                    let eos = self.body.is_end_stream();
                    if data.is_empty() && !eos {
                        continue;
                    }
                    if let Err(e) = self.tx.send_data(data, eos) {
                        return Poll::Ready(Err(PumpError::Stream(e)));
                    }
                    if eos {
                        return Poll::Ready(Ok(()));
                    }
                }
                Err(frame) => {
                    let r = match frame.into_trailers() {
                        Ok(t) => self.tx.send_trailers(t),
                        Err(_) => self.tx.send_data(Bytes::new(), true),
                    };
                    return Poll::Ready(r.map_err(PumpError::Stream));
                }
            }
        }
    }
}

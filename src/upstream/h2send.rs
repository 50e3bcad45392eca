//! One request on an upstream HTTP/2 stream, sent from the request's own task: the head, then
//! the body pumped under flow control while the response head is awaited. A body that is
//! already complete (a unary gRPC call) goes out with the head, with no task and no wake-up of
//! its own; only a body still streaming when the response head arrives gets a task to finish it.
//!
//! Flow control: a frame is read from the client only when the stream has send capacity (or,
//! for the first frame, before the stream is even open: at most one frame is then buffered by
//! h2), so a slow server stops the client's upload instead of filling memory.

use super::body::{UpBody, UpstreamError};
use super::h2pool::H2Stream;
use super::sender::SendError;
use crate::body::{BodyError, ReqBody};
use bytes::Bytes;
use h2::{Reason, RecvStream, SendStream};
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Sends `req` on `stream` and waits for the response head.
pub async fn send(
    stream: &mut H2Stream,
    req: Request<ReqBody>,
) -> Result<Response<UpBody>, SendError> {
    if let Err(e) = std::future::poll_fn(|cx| stream.tx.poll_ready(cx)).await {
        stream.mark_closed();
        return Err(SendError {
            error: UpstreamError::H2(e),
            returned: Some(req),
            spent: None,
        });
    }
    let (parts, body) = req.into_parts();
    let eos = body.is_end_stream();
    let (response, tx) = match stream.tx.send_request(Request::from_parts(parts, ()), eos) {
        Ok(sent) => sent,
        Err(e) => {
            // Nothing went out; the request is gone (h2 took it), its copy is the forwarder's.
            if unsent_retryable(&e) {
                stream.mark_closed();
            }
            return Err(SendError {
                error: UpstreamError::H2Unsent(e),
                returned: None,
                spent: None,
            });
        }
    };
    Exchange {
        pump: (!eos).then(|| Pump {
            body,
            tx,
            first: true,
        }),
        response,
    }
    .await
}

/// Whether a failed `send_request` failed because of the connection (so the request may go
/// on another), rather than because of the request itself (malformed head).
pub fn unsent_retryable(e: &h2::Error) -> bool {
    e.is_io() || e.is_go_away() || e.reason().is_some()
}

/// The response head awaited while the request body is pumped in the same task.
struct Exchange {
    pump: Option<Pump>,
    response: h2::client::ResponseFuture,
}

impl Future for Exchange {
    type Output = Result<Response<UpBody>, SendError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Some(p) = this.pump.as_mut() {
            match p.poll(cx) {
                Poll::Pending => {}
                Poll::Ready(Ok(())) => this.pump = None,
                Poll::Ready(Err(PumpError::Body(_))) => {
                    // The client's body broke off: the request cannot complete. The forwarder
                    // reads why from the body's status.
                    this.pump = None;
                    return Poll::Ready(Err(SendError {
                        error: UpstreamError::H2(Reason::CANCEL.into()),
                        returned: None,
                        spent: None,
                    }));
                }
                // The server reset the stream or the connection failed: the response future
                // says which (a server may answer early and reset the rest of the upload).
                Poll::Ready(Err(PumpError::Upstream(_))) => this.pump = None,
            }
        }
        match Pin::new(&mut this.response).poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(resp)) => {
                if let Some(p) = this.pump.take() {
                    // Still uploading (a streaming call): the rest goes on in its own task.
                    tokio::spawn(p);
                }
                Poll::Ready(Ok(resp.map(|b| UpBody::H2(H2Body::new(b)))))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(SendError {
                error: UpstreamError::H2(e),
                returned: None,
                spent: None,
            })),
        }
    }
}

enum PumpError {
    Body(BodyError),
    Upstream(h2::Error),
}

/// The request body, copied frame by frame onto the stream as capacity allows.
struct Pump {
    body: ReqBody,
    tx: SendStream<Bytes>,
    /// The first frame goes without waiting for capacity (the stream is not open until the
    /// connection task has written its head; capacity comes only after that).
    first: bool,
}

impl Pump {
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), PumpError>> {
        loop {
            if !self.first {
                if self.tx.capacity() == 0 {
                    self.tx.reserve_capacity(1);
                    loop {
                        match std::task::ready!(self.tx.poll_capacity(cx)) {
                            Some(Ok(0)) => continue,
                            Some(Ok(_)) => break,
                            Some(Err(e)) => return Poll::Ready(Err(PumpError::Upstream(e))),
                            None => {
                                return Poll::Ready(Err(PumpError::Upstream(
                                    Reason::STREAM_CLOSED.into(),
                                )))
                            }
                        }
                    }
                } else if let Poll::Ready(r) = self.tx.poll_reset(cx) {
                    let e = r.map_or_else(|e| e, h2::Error::from);
                    return Poll::Ready(Err(PumpError::Upstream(e)));
                }
            }
            let polled = Pin::new(&mut self.body).poll_frame(cx);
            let frame = match polled {
                Poll::Pending => {
                    // Waiting for the client: a server that resets the stream meanwhile (it
                    // answered early, or gave up) ends the upload now.
                    if let Poll::Ready(r) = self.tx.poll_reset(cx) {
                        let e = r.map_or_else(|e| e, h2::Error::from);
                        return Poll::Ready(Err(PumpError::Upstream(e)));
                    }
                    return Poll::Pending;
                }
                Poll::Ready(None) => {
                    let r = self.tx.send_data(Bytes::new(), true);
                    return Poll::Ready(r.map_err(PumpError::Upstream));
                }
                Poll::Ready(Some(Err(e))) => {
                    self.tx.send_reset(Reason::CANCEL);
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
                        return Poll::Ready(Err(PumpError::Upstream(e)));
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
                    return Poll::Ready(r.map_err(PumpError::Upstream));
                }
            }
        }
    }
}

/// Finishing an upload in its own task (once the response head has come).
impl Future for Pump {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Pump::poll(self.get_mut(), cx).map(|r| match r {
            Ok(()) => {}
            Err(PumpError::Upstream(e)) => {
                tracing::debug!(error = %e, "upstream HTTP/2 request body not sent to the end")
            }
            Err(PumpError::Body(e)) => {
                tracing::debug!(error = %e, "client request body broke off; upstream stream reset")
            }
        })
    }
}

/// A response body from an HTTP/2 stream; flow-control capacity is given back as data is
/// taken, so the server sends no more than a window ahead of the client.
#[derive(Debug)]
pub struct H2Body {
    recv: RecvStream,
    data_done: bool,
}

impl H2Body {
    fn new(recv: RecvStream) -> Self {
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

    /// Exact only for a response that has no body (its head ended the stream); a length the
    /// server declared travels in its `content-length` field.
    fn size_hint(&self) -> SizeHint {
        if self.recv.is_end_stream() {
            SizeHint::with_exact(0)
        } else {
            SizeHint::default()
        }
    }
}

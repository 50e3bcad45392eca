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
use crate::body::h2::{H2Body, Pump, PumpError};
use crate::body::ReqBody;
use h2::Reason;
use http::{Request, Response};
use http_body::Body;
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
        pump: (!eos).then(|| Pump::new(body, tx, Reason::CANCEL)),
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
    pump: Option<Pump<ReqBody>>,
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
                Poll::Ready(Err(PumpError::Stream(_))) => this.pump = None,
            }
        }
        match Pin::new(&mut this.response).poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(resp)) => {
                if let Some(p) = this.pump.take() {
                    // Still uploading (a streaming call): the rest goes on in its own task.
                    tokio::spawn(Finish(p));
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

/// Finishing an upload in its own task (once the response head has come).
struct Finish(Pump<ReqBody>);

impl Future for Finish {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.get_mut().0.poll(cx).map(|r| match r {
            Ok(()) => {}
            Err(PumpError::Stream(e)) => {
                tracing::debug!(error = %e, "upstream HTTP/2 request body not sent to the end")
            }
            Err(PumpError::Body(e)) => {
                tracing::debug!(error = %e, "client request body broke off; upstream stream reset")
            }
        })
    }
}

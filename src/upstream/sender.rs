//! The sending half of an upstream connection, whichever HTTP version it speaks.

use super::body::{UpBody, UpstreamError};
use super::h1::H1Conn;
use super::h2pool::H2Stream;
use crate::body::ReqBody;
use http::{Request, Response};

#[derive(Debug)]
pub enum Sender {
    /// A whole HTTP/1.1 connection, one request at a time; `None` while a response body
    /// holds it (it comes back when the body is complete).
    H1(Option<Box<H1Conn>>),
    /// One stream slot of a multiplexed HTTP/2 connection.
    H2(H2Stream),
}

/// A request that got no response head.
#[derive(Debug)]
pub struct SendError {
    pub error: UpstreamError,
    /// The request, when it never reached the server.
    pub returned: Option<Request<ReqBody>>,
    /// A bodyless HTTP/1.1 request that did go out, given back (see `h1::Failure::spent`).
    pub spent: Option<Request<ReqBody>>,
}

impl Sender {
    /// Whether a request can go right away (checked without arming a timer).
    pub fn ready_now(&mut self) -> bool {
        match self {
            Sender::H1(c) => c.is_some(),
            Sender::H2(s) => {
                let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
                match s.tx.poll_ready(&mut cx) {
                    std::task::Poll::Ready(Ok(())) => true,
                    std::task::Poll::Ready(Err(_)) => {
                        s.mark_closed();
                        false
                    }
                    std::task::Poll::Pending => false,
                }
            }
        }
    }

    /// Waits until a request can go; an error means the connection is unusable (it is then
    /// out of its pool).
    pub async fn ready(&mut self) -> Result<(), UpstreamError> {
        match self {
            Sender::H1(_) => Ok(()),
            Sender::H2(s) => {
                let r = std::future::poll_fn(|cx| s.tx.poll_ready(cx)).await;
                r.map_err(|e| {
                    s.mark_closed();
                    UpstreamError::H2(e)
                })
            }
        }
    }

    pub fn is_h2(&self) -> bool {
        matches!(self, Sender::H2(_))
    }

    /// Sends `req` and waits for the response head; on failure the request comes back when it
    /// was never sent.
    pub async fn send(&mut self, req: Request<ReqBody>) -> Result<Response<UpBody>, SendError> {
        match self {
            Sender::H1(c) => {
                let Some(conn) = c.take() else {
                    return Err(SendError {
                        error: UpstreamError::H1(super::h1::H1Error::ClosedBeforeResponse),
                        returned: Some(req),
                        spent: None,
                    });
                };
                match conn.send(req).await {
                    Ok(r) => Ok(r.map(UpBody::H1)),
                    Err(f) => Err(SendError {
                        error: f.error.into(),
                        returned: f.returned,
                        spent: f.spent,
                    }),
                }
            }
            Sender::H2(s) => super::h2send::send(s, req).await,
        }
    }
}

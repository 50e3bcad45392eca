//! The sending half of an upstream connection, whichever HTTP version it speaks.

use super::h2pool::H2Stream;
use crate::body::ReqBody;
use futures_util::future::Either;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::{http1, TrySendError};
use std::future::Future;

#[derive(Debug)]
pub enum Sender {
    /// A whole HTTP/1.1 connection, one request at a time.
    H1(http1::SendRequest<ReqBody>),
    /// One stream slot of a multiplexed HTTP/2 connection.
    H2(H2Stream),
}

impl Sender {
    /// Whether a request can go right away (checked without arming a timer).
    pub fn ready_now(&mut self) -> bool {
        use futures_util::FutureExt as _;
        match self {
            Sender::H1(tx) => matches!(tx.ready().now_or_never(), Some(Ok(()))),
            Sender::H2(s) => s.tx.is_ready(),
        }
    }

    pub async fn ready(&mut self) -> hyper::Result<()> {
        match self {
            Sender::H1(tx) => tx.ready().await,
            Sender::H2(s) => s.tx.ready().await,
        }
    }

    pub fn is_closed(&self) -> bool {
        match self {
            Sender::H1(tx) => tx.is_closed(),
            Sender::H2(s) => s.tx.is_closed(),
        }
    }

    pub fn is_h2(&self) -> bool {
        matches!(self, Sender::H2(_))
    }

    /// Sends `req`; on failure the request comes back when it was never sent.
    pub fn send(
        &mut self,
        req: Request<ReqBody>,
    ) -> impl Future<Output = Result<Response<Incoming>, TrySendError<Request<ReqBody>>>> {
        match self {
            Sender::H1(tx) => Either::Left(tx.try_send_request(req)),
            Sender::H2(s) => Either::Right(s.tx.try_send_request(req)),
        }
    }
}

//! One client stream, run inside its connection's task: the handler until the response head
//! (dropped if the client resets the stream meanwhile: a cancelled call cancels the upstream
//! request), then the response body pumped under the client's flow control.

use crate::body::h2::{H2Body, Pump, PumpError};
use crate::body::ClientBody;
use crate::proxy::body::ResBody;
use crate::proxy::handler::{self, ConnCtx};
use bytes::Bytes;
use h2::server::SendResponse;
use h2::{Reason, RecvStream};
use http::{header, HeaderMap, HeaderValue, Request, Response};
use http_body::Body as _;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

type Handling = Pin<Box<dyn Future<Output = Result<Response<ResBody>, Infallible>> + Send>>;

pub struct Stream {
    state: State,
}

// Not boxed: a stream lives in its connection's `FuturesUnordered` cell, one allocation that
// holds either state; a box for the body would be a second allocation per stream.
#[allow(clippy::large_enum_variant)]
enum State {
    /// The handler is working; the response head is not sent yet.
    Handling {
        handler: Handling,
        respond: SendResponse<Bytes>,
    },
    /// The head is sent; the body follows.
    Body(Pump<ResBody>),
}

impl Stream {
    pub fn new(req: Request<RecvStream>, respond: SendResponse<Bytes>, cx: &Arc<ConnCtx>) -> Self {
        let req = req.map(|b| ClientBody::H2(H2Body::new(b)));
        // Boxed: the handler's state is large (~6 KB) and lives only until the response head.
        Stream {
            state: State::Handling {
                handler: Box::pin(handler::handle(req, cx.clone())),
                respond,
            },
        }
    }
}

impl Future for Stream {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let pump = match &mut this.state {
            State::Handling { handler, respond } => {
                let resp = match handler.as_mut().poll(cx) {
                    Poll::Ready(Ok(resp)) => resp,
                    Poll::Ready(Err(never)) => match never {},
                    Poll::Pending => {
                        return match respond.poll_reset(cx) {
                            Poll::Ready(r) => {
                                tracing::debug!(reason = ?r, "client reset the stream");
                                Poll::Ready(())
                            }
                            Poll::Pending => Poll::Pending,
                        };
                    }
                };
                match send_head(respond, resp) {
                    Some(pump) => pump,
                    None => return Poll::Ready(()),
                }
            }
            State::Body(pump) => {
                return pump.poll(cx).map(|r| match r {
                    Ok(()) => {}
                    Err(PumpError::Stream(e)) => {
                        tracing::debug!(error = %e, "response body not sent to the end")
                    }
                    Err(PumpError::Body(e)) => {
                        tracing::debug!(error = %e, "response body broke off; stream reset")
                    }
                });
            }
        };
        // The handler's state goes; the body follows the head (polled at once: its first
        // frame is usually there already).
        this.state = State::Body(pump);
        Pin::new(this).poll(cx)
    }
}

/// Sends the response head; the body's pump unless the head ended the stream.
fn send_head(respond: &mut SendResponse<Bytes>, resp: Response<ResBody>) -> Option<Pump<ResBody>> {
    let (mut parts, body) = resp.into_parts();
    strip_connection_specific(&mut parts.headers);
    if !parts.headers.contains_key(header::DATE) {
        parts
            .headers
            .insert(header::DATE, crate::proxy::date::now());
    }
    let eos = body.is_end_stream();
    if !eos && !parts.headers.contains_key(header::CONTENT_LENGTH) {
        if let Some(n) = body.size_hint().exact() {
            parts
                .headers
                .insert(header::CONTENT_LENGTH, HeaderValue::from(n));
        }
    }
    match respond.send_response(Response::from_parts(parts, ()), eos) {
        Ok(tx) if !eos => Some(Pump::new(body, tx, Reason::INTERNAL_ERROR)),
        Ok(_) => None,
        Err(e) => {
            // Reset explicitly: h2 resets a dropped stream by itself only when nothing else
            // holds it (an upload task may still hold the request body).
            tracing::debug!(error = %e, "response head not sent");
            respond.send_reset(Reason::INTERNAL_ERROR);
            None
        }
    }
}

/// Removes what HTTP/2 forbids in a response (RFC 9113 §8.2.2; h2 refuses to send a head with
/// them). Proxied responses lost them already (`headers::to_client`); one pass over the names
/// checks.
fn strip_connection_specific(headers: &mut HeaderMap) {
    let forbidden = |n: &header::HeaderName| {
        n == header::CONNECTION
            || n == header::TRANSFER_ENCODING
            || n == header::UPGRADE
            || n == header::TE
            || n.as_str() == "keep-alive"
            || n.as_str() == "proxy-connection"
    };
    if !headers.keys().any(forbidden) {
        return;
    }
    if let Some(c) = headers.remove(header::CONNECTION) {
        if let Ok(names) = c.to_str() {
            for name in names.split(',') {
                headers.remove(name.trim());
            }
        }
    }
    for name in [
        header::TRANSFER_ENCODING,
        header::UPGRADE,
        header::TE,
        header::HeaderName::from_static("keep-alive"),
        header::HeaderName::from_static("proxy-connection"),
    ] {
        headers.remove(name);
    }
}

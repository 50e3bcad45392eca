//! The request on its way out: queued byte pieces written with vectored writes, and the body
//! pulled frame by frame only when the previous frame is on the wire (so a server that stops
//! reading stops the client body too, and `send_timeout` sees the stall).

use crate::body::{BodyError, ReqBody};
use crate::h1::chunked;
pub use crate::h1::outbox::Outbox;
use crate::h1::request::BodyFraming;
use bytes::Bytes;
use http_body::Body;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::io::AsyncWrite;

#[derive(Debug)]
pub enum WriteError {
    /// The connection failed.
    Io(std::io::Error),
    /// The client's body failed (too large, aborted, timed out): the request is incomplete.
    Body(BodyError),
}

/// Sends a request body after its head.
#[derive(Debug)]
pub struct Writer {
    body: ReqBody,
    framing: BodyFraming,
    /// Bytes still due with `Content-Length` framing.
    remaining: u64,
    out: Outbox,
    /// The body ended; what is left is in `out`.
    ended: bool,
}

impl Writer {
    pub fn new(body: ReqBody, framing: BodyFraming) -> Self {
        let remaining = match framing {
            BodyFraming::Length(n) => n,
            _ => 0,
        };
        Writer {
            body,
            framing,
            remaining,
            out: Outbox::default(),
            ended: framing == BodyFraming::None,
        }
    }

    /// Writes until the body is complete (`Ready(Ok)`), or waits for the client or the server.
    pub fn poll_drive<W: AsyncWrite + Unpin>(
        &mut self,
        io: &mut W,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), WriteError>> {
        loop {
            ready!(self.out.poll_write_to(io, cx)).map_err(WriteError::Io)?;
            if self.ended {
                return Poll::Ready(Ok(()));
            }
            match ready!(Pin::new(&mut self.body).poll_frame(cx)) {
                Some(Ok(frame)) => {
                    // Trailers are not sent: the request's `Trailer` field is hop-by-hop and
                    // removed, and undeclared trailer fields would be dropped by most servers.
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    if data.is_empty() {
                        continue;
                    }
                    match self.framing {
                        BodyFraming::Chunked => {
                            self.out.push(chunked::encode_size(data.len()));
                            self.out.push(data);
                            self.out.push(Bytes::from_static(chunked::CRLF));
                        }
                        _ => {
                            let n = data.len() as u64;
                            if n > self.remaining {
                                // The client's framing is checked on the way in; never send
                                // more than the head declared.
                                return Poll::Ready(Err(WriteError::Body(BodyError::TooLarge)));
                            }
                            self.remaining -= n;
                            self.out.push(data);
                        }
                    }
                }
                Some(Err(e)) => return Poll::Ready(Err(WriteError::Body(e))),
                None => {
                    match self.framing {
                        BodyFraming::Chunked => {
                            self.out.push(Bytes::from_static(chunked::LAST_CHUNK))
                        }
                        _ if self.remaining != 0 => {
                            return Poll::Ready(Err(WriteError::Body(BodyError::ClientAborted)))
                        }
                        _ => {}
                    }
                    self.ended = true;
                }
            }
        }
    }
}

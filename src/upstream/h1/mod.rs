//! Upstream HTTP/1.1 connections on our own codec (`crate::h1`), replacing hyper's client
//! (issue 16). There is no task and no channel per connection: the request's own task writes the
//! head, pumps the body, parses the response head, and the response body ([`H1Body`]) reads the
//! socket directly while the client connection polls it, then hands the connection back to the
//! pool. Bodies stream both ways with bounded buffers; the request body may still be going out
//! while the response comes in (an early answer stops it and retires the connection).

mod body;
mod upgraded;
mod writer;

pub use body::H1Body;
pub use upgraded::Upgraded;

use super::io::Io;
use super::server::Server;
use crate::body::{BodyError, ReqBody};
use crate::h1::outbox::poll_write_all;
use crate::h1::{request, response, ParseError};
use bytes::BytesMut;
use http::{header, Method, Request, Response};
use http_body::Body as _;
use std::future::poll_fn;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use tokio::io::AsyncRead;
use writer::{WriteError, Writer};

/// First read size; doubled while reads fill it, up to the upstream's `read_buffer_size`.
const MIN_READ: usize = 8 << 10;

#[derive(Debug, thiserror::Error)]
pub enum H1Error {
    #[error("invalid response: {0}")]
    Parse(#[from] ParseError),
    #[error("write: {0}")]
    Write(std::io::Error),
    #[error("read: {0}")]
    Read(std::io::Error),
    #[error("connection closed before a response")]
    ClosedBeforeResponse,
    #[error("connection closed inside the response body")]
    Truncated,
    #[error("request body: {0}")]
    Body(BodyError),
}

impl H1Error {
    pub fn is_head_too_large(&self) -> bool {
        matches!(self, H1Error::Parse(ParseError::TooLarge))
    }
}

/// A request that did not get a response head.
#[derive(Debug)]
pub struct Failure {
    pub error: H1Error,
    /// The request, when the server cannot have acted on it: its head did not go out whole
    /// (at most part of it reached the server) and its body is untouched. It can be sent
    /// elsewhere.
    pub returned: Option<Request<ReqBody>>,
    /// A bodyless request whose head did go out, given back so that it can be sent again
    /// without a copy kept aside: the server may have acted on it, so only an idempotent
    /// method may be (nginx `proxy_next_upstream` rules; the caller decides).
    pub spent: Option<Request<ReqBody>>,
}

/// Keeps `Server::open_conns` while a connection (or what it was upgraded to) lives.
#[derive(Debug)]
struct OpenGuard(Arc<Server>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.open_conns.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Limits of one connection, from the upstream's settings.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// `max_response_header_size`.
    pub max_head: usize,
    /// `read_buffer_size`: largest single read.
    pub max_read: usize,
}

/// An open HTTP/1.1 connection to a server, between requests.
pub struct H1Conn {
    io: Io,
    /// Bytes read and not consumed yet. Empty (and small) while the connection is idle.
    rbuf: BytesMut,
    read_size: usize,
    limits: Limits,
    _open: OpenGuard,
}

impl std::fmt::Debug for H1Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H1Conn")
            .field("server", &self._open.0.label)
            .finish_non_exhaustive()
    }
}

impl H1Conn {
    pub fn new(server: &Arc<Server>, io: Io, limits: Limits) -> Self {
        server.open_conns.fetch_add(1, Ordering::Relaxed);
        H1Conn {
            io,
            rbuf: BytesMut::new(),
            read_size: MIN_READ,
            limits,
            _open: OpenGuard(server.clone()),
        }
    }

    /// Whether an idle connection is unusable: the server closed it, reset it, or sent bytes
    /// nobody asked for. Never waits.
    pub fn is_closed(&mut self) -> bool {
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let mut probe = [0u8; 64];
        let mut buf = tokio::io::ReadBuf::new(&mut probe);
        !matches!(
            std::pin::Pin::new(&mut self.io).poll_read(&mut cx, &mut buf),
            Poll::Pending
        )
    }

    /// Sends `req` and waits for the response head (interim 1xx responses other than 101 are
    /// skipped). The response body reads from this connection and gives it back when done.
    pub async fn send(
        mut self: Box<Self>,
        req: Request<ReqBody>,
    ) -> Result<Response<H1Body>, Failure> {
        let head_request = req.method() == Method::HEAD;
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| response::content_length(v.as_bytes()).ok());
        let bodyless = req.body().is_end_stream();
        let framing = request::framing(declared, bodyless);
        let mut encoded = Vec::with_capacity(256);
        request::encode_head(
            &mut encoded,
            req.method(),
            req.uri(),
            req.headers(),
            framing,
        );
        // The head alone first: until it is out nothing of the body was read, and a failure
        // (a pooled connection the server just closed) gives the request back whole.
        let mut at = 0;
        let wrote = poll_fn(|cx| poll_write_all(&mut self.io, &encoded, &mut at, cx)).await;
        drop(encoded);
        if let Err(e) = wrote {
            return Err(Failure {
                error: H1Error::Write(e),
                returned: Some(req),
                spent: None,
            });
        }
        let (parts, body) = req.into_parts();
        let spent = move || bodyless.then(|| Request::from_parts(parts, ReqBody::empty()));
        let mut writer = Some(Writer::new(body, framing));
        let mut write_error = None;
        let head = poll_fn(|cx| {
            if let Some(w) = &mut writer {
                match w.poll_drive(&mut self.io, cx) {
                    Poll::Ready(Ok(())) => writer = None,
                    Poll::Ready(Err(WriteError::Body(e))) => {
                        return Poll::Ready(Err(H1Error::Body(e)))
                    }
                    // The server may have answered already (an early 413 and a close): read it.
                    Poll::Ready(Err(WriteError::Io(e))) => {
                        writer = None;
                        write_error = Some(e);
                    }
                    Poll::Pending => {}
                }
            }
            self.poll_head(cx, head_request)
        })
        .await;
        let head = match (head, write_error) {
            (Ok(h), write_error) => (h, write_error.is_none()),
            (Err(H1Error::ClosedBeforeResponse | H1Error::Read(_)), Some(e)) => {
                return Err(Failure {
                    error: H1Error::Write(e),
                    returned: None,
                    spent: spent(),
                })
            }
            (Err(error), _) => {
                return Err(Failure {
                    error,
                    returned: None,
                    spent: spent(),
                })
            }
        };
        let (head, wrote_ok) = head;
        let mut resp = Response::new(H1Body::new(
            self,
            writer.map(Box::new),
            &head,
            head.keep_alive && wrote_ok,
        ));
        *resp.status_mut() = head.status;
        *resp.version_mut() = head.version;
        *resp.headers_mut() = head.headers;
        Ok(resp)
    }

    fn poll_head(
        &mut self,
        cx: &mut Context<'_>,
        head_request: bool,
    ) -> Poll<Result<response::Head, H1Error>> {
        loop {
            if !self.rbuf.is_empty() {
                match response::parse_buf(&mut self.rbuf, head_request)? {
                    Some((n, _)) if n > self.limits.max_head => {
                        return Poll::Ready(Err(ParseError::TooLarge.into()))
                    }
                    Some((_, head)) => {
                        if head.status.is_informational()
                            && head.status != http::StatusCode::SWITCHING_PROTOCOLS
                        {
                            continue; // 100 Continue, 103 Early Hints: not relayed
                        }
                        return Poll::Ready(Ok(head));
                    }
                    None if self.rbuf.len() >= self.limits.max_head => {
                        return Poll::Ready(Err(ParseError::TooLarge.into()))
                    }
                    None => {}
                }
            }
            let before = self.rbuf.len();
            if ready!(self.poll_read(cx)).map_err(H1Error::Read)? == 0 {
                return Poll::Ready(Err(if before == 0 {
                    H1Error::ClosedBeforeResponse
                } else {
                    ParseError::Malformed("truncated head").into()
                }));
            }
        }
    }

    /// Reads once into `rbuf`; 0 at end of stream. Reads grow while they fill the buffer.
    fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<usize>> {
        if self.rbuf.capacity() - self.rbuf.len() < self.read_size / 2 {
            self.rbuf.reserve(self.read_size);
        }
        let room = self.rbuf.capacity() - self.rbuf.len();
        let n = ready!(tokio_util::io::poll_read_buf(
            std::pin::Pin::new(&mut self.io),
            cx,
            &mut self.rbuf
        ))?;
        if n >= room && self.read_size < self.limits.max_read {
            self.read_size = (self.read_size * 2).min(self.limits.max_read);
        }
        Poll::Ready(Ok(n))
    }

    /// Back to idle: drop a large read buffer so that an idle connection stays small.
    fn idle(&mut self) {
        if self.rbuf.capacity() > MIN_READ {
            self.rbuf = BytesMut::new();
        }
    }
}

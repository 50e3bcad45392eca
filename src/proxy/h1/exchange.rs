//! One request on a client connection, from its parsed head to the end of its response: the
//! handler runs, the request body is read from the socket only when the upstream side asks for
//! it (answering `Expect: 100-continue` then), and the response is written as its frames come,
//! one frame queued at most.

use super::encode::{self, Framing, ReqInfo};
use super::ClientIo;
use crate::body::pipe::{self, Feeder, Want};
use crate::body::ClientBody;
use crate::config::ClientLimits;
use crate::h1::chunked::{self, Decoded};
use crate::h1::outbox::Outbox;
use crate::h1::request::{BodyFraming, Head};
use crate::proxy::body::ResBody;
use crate::proxy::error::ProxyError;
use crate::proxy::handler::{self, ConnCtx};
use crate::proxy::upgrade::UpstreamUpgrade;
use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Request, Response, StatusCode, Version};
use http_body::Body;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

/// First read of a request body; doubled while reads fill it, up to `client_body_buffer_size`.
const BODY_READ: usize = 16 << 10;

const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// How the connection goes on after the exchange.
pub enum Outcome {
    KeepAlive,
    Close,
    /// The 101 went out: the connection now belongs to a tunnel.
    Upgrade(UpstreamUpgrade),
}

/// The request body as it is read from the socket.
enum Pump {
    Running(Box<Reader>),
    /// Read to its end: the connection is positioned at the next request.
    Done,
    /// Not read to its end (aborted, malformed, or nobody wanted it).
    Broken,
}

struct Reader {
    feeder: Feeder,
    framing: BodyFraming,
    /// Bytes still due with `Content-Length`.
    remaining: u64,
    decoder: chunked::Decoder,
    /// `Expect: 100-continue` not answered yet.
    continue_due: bool,
    read_size: usize,
    /// Set whenever a frame was handed over (the handler may progress).
    fed: bool,
}

// The exchange is boxed as a whole: the variants' sizes do not matter to an idle connection.
#[allow(clippy::large_enum_variant)]
enum Resp {
    /// The handler has not answered.
    Waiting,
    Writing {
        body: ResBody,
        framing: Framing,
        /// Bytes of the body still due with `Content-Length`.
        remaining: u64,
        trailers: Option<HeaderMap>,
        ended: bool,
        keep_alive: bool,
        upgrade: Option<UpstreamUpgrade>,
    },
}

/// One request in flight on a client connection (boxed by the caller: an idle connection's
/// task does not keep room for it).
pub struct Exchange {
    req: ReqInfo,
    handler: Option<Handling>,
    pump: Pump,
    resp: Resp,
    out: Outbox,
}

/// The handler's future for one request.
type Handling = Pin<Box<dyn Future<Output = Result<Response<ResBody>, Infallible>> + Send>>;

impl Exchange {
    /// Starts the exchange for `head`: builds the request and its body pipe and calls the
    /// handler.
    pub fn new(head: Head, cx: &Arc<ConnCtx>) -> Box<Self> {
        let req_info = ReqInfo {
            version: head.version,
            head: head.method == http::Method::HEAD,
            keep_alive: head.keep_alive,
        };
        let (body, pump) = match head.framing {
            BodyFraming::None => (ClientBody::Empty, Pump::Done),
            framing => {
                let (len, remaining) = match framing {
                    BodyFraming::Length(n) => (Some(n), n),
                    _ => (None, 0),
                };
                let (body, feeder) = pipe::pipe(len);
                let reader = Reader {
                    feeder,
                    framing,
                    remaining,
                    decoder: chunked::Decoder::default(),
                    continue_due: head.expect_continue && head.version != Version::HTTP_10,
                    read_size: BODY_READ,
                    fed: false,
                };
                (ClientBody::H1(body), Pump::Running(Box::new(reader)))
            }
        };
        let mut req = Request::new(body);
        *req.method_mut() = head.method;
        *req.uri_mut() = head.uri;
        *req.version_mut() = head.version;
        *req.headers_mut() = head.headers;
        Box::new(Exchange {
            req: req_info,
            handler: Some(Box::pin(handler::handle(req, cx.clone()))),
            pump,
            resp: Resp::Waiting,
            out: Outbox::default(),
        })
    }

    /// Drives the exchange; ready when the response is complete (or the connection failed).
    /// `closing`: the connection ends after this response whatever it says.
    pub fn poll<I: ClientIo>(
        &mut self,
        io: &mut I,
        rbuf: &mut BytesMut,
        limits: &ClientLimits,
        closing: bool,
        cx: &mut Context<'_>,
    ) -> Poll<Outcome> {
        loop {
            let mut progressed = false;
            let responding = !matches!(self.resp, Resp::Waiting);
            if let Pump::Running(r) = &mut self.pump {
                match r.poll(io, rbuf, &mut self.out, responding, limits, cx) {
                    Poll::Ready(Ok(())) => self.pump = Pump::Done,
                    Poll::Ready(Err(())) => self.pump = Pump::Broken,
                    Poll::Pending => progressed |= std::mem::take(&mut r.fed),
                }
            }
            if matches!(self.resp, Resp::Waiting)
                && !matches!(self.pump, Pump::Running(_))
                && rbuf.len() < limits.max_header_size
            {
                // Nothing else reads the client while the upstream thinks: watch for it going
                // away, which cancels the request (as hyper does). Pipelined bytes read
                // meanwhile stay in the buffer for the next request.
                match watch_client(io, rbuf, cx) {
                    Poll::Ready(true) => progressed = true,
                    Poll::Ready(false) => return Poll::Ready(Outcome::Close),
                    Poll::Pending => {}
                }
            }
            if let Some(h) = self.handler.as_mut() {
                if let Poll::Ready(Ok(resp)) = h.as_mut().poll(cx) {
                    self.handler = None;
                    self.start_response(resp);
                }
            }
            if let Resp::Writing { .. } = self.resp {
                match self.poll_response(io, cx) {
                    Poll::Ready(Ok(())) => return Poll::Ready(self.outcome(closing)),
                    Poll::Ready(Err(())) => return Poll::Ready(Outcome::Close),
                    Poll::Pending => {}
                }
            }
            if !progressed {
                return Poll::Pending;
            }
        }
    }

    fn start_response(&mut self, resp: Response<ResBody>) {
        let (mut parts, body) = resp.into_parts();
        let upgrade = if parts.status == StatusCode::SWITCHING_PROTOCOLS {
            parts.extensions.remove::<UpstreamUpgrade>()
        } else {
            None
        };
        let exact = body.size_hint().exact();
        let mut req = self.req;
        let unread = match &self.pump {
            Pump::Broken => true,
            Pump::Running(r) => r.feeder.consumer_gone(),
            Pump::Done => false,
        };
        if unread {
            // The request body was not read to its end (nobody wanted the rest): the connection
            // closes after this response, and the response says so.
            req.keep_alive = false;
        }
        let mut dst = Vec::with_capacity(128 + parts.headers.len() * 32);
        let enc = encode::head(&mut dst, req, parts.status, &mut parts.headers, exact);
        self.out.push_vec(dst);
        let remaining = match enc.framing {
            Framing::Length(n) => n,
            _ => 0,
        };
        self.resp = Resp::Writing {
            ended: enc.framing == Framing::Empty,
            body,
            framing: enc.framing,
            remaining,
            trailers: None,
            keep_alive: enc.keep_alive && upgrade.is_none(),
            upgrade,
        };
    }

    /// Writes the response: the head, then the body frame by frame.
    fn poll_response<I: ClientIo>(
        &mut self,
        io: &mut I,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), ()>> {
        let Resp::Writing {
            body,
            framing,
            remaining,
            trailers,
            ended,
            ..
        } = &mut self.resp
        else {
            return Poll::Pending;
        };
        // The body returned `Pending` (it waits, or yields for fairness after a long run):
        // not polled again in this call, whatever is written meanwhile.
        let mut body_pending = false;
        loop {
            if !*ended && !body_pending && self.out.len() <= 1 {
                // The head alone, or nothing, is queued: take the next frame (a small response
                // then goes out in one write with its head).
                match Pin::new(&mut *body).poll_frame(cx) {
                    Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                        Ok(data) => {
                            if data.is_empty() {
                                continue;
                            }
                            match framing {
                                Framing::Chunked(_) => {
                                    self.out.push(chunked::encode_size(data.len()));
                                    self.out.push(data);
                                    self.out.push(Bytes::from_static(chunked::CRLF));
                                }
                                Framing::Length(_) => {
                                    let n = data.len() as u64;
                                    if n > *remaining {
                                        // More than the head declared: never sent.
                                        return Poll::Ready(Err(()));
                                    }
                                    *remaining -= n;
                                    self.out.push(data);
                                }
                                Framing::Close => self.out.push(data),
                                Framing::Empty => {}
                            }
                            continue;
                        }
                        Err(frame) => {
                            if let Ok(t) = frame.into_trailers() {
                                *trailers = Some(t);
                            }
                            continue;
                        }
                    },
                    Poll::Ready(Some(Err(_))) => return Poll::Ready(Err(())),
                    Poll::Ready(None) => {
                        match framing {
                            Framing::Chunked(allowed) => {
                                let mut dst = Vec::with_capacity(5);
                                encode::last_chunk(&mut dst, allowed, trailers.as_ref());
                                self.out.push_vec(dst);
                            }
                            Framing::Length(_) if *remaining != 0 => {
                                return Poll::Ready(Err(())); // cut short
                            }
                            _ => {}
                        }
                        *ended = true;
                    }
                    Poll::Pending if self.out.is_empty() => return Poll::Pending,
                    Poll::Pending => body_pending = true,
                }
            }
            if !self.out.is_empty() {
                if ready!(self.out.poll_write_to(io, cx)).is_err() {
                    return Poll::Ready(Err(()));
                }
                continue;
            }
            if *ended {
                return Poll::Ready(Ok(()));
            }
            if body_pending {
                return Poll::Pending;
            }
        }
    }

    fn outcome(&mut self, closing: bool) -> Outcome {
        let Resp::Writing {
            keep_alive,
            upgrade,
            framing,
            ..
        } = &mut self.resp
        else {
            return Outcome::Close;
        };
        if let Some(up) = upgrade.take() {
            return Outcome::Upgrade(up);
        }
        let body_read = matches!(self.pump, Pump::Done);
        if *keep_alive && body_read && *framing != Framing::Close && !closing {
            Outcome::KeepAlive
        } else {
            Outcome::Close
        }
    }
}

/// Reads what the client sent while its request waits: `Ready(true)` bytes came (kept),
/// `Ready(false)` it closed or failed. No read is attempted before the socket is readable.
fn watch_client<I: ClientIo>(io: &mut I, rbuf: &mut BytesMut, cx: &mut Context<'_>) -> Poll<bool> {
    if io.poll_read_ready(cx).is_pending() {
        return Poll::Pending;
    }
    if rbuf.capacity() == rbuf.len() {
        rbuf.reserve(1 << 10);
    }
    match tokio_util::io::poll_read_buf(Pin::new(&mut *io), cx, rbuf) {
        Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => Poll::Ready(false),
        Poll::Ready(Ok(_)) => Poll::Ready(true),
        Poll::Pending => Poll::Pending,
    }
}

impl Reader {
    /// Reads and hands over the request body while the consumer asks for it. Ready when the
    /// body was read to its end (`Ok`) or broke off (`Err`).
    fn poll<I: ClientIo>(
        &mut self,
        io: &mut I,
        rbuf: &mut BytesMut,
        out: &mut Outbox,
        responding: bool,
        limits: &ClientLimits,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), ()>> {
        loop {
            match ready!(self.feeder.poll_want(cx)) {
                Want::Dropped => return Poll::Ready(Err(())),
                Want::Data => {}
            }
            if std::mem::take(&mut self.continue_due) && !responding {
                out.push(Bytes::from_static(CONTINUE));
            }
            if !responding && !out.is_empty() && ready!(out.poll_write_to(io, cx)).is_err() {
                self.feeder.abort();
                return Poll::Ready(Err(()));
            }
            match self.framing {
                BodyFraming::Length(_) if !rbuf.is_empty() => {
                    let n = usize::try_from(self.remaining)
                        .unwrap_or(usize::MAX)
                        .min(rbuf.len());
                    let data = rbuf.split_to(n).freeze();
                    self.remaining -= n as u64;
                    self.feeder.data(data, self.remaining == 0);
                    self.fed = true;
                    if self.remaining == 0 {
                        return Poll::Ready(Ok(()));
                    }
                    continue;
                }
                BodyFraming::Chunked => match self.decoder.decode(rbuf) {
                    Ok(Decoded::Data(b)) => {
                        self.feeder.data(b, false);
                        self.fed = true;
                        continue;
                    }
                    Ok(Decoded::Trailers(t)) => {
                        self.feeder.trailers(t);
                        self.fed = true;
                        return Poll::Ready(Ok(()));
                    }
                    Ok(Decoded::End) => {
                        self.feeder.finish();
                        self.fed = true;
                        return Poll::Ready(Ok(()));
                    }
                    Ok(Decoded::NeedMore) => {}
                    Err(e) => {
                        tracing::debug!(error = %e, "bad chunked request body");
                        self.feeder.abort();
                        self.fed = true;
                        return Poll::Ready(Err(()));
                    }
                },
                BodyFraming::None => {
                    self.feeder.finish();
                    return Poll::Ready(Ok(()));
                }
                BodyFraming::Length(_) => {}
            }
            if rbuf.capacity() - rbuf.len() < self.read_size / 2 {
                rbuf.reserve(self.read_size);
            }
            let room = rbuf.capacity() - rbuf.len();
            match ready!(tokio_util::io::poll_read_buf(Pin::new(&mut *io), cx, rbuf)) {
                Ok(0) | Err(_) => {
                    self.feeder.abort();
                    self.fed = true;
                    return Poll::Ready(Err(()));
                }
                Ok(n) => {
                    if n >= room {
                        self.read_size =
                            (self.read_size * 2).min(limits.read_buffer_size.max(BODY_READ));
                    }
                }
            }
        }
    }
}

/// Answers a request whose head could not be parsed, and ends there (the caller closes).
pub async fn answer_error<I: ClientIo>(io: &mut I, e: &ProxyError, limits: &ClientLimits) {
    let (mut parts, body) = e.to_response(false).into_parts();
    let req = ReqInfo {
        version: Version::HTTP_11,
        head: false,
        keep_alive: false,
    };
    let mut dst = Vec::with_capacity(256);
    encode::head(
        &mut dst,
        req,
        parts.status,
        &mut parts.headers,
        body.size_hint().exact(),
    );
    let mut out = Outbox::default();
    out.push_vec(dst);
    if let Some(b) = body.into_full() {
        out.push(b);
    }
    let write = std::future::poll_fn(|cx| out.poll_write_to(io, cx));
    let _ = tokio::time::timeout(limits.header_timeout, write).await;
}

//! The response body read straight off the upstream connection. While it is polled it also
//! finishes sending the request body, if any is still going out. Complete, it gives the
//! connection back ([`H1Body::take_reusable`]); dropped early, the connection closes.

use super::writer::{WriteError, Writer};
use super::{H1Conn, H1Error, Upgraded};
use crate::h1::chunked::{Decoded, Decoder};
use crate::h1::response::{Framing, Head};
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

#[derive(Debug)]
enum State {
    Length(u64),
    Chunked(Decoder),
    Close,
    /// After a 101: the connection belongs to the upgrade.
    Upgrade,
    Done,
    /// Failed; the error is reported at the next poll (see [`H1Body::fail`]).
    Failing(Option<H1Error>),
    Failed,
}

#[derive(Debug)]
pub struct H1Body {
    conn: Option<Box<H1Conn>>,
    /// The request body, when it was still going out as the response head came.
    /// Boxed: rare, and large.
    writer: Option<Box<Writer>>,
    state: State,
    /// The connection may carry another request once this body is complete.
    keep_alive: bool,
}

impl H1Body {
    pub(super) fn new(
        conn: Box<H1Conn>,
        writer: Option<Box<Writer>>,
        head: &Head,
        keep_alive: bool,
    ) -> Self {
        let state = if head.status == http::StatusCode::SWITCHING_PROTOCOLS {
            State::Upgrade
        } else {
            match head.framing {
                Framing::Empty | Framing::Length(0) => State::Done,
                Framing::Length(n) => State::Length(n),
                Framing::Chunked => State::Chunked(Decoder::default()),
                Framing::Close => State::Close,
            }
        };
        H1Body {
            conn: Some(conn),
            writer,
            state,
            keep_alive,
        }
    }

    /// The connection, once the body is complete and the connection can carry another
    /// request (the server keeps it open, the request body went out whole, nothing extra was
    /// sent).
    pub fn take_reusable(&mut self) -> Option<Box<H1Conn>> {
        if !matches!(self.state, State::Done) || !self.keep_alive || self.writer.is_some() {
            return None;
        }
        let mut conn = self.conn.take()?;
        if !conn.rbuf.is_empty() {
            return None;
        }
        conn.idle();
        Some(conn)
    }

    /// After a 101 response: the connection as a byte stream (bytes the server sent after the
    /// head come first).
    pub fn into_upgraded(mut self) -> Option<Upgraded> {
        if !matches!(self.state, State::Upgrade) || self.writer.is_some() {
            // A request body still going out would be mixed with the tunnel's bytes.
            return None;
        }
        let conn = self.conn.take()?;
        Some(Upgraded::new(*conn))
    }

    fn finish(&mut self) -> Poll<Option<Result<Frame<Bytes>, H1Error>>> {
        self.state = State::Done;
        Poll::Ready(None)
    }

    /// The body broke off. The error is reported one poll later, after a wake-up: the client
    /// side (hyper) flushes what it holds when a body is pending, so the data relayed before
    /// the fault reaches the client before the connection is cut, as with a slower server.
    fn fail(
        &mut self,
        cx: &mut Context<'_>,
        e: H1Error,
    ) -> Poll<Option<Result<Frame<Bytes>, H1Error>>> {
        self.state = State::Failing(Some(e));
        self.conn = None;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl Body for H1Body {
    type Data = Bytes;
    type Error = H1Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, H1Error>>> {
        let this = self.get_mut();
        if let State::Failing(e) = &mut this.state {
            let e = e.take();
            this.state = State::Failed;
            return Poll::Ready(e.map(Err));
        }
        let Some(conn) = this.conn.as_mut() else {
            return Poll::Ready(None);
        };
        if let Some(w) = &mut this.writer {
            match w.poll_drive(&mut conn.io, cx) {
                Poll::Ready(Ok(())) => this.writer = None,
                Poll::Ready(Err(WriteError::Io(e))) => {
                    // The server stopped reading; its response may still be complete: it goes
                    // on, and the connection cannot be reused.
                    tracing::debug!(error = %e, "request body write failed after the response head");
                    this.writer = None;
                    this.keep_alive = false;
                }
                Poll::Ready(Err(WriteError::Body(e))) => {
                    // The client's body failed (too large, aborted, timed out): the server holds
                    // an incomplete request and may wait for the rest until `read_timeout`. Cut
                    // the exchange now, as hyper's client did.
                    this.writer = None;
                    return this.fail(cx, H1Error::Body(e));
                }
                Poll::Pending => {}
            }
        }
        loop {
            match &mut this.state {
                State::Done | State::Failing(_) | State::Failed | State::Upgrade => {
                    return Poll::Ready(None)
                }
                State::Length(rem) => {
                    if !conn.rbuf.is_empty() {
                        let n = usize::try_from(*rem)
                            .unwrap_or(usize::MAX)
                            .min(conn.rbuf.len());
                        let data = conn.rbuf.split_to(n).freeze();
                        *rem -= n as u64;
                        if *rem == 0 {
                            this.state = State::Done;
                        }
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                }
                State::Chunked(d) => match d.decode(&mut conn.rbuf) {
                    Ok(Decoded::Data(b)) => return Poll::Ready(Some(Ok(Frame::data(b)))),
                    Ok(Decoded::Trailers(t)) => {
                        this.state = State::Done;
                        return Poll::Ready(Some(Ok(Frame::trailers(t))));
                    }
                    Ok(Decoded::End) => return this.finish(),
                    Ok(Decoded::NeedMore) => {}
                    Err(e) => return this.fail(cx, e.into()),
                },
                State::Close => {
                    if !conn.rbuf.is_empty() {
                        let data = conn.rbuf.split().freeze();
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                }
            }
            let n = match ready!(conn.poll_read(cx)) {
                Ok(n) => n,
                Err(e) => return this.fail(cx, H1Error::Read(e)),
            };
            if n == 0 {
                if matches!(this.state, State::Close) {
                    this.keep_alive = false;
                    return this.finish();
                }
                return this.fail(cx, H1Error::Truncated);
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.state, State::Done | State::Failed | State::Upgrade)
    }

    fn size_hint(&self) -> SizeHint {
        match self.state {
            State::Length(n) => SizeHint::with_exact(n),
            State::Done | State::Failed | State::Upgrade => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}

//! Bytes waiting to be written to a connection, in order, sent with vectored writes. Shared by
//! both sides of our HTTP/1.1 (the request to a server, the response to a client).

use bytes::{Buf, Bytes};
use std::collections::VecDeque;
use std::io::IoSlice;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::io::AsyncWrite;

/// Bytes waiting to be written, in order.
#[derive(Debug, Default)]
pub struct Outbox {
    parts: VecDeque<Piece>,
}

/// One piece: shared bytes (a body frame), or an encoded head kept as the `Vec` it was written
/// into (making `Bytes` of a `Vec` that is not exactly full allocates).
#[derive(Debug)]
enum Piece {
    Shared(Bytes),
    Owned { buf: Vec<u8>, at: usize },
}

impl Piece {
    fn bytes(&self) -> &[u8] {
        match self {
            Piece::Shared(b) => b,
            Piece::Owned { buf, at } => &buf[*at..],
        }
    }

    fn advance(&mut self, n: usize) {
        match self {
            Piece::Shared(b) => b.advance(n),
            Piece::Owned { at, .. } => *at += n,
        }
    }
}

impl Outbox {
    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    /// Pieces queued.
    pub fn len(&self) -> usize {
        self.parts.len()
    }

    pub fn push(&mut self, b: Bytes) {
        if !b.is_empty() {
            self.parts.push_back(Piece::Shared(b));
        }
    }

    /// Queues an encoded head (or any bytes owned outright).
    pub fn push_vec(&mut self, buf: Vec<u8>) {
        if !buf.is_empty() {
            self.parts.push_back(Piece::Owned { buf, at: 0 });
        }
    }

    /// Writes everything queued, then flushes (TLS buffers records).
    pub fn poll_write_to<W: AsyncWrite + Unpin>(
        &mut self,
        io: &mut W,
        cx: &mut Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        while !self.parts.is_empty() {
            let n = if self.parts.len() == 1 || !io.is_write_vectored() {
                ready!(Pin::new(&mut *io).poll_write(cx, self.parts[0].bytes()))?
            } else {
                let mut slices = [IoSlice::new(&[]); 4];
                let k = self.parts.len().min(slices.len());
                for (s, p) in slices.iter_mut().zip(self.parts.iter()) {
                    *s = IoSlice::new(p.bytes());
                }
                ready!(Pin::new(&mut *io).poll_write_vectored(cx, &slices[..k]))?
            };
            if n == 0 {
                return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
            }
            self.advance(n);
        }
        Pin::new(io).poll_flush(cx)
    }

    fn advance(&mut self, mut n: usize) {
        while n > 0 {
            let Some(front) = self.parts.front_mut() else {
                return;
            };
            let len = front.bytes().len();
            if n >= len {
                n -= len;
                self.parts.pop_front();
            } else {
                front.advance(n);
                n = 0;
            }
        }
    }
}

/// Writes `buf[*at..]` (advancing `at`), then flushes: one piece without a queue.
pub fn poll_write_all<W: AsyncWrite + Unpin>(
    io: &mut W,
    buf: &[u8],
    at: &mut usize,
    cx: &mut Context<'_>,
) -> Poll<std::io::Result<()>> {
    while *at < buf.len() {
        let n = ready!(Pin::new(&mut *io).poll_write(cx, &buf[*at..]))?;
        if n == 0 {
            return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
        }
        *at += n;
    }
    Pin::new(io).poll_flush(cx)
}

//! A response body as it comes from a server, whichever protocol the connection speaks.

use super::h1::{H1Body, H1Conn, H1Error, Upgraded};
use super::h2send;
use crate::body::h2::H2Body;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::task::{Context, Poll};

/// Why a request failed on its way to a server or back.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error(transparent)]
    H1(#[from] H1Error),
    #[error("http2: {0}")]
    H2(h2::Error),
    /// `send_request` failed: nothing of the request went out.
    #[error("http2: request not sent: {0}")]
    H2Unsent(h2::Error),
}

impl UpstreamError {
    pub fn is_head_too_large(&self) -> bool {
        match self {
            UpstreamError::H1(e) => e.is_head_too_large(),
            // h2 refuses an over-large header list as a protocol error of the stream.
            UpstreamError::H2(_) | UpstreamError::H2Unsent(_) => false,
        }
    }

    /// Whether the request never went out (h2 refused to send it).
    pub fn is_unsent(&self) -> bool {
        matches!(self, UpstreamError::H2Unsent(_))
    }

    /// Whether an HTTP/2 stream failed without the server processing it: REFUSED_STREAM, or a
    /// GOAWAY whose last stream id is below it (RFC 9113 §8.7), or a request the connection
    /// could not take at all (broken, or going away).
    pub fn refused_stream(&self) -> bool {
        match self {
            UpstreamError::H1(_) => false,
            UpstreamError::H2(e) => {
                e.reason() == Some(h2::Reason::REFUSED_STREAM) || (e.is_go_away() && e.is_remote())
            }
            UpstreamError::H2Unsent(e) => h2send::unsent_retryable(e),
        }
    }
}

#[derive(Debug)]
pub enum UpBody {
    H1(H1Body),
    H2(H2Body),
}

impl UpBody {
    /// An HTTP/1.1 connection whose response is complete and that can carry another request.
    pub fn take_reusable(&mut self) -> Option<Box<H1Conn>> {
        match self {
            UpBody::H1(b) => b.take_reusable(),
            UpBody::H2(_) => None,
        }
    }

    /// After a 101: the upstream connection as a byte stream.
    pub fn into_upgraded(self) -> Option<Upgraded> {
        match self {
            UpBody::H1(b) => b.into_upgraded(),
            UpBody::H2(_) => None,
        }
    }
}

impl Body for UpBody {
    type Data = Bytes;
    type Error = UpstreamError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, UpstreamError>>> {
        match self.get_mut() {
            UpBody::H1(b) => Pin::new(b).poll_frame(cx).map_err(UpstreamError::H1),
            UpBody::H2(b) => Pin::new(b).poll_frame(cx).map_err(UpstreamError::H2),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpBody::H1(b) => b.is_end_stream(),
            UpBody::H2(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpBody::H1(b) => b.size_hint(),
            UpBody::H2(b) => b.size_hint(),
        }
    }
}

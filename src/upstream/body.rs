//! A response body as it comes from a server, whichever protocol the connection speaks.

use super::h1::{H1Body, H1Conn, H1Error, Upgraded};
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Why a request failed on its way to a server or back.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error(transparent)]
    H1(#[from] H1Error),
    #[error(transparent)]
    H2(#[from] hyper::Error),
}

impl UpstreamError {
    pub fn is_head_too_large(&self) -> bool {
        match self {
            UpstreamError::H1(e) => e.is_head_too_large(),
            UpstreamError::H2(e) => e.is_parse_too_large(),
        }
    }

    /// Whether an HTTP/2 stream failed without the server processing it: REFUSED_STREAM, or a
    /// GOAWAY whose last stream id is below it (RFC 9113 §8.7).
    pub fn refused_stream(&self) -> bool {
        let UpstreamError::H2(err) = self else {
            return false;
        };
        let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(err);
        while let Some(e) = source {
            if let Some(h2) = e.downcast_ref::<h2::Error>() {
                return h2.reason() == Some(h2::Reason::REFUSED_STREAM)
                    || (h2.is_go_away() && h2.is_remote());
            }
            source = e.source();
        }
        false
    }
}

#[derive(Debug)]
pub enum UpBody {
    H1(H1Body),
    H2(Incoming),
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

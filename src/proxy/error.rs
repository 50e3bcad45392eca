//! The one place where failures become client responses: every error on the request path is a
//! [`ProxyError`], and [`ProxyError::status`] maps it to its status code ([`ProxyError::grpc_status`]
//! to its gRPC status when the request was a gRPC call).

use super::body::ResBody;
use crate::body::BodyError;
use crate::route::gateway::GatewayError;
use crate::route::table::TableError;
use crate::upstream::{ConnectError, UpstreamError};
use http::{header, HeaderValue, Response, StatusCode};

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    /// A request head over `large_client_header_buffers` or with more than `max_headers` fields.
    #[error("request head too large")]
    HeadTooLarge,
    #[error("request target longer than max_uri_length")]
    UriTooLong,
    #[error("no route for this host and path")]
    NoRoute,
    #[error("request body larger than client_max_body_size")]
    BodyTooLarge,
    #[error("client request body: {0}")]
    ClientBody(BodyError),
    #[error("no live upstreams")]
    NoLiveUpstreams,
    #[error("upstream connect failed: {0}")]
    Connect(#[from] ConnectError),
    #[error("upstream timed out")]
    UpstreamTimeout,
    #[error("upstream stopped reading the request body (send_timeout)")]
    UpstreamSendTimeout,
    #[error("method not allowed: {0}")]
    MethodNotAllowed(&'static str),
    #[error("upstream response head too large")]
    UpstreamHeadTooLarge,
    #[error("upstream failed: {0}")]
    Upstream(UpstreamError),
    #[error("upstream response body broke off")]
    UpstreamBody,
    #[error("upstream switched protocols without an upgrade request")]
    Upstream101,
    #[error("shutting down")]
    ShuttingDown,
    /// A request target a route kind cannot use (the reason goes in the body).
    #[error("bad request target: {0}")]
    BadTarget(&'static str),
    /// A target a route refuses to reach (the reason goes in the body).
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    /// A table route's key that is not in the table.
    #[error("unknown key")]
    UnknownKey,
    /// A table route's store cannot answer and the key is not cached.
    #[error("route table store unavailable")]
    StoreUnavailable,
    /// The request should be repeated at this location (308).
    #[error("permanent redirect to {0}")]
    Redirect(String),
}

impl From<TableError> for ProxyError {
    fn from(e: TableError) -> Self {
        match e {
            TableError::Redirect(loc) => ProxyError::Redirect(loc),
            TableError::Malformed(why) => ProxyError::BadTarget(why),
            TableError::UnknownKey => ProxyError::UnknownKey,
            TableError::Unavailable(_) => ProxyError::StoreUnavailable,
            TableError::Refused(why) => ProxyError::Forbidden(why),
        }
    }
}

impl From<GatewayError> for ProxyError {
    fn from(e: GatewayError) -> Self {
        match e {
            GatewayError::Malformed(why) => ProxyError::BadTarget(why),
            GatewayError::Refused(why) => ProxyError::Forbidden(why),
        }
    }
}

impl ProxyError {
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::BadRequest(_) | ProxyError::BadTarget(_) => StatusCode::BAD_REQUEST,
            ProxyError::Forbidden(_) => StatusCode::FORBIDDEN,
            ProxyError::UriTooLong => StatusCode::URI_TOO_LONG,
            ProxyError::HeadTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ProxyError::NoRoute => StatusCode::NOT_FOUND,
            ProxyError::BodyTooLarge | ProxyError::ClientBody(BodyError::TooLarge) => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            ProxyError::ClientBody(BodyError::ClientTimeout) => StatusCode::REQUEST_TIMEOUT,
            ProxyError::ClientBody(_) => StatusCode::BAD_REQUEST,
            ProxyError::NoLiveUpstreams
            | ProxyError::Connect(_)
            | ProxyError::Upstream(_)
            | ProxyError::UpstreamBody
            | ProxyError::Upstream101
            | ProxyError::UpstreamHeadTooLarge => StatusCode::BAD_GATEWAY,
            ProxyError::UpstreamTimeout | ProxyError::UpstreamSendTimeout => {
                StatusCode::GATEWAY_TIMEOUT
            }
            ProxyError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ProxyError::ShuttingDown | ProxyError::StoreUnavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ProxyError::UnknownKey => StatusCode::NOT_FOUND,
            ProxyError::Redirect(_) => StatusCode::PERMANENT_REDIRECT,
        }
    }

    /// The gRPC status of this failure when the request was a gRPC call (answered as HTTP 200
    /// trailers-only, which a gRPC client can read where it cannot read a 502 page).
    pub fn grpc_status(&self) -> u16 {
        use super::grpc::code;
        match self {
            ProxyError::NoLiveUpstreams
            | ProxyError::Connect(_)
            | ProxyError::Upstream(_)
            | ProxyError::UpstreamBody
            | ProxyError::Upstream101
            | ProxyError::UpstreamHeadTooLarge
            | ProxyError::ShuttingDown
            | ProxyError::StoreUnavailable => code::UNAVAILABLE,
            ProxyError::UnknownKey => code::NOT_FOUND,
            ProxyError::UpstreamTimeout
            | ProxyError::UpstreamSendTimeout
            | ProxyError::ClientBody(BodyError::ClientTimeout) => code::DEADLINE_EXCEEDED,
            ProxyError::BodyTooLarge | ProxyError::ClientBody(BodyError::TooLarge) => {
                code::RESOURCE_EXHAUSTED
            }
            ProxyError::NoRoute | ProxyError::Redirect(_) => code::UNIMPLEMENTED,
            ProxyError::BadTarget(_) => code::INVALID_ARGUMENT,
            ProxyError::Forbidden(_) => code::PERMISSION_DENIED,
            ProxyError::BadRequest(_)
            | ProxyError::UriTooLong
            | ProxyError::HeadTooLarge
            | ProxyError::MethodNotAllowed(_)
            | ProxyError::ClientBody(_) => code::INTERNAL,
        }
    }

    /// A response body that broke off after the head was sent (only gRPC calls can still be
    /// told why, in trailers).
    pub fn from_response_body(e: BodyError) -> ProxyError {
        match e {
            BodyError::UpstreamTimeout => ProxyError::UpstreamTimeout,
            _ => ProxyError::UpstreamBody,
        }
    }

    /// `grpc-status` and `grpc-message` for a gRPC call that failed after its response head.
    pub fn grpc_trailers(&self) -> http::HeaderMap {
        super::grpc::status_trailers(self.grpc_status(), &self.to_string())
    }

    /// Whether the client connection should be closed after this answer (its framing may be
    /// unreliable or its body was not read).
    pub fn closes_connection(&self) -> bool {
        matches!(
            self,
            ProxyError::BadRequest(_)
                | ProxyError::HeadTooLarge
                | ProxyError::BodyTooLarge
                | ProxyError::ClientBody(_)
                | ProxyError::UriTooLong
                | ProxyError::MethodNotAllowed(_)
                // The request body was not read to its end: the connection cannot be reused.
                | ProxyError::UpstreamSendTimeout
        )
    }

    /// A short plain-text answer, nginx style; for a gRPC request (`grpc`) a trailers-only
    /// answer with [`ProxyError::grpc_status`].
    pub fn to_response(&self, grpc: bool) -> Response<ResBody> {
        if grpc {
            let mut resp = super::grpc::trailers_only(self.grpc_status(), &self.to_string());
            if self.closes_connection() {
                resp.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            return resp;
        }
        let status = self.status();
        let reason = status.canonical_reason().unwrap_or("Error");
        let body = match self {
            ProxyError::BadTarget(why) | ProxyError::Forbidden(why) => {
                format!("{} {reason}: {why}\n", status.as_str())
            }
            _ => format!("{} {reason}\n", status.as_str()),
        };
        let mut resp = Response::new(ResBody::full(body));
        *resp.status_mut() = status;
        let h = resp.headers_mut();
        if let ProxyError::Redirect(loc) = self {
            // Built from the request's own path and query: always a valid header value.
            if let Ok(v) = HeaderValue::from_str(loc) {
                h.insert(header::LOCATION, v);
            }
        }
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        if self.closes_connection() {
            h.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        resp
    }
}

//! gRPC over the proxy: recognising a gRPC request, its `grpc-timeout`, the `grpc-status` of an
//! answer, and the trailers-only answer swarmgate gives when it fails a gRPC request itself
//! (which status is decided in `error.rs`, the one error mapping).

use super::body::ResBody;
use http::{header, HeaderMap, HeaderValue, Response, StatusCode};
use std::time::Duration;

static GRPC_STATUS: header::HeaderName = header::HeaderName::from_static("grpc-status");
static GRPC_MESSAGE: header::HeaderName = header::HeaderName::from_static("grpc-message");
static GRPC_TIMEOUT: header::HeaderName = header::HeaderName::from_static("grpc-timeout");

/// The trailer fields of a gRPC response, declared (`Trailer:`) to HTTP/1.1 clients.
pub const TRAILER_FIELDS: &str = "grpc-status, grpc-message, grpc-status-details-bin";

/// gRPC status codes swarmgate produces itself.
pub mod code {
    pub const INVALID_ARGUMENT: u16 = 3;
    pub const DEADLINE_EXCEEDED: u16 = 4;
    pub const NOT_FOUND: u16 = 5;
    pub const PERMISSION_DENIED: u16 = 7;
    pub const RESOURCE_EXHAUSTED: u16 = 8;
    pub const UNIMPLEMENTED: u16 = 12;
    pub const INTERNAL: u16 = 13;
    pub const UNAVAILABLE: u16 = 14;
}

/// A gRPC request: `content-type: application/grpc` or `application/grpc+<codec>`.
pub fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .map(HeaderValue::as_bytes)
        .and_then(|v| v.get(..16))
        .is_some_and(|p| p.eq_ignore_ascii_case(b"application/grpc"))
}

/// `grpc-timeout`: at most 8 digits and a unit (`H M S m u n`); `None` when absent or invalid.
pub fn timeout(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(&GRPC_TIMEOUT)?.as_bytes();
    let (digits, unit) = v.split_at(v.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(match unit {
        b"H" => Duration::from_secs(n * 3600),
        b"M" => Duration::from_secs(n * 60),
        b"S" => Duration::from_secs(n),
        b"m" => Duration::from_millis(n),
        b"u" => Duration::from_micros(n),
        b"n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// The `grpc-status` in a header or trailer map.
pub fn status_of(headers: &HeaderMap) -> Option<u16> {
    headers.get(&GRPC_STATUS)?.to_str().ok()?.parse().ok()
}

/// HTTP 200 with only headers (a trailers-only gRPC response) carrying `code` and `message`.
pub fn trailers_only(code: u16, message: &str) -> Response<ResBody> {
    let mut resp = Response::new(ResBody::empty());
    *resp.status_mut() = StatusCode::OK;
    let mut h = status_trailers(code, message);
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    *resp.headers_mut() = h;
    resp
}

/// `grpc-status: code` and `grpc-message: message` (percent-encoded).
pub fn status_trailers(code: u16, message: &str) -> HeaderMap {
    let mut h = HeaderMap::with_capacity(3);
    h.insert(GRPC_STATUS.clone(), HeaderValue::from(code));
    if let Ok(v) = HeaderValue::from_str(&percent_encode(message)) {
        h.insert(GRPC_MESSAGE.clone(), v);
    }
    h
}

/// `grpc-message` encoding: bytes outside printable ASCII, and `%`, as `%XX`.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if (0x20..0x7f).contains(&b) && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(name: &'static str, v: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_static(v));
        h
    }

    #[test]
    fn recognises_grpc_content_types() {
        assert!(is_grpc(&with("content-type", "application/grpc")));
        assert!(is_grpc(&with("content-type", "application/grpc+proto")));
        assert!(!is_grpc(&with("content-type", "application/json")));
        assert!(!is_grpc(&HeaderMap::new()));
    }

    #[test]
    fn parses_grpc_timeout() {
        assert_eq!(
            timeout(&with("grpc-timeout", "250m")),
            Some(Duration::from_millis(250))
        );
        assert_eq!(
            timeout(&with("grpc-timeout", "2S")),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            timeout(&with("grpc-timeout", "1H")),
            Some(Duration::from_secs(3600))
        );
        assert_eq!(timeout(&with("grpc-timeout", "123456789S")), None);
        assert_eq!(timeout(&with("grpc-timeout", "10x")), None);
        assert_eq!(timeout(&with("grpc-timeout", "m")), None);
    }

    #[test]
    fn trailers_only_answer_carries_status_and_encoded_message() {
        let r = trailers_only(code::UNAVAILABLE, "no live upstreams: 100%");
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(status_of(r.headers()), Some(14));
        assert_eq!(r.headers()["grpc-message"], "no live upstreams: 100%25");
        assert_eq!(r.headers()["content-type"], "application/grpc");
    }
}

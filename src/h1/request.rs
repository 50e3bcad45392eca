//! Request heads on their way to a server.

use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, Method, Uri};

/// How a request body is delimited on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body follows the head.
    None,
    /// `Content-Length`, as the client declared it.
    Length(u64),
    /// `Transfer-Encoding: chunked` (added to the head by [`encode_head`]).
    Chunked,
}

/// Chooses the framing: the declared length when there is one, nothing for a body known to be
/// empty, else chunked. `declared` is the parsed `Content-Length`.
pub fn framing(declared: Option<u64>, body_empty: bool) -> BodyFraming {
    match (declared, body_empty) {
        (Some(n), _) => BodyFraming::Length(n),
        (None, true) => BodyFraming::None,
        (None, false) => BodyFraming::Chunked,
    }
}

/// Appends `METHOD target HTTP/1.1`, the fields (names lower-case, as `HeaderMap` keeps
/// them) and the blank line to `dst`. The target is `uri`'s path and query (origin form), `/`
/// when it has none. Hop-by-hop fields were removed by the caller; a `Transfer-Encoding` left
/// in `headers` is replaced by the one `framing` needs.
pub fn encode_head(
    dst: &mut Vec<u8>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    framing: BodyFraming,
) {
    dst.extend_from_slice(method.as_str().as_bytes());
    dst.push(b' ');
    match uri.path_and_query() {
        Some(pq) if !pq.as_str().is_empty() => dst.extend_from_slice(pq.as_str().as_bytes()),
        _ => dst.push(b'/'),
    }
    dst.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in headers {
        if name == TRANSFER_ENCODING || (name == CONTENT_LENGTH && framing == BodyFraming::Chunked)
        {
            continue;
        }
        dst.extend_from_slice(name.as_str().as_bytes());
        dst.extend_from_slice(b": ");
        dst.extend_from_slice(value.as_bytes());
        dst.extend_from_slice(b"\r\n");
    }
    if framing == BodyFraming::Chunked {
        dst.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    dst.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn head_is_origin_form_with_framing() {
        let mut h = HeaderMap::new();
        h.insert("host", HeaderValue::from_static("a:1"));
        h.insert(
            "transfer-encoding",
            HeaderValue::from_static("gzip, chunked"),
        );
        let mut out = Vec::new();
        let uri: Uri = "/p?q=1".parse().unwrap();
        encode_head(&mut out, &Method::POST, &uri, &h, BodyFraming::Chunked);
        assert_eq!(
            out,
            b"POST /p?q=1 HTTP/1.1\r\nhost: a:1\r\ntransfer-encoding: chunked\r\n\r\n"
        );
        out.clear();
        encode_head(
            &mut out,
            &Method::GET,
            &Uri::from_static("http://x"),
            &HeaderMap::new(),
            BodyFraming::None,
        );
        assert_eq!(out, b"GET / HTTP/1.1\r\n\r\n");
    }
}

//! Request heads: parsed from a client ([`parse`], with the framing rules of RFC 9112 §6 that a
//! proxy must enforce) and encoded on their way to a server ([`encode_head`]).
//!
//! The parser serves clients in `proxy::h1`; `fuzz/fuzz_targets/h1_request.rs` holds it to
//! hyper's server on the same bytes.

use super::response::content_length;
use super::{has_token, range_in, ParseError};
use bytes::BytesMut;
use http::header::{CONNECTION, CONTENT_LENGTH, EXPECT, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, Method, Uri, Version};
use std::ops::Range;

/// Most header fields a request head may carry (hyper's default too).
pub const MAX_HEADERS: usize = 100;

/// A parsed request head.
#[derive(Debug)]
pub struct Head {
    pub method: Method,
    pub uri: Uri,
    pub version: Version,
    /// As received, except that a `Content-Length` beside chunked framing is removed.
    pub headers: HeaderMap,
    pub framing: BodyFraming,
    /// The client may send another request on this connection after this one.
    pub keep_alive: bool,
    /// `Expect: 100-continue`.
    pub expect_continue: bool,
}

/// Parses a request head at the start of `buf`. `Ok(None)`: incomplete, read more. On success,
/// how many bytes the head took. Refused (400, or 431 for [`ParseError::TooLarge`]): what
/// `httparse` refuses (bad request line, bad field names or values, obs-fold, bare CR), a
/// target `http::Uri` refuses, conflicting or malformed `Content-Length`, `Transfer-Encoding` in
/// HTTP/1.0 or whose last coding is not `chunked` (or that names `chunked` twice).
/// `Content-Length` beside chunked: chunked wins, the length is dropped and the connection
/// closes after the response (RFC 9112 §6.3 rule 3).
pub fn parse(buf: &[u8]) -> Result<Option<(usize, Head)>, ParseError> {
    let mut b = BytesMut::from(buf);
    Ok(parse_buf(&mut b, MAX_HEADERS)?.map(|h| (buf.len() - b.len(), h)))
}

/// [`parse`] on a read buffer, allowing `max_headers` fields (more: [`ParseError::TooLarge`]).
/// A complete head is taken off the front of `buf` and not copied: the header values and the
/// target share its bytes (one allocation for the head instead of one per field, as hyper does).
pub fn parse_buf(buf: &mut BytesMut, max_headers: usize) -> Result<Option<Head>, ParseError> {
    let scanned = if max_headers <= MAX_HEADERS {
        let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
        scan(buf, &mut fields[..max_headers])?
    } else {
        scan(buf, &mut vec![httparse::EMPTY_HEADER; max_headers])?
    };
    let Some(s) = scanned else {
        return Ok(None);
    };
    let bytes = buf.split_to(s.len).freeze();
    let uri = Uri::from_maybe_shared(bytes.slice(s.target))
        .map_err(|_| ParseError::Malformed("request target"))?;
    // Room for the fields the proxy adds (X-Forwarded-*, X-Real-IP) without growing.
    let headers = super::shared_fields(&bytes, s.fields, s.drop_length, 6)?;
    Ok(Some(Head {
        method: s.method,
        uri,
        version: s.version,
        headers,
        framing: s.framing,
        keep_alive: s.keep_alive,
        expect_continue: s.expect_continue,
    }))
}

/// A request head checked in place: where its parts are in the buffer.
struct Scanned {
    len: usize,
    method: Method,
    version: Version,
    target: Range<usize>,
    fields: Vec<(HeaderName, Range<usize>)>,
    /// `Content-Length` beside chunked: removed.
    drop_length: bool,
    framing: BodyFraming,
    keep_alive: bool,
    expect_continue: bool,
}

fn scan<'b>(
    buf: &'b [u8],
    fields: &mut [httparse::Header<'b>],
) -> Result<Option<Scanned>, ParseError> {
    let mut req = httparse::Request::new(fields);
    let len = match req.parse(buf)? {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial => return Ok(None),
    };
    let method = req
        .method
        .and_then(|m| Method::from_bytes(m.as_bytes()).ok())
        .ok_or(ParseError::Malformed("method"))?;
    let target = req
        .path
        .map(|p| range_in(buf, p.as_bytes()))
        .ok_or(ParseError::Malformed("request target"))?;
    let version = super::version(req.version)?;
    let mut out = Vec::with_capacity(req.headers.len());
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut te_seen = false;
    let mut close = false;
    let mut keep_alive_token = false;
    let mut expect_continue = false;
    for f in req.headers.iter() {
        let name = HeaderName::from_bytes(f.name.as_bytes())
            .map_err(|_| ParseError::Malformed("header name"))?;
        if !f.value.iter().all(|&b| (b >= 32 && b != 127) || b == b'\t') {
            return Err(ParseError::Malformed("header value"));
        }
        if name == CONTENT_LENGTH {
            if f.value.contains(&b',') {
                // A list (`5, 5`): legal to recover from in a response, refused in a request
                // (hyper refuses it too; equal repeated fields are accepted).
                return Err(ParseError::ContentLength);
            }
            let n = content_length(f.value)?;
            if length.is_some_and(|l| l != n) {
                return Err(ParseError::ContentLength);
            }
            length = Some(n);
        } else if name == TRANSFER_ENCODING {
            if version == Version::HTTP_10 {
                return Err(ParseError::Malformed(
                    "Transfer-Encoding in an HTTP/1.0 request",
                ));
            }
            te_seen = true;
            for coding in f.value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                let name = coding.split(|&b| b == b';').next().unwrap_or_default();
                if chunked || !is_token(name.trim_ascii_end()) {
                    // Something after chunked (in this field or a later one).
                    return Err(ParseError::Malformed("Transfer-Encoding"));
                }
                chunked = coding.eq_ignore_ascii_case(b"chunked");
            }
        } else if name == CONNECTION {
            close |= has_token(f.value, "close");
            keep_alive_token |= has_token(f.value, "keep-alive");
        } else if name == EXPECT {
            expect_continue |= f.value.eq_ignore_ascii_case(b"100-continue");
        }
        out.push((name, range_in(buf, f.value)));
    }
    if te_seen && !chunked {
        // The body's end could not be known (a request is never close-delimited).
        return Err(ParseError::Malformed("Transfer-Encoding"));
    }
    let both = chunked && length.is_some();
    let framing = match (chunked, length) {
        (true, _) => BodyFraming::Chunked,
        (false, Some(0) | None) => BodyFraming::None,
        (false, Some(n)) => BodyFraming::Length(n),
    };
    Ok(Some(Scanned {
        len,
        method,
        version,
        target,
        fields: out,
        drop_length: both,
        framing,
        keep_alive: super::persistent(version, close, keep_alive_token) && !both,
        expect_continue,
    }))
}

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

/// RFC 9110 §5.6.2 `token`: one or more tchar.
fn is_token(s: &[u8]) -> bool {
    !s.is_empty()
        && s.iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
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

    fn ok(raw: &str) -> Head {
        parse(raw.as_bytes()).unwrap().unwrap().1
    }

    #[test]
    fn request_framing() {
        assert_eq!(
            ok("GET / HTTP/1.1\r\nHost: x\r\n\r\n").framing,
            BodyFraming::None
        );
        assert_eq!(
            ok("POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n").framing,
            BodyFraming::Length(5)
        );
        let h = ok("POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(h.framing, BodyFraming::Chunked);
        assert!(h.headers.get(CONTENT_LENGTH).is_none() && !h.keep_alive);
        assert!(!ok("GET / HTTP/1.0\r\n\r\n").keep_alive);
        assert!(ok("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").keep_alive);
        assert!(ok("PUT /x HTTP/1.1\r\nExpect: 100-Continue\r\n\r\n").expect_continue);
        assert_eq!(ok("OPTIONS * HTTP/1.1\r\n\r\n").uri, "*");
        assert_eq!(
            ok("GET http://a:1/p?q HTTP/1.1\r\n\r\n")
                .uri
                .authority()
                .unwrap(),
            "a:1"
        );
        assert!(parse(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap().is_none());
    }

    #[test]
    fn ambiguous_requests_are_refused() {
        for raw in [
            "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 5, 6\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 5,5\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 0x5\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: \u{ff}, chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding:\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: \"x\", chunked\r\n\r\n",
            "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
            "GET / HTTP/1.1\r\nFolded: a\r\n b\r\n\r\n",
            "GET / HTTP/1.1\r\nBad Name: a\r\n\r\n",
            "GET / HTTP/1.1\r\nX: a\rb\r\n\r\n",
            "GET / HTTP/1.1\r\nX: a\0b\r\n\r\n",
            "GET /a b HTTP/1.1\r\n\r\n",
            "GET / HTTP/2.0\r\n\r\n",
            "G@T / HTTP/1.1\r\n\r\n",
        ] {
            assert!(parse(raw.as_bytes()).is_err(), "{raw:?}");
        }
    }

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

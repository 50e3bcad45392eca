//! Response heads (RFC 9112 §4, §6.3): status line, fields, and how the body is framed.

use super::{has_token, range_in, ParseError};
use bytes::BytesMut;
use http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, StatusCode, Version};
use std::ops::Range;

/// Most header fields a response head may carry (hyper's default too).
pub const MAX_HEADERS: usize = 100;

/// How a response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body: a response to HEAD, 1xx, 204, 304.
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Until the server closes the connection.
    Close,
}

#[derive(Debug)]
pub struct Head {
    pub status: StatusCode,
    pub version: Version,
    /// As received, except that a `Content-Length` overridden by chunked framing is removed
    /// (whoever relays the body must not trust it).
    pub headers: HeaderMap,
    pub framing: Framing,
    /// The connection may carry another request once this response is complete.
    pub keep_alive: bool,
}

/// Parses a response head at the start of `buf`. `Ok(None)`: incomplete, read more. On success,
/// how many bytes the head took. `head_request`: the request was HEAD (no body follows).
pub fn parse(buf: &[u8], head_request: bool) -> Result<Option<(usize, Head)>, ParseError> {
    parse_buf(&mut BytesMut::from(buf), head_request)
}

/// [`parse`] on a read buffer: a complete head is split off the front of `buf`, and the field
/// values share its bytes (no allocation and no copy per field, as for request heads).
pub fn parse_buf(
    buf: &mut BytesMut,
    head_request: bool,
) -> Result<Option<(usize, Head)>, ParseError> {
    let scanned = {
        let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
        scan(buf, &mut fields, head_request)?
    };
    let Some(s) = scanned else {
        return Ok(None);
    };
    let bytes = buf.split_to(s.len).freeze();
    let head = Head {
        status: s.status,
        version: s.version,
        headers: super::shared_fields(&bytes, s.fields, s.drop_length, 0)?,
        framing: s.framing,
        keep_alive: s.keep_alive,
    };
    Ok(Some((s.len, head)))
}

/// A response head checked in place: where its fields are in the buffer.
struct Scanned {
    len: usize,
    status: StatusCode,
    version: Version,
    fields: Vec<(HeaderName, Range<usize>)>,
    /// `Content-Length` beside `Transfer-Encoding`: removed.
    drop_length: bool,
    framing: Framing,
    keep_alive: bool,
}

fn scan<'b>(
    buf: &'b [u8],
    fields: &mut [httparse::Header<'b>],
    head_request: bool,
) -> Result<Option<Scanned>, ParseError> {
    let mut res = httparse::Response::new(fields);
    let len = match res.parse(buf)? {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial => return Ok(None),
    };
    let code = res.code.ok_or(ParseError::Malformed("status"))?;
    let status = StatusCode::from_u16(code).map_err(|_| ParseError::Malformed("status"))?;
    let version = super::version(res.version)?;
    let mut out = Vec::with_capacity(res.headers.len());
    let mut length: Option<u64> = None;
    let mut te: Option<bool> = None; // Some(final coding is chunked)
    let mut close = false;
    let mut keep_alive_token = false;
    for f in res.headers.iter() {
        let name = HeaderName::from_bytes(f.name.as_bytes())
            .map_err(|_| ParseError::Malformed("header name"))?;
        if name == CONTENT_LENGTH {
            let n = content_length(f.value)?;
            if length.is_some_and(|l| l != n) {
                return Err(ParseError::ContentLength);
            }
            length = Some(n);
        } else if name == TRANSFER_ENCODING {
            if !f
                .value
                .iter()
                .all(|&b| b == b'\t' || (0x20..0x7f).contains(&b))
            {
                // Not a list of codings: no way to tell how the body ends.
                return Err(ParseError::Malformed("Transfer-Encoding"));
            }
            // Only the last coding decides (a later field appends to the list).
            let last = f.value.rsplit(|&b| b == b',').next().unwrap_or_default();
            te = Some(last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if name == CONNECTION {
            close |= has_token(f.value, "close");
            keep_alive_token |= has_token(f.value, "keep-alive");
        }
        out.push((name, range_in(buf, f.value)));
    }
    if te.is_some() && version == Version::HTTP_10 {
        // RFC 9112 §6.1: the framing of an HTTP/1.0 message with Transfer-Encoding is faulty.
        return Err(ParseError::Malformed(
            "Transfer-Encoding in an HTTP/1.0 response",
        ));
    }
    let bodiless = head_request
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let framing = match (bodiless, te, length) {
        (true, _, _) => Framing::Empty,
        (false, Some(true), _) => Framing::Chunked,
        // A transfer coding other than a final chunked: read until close (§6.3 rule 4).
        (false, Some(false), _) => Framing::Close,
        (false, None, Some(n)) => Framing::Length(n),
        (false, None, None) => Framing::Close,
    };
    // §6.3 rule 3: Transfer-Encoding overrides; the length is a smuggling attempt or a bug,
    // and must not reach the next hop.
    let both = te.is_some() && length.is_some();
    Ok(Some(Scanned {
        len,
        status,
        version,
        fields: out,
        drop_length: both && !bodiless,
        framing,
        keep_alive: super::persistent(version, close, keep_alive_token)
            && !both
            && framing != Framing::Close,
    }))
}

/// A `Content-Length` field value: 1*DIGIT, or a list of identical ones (§6.3 rule 5 allows
/// recovering from `5, 5`). Anything else — signs, spaces inside, overflow — is an error.
pub fn content_length(v: &[u8]) -> Result<u64, ParseError> {
    let mut out: Option<u64> = None;
    for part in v.split(|&b| b == b',') {
        let p = part.trim_ascii();
        if p.is_empty() || p.len() > 19 || !p.iter().all(u8::is_ascii_digit) {
            return Err(ParseError::ContentLength);
        }
        let n = p.iter().fold(0u64, |acc, d| acc * 10 + u64::from(d - b'0'));
        if out.is_some_and(|o| o != n) {
            return Err(ParseError::ContentLength);
        }
        out = Some(n);
    }
    out.ok_or(ParseError::ContentLength)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(raw: &str) -> Head {
        parse(raw.as_bytes(), false).unwrap().unwrap().1
    }

    #[test]
    fn framing_follows_rfc9112_6_3() {
        assert_eq!(
            ok("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n").framing,
            Framing::Length(5)
        );
        let h = ok("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(h.framing, Framing::Chunked);
        assert!(h.headers.get(CONTENT_LENGTH).is_none());
        assert!(!h.keep_alive);
        assert_eq!(
            ok("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n").framing,
            Framing::Close
        );
        assert_eq!(ok("HTTP/1.1 200 OK\r\n\r\n").framing, Framing::Close);
        assert_eq!(
            ok("HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n").framing,
            Framing::Empty
        );
        assert_eq!(ok("HTTP/1.1 100 Continue\r\n\r\n").framing, Framing::Empty);
        let (_, h) = parse(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", true)
            .unwrap()
            .unwrap();
        assert_eq!(h.framing, Framing::Empty);
        assert_eq!(h.headers[CONTENT_LENGTH], "9");
    }

    #[test]
    fn keep_alive_by_version_and_connection() {
        assert!(ok("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").keep_alive);
        assert!(
            !ok("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n").keep_alive
        );
        assert!(!ok("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n").keep_alive);
        assert!(
            ok("HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n").keep_alive
        );
    }

    #[test]
    fn bad_heads_are_errors() {
        for raw in [
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: +1\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
            "garbage\r\n\r\n",
            "HTTP/1.1 2000 OK\r\n\r\n",
            "HTTP/1.1 200 OK\r\nX-Nul: a\0b\r\n\r\n",
            "HTTP/1.1 200 OK\r\nBad Name: a\r\n\r\n",
            "HTTP/1.1 200 OK\r\nFolded: a\r\n b\r\n\r\n",
            "HTTP/2.0 200 OK\r\n\r\n",
            "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: \u{f3}47,chunked\r\n\r\n",
        ] {
            assert!(parse(raw.as_bytes(), false).is_err(), "{raw:?}");
        }
        assert_eq!(content_length(b"5, 5"), Ok(5));
        assert!(parse(b"HTTP/1.1 200 OK\r\nA: b\r\n", false)
            .unwrap()
            .is_none());
    }
}

//! Our own HTTP/1.1 codec on `httparse` (issue 16): pure functions and state machines over byte
//! buffers, no I/O. What `httparse` accepts but a proxy must refuse (conflicting framing,
//! malformed lengths, bare LF in chunk lines, oversize chunk sizes) is refused here.
//!
//! Used by both sides: towards servers (`upstream::h1`) request heads are encoded with
//! [`request::encode_head`] and response heads parsed with [`response::parse`]; from clients
//! (`proxy::h1`) request heads are parsed with [`request::parse_buf`]. Chunked bodies are
//! decoded with [`chunked::Decoder`] and encoded with [`chunked::encode_size`] both ways, and
//! [`outbox::Outbox`] queues what either side writes.

pub mod chunked;
pub mod outbox;
pub mod request;
pub mod response;

/// Why a message could not be parsed. Every variant means "the peer broke HTTP/1.1 framing":
/// the connection is not used again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("malformed {0}")]
    Malformed(&'static str),
    #[error("message head larger than the limit")]
    TooLarge,
    #[error("invalid Content-Length")]
    ContentLength,
    #[error("invalid chunk: {0}")]
    Chunk(&'static str),
}

impl From<httparse::Error> for ParseError {
    fn from(e: httparse::Error) -> Self {
        ParseError::Malformed(match e {
            httparse::Error::HeaderName => "header name",
            httparse::Error::HeaderValue => "header value",
            httparse::Error::NewLine => "line ending",
            httparse::Error::Status => "status",
            httparse::Error::Token => "token",
            httparse::Error::TooManyHeaders => return ParseError::TooLarge,
            httparse::Error::Version => "version",
        })
    }
}

/// `httparse`'s version number as an HTTP version (only 1.0 and 1.1 exist here).
pub(crate) fn version(v: Option<u8>) -> Result<http::Version, ParseError> {
    match v {
        Some(0) => Ok(http::Version::HTTP_10),
        Some(1) => Ok(http::Version::HTTP_11),
        _ => Err(ParseError::Malformed("version")),
    }
}

/// One parsed field as `http` types (which validate the name and value once more).
pub(crate) fn field(
    f: &httparse::Header<'_>,
) -> Result<(http::HeaderName, http::HeaderValue), ParseError> {
    let name = http::HeaderName::from_bytes(f.name.as_bytes())
        .map_err(|_| ParseError::Malformed("header name"))?;
    let value = http::HeaderValue::from_bytes(f.value)
        .map_err(|_| ParseError::Malformed("header value"))?;
    Ok((name, value))
}

/// Where `part` (a slice of `buf`) lies in `buf`.
pub(crate) fn range_in(buf: &[u8], part: &[u8]) -> std::ops::Range<usize> {
    let start = part.as_ptr() as usize - buf.as_ptr() as usize;
    start..start + part.len()
}

/// The fields of a scanned head as a `HeaderMap` whose values share `head`'s bytes (`fields`
/// are ranges into it), with room for `room` more; `drop_length`: leave `Content-Length` out
/// (it sat beside `Transfer-Encoding`).
pub(crate) fn shared_fields(
    head: &bytes::Bytes,
    fields: Vec<(http::HeaderName, std::ops::Range<usize>)>,
    drop_length: bool,
    room: usize,
) -> Result<http::HeaderMap, ParseError> {
    let mut headers = http::HeaderMap::with_capacity(fields.len() + room);
    for (name, range) in fields {
        if drop_length && name == http::header::CONTENT_LENGTH {
            continue;
        }
        let value = http::HeaderValue::from_maybe_shared(head.slice(range))
            .map_err(|_| ParseError::Malformed("header value"))?;
        headers.append(name, value);
    }
    Ok(headers)
}

/// Whether the connection stays open after this message (RFC 9112 §9.3): HTTP/1.1 unless
/// `Connection: close`, HTTP/1.0 only with `Connection: keep-alive`.
pub(crate) fn persistent(version: http::Version, close: bool, keep_alive_token: bool) -> bool {
    !close && (version == http::Version::HTTP_11 || keep_alive_token)
}

/// Whether a comma-separated header value list contains `token` (case-insensitive).
pub fn has_token(value: &[u8], token: &str) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

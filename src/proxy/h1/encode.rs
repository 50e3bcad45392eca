//! Response heads on their way to a client, and the framing of the body that follows, with
//! hyper's server rules (so that clients see what they saw before issue 16): the status line in
//! the client's version, `Content-Length` when the length is known, else chunked for HTTP/1.1
//! and close-delimited for HTTP/1.0; no body after HEAD, 1xx, 204 and 304; `Connection: close`
//! when the connection ends, `Connection: keep-alive` for an HTTP/1.0 client that keeps it; a
//! `Date` field when the response has none; trailers only when declared in `Trailer`.

use crate::h1::has_token;
use http::header::{CONNECTION, CONTENT_LENGTH, DATE, TRAILER, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, StatusCode, Version};

/// What the response answers.
#[derive(Debug, Clone, Copy)]
pub struct ReqInfo {
    pub version: Version,
    pub head: bool,
    /// The request allows the connection to stay open (its version and `Connection`).
    pub keep_alive: bool,
}

/// How the body after the head is delimited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Framing {
    /// Nothing follows the head (HEAD, 1xx, 204, 304, or a known-empty body).
    Empty,
    Length(u64),
    /// Chunked, with the trailer fields the response declared.
    Chunked(Vec<HeaderName>),
    /// Until the connection closes (an HTTP/1.0 client and no known length).
    Close,
}

/// The encoded head's consequences.
#[derive(Debug)]
pub struct Encoded {
    pub framing: Framing,
    /// The connection may carry another request after this response.
    pub keep_alive: bool,
}

/// What one pass over a response's fields found.
#[derive(Default)]
struct Seen {
    transfer_encoding: bool,
    trailer: bool,
    date: bool,
    close: bool,
    keep_alive: bool,
    /// `Content-Length`: `Some(Ok(n))` one valid value (repeated equal values allowed),
    /// `Some(Err(()))` invalid or conflicting.
    length: Option<Result<u64, ()>>,
}

fn seen(headers: &HeaderMap) -> Seen {
    let mut s = Seen::default();
    for (name, value) in headers {
        if name == CONTENT_LENGTH {
            let v = crate::h1::response::content_length(value.as_bytes()).map_err(|_| ());
            s.length = match (s.length, v) {
                (None, v) => Some(v),
                (Some(Ok(a)), Ok(b)) if a == b => Some(Ok(a)),
                _ => Some(Err(())),
            };
        } else if name == TRANSFER_ENCODING {
            s.transfer_encoding = true;
        } else if name == CONNECTION {
            s.close |= has_token(value.as_bytes(), "close");
            s.keep_alive |= has_token(value.as_bytes(), "keep-alive");
        } else if name == TRAILER {
            s.trailer = true;
        } else if name == DATE {
            s.date = true;
        }
    }
    s
}

/// Writes the head of a response to `req` into `dst`. `exact`: the body's exact length when
/// known (used when the response has no `Content-Length`). Fields are written as they are,
/// except the framing ones, which are ours.
pub fn head(
    dst: &mut Vec<u8>,
    req: ReqInfo,
    status: StatusCode,
    headers: &mut HeaderMap,
    exact: Option<u64>,
) -> Encoded {
    let v10 = req.version == Version::HTTP_10;
    let bodiless = req.head
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let seen = seen(headers);
    let mut keep_alive = req.keep_alive && !seen.close;
    if seen.transfer_encoding {
        headers.remove(TRANSFER_ENCODING);
    }
    let declared = match seen.length {
        Some(Ok(n)) => Some(n),
        Some(Err(())) => {
            headers.remove(CONTENT_LENGTH);
            None
        }
        None => None,
    };
    // Framing fields written after the response's own.
    let mut length_field = None;
    let mut chunked_field = false;
    let framing = if bodiless {
        if declared.is_some() && (status.is_informational() || !req.head) {
            headers.remove(CONTENT_LENGTH);
        }
        Framing::Empty
    } else if let Some(n) = declared.or(exact) {
        if declared.is_none() {
            length_field = Some(n);
        }
        if n == 0 {
            Framing::Empty
        } else {
            Framing::Length(n)
        }
    } else if !v10 {
        let mut trailers = Vec::new();
        if seen.trailer {
            trailers = headers
                .get_all(TRAILER)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
                .collect();
        }
        chunked_field = true;
        Framing::Chunked(trailers)
    } else {
        keep_alive = false;
        Framing::Close
    };
    if seen.trailer && !matches!(framing, Framing::Chunked(_)) {
        headers.remove(TRAILER);
    }

    dst.extend_from_slice(if v10 { b"HTTP/1.0 " } else { b"HTTP/1.1 " });
    dst.extend_from_slice(status.as_str().as_bytes());
    dst.push(b' ');
    dst.extend_from_slice(status.canonical_reason().unwrap_or("<none>").as_bytes());
    dst.extend_from_slice(b"\r\n");
    fields(dst, headers);
    if let Some(n) = length_field {
        dst.extend_from_slice(b"content-length: ");
        dst.extend_from_slice(itoa(n, &mut [0u8; 20]));
        dst.extend_from_slice(b"\r\n");
    }
    if chunked_field {
        dst.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    if status != StatusCode::SWITCHING_PROTOCOLS {
        // `Connection: close` on the last response of a persistent-by-default (HTTP/1.1)
        // connection; `Connection: keep-alive` on an HTTP/1.0 response that keeps it.
        match (v10, keep_alive) {
            (false, false) if !seen.close => dst.extend_from_slice(b"connection: close\r\n"),
            (true, true) if !seen.keep_alive => {
                dst.extend_from_slice(b"connection: keep-alive\r\n")
            }
            _ => {}
        }
    }
    if !seen.date {
        dst.extend_from_slice(b"date: ");
        crate::proxy::date::with(|d| dst.extend_from_slice(d.as_bytes()));
        dst.extend_from_slice(b"\r\n");
    }
    dst.extend_from_slice(b"\r\n");
    Encoded {
        framing,
        keep_alive,
    }
}

/// `n` in decimal, in `buf`.
fn itoa(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}

/// Writes `name: value` lines (names are lower case in a `HeaderMap`).
pub fn fields(dst: &mut Vec<u8>, headers: &HeaderMap) {
    headers
        .iter()
        .for_each(|(name, value)| field(dst, name, value));
}

fn field(dst: &mut Vec<u8>, name: &HeaderName, value: &http::HeaderValue) {
    dst.extend_from_slice(name.as_str().as_bytes());
    dst.extend_from_slice(b": ");
    dst.extend_from_slice(value.as_bytes());
    dst.extend_from_slice(b"\r\n");
}

/// The trailer section of a chunked body: the last chunk and the declared fields of `trailers`.
pub fn last_chunk(dst: &mut Vec<u8>, allowed: &[HeaderName], trailers: Option<&HeaderMap>) {
    dst.extend_from_slice(b"0\r\n");
    for (name, value) in trailers.into_iter().flatten() {
        if allowed.contains(name) {
            field(dst, name, value);
        }
    }
    dst.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn enc(
        req: ReqInfo,
        status: u16,
        hs: &[(&str, &str)],
        exact: Option<u64>,
    ) -> (String, Encoded) {
        let mut h = HeaderMap::new();
        for (k, v) in hs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        let mut dst = Vec::new();
        let e = head(
            &mut dst,
            req,
            StatusCode::from_u16(status).unwrap(),
            &mut h,
            exact,
        );
        (String::from_utf8(dst).unwrap(), e)
    }

    const V11: ReqInfo = ReqInfo {
        version: Version::HTTP_11,
        head: false,
        keep_alive: true,
    };

    #[test]
    fn unknown_length_is_chunked_for_11_and_close_delimited_for_10() {
        let (s, e) = enc(V11, 200, &[("trailer", "grpc-status")], None);
        assert!(s.starts_with("HTTP/1.1 200 OK\r\n"), "{s}");
        assert!(
            s.contains("transfer-encoding: chunked\r\n") && s.contains("date: "),
            "{s}"
        );
        assert_eq!(
            e.framing,
            Framing::Chunked(vec![HeaderName::from_static("grpc-status")])
        );
        assert!(e.keep_alive);
        let v10 = ReqInfo {
            version: Version::HTTP_10,
            head: false,
            keep_alive: true,
        };
        let (s, e) = enc(v10, 200, &[], None);
        assert!(
            s.starts_with("HTTP/1.0 200 OK\r\n") && !s.contains("chunked"),
            "{s}"
        );
        assert_eq!((e.framing, e.keep_alive), (Framing::Close, false));
    }

    #[test]
    fn known_lengths_bodiless_statuses_and_connection_fields() {
        let (s, e) = enc(V11, 200, &[("content-length", "5")], None);
        assert!(s.contains("content-length: 5\r\n"), "{s}");
        assert_eq!(e.framing, Framing::Length(5));
        let (s, e) = enc(V11, 404, &[], Some(7));
        assert!(s.contains("content-length: 7\r\n"), "{s}");
        assert_eq!(e.framing, Framing::Length(7));
        let head = ReqInfo { head: true, ..V11 };
        let (s, e) = enc(head, 200, &[("content-length", "9")], None);
        assert!(
            s.contains("content-length: 9\r\n"),
            "HEAD keeps the length: {s}"
        );
        assert_eq!(e.framing, Framing::Empty);
        let (s, _) = enc(
            V11,
            304,
            &[("content-length", "9"), ("transfer-encoding", "chunked")],
            None,
        );
        assert!(
            !s.contains("content-length") && !s.contains("transfer-encoding"),
            "{s}"
        );
        let (s, e) = enc(V11, 200, &[("connection", "close")], Some(0));
        assert!(s.contains("connection: close\r\n") && !e.keep_alive, "{s}");
        let closing = ReqInfo {
            keep_alive: false,
            ..V11
        };
        let (s, _) = enc(closing, 200, &[], Some(0));
        assert!(s.contains("connection: close\r\n"), "{s}");
        let v10ka = ReqInfo {
            version: Version::HTTP_10,
            head: false,
            keep_alive: true,
        };
        let (s, e) = enc(v10ka, 200, &[], Some(2));
        assert!(
            s.contains("connection: keep-alive\r\n") && e.keep_alive,
            "{s}"
        );
        let (s, _) = enc(
            V11,
            200,
            &[
                ("date", "x"),
                ("content-length", "1"),
                ("content-length", "2"),
            ],
            None,
        );
        assert!(
            s.contains("date: x\r\n") && !s.contains("content-length"),
            "conflicting lengths go: {s}"
        );
    }
}

//! Header rules in both directions (RFC 9110 §7.6.1): hop-by-hop fields and every field named in
//! `Connection` are removed (nginx forwards the latter), `X-Forwarded-For` is appended,
//! `X-Real-IP` and `X-Forwarded-Proto` are set. Upgrade requests keep `Upgrade` and
//! `Connection: upgrade`. Between HTTP/1.1 and HTTP/2 (RFC 9113 §8): no connection-specific
//! field crosses, `TE` survives only as `trailers`, and `:authority` becomes `Host` (the
//! handler) and back (the upstream connection, `to_h2_upstream`).

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use std::net::IpAddr;

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Hop-by-hop fields that never cross the proxy (besides those named in `Connection`).
fn hop_by_hop() -> [&'static HeaderName; 7] {
    [
        &header::CONNECTION,
        &KEEP_ALIVE,
        &PROXY_CONNECTION,
        &header::TE,
        &header::TRAILER,
        &header::TRANSFER_ENCODING,
        &header::UPGRADE,
    ]
}

/// What a header map holds that the rules act on, found in one pass over its names: most
/// messages carry none of it, and a pass over a handful of names is cheaper than a hashed
/// lookup per rule.
#[derive(Debug, Default, Clone, Copy)]
struct Scan {
    /// Bit `i` set: `hop_by_hop()[i]` is present.
    hop: u8,
    content_length: bool,
    expect: bool,
    forwarded_for: bool,
}

impl Scan {
    fn of(headers: &HeaderMap) -> Scan {
        let mut s = Scan::default();
        let hop = hop_by_hop();
        for name in headers.keys() {
            if name == header::CONTENT_LENGTH {
                s.content_length = true;
            } else if name == header::EXPECT {
                s.expect = true;
            } else if name == X_FORWARDED_FOR {
                s.forwarded_for = true;
            } else if let Some(i) = hop.iter().position(|h| *h == name) {
                s.hop |= 1 << i;
            }
        }
        s
    }

    fn has(&self, hop_index: usize) -> bool {
        self.hop & (1 << hop_index) != 0
    }
}

/// Index of `Connection`, `TE`, `Transfer-Encoding` and `Upgrade` in [`hop_by_hop`].
const CONNECTION_BIT: usize = 0;
const TE_BIT: usize = 3;
const TRANSFER_ENCODING_BIT: usize = 5;
const UPGRADE_BIT: usize = 6;

/// Tokens of `Connection` that name no field to remove beyond the hop-by-hop ones (the usual
/// `close` and `keep-alive`), so the common case allocates nothing.
fn names_other_field(token: &[u8]) -> bool {
    !(token.eq_ignore_ascii_case(b"keep-alive")
        || token.eq_ignore_ascii_case(b"close")
        || hop_by_hop()
            .iter()
            .any(|h| token.eq_ignore_ascii_case(h.as_str().as_bytes())))
}

/// The comma-separated tokens of every `Connection` field, trimmed, as raw bytes (a value that
/// is not valid UTF-8 still names the fields around its bad bytes).
fn connection_tokens(headers: &HeaderMap) -> impl Iterator<Item = &[u8]> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .map(|t| t.trim_ascii())
        .filter(|t| !t.is_empty())
}

/// Whether a `Connection` header lists `token` (case-insensitive).
pub fn connection_has(headers: &HeaderMap, token: &str) -> bool {
    connection_tokens(headers).any(|t| t.eq_ignore_ascii_case(token.as_bytes()))
}

/// Whether the request asks to upgrade to a protocol swarmgate will not tunnel: the upgrade
/// then does not happen (`Upgrade` and what `Connection` names are stripped as for any request)
/// and the request is served as plain HTTP/1.1, as RFC 9110 §7.8 allows a server to do.
///
/// That is `h2c` (h2c smuggling: an upstream that accepts it would give the client a raw
/// HTTP/2 connection to it, past routing and every limit); HTTP/2 clients use prior knowledge
/// or ALPN instead. `Upgrade` values are compared case-insensitively, token by token
/// (`Upgrade: websocket, h2c` is refused as a whole).
pub fn upgrade_refused(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::UPGRADE)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .any(|t| {
            let proto = t.trim_ascii();
            let name = proto.split(|&b| b == b'/').next().unwrap_or(proto);
            name.trim_ascii().eq_ignore_ascii_case(b"h2c")
        })
}

/// Removes the fields named in `Connection`, then the hop-by-hop ones. With `keep_upgrade`,
/// `Upgrade` survives and `Connection: upgrade` is set again.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    let scan = Scan::of(headers);
    strip_scanned(headers, scan, keep_upgrade);
}

fn strip_scanned(headers: &mut HeaderMap, scan: Scan, keep_upgrade: bool) {
    if scan.hop == 0 {
        return;
    }
    if scan.has(CONNECTION_BIT) {
        let mut named: Vec<HeaderName> = Vec::new();
        for t in connection_tokens(headers) {
            if names_other_field(t) {
                if let Ok(n) = HeaderName::from_bytes(t) {
                    named.push(n);
                }
            }
        }
        for n in named {
            headers.remove(n);
        }
    }
    let upgrade = (keep_upgrade && scan.has(UPGRADE_BIT))
        .then(|| headers.remove(header::UPGRADE))
        .flatten();
    for (i, h) in hop_by_hop().into_iter().enumerate() {
        if scan.has(i) {
            headers.remove(h);
        }
    }
    if let Some(u) = upgrade {
        headers.insert(header::UPGRADE, u);
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// Leaves at most one `Content-Length` and never one beside `Transfer-Encoding` (RFC 9112
/// §6.3: the transfer coding wins; the forwarded message is re-framed by hyper from its body).
/// Differing lengths cannot reach here (hyper rejects them in both directions), but if they
/// did, all are dropped rather than one picked.
pub fn normalize_framing(headers: &mut HeaderMap) {
    let scan = Scan::of(headers);
    normalize_scanned(headers, scan);
}

fn normalize_scanned(headers: &mut HeaderMap, scan: Scan) {
    if !scan.content_length {
        return;
    }
    if scan.has(TRANSFER_ENCODING_BIT) {
        headers.remove(header::CONTENT_LENGTH);
        return;
    }
    let mut values = headers.get_all(header::CONTENT_LENGTH).iter();
    let Some(first) = values.next() else {
        return;
    };
    let first_len = content_length(first);
    let mut single = true;
    let mut consistent = first_len.is_some();
    for v in values {
        single = false;
        consistent &= content_length(v) == first_len;
    }
    if single && first_len.is_some_and(|_| !first.as_bytes().contains(&b',')) {
        return;
    }
    headers.remove(header::CONTENT_LENGTH);
    if let (true, Some(n)) = (consistent, first_len) {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
    }
}

/// The value of a `Content-Length` field, accepting a list of equal values (`5, 5`).
fn content_length(v: &HeaderValue) -> Option<u64> {
    let mut out: Option<u64> = None;
    for part in v.as_bytes().split(|&b| b == b',') {
        let part = part.trim_ascii();
        if part.is_empty() || part.len() > 19 || !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let n = std::str::from_utf8(part).ok()?.parse::<u64>().ok()?;
        match out {
            Some(prev) if prev != n => return None,
            _ => out = Some(n),
        }
    }
    out
}

/// A client address as a header value; computed once per connection, cloned per request.
pub fn ip_value(ip: IpAddr) -> HeaderValue {
    HeaderValue::from_maybe_shared(bytes::Bytes::from(ip.to_string()))
        .unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}

/// Prepares a client request's headers for the upstream; `client_ip` comes from [`ip_value`].
/// `keep_te_trailers`: an HTTP/2 or gRPC request, whose `TE: trailers` goes on.
pub fn to_upstream(
    headers: &mut HeaderMap,
    client_ip: &HeaderValue,
    proto: &'static str,
    upgrade: bool,
    keep_te_trailers: bool,
) {
    let scan = Scan::of(headers);
    normalize_scanned(headers, scan);
    // `TE: trailers` is the one TE an HTTP/2 peer may send (RFC 9113 §8.2.2) and what gRPC
    // servers look for; it says the client takes trailers, which stays true through the proxy
    // (which relays trailers). Between HTTP/1.1 hops it stays hop-by-hop.
    let te_trailers = keep_te_trailers
        && scan.has(TE_BIT)
        && headers
            .get_all(header::TE)
            .iter()
            .flat_map(|v| v.as_bytes().split(|&b| b == b','))
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"trailers"));
    strip_scanned(headers, scan, upgrade);
    if te_trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
    if scan.expect {
        // The proxy answers `Expect: 100-continue` itself when it starts reading the body.
        headers.remove(header::EXPECT);
    }
    let prev = scan
        .forwarded_for
        .then(|| headers.get(&X_FORWARDED_FOR))
        .flatten();
    let xff = match prev {
        Some(prev) if !prev.as_bytes().trim_ascii().is_empty() => {
            let mut v = Vec::with_capacity(prev.len() + 2 + client_ip.len());
            v.extend_from_slice(prev.as_bytes());
            v.extend_from_slice(b", ");
            v.extend_from_slice(client_ip.as_bytes());
            HeaderValue::from_maybe_shared(bytes::Bytes::from(v)).ok()
        }
        _ => Some(client_ip.clone()),
    };
    if let Some(v) = xff {
        headers.insert(X_FORWARDED_FOR.clone(), v);
    }
    headers.insert(X_REAL_IP.clone(), client_ip.clone());
    headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static(proto));
}

/// Turns a request for an HTTP/1.1 upstream into one for an HTTP/2 upstream (RFC 9113 §8.3.1):
/// `Host` becomes `:authority` (and is removed), `scheme` becomes `:scheme`.
pub fn to_h2_upstream<B>(req: &mut http::Request<B>, scheme: &'static str) {
    // An upgrade request keeps these for HTTP/1.1 (`to_upstream`); HTTP/2 has no such thing.
    if req.headers().contains_key(header::UPGRADE) {
        req.headers_mut().remove(header::UPGRADE);
        req.headers_mut().remove(header::CONNECTION);
    }
    let host = req.headers_mut().remove(header::HOST);
    let authority = host
        .as_ref()
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.parse::<http::uri::Authority>().ok());
    let mut parts = std::mem::take(req.uri_mut()).into_parts();
    parts.scheme = Some(if scheme == "https" {
        http::uri::Scheme::HTTPS
    } else {
        http::uri::Scheme::HTTP
    });
    // A request given back by an HTTP/2 connection and sent again has its authority already.
    parts.authority = authority
        .or(parts.authority)
        .or_else(|| Some(http::uri::Authority::from_static("localhost")));
    if parts.path_and_query.is_none() {
        parts.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
    }
    if let Ok(uri) = http::Uri::from_parts(parts) {
        *req.uri_mut() = uri;
    }
    *req.version_mut() = http::Version::HTTP_2;
}

/// Prepares an upstream response's headers for the client.
pub fn to_client(headers: &mut HeaderMap, upgrade: bool) {
    let scan = Scan::of(headers);
    normalize_scanned(headers, scan);
    strip_scanned(headers, scan, upgrade);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn connection_named_and_hop_by_hop_are_removed() {
        let mut h = map(&[
            ("connection", "keep-alive, X-Secret"),
            ("x-secret", "1"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("x_under_score", "kept"),
            ("host", "a:1"),
        ]);
        to_upstream(
            &mut h,
            &ip_value("10.0.0.1".parse().unwrap()),
            "http",
            false,
            true,
        );
        assert!(!h.contains_key("x-secret"));
        assert!(!h.contains_key("connection"));
        assert!(!h.contains_key("keep-alive"));
        assert_eq!(h["te"], "trailers", "TE survives only as `trailers`");
        assert_eq!(h["x_under_score"], "kept");
        assert_eq!(h["host"], "a:1");
        assert_eq!(h["x-forwarded-for"], "10.0.0.1");
        assert_eq!(h["x-real-ip"], "10.0.0.1");
        assert_eq!(h["x-forwarded-proto"], "http");
    }

    #[test]
    fn forwarded_for_is_appended_and_upgrade_kept() {
        let mut h = map(&[
            ("x-forwarded-for", "1.2.3.4"),
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
        ]);
        to_upstream(
            &mut h,
            &ip_value("10.0.0.1".parse().unwrap()),
            "https",
            true,
            false,
        );
        assert_eq!(h["x-forwarded-for"], "1.2.3.4, 10.0.0.1");
        assert_eq!(h["upgrade"], "websocket");
        assert_eq!(h["connection"], "upgrade");
    }

    #[test]
    fn hop_bits_name_their_fields() {
        let hop = hop_by_hop();
        assert_eq!(*hop[CONNECTION_BIT], header::CONNECTION);
        assert_eq!(*hop[TRANSFER_ENCODING_BIT], header::TRANSFER_ENCODING);
        assert_eq!(*hop[UPGRADE_BIT], header::UPGRADE);
    }

    #[test]
    fn connection_keepalive_and_close_tokens_remove_only_hop_fields() {
        let mut h = map(&[
            ("connection", "Keep-Alive"),
            ("connection", "CLOSE, x-a"),
            ("keep-alive", "timeout=5"),
            ("x-a", "1"),
            ("x-b", "2"),
        ]);
        to_client(&mut h, false);
        assert_eq!(h.len(), 1, "{h:?}");
        assert_eq!(h["x-b"], "2");
    }

    #[test]
    fn connection_tokens_survive_non_utf8_values() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_bytes(b"x-secret, \xff, close").unwrap(),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h, false);
        assert!(h.is_empty(), "{h:?}");
    }

    #[test]
    fn framing_is_normalised() {
        let mut h = map(&[("content-length", "5"), ("transfer-encoding", "chunked")]);
        to_client(&mut h, false);
        assert!(h.is_empty(), "{h:?}");
        let mut h = map(&[("content-length", "5"), ("content-length", "5")]);
        normalize_framing(&mut h);
        assert_eq!(h.get_all("content-length").iter().count(), 1);
        assert_eq!(h["content-length"], "5");
        let mut h = map(&[("content-length", "5, 5")]);
        normalize_framing(&mut h);
        assert_eq!(h["content-length"], "5");
        let mut h = map(&[("content-length", "5"), ("content-length", "6")]);
        normalize_framing(&mut h);
        assert!(!h.contains_key("content-length"));
        let mut h = map(&[("content-length", "+5")]);
        normalize_framing(&mut h);
        assert!(!h.contains_key("content-length"));
    }
}

//! Request and response framing over raw sockets: every ambiguous or malformed message is either
//! rejected (400 / 502) or normalised, and the origin (a raw TCP server recording exactly the
//! bytes it received) never sees an ambiguous message or a request smuggled inside another.

mod common;
mod reliability_support;
use common::*;
use reliability_support::*;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

const WAIT: Duration = Duration::from_millis(1500);

async fn echo_origin() -> RawOrigin {
    raw_origin(|p| {
        let line = p.request_line();
        Reply::Keep(ok(&format!(
            "saw {}",
            line.rsplit_once(' ').map_or(line, |l| l.0)
        )))
    })
    .await
}

async fn proxy_to(o: &RawOrigin) -> Proxy {
    proxy(&one_upstream(o.addr)).await
}

/// Sends `bytes` raw and returns what came back (until close or quiet).
async fn send(p: &Proxy, bytes: &[u8]) -> String {
    raw(p.addr, bytes, WAIT).await
}

/// The status lines of the responses in `r`, parsed one message after another.
fn status_lines(r: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < r.len() {
        let Some(m) = split_message(&r.as_bytes()[at..], false) else {
            break;
        };
        let line_end = r[at..].find("\r\n").map_or(r.len(), |i| at + i);
        out.push(&r[at..line_end]);
        at += m.len.max(1);
    }
    out
}

#[tokio::test]
async fn cl_and_te_together_are_normalised_to_chunked() {
    let o = echo_origin().await;
    let p = proxy_to(&o).await;
    let r = send(
        &p,
        b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET /after HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    let reqs = o.requests();
    assert_unambiguous(&reqs);
    match status_lines(&r).first().copied() {
        Some(l) if l.contains(" 400 ") => assert!(reqs.is_empty(), "{reqs:?}"),
        _ => {
            // Normalised: the body is the 5 chunked bytes, and the connection is closed after
            // the response (RFC 9112 §6.1), so the pipelined GET is never read.
            assert_eq!(status_lines(&r).len(), 1, "{r:?}");
            assert!(
                r.to_ascii_lowercase().contains("connection: close"),
                "{r:?}"
            );
            assert_eq!(reqs.len(), 1, "{reqs:?}");
            assert!(reqs[0].request_line().starts_with("POST /a "));
            assert!(reqs[0].values("content-length").is_empty());
            assert_eq!(
                reqs[0].values("transfer-encoding"),
                vec!["chunked".to_string()]
            );
            assert!(reqs[0].complete);
            let s = String::from_utf8_lossy(&o.received().concat()).into_owned();
            assert!(s.ends_with("5\r\nhello\r\n0\r\n\r\n"), "{s:?}");
        }
    }
}

#[tokio::test]
async fn equal_duplicate_content_lengths_reach_the_origin_as_one() {
    let o = echo_origin().await;
    let p = proxy_to(&o).await;
    for req in [
        &b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"[..],
        &b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\nConnection: close\r\n\r\nhello"[..],
    ] {
        let r = send(&p, req).await;
        let first = status_lines(&r).first().copied().unwrap_or("");
        assert!(
            first.contains(" 200 ") || first.contains(" 400 "),
            "{r}"
        );
    }
    let reqs = o.requests();
    assert_unambiguous(&reqs);
    for r in &reqs {
        assert_eq!(r.values("content-length"), vec!["5".to_string()], "{r:?}");
        assert!(r.complete);
    }
}

#[tokio::test]
async fn malformed_content_length_is_400_and_never_forwarded() {
    let o = echo_origin().await;
    let p = proxy_to(&o).await;
    for cl in [
        "5\r\nContent-Length: 6",
        "5, 6",
        "-5",
        "+5",
        "5a",
        "0x5",
        " ",
        "99999999999999999999999",
    ] {
        let req = format!(
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {cl}\r\n\r\nhello\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
        );
        let r = send(&p, req.as_bytes()).await;
        assert!(r.starts_with("HTTP/1.1 400 "), "CL {cl:?}: {r}");
        assert_eq!(
            status_lines(&r).len(),
            1,
            "CL {cl:?}: connection must close: {r}"
        );
    }
    assert!(o.received().concat().is_empty(), "{:?}", o.requests());
}

#[tokio::test]
async fn bad_chunked_bodies_are_refused_and_nothing_is_smuggled() {
    let o = echo_origin().await;
    let p = proxy_to(&o).await;
    let smuggled = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
    for body in [
        format!("zz\r\nhello\r\n0\r\n\r\n{smuggled}"),
        format!("ffffffffffffffffffff\r\nhello\r\n0\r\n\r\n{smuggled}"),
        format!("5\r\nhelloXX0\r\n\r\n{smuggled}"),
        format!("-5\r\nhello\r\n0\r\n\r\n{smuggled}"),
        format!("5 5\r\nhello\r\n0\r\n\r\n{smuggled}"),
    ] {
        let req =
            format!("POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{body}");
        let r = send(&p, req.as_bytes()).await;
        let lines = status_lines(&r);
        // Either a 400, or (if the origin answered before the bad bytes arrived) a cut.
        assert!(
            lines.iter().all(|l| !l.contains(" 200 ")) || lines.len() <= 1,
            "{body:?}: {r}"
        );
        assert!(!r.contains("saw GET /smuggled"), "{body:?}: {r}");
    }
    let reqs = o.requests();
    assert_unambiguous(&reqs);
    assert!(
        reqs.iter().all(|r| !r.head.contains("/smuggled")),
        "{reqs:?}"
    );
    // Whatever reached the origin is a truncated chunked POST, never a complete one.
    assert!(reqs.iter().all(|r| !r.complete), "{reqs:?}");
}

#[tokio::test]
async fn transfer_encodings_other_than_final_chunked_are_400() {
    let o = echo_origin().await;
    let p = proxy_to(&o).await;
    for (version, te) in [
        ("1.1", "gzip"),
        ("1.1", "chunked, gzip"),
        ("1.0", "chunked"),
        ("1.1", "chunked\r\nTransfer-Encoding: gzip"),
    ] {
        let req = format!(
            "POST / HTTP/{version}\r\nHost: x\r\nTransfer-Encoding: {te}\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
        );
        let r = send(&p, req.as_bytes()).await;
        assert!(r.starts_with("HTTP/1.1 400 "), "{version} {te:?}: {r}");
    }
    assert!(o.received().concat().is_empty(), "{:?}", o.requests());
}

#[tokio::test]
async fn malformed_header_lines_are_400() {
    let o = echo_origin().await;
    let p = proxy_to(&o).await;
    for bad in [
        &b"GET / HTTP/1.1\r\nHost: x\r\nX-Fold: a\r\n b\r\n\r\n"[..],
        &b"GET / HTTP/1.1\r\nHost: x\r\nX-Fold: a\r\n\tb\r\n\r\n"[..],
        &b"GET / HTTP/1.1\r\nHost: x\r\nX-Nul: a\0b\r\n\r\n"[..],
        &b"GET / HTTP/1.1\r\nHost: x\r\nX-Cr: a\rb\r\n\r\n"[..],
        &b"GET / HTTP/1.1\r\nHost : x\r\n\r\n"[..],
        &b"GET / HTTP/1.1\r\nHost: x\r\nBad Name: y\r\n\r\n"[..],
        &b"GET / HTTP/1.1\r\nHost: x\r\n: empty\r\n\r\n"[..],
        &b"GET /a b HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        &b"GET / HTTP/1.1 extra\r\nHost: x\r\n\r\n"[..],
        &b"GET / HTTP/9.9\r\nHost: x\r\n\r\n"[..],
        &b"GET / HTTP/1.1\r\n\r\n"[..],
        &b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"[..],
    ] {
        let r = send(&p, bad).await;
        assert!(
            r.starts_with("HTTP/1.1 400 ") || r.starts_with("HTTP/1.1 505 "),
            "{:?}: {r}",
            String::from_utf8_lossy(bad)
        );
    }
    assert!(o.received().concat().is_empty(), "{:?}", o.requests());
}

#[tokio::test]
async fn connect_is_405_and_never_forwarded() {
    let o = echo_origin().await;
    let p = proxy_to(&o).await;
    let r = send(
        &p,
        b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 405 "), "{r}");
    assert_eq!(status_lines(&r).len(), 1, "{r}");
    assert!(o.received().concat().is_empty(), "{:?}", o.requests());
}

/// The origin refuses the upgrade (answers 200 or 400): the proxy must not tunnel, and the bytes
/// after the request head reach the origin only as a separate request that the proxy parsed
/// itself (it carries X-Forwarded-For), never as raw bytes.
#[tokio::test]
async fn bytes_after_a_refused_upgrade_are_not_tunnelled() {
    for status in ["200 OK", "400 Bad Request"] {
        let o = raw_origin(move |p| {
            let line = p.request_line();
            let body = format!("saw {}", line.rsplit_once(' ').map_or(line, |l| l.0));
            Reply::Keep(
                format!(
                    "HTTP/1.1 {status}\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                )
                .into_bytes(),
            )
        })
        .await;
        let p = proxy_to(&o).await;
        let up = "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
        // A valid pipelined request: proxied as such, with the proxy's own headers.
        let r = send(
            &p,
            format!("{up}GET /next HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await;
        assert!(!r.contains(" 101 "), "{r}");
        assert!(r.contains("saw GET /ws"), "{r}");
        // Raw garbage after the head: never reaches the origin.
        let r2 = send(
            &p,
            format!("{up}\x16\x03\x01garbage-not-http\r\n\r\n").as_bytes(),
        )
        .await;
        assert!(r2.contains("saw GET /ws"), "{r2}");
        let reqs = o.requests();
        assert_unambiguous(&reqs);
        for q in &reqs {
            assert!(q.complete, "{q:?}");
            assert!(
                q.request_line().starts_with("GET /ws ")
                    || q.request_line().starts_with("GET /next "),
                "{q:?}"
            );
            assert_eq!(q.values("x-forwarded-for").len(), 1, "{q:?}");
        }
        let all = String::from_utf8_lossy(&o.received().concat()).into_owned();
        assert!(!all.contains("garbage-not-http"), "{all}");
        if r.contains("saw GET /next") {
            assert!(reqs
                .iter()
                .any(|q| q.request_line().starts_with("GET /next ")));
        }
    }
}

#[tokio::test]
async fn invalid_upstream_heads_are_502() {
    for resp in [
        &b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"[..],
        &b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\nhello"[..],
        &b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nhello"[..],
        &b"garbage\r\n\r\n"[..],
        &b"HTTP/1.1 2000 OK\r\n\r\n"[..],
        &b"HTTP/1.1 200 OK\r\nX-Nul: a\0b\r\nContent-Length: 0\r\n\r\n"[..],
        &b"HTTP/1.1 200 OK\r\nBad Name: a\r\nContent-Length: 0\r\n\r\n"[..],
    ] {
        let resp = resp.to_vec();
        let o = raw_origin(move |_| Reply::Close(resp.clone())).await;
        let p = proxy_to(&o).await;
        let r = send(&p, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(r.starts_with("HTTP/1.1 502 "), "{r}");
    }
}

/// An origin sending both Content-Length and chunked: the chunked framing wins and the client
/// gets exactly the decoded body, with unambiguous framing, and the connection stays in sync.
#[tokio::test]
async fn upstream_cl_plus_te_is_reframed_for_the_client() {
    let o = raw_origin(|p| {
        if p.request_line().starts_with("GET /second") {
            Reply::Keep(ok("second"))
        } else {
            Reply::Keep(
                b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n14\r\nHTTP/1.1 999 smuggle\r\n0\r\n\r\n"
                    .to_vec(),
            )
        }
    })
    .await;
    let p = proxy_to(&o).await;
    let r = send(
        &p,
        b"GET /first HTTP/1.1\r\nHost: x\r\n\r\nGET /second HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    let msgs = {
        let mut v = Vec::new();
        let mut b = r.as_bytes();
        while let Some(m) = split_message(b, false) {
            b = &b[m.len.min(b.len())..];
            v.push(m);
            if b.is_empty() {
                break;
            }
        }
        v
    };
    assert_unambiguous(&msgs);
    assert_eq!(msgs.len(), 2, "{r}");
    assert!(msgs[0].complete && msgs[1].complete, "{r}");
    assert!(
        r.contains("HTTP/1.1 999 smuggle"),
        "decoded body delivered whole: {r}"
    );
    assert!(r.ends_with("second"), "{r}");
}

/// Upstream framing errors inside the body (after the head went out): the client's response is
/// cut, not completed, and not followed by anything.
#[tokio::test]
async fn bad_chunk_in_upstream_body_cuts_the_client_response() {
    let o = raw_origin(|_| {
        Reply::Close(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\nmore\r\n0\r\n\r\n".to_vec())
    })
    .await;
    let p = proxy_to(&o).await;
    let mut s = tokio::net::TcpStream::connect(p.addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let (got, closed) = read_until_quiet(&mut s, Duration::from_secs(5)).await;
    let text = String::from_utf8_lossy(&got);
    assert!(closed, "connection must be closed: {text}");
    assert!(text.starts_with("HTTP/1.1 200 "), "{text}");
    assert!(!text.ends_with("0\r\n\r\n"), "no clean last chunk: {text}");
}

/// An origin that accepts an h2c upgrade (101) whenever it is asked for one, else answers 200.
async fn h2c_accepting_origin() -> RawOrigin {
    raw_origin(|p| {
        if p.values("upgrade")
            .iter()
            .any(|v| v.to_ascii_lowercase().contains("h2c"))
        {
            Reply::Keep(
                b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
                    .to_vec(),
            )
        } else {
            Reply::Keep(ok("plain"))
        }
    })
    .await
}

#[tokio::test]
async fn h2c_upgrade_is_never_forwarded() {
    // h2c smuggling: an upstream that accepts the upgrade would give the client a raw HTTP/2
    // tunnel past routing and every limit. The upgrade is dropped (Upgrade: h2c,
    // HTTP2-Settings) and the request is served as plain HTTP/1.1.
    let o = h2c_accepting_origin().await;
    let p = proxy(&one_upstream(o.addr)).await;
    for upgrade in ["h2c", "H2C", "websocket, h2c"] {
        let req = format!(
            "GET /x HTTP/1.1\r\nHost: x\r\nUpgrade: {upgrade}\r\nConnection: Upgrade, HTTP2-Settings\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n"
        );
        let r = raw(p.addr, req.as_bytes(), Duration::from_secs(2)).await;
        assert!(r.starts_with("HTTP/1.1 200"), "Upgrade: {upgrade}: {r}");
        assert!(r.ends_with("plain"), "Upgrade: {upgrade}: {r}");
    }
    for req in o.requests() {
        assert!(req.values("upgrade").is_empty(), "{:?}", req.head);
        assert!(req.values("http2-settings").is_empty(), "{:?}", req.head);
        assert!(
            !req.values("connection")
                .iter()
                .any(|v| v.to_ascii_lowercase().contains("upgrade")),
            "{:?}",
            req.head
        );
    }
    assert_eq!(o.requests().len(), 3);
}

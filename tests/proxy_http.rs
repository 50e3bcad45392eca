//! Transparency: header rules both ways, Host handling, HTTP/1.0, pipelining, upgrades.

mod common;
use common::*;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An origin that answers with the request head it received, one `name: value` per line.
async fn echo_headers() -> Origin {
    origin(|req| async move {
        let mut out = format!("{} {} {:?}\n", req.method(), req.uri(), req.version());
        for (k, v) in req.headers() {
            out.push_str(&format!("{}: {}\n", k, v.to_str().unwrap_or("?")));
        }
        let mut r = text(200, out);
        let h = r.headers_mut();
        h.insert("connection", "x-upstream-private".parse().unwrap());
        h.insert("x-upstream-private", "secret".parse().unwrap());
        h.insert("keep-alive", "timeout=5".parse().unwrap());
        h.insert("x-kept", "yes".parse().unwrap());
        r
    })
    .await
}

#[tokio::test]
async fn request_headers_follow_the_rules() {
    let o = echo_headers().await;
    let p = proxy(&one_upstream(o.addr)).await;
    let r = raw(
        p.addr,
        b"GET /path?q=1 HTTP/1.1\r\nHost: Example.COM:8443\r\nConnection: close, X-Private\r\nX-Private: 1\r\nKeep-Alive: timeout=9\r\nTE: trailers\r\nProxy-Connection: keep-alive\r\nX_Under_Score: kept\r\nX-Forwarded-For: 203.0.113.7\r\nX-Real-IP: 1.1.1.1\r\n\r\n",
        Duration::from_secs(3),
    )
    .await;
    let (head, body) = r.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{r}");
    let body = body.to_ascii_lowercase();
    assert!(body.starts_with("get /path?q=1 http/1.1"), "{body}");
    assert!(
        body.contains("host: example.com:8443\n"),
        "Host as sent, port included: {body}"
    );
    assert!(body.contains("x_under_score: kept\n"), "{body}");
    assert!(
        body.contains("x-forwarded-for: 203.0.113.7, 127.0.0.1\n"),
        "{body}"
    );
    assert!(body.contains("x-real-ip: 127.0.0.1\n"), "{body}");
    assert!(body.contains("x-forwarded-proto: http\n"), "{body}");
    for gone in [
        "x-private",
        "keep-alive",
        "te:",
        "proxy-connection",
        "connection: close",
    ] {
        assert!(
            !body.contains(gone),
            "{gone} must not reach the upstream: {body}"
        );
    }
    // Response side: fields named in the upstream's Connection and hop-by-hop ones are removed.
    let head = head.to_ascii_lowercase();
    assert!(head.contains("x-kept: yes"), "{head}");
    assert!(!head.contains("x-upstream-private"), "{head}");
    assert!(!head.contains("keep-alive"), "{head}");
}

#[tokio::test]
async fn absolute_form_target_sets_host_and_missing_host_is_400() {
    let o = echo_headers().await;
    let p = proxy(&one_upstream(o.addr)).await;
    let r = raw(
        p.addr,
        b"GET http://real.example:81/a HTTP/1.1\r\nHost: other.example\r\nConnection: close\r\n\r\n",
        Duration::from_secs(3),
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    let lower = r.to_ascii_lowercase();
    assert!(
        lower.contains("get /a http/1.1"),
        "origin-form upstream: {r}"
    );
    assert!(lower.contains("host: real.example:81\n"), "{r}");
    assert!(!lower.contains("other.example"), "{r}");

    let r = raw(
        p.addr,
        b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n",
        Duration::from_secs(3),
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 400"), "{r}");
    let r = raw(
        p.addr,
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n",
        Duration::from_secs(3),
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 400"), "{r}");
    assert_eq!(
        o.requests(),
        1,
        "rejected requests never reach the upstream"
    );
}

#[tokio::test]
async fn http10_client_without_host_is_served() {
    let o = echo_headers().await;
    let p = proxy(&one_upstream(o.addr)).await;
    let r = raw(p.addr, b"GET /old HTTP/1.0\r\n\r\n", Duration::from_secs(3)).await;
    assert!(r.starts_with("HTTP/1.0 200"), "{r}");
    let lower = r.to_ascii_lowercase();
    assert!(
        lower.contains("get /old http/1.1"),
        "upstream speaks 1.1: {r}"
    );
    assert!(
        lower.contains(&format!("host: {}\n", o.addr)),
        "Host defaults to the server: {r}"
    );
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let o = origin(|req| async move { text(200, req.uri().path().to_owned()) }).await;
    let p = proxy(&one_upstream(o.addr)).await;
    let r = raw(
        p.addr,
        b"GET /one HTTP/1.1\r\nHost: x\r\n\r\nGET /two HTTP/1.1\r\nHost: x\r\n\r\nGET /three HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        Duration::from_secs(3),
    )
    .await;
    let one = r.find("/one").unwrap();
    let two = r.find("/two").unwrap();
    let three = r.find("/three").unwrap();
    assert!(one < two && two < three, "{r}");
    assert_eq!(r.matches("HTTP/1.1 200").count(), 3, "{r}");
}

#[tokio::test]
async fn websocket_upgrade_tunnels_both_ways() {
    let o = upper_echo_upgrade_origin().await;
    let p = proxy(&one_upstream(o.addr)).await;
    websocket_round_trip(p.addr).await;
}

#[tokio::test]
async fn keepalive_requests_closes_client_connection_after_limit() {
    let o = named("a").await;
    let p = proxy(&format!("keepalive_requests: 3\n{}", one_upstream(o.addr))).await;
    let r = raw(
        p.addr,
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
        Duration::from_secs(3),
    )
    .await;
    assert_eq!(r.matches("HTTP/1.1 200").count(), 3, "{r}");
    assert_eq!(
        r.to_ascii_lowercase().matches("connection: close").count(),
        1,
        "{r}"
    );
}

#[tokio::test]
async fn client_header_timeout_closes_slow_heads_but_idle_keepalive_lives_longer() {
    let o = named("a").await;
    let p = proxy(&format!(
        "client_header_timeout: 300ms\nkeepalive_timeout: 5s\n{}",
        one_upstream(o.addr)
    ))
    .await;
    // A slow head: closed after the header timeout, well before the keepalive timeout.
    let mut s = tokio::net::TcpStream::connect(p.addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let mut buf = [0u8; 256];
    let n = tokio::time::timeout(Duration::from_secs(3), s.read(&mut buf)).await;
    assert!(
        matches!(n, Ok(Ok(0)) | Ok(Err(_))),
        "slow head must be cut: {n:?}"
    );
    // An idle keepalive connection survives longer than the header timeout.
    let mut c = Conn::open(p.addr).await;
    assert_eq!(c.get("/").await.0, 200);
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(c.get("/").await.0, 200);
}

//! Our HTTP/1.1 server for clients (issue 16): request bodies framed both ways followed by a
//! pipelined request on the same connection, HTTP/1.0 keep-alive, heads arriving a byte at a
//! time, malformed chunked bodies, `max_headers` above the parser's stack array, and a
//! close-delimited upstream answer re-framed as chunked for an HTTP/1.1 client, keep-alive and
//! pipelining inside TLS (idle waits there look into rustls before the socket).

mod common;
use common::*;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Reads one response with a `Content-Length` body off `s`; returns head and body.
async fn read_response<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> (String, String) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .and_then(|v| v.trim().parse().ok())
                .expect("content-length");
            while buf.len() < end + 4 + len {
                let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut chunk))
                    .await
                    .unwrap()
                    .unwrap();
                assert!(n > 0, "closed inside the body");
                buf.extend_from_slice(&chunk[..n]);
            }
            let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).into_owned();
            return (head, body);
        }
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut chunk))
            .await
            .unwrap()
            .unwrap();
        assert!(
            n > 0,
            "closed before a response: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[tokio::test]
async fn request_bodies_end_where_their_framing_says_and_the_next_request_follows() {
    let o = echo_origin().await;
    let p = proxy(&one_upstream(o.addr)).await;
    let r = raw(
        p.addr,
        b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n\
POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc\
GET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        Duration::from_secs(3),
    )
    .await;
    assert_eq!(r.matches("HTTP/1.1 200").count(), 3, "{r}");
    let a = r.find("hello world").expect("chunked body relayed whole");
    let b = r.find("x-seen-path: /b").expect("second request");
    let c = r.find("x-seen-path: /c").expect("third request");
    assert!(a < b && b < c, "in order: {r}");
    assert!(r[b..c].contains("abc"), "length-framed body: {r}");
}

#[tokio::test]
async fn http10_keep_alive_is_honoured_and_said() {
    let o = named("a").await;
    let p = proxy(&one_upstream(o.addr)).await;
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    for _ in 0..2 {
        s.write_all(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            .await
            .unwrap();
        let (head, _) = read_response(&mut s).await;
        assert!(head.starts_with("http/1.0 200"), "{head}");
        assert!(head.contains("connection: keep-alive"), "{head}");
    }
    // Without the token an HTTP/1.0 connection closes after the response.
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").await.unwrap();
    let (head, _) = read_response(&mut s).await;
    assert!(!head.contains("keep-alive"), "{head}");
    let n = tokio::time::timeout(Duration::from_secs(3), s.read(&mut [0u8; 16]))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0, "closed after an HTTP/1.0 response without keep-alive");
}

#[tokio::test]
async fn a_head_sent_one_byte_at_a_time_is_served() {
    let o = named("a").await;
    let p = proxy(&one_upstream(o.addr)).await;
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    s.set_nodelay(true).unwrap();
    for b in b"GET /slow HTTP/1.1\r\nHost: x\r\nX-Long: 0123456789\r\n\r\n" {
        s.write_all(&[*b]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let (head, body) = read_response(&mut s).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(body.contains('a'), "{body}");
}

#[tokio::test]
async fn a_malformed_chunked_body_fails_the_request_and_closes() {
    let o = echo_origin().await;
    let p = proxy(&one_upstream(o.addr)).await;
    let r = raw(
        p.addr,
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
        Duration::from_secs(3),
    )
    .await;
    assert!(
        r.starts_with("HTTP/1.1 4") || r.starts_with("HTTP/1.1 5"),
        "{r}"
    );
    assert!(
        !r.contains("/smuggled"),
        "nothing after a broken body is a request: {r}"
    );
    assert_eq!(r.matches("HTTP/1.1 ").count(), 1, "{r}");
}

/// A raw upstream (no field limit of its own): reads a head, answers `reply`, closes.
async fn raw_origin(reply: &'static [u8]) -> std::net::SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut c, _)) = l.accept().await else {
                return;
            };
            tokio::spawn(async move {
                if read_head(&mut c).await.is_none() {
                    return;
                }
                let _ = c.write_all(reply).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn max_headers_above_one_hundred_is_honoured() {
    let o =
        raw_origin(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok").await;
    let mut req = String::from("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
    for i in 0..150 {
        req.push_str(&format!("X-F{i}: v\r\n"));
    }
    req.push_str("\r\n");
    let p = proxy(&format!("max_headers: 200\n{}", one_upstream(o))).await;
    let r = raw(p.addr, req.as_bytes(), Duration::from_secs(3)).await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    let p = proxy(&one_upstream(o)).await;
    let r = raw(p.addr, req.as_bytes(), Duration::from_secs(3)).await;
    assert!(r.starts_with("HTTP/1.1 431"), "{r}");
    assert!(
        r.contains("text/plain"),
        "swarmgate's own answer, not the upstream's: {r}"
    );
}

#[tokio::test]
async fn a_close_delimited_answer_reaches_an_http11_client_chunked_on_a_kept_connection() {
    let addr = raw_origin(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil-close").await;
    let p = proxy(&one_upstream(addr)).await;
    let r = raw(
        p.addr,
        b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        Duration::from_secs(3),
    )
    .await;
    assert_eq!(
        r.matches("HTTP/1.1 200").count(),
        2,
        "kept for the second: {r}"
    );
    assert_eq!(
        r.to_ascii_lowercase()
            .matches("transfer-encoding: chunked")
            .count(),
        2,
        "{r}"
    );
    assert_eq!(r.matches("b\r\nuntil-close\r\n0\r\n\r\n").count(), 2, "{r}");
}

#[tokio::test]
async fn tls_connections_stay_alive_across_idle_waits_and_pipelined_bursts() {
    let pki = pki("h1-tls");
    let o = echo_origin().await;
    let p = proxy(&tls_listener(&pki, &one_upstream(o.addr))).await;
    let tcp = TcpStream::connect(p.addr).await.unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(pki.client_config(&[b"http/1.1"]))
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .unwrap();
    for i in 0..3 {
        tls.write_all(format!("GET /idle{i} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let (head, _) = read_response(&mut tls).await;
        assert!(head.contains(&format!("x-seen-path: /idle{i}")), "{head}");
        tokio::time::sleep(Duration::from_millis(50)).await; // idle: waits for readiness
    }
    // A burst larger than the first read: the rest waits decrypted inside rustls.
    let body = "b".repeat(6000);
    let mut burst = String::new();
    for i in 0..4 {
        burst.push_str(&format!(
            "POST /burst{i} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ));
    }
    tls.write_all(burst.as_bytes()).await.unwrap();
    for i in 0..4 {
        let (head, got) = read_response(&mut tls).await;
        assert!(head.contains(&format!("x-seen-path: /burst{i}")), "{head}");
        assert_eq!(got, body);
    }
}

#[tokio::test]
async fn a_client_that_goes_away_while_waiting_cancels_the_upstream_request() {
    // An origin that never answers and reports when swarmgate closes its connection.
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (mut c, _) = l.accept().await.unwrap();
        let mut buf = [0u8; 4096];
        while let Ok(n) = c.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
        let _ = tx.send(());
    });
    let p = proxy(&one_upstream(addr)).await;
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    s.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(s);
    tokio::time::timeout(Duration::from_secs(5), rx)
        .await
        .expect("the upstream request is dropped when the client leaves")
        .unwrap();
}

#[tokio::test]
async fn tls_connections_end_with_close_notify() {
    let pki = pki("h1-tls-close");
    let addr = raw_origin(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil-close").await;
    let p = proxy(&tls_listener(&pki, &one_upstream(addr))).await;
    let tcp = TcpStream::connect(p.addr).await.unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(pki.client_config(&[b"http/1.1"]))
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .unwrap();
    tls.write_all(b"GET / HTTP/1.0\r\n\r\n").await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut out))
        .await
        .unwrap()
        .expect("a close-delimited body ends with close_notify, not a bare EOF");
    assert!(String::from_utf8_lossy(&out).ends_with("until-close"));
}

#[tokio::test]
async fn shutdown_does_not_wait_for_a_head_still_arriving() {
    let o = named("a").await;
    let p = proxy(&one_upstream(o.addr)).await;
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHo")
        .await
        .unwrap();
    let (head, _) = read_response(&mut s).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    p.app.stop();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(3), s.read(&mut buf))
        .await
        .expect("closed at shutdown, not after client_header_timeout")
        .unwrap_or(0);
    assert_eq!(n, 0);
}

/// Upgrades a new connection to `addr` (an [`upgrade_echo_at`] origin behind it); returns the
/// stream and the 101's head, lower-cased.
async fn upgraded(addr: std::net::SocketAddr) -> (TcpStream, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(
        b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    )
    .await
    .unwrap();
    let mut buf = vec![0u8; 1024];
    let n = s.read(&mut buf).await.unwrap();
    let head = String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    (s, head)
}

/// Eight messages through the tunnel, `gap` apart, each echoed upper-cased.
async fn echo_rounds(s: &mut TcpStream, gap: Duration) {
    let mut buf = vec![0u8; 1024];
    for i in 0..8 {
        let msg = format!("message {i}");
        s.write_all(msg.as_bytes()).await.unwrap();
        let n = tokio::time::timeout(Duration::from_secs(3), s.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            &buf[..n],
            msg.to_ascii_uppercase().as_bytes(),
            "after {i} messages"
        );
        tokio::time::sleep(gap).await;
    }
}

#[tokio::test]
async fn tunnels_outlive_the_header_timeout_and_the_101_keeps_its_connection_field() {
    let o = upgrade_echo_at("127.0.0.1").await;
    let p = proxy(&format!(
        "client_header_timeout: 300ms\nkeepalive_requests: 1\n{}",
        one_upstream(o.addr)
    ))
    .await;
    let (mut s, head) = upgraded(p.addr).await;
    assert!(head.contains("connection: upgrade"), "{head}");
    assert!(
        !head.contains("close"),
        "the last allowed request is still an upgrade: {head}"
    );
    echo_rounds(&mut s, Duration::from_millis(150)).await;
}

#[tokio::test]
async fn a_tunnel_idle_for_the_upstreams_read_timeout_is_closed() {
    let o = upgrade_echo_at("127.0.0.1").await;
    let p = proxy(&format!(
        "upstreams:\n  u:\n    read_timeout: 600ms\n    servers: [{{address: '{}'}}]\n",
        o.addr
    ))
    .await;
    let (mut s, _) = upgraded(p.addr).await;
    // Traffic keeps it open well past the timeout (8 x 200 ms)...
    echo_rounds(&mut s, Duration::from_millis(200)).await;
    // ...silence closes it, not before the timeout.
    let quiet = std::time::Instant::now();
    let mut buf = [0u8; 64];
    let r = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
        .await
        .expect("an idle tunnel is closed");
    assert!(matches!(r, Ok(0) | Err(_)), "{r:?}");
    assert!(
        quiet.elapsed() >= Duration::from_millis(300),
        "{:?}",
        quiet.elapsed()
    );
}

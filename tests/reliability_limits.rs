//! Limits on hostile or broken clients and servers, each with its config key and status:
//! request head size and header count (431), URI length (414), `client_header_timeout`
//! (slowloris), `keepalive_timeout`, `client_body_timeout` (408), `max_connections`, and the
//! upstream response head size (502).

mod common;
mod reliability_support;
use common::*;
use reliability_support::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn proxy_with(limits: &str, o: &Origin) -> Proxy {
    proxy(&format!("{limits}{}", one_upstream(o.addr))).await
}

#[tokio::test]
async fn head_size_header_count_and_uri_length_limits() {
    let o = named("a").await;
    let p = proxy_with(
        "large_client_header_buffers: 4k\nmax_headers: 20\nmax_uri_length: 1k\n",
        &o,
    )
    .await;
    let w = Duration::from_secs(2);
    // Within every limit: served.
    let fine = format!(
        "GET /{} HTTP/1.1\r\nHost: x\r\nX-A: {}\r\nConnection: close\r\n\r\n",
        "u".repeat(900),
        "v".repeat(2000)
    );
    assert!(raw(p.addr, fine.as_bytes(), w)
        .await
        .starts_with("HTTP/1.1 200 "));
    // Head larger than large_client_header_buffers: 431.
    let big = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-A: {}\r\n\r\n",
        "v".repeat(5000)
    );
    let r = raw(p.addr, big.as_bytes(), w).await;
    assert!(r.starts_with("HTTP/1.1 431 "), "{r}");
    // More fields than max_headers: 431.
    let mut many = String::from("GET / HTTP/1.1\r\nHost: x\r\n");
    for i in 0..25 {
        many.push_str(&format!("X-{i}: y\r\n"));
    }
    many.push_str("\r\n");
    let r = raw(p.addr, many.as_bytes(), w).await;
    assert!(r.starts_with("HTTP/1.1 431 "), "{r}");
    // Target longer than max_uri_length (but within the head size): 414.
    let long = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "u".repeat(2000));
    let r = raw(p.addr, long.as_bytes(), w).await;
    assert!(r.starts_with("HTTP/1.1 414 "), "{r}");
    assert_eq!(o.requests(), 1);
}

/// 1,000 slowloris clients, each sending one header byte a second: normal requests are still
/// served meanwhile, and every slow client is cut once `client_header_timeout` passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_clients_are_cut_and_do_not_starve_normal_requests() {
    const SLOW: usize = 1000;
    let o = named("a").await;
    let p = proxy_with("client_header_timeout: 3s\n", &o).await;
    let addr = p.addr;
    let start = Instant::now();
    let opened = Arc::new(AtomicUsize::new(0));
    let mut slow = Vec::with_capacity(SLOW);
    for i in 0..SLOW {
        let opened = opened.clone();
        slow.push(tokio::spawn(async move {
            // Stagger the connects a little (the listen backlog is finite).
            tokio::time::sleep(Duration::from_millis((i / 100) as u64 * 20)).await;
            let mut s = TcpStream::connect(addr).await.unwrap();
            let t0 = Instant::now();
            opened.fetch_add(1, Ordering::SeqCst);
            s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                .await
                .unwrap();
            let mut buf = [0u8; 64];
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    r = s.read(&mut buf) => match r {
                        Ok(0) | Err(_) => return (t0.elapsed(), true),
                        Ok(_) => return (t0.elapsed(), false), // an answer: not expected
                    },
                    _ = tick.tick() => {
                        if s.write_all(b"x").await.is_err() {
                            return (t0.elapsed(), true);
                        }
                    }
                }
            }
        }));
    }
    while opened.load(Ordering::SeqCst) < SLOW {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "could not open {SLOW} connections"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // While they hang: normal requests on fresh connections are served, promptly.
    let mut worst = Duration::ZERO;
    for _ in 0..50 {
        let t = Instant::now();
        let (s, _, body) = get(addr, "/").await;
        assert_eq!((s.as_u16(), &body[..]), (200, &b"a"[..]));
        worst = worst.max(t.elapsed());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        worst < Duration::from_secs(1),
        "a normal request took {worst:?}"
    );
    let mut cut = Vec::with_capacity(SLOW);
    for t in slow {
        let (after, closed) = t.await.unwrap();
        assert!(closed, "a slow client got an answer");
        cut.push(after);
    }
    cut.sort();
    let (first, last) = (cut[0], cut[SLOW - 1]);
    eprintln!(
        "{SLOW} slow clients cut after {first:?} .. {last:?}; worst normal request {worst:?}"
    );
    assert!(
        first >= Duration::from_millis(2500),
        "cut too early: {first:?}"
    );
    assert!(last < Duration::from_secs(8), "cut too late: {last:?}");
}

#[tokio::test]
async fn idle_keepalive_connection_is_closed_after_keepalive_timeout() {
    let o = named("a").await;
    let p = proxy_with("keepalive_timeout: 500ms\n", &o).await;
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let t = Instant::now();
    let (got, closed) = read_until_quiet(&mut s, Duration::from_secs(3)).await;
    assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200 "));
    assert!(closed, "idle connection must be closed");
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_secs(3),
        "{took:?}"
    );
}

#[tokio::test]
async fn stalled_request_body_gets_408_after_client_body_timeout() {
    let o = origin(|req: hyper::Request<hyper::body::Incoming>| async move {
        use http_body_util::BodyExt;
        let _ = req.into_body().collect().await;
        text(200, "got it")
    })
    .await;
    let p = proxy_with("client_body_timeout: 500ms\n", &o).await;
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    s.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
        .await
        .unwrap();
    let t = Instant::now();
    let (got, closed) = read_until_quiet(&mut s, Duration::from_secs(5)).await;
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 408 "), "{text}");
    assert!(closed, "{text}");
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
}

/// `max_connections`: connections beyond the limit wait (not refused, not reset) and are
/// served as soon as another closes.
#[tokio::test]
async fn max_connections_makes_excess_wait_then_serves_them() {
    let o = named("a").await;
    let p = proxy_with("max_connections: 2\n", &o).await;
    let mut c1 = Conn::open(p.addr).await;
    let mut c2 = Conn::open(p.addr).await;
    assert_eq!(c1.get("/").await.0, 200);
    assert_eq!(c2.get("/").await.0, 200);
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let early = tokio::time::timeout(Duration::from_millis(700), s.read(&mut buf)).await;
    assert!(early.is_err(), "the third connection must wait: {early:?}");
    drop(c1);
    let t = Instant::now();
    let (got, _) = read_until_quiet(&mut s, Duration::from_secs(3)).await;
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200 "), "{text}");
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert_eq!(c2.get("/").await.0, 200);
}

#[tokio::test]
async fn oversized_upstream_response_head_is_502() {
    let big = format!(
        "HTTP/1.1 200 OK\r\nX-Big: {}\r\nContent-Length: 2\r\n\r\nok",
        "b".repeat(8000)
    );
    let o = raw_origin(move |p| {
        if p.request_line().contains("/small") {
            Reply::Keep(ok("small"))
        } else {
            Reply::Keep(big.clone().into_bytes())
        }
    })
    .await;
    let p = proxy(&format!(
        "upstreams:\n  u:\n    max_response_header_size: 4k\n    servers: [{{address: '{}'}}]\n",
        o.addr
    ))
    .await;
    let (s, _, _) = get(p.addr, "/big").await;
    assert_eq!(s, 502);
    // One server: not banned by that failure, the next small response goes through.
    let (s, _, body) = get(p.addr, "/small").await;
    assert_eq!((s.as_u16(), &body[..]), (200, &b"small"[..]));
}

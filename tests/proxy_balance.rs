//! Balancing and failure handling over real sockets: smooth WRR split, passive failure
//! accounting, 502/504, keepalive pool reuse.

mod common;
use common::*;
use std::time::{Duration, Instant};

#[tokio::test]
async fn weights_two_to_one_split_exactly_over_300_requests() {
    let a = named("a").await;
    let b = named("b").await;
    let p = proxy(&format!(
        "upstreams:\n  u:\n    servers:\n      - {{address: '{}', weight: 2}}\n      - {{address: '{}', weight: 1}}\n",
        a.addr, b.addr
    ))
    .await;
    let mut c = Conn::open(p.addr).await;
    let mut seq = String::new();
    for _ in 0..300 {
        let (s, _, body) = c.get("/").await;
        assert_eq!(s, 200);
        seq.push_str(std::str::from_utf8(&body).unwrap());
    }
    assert_eq!(seq.matches('a').count(), 200);
    assert_eq!(seq.matches('b').count(), 100);
    // Smooth: never three of the same in a row for 2:1 (nginx gives a b a, a b a, ...).
    assert!(!seq.contains("aaa"), "{seq}");
    assert_eq!(&seq[..6], "abaaba");
}

#[tokio::test]
async fn dead_server_costs_no_client_error_and_is_not_dialed_within_fail_timeout() {
    let a = named("a").await;
    // A server that accepts and immediately closes: every attempt fails after connecting,
    // so its accepts count how often swarmgate dialed it.
    let closer = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let flaky_addr = closer.local_addr().unwrap();
    let dials = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let d = dials.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = closer.accept().await {
            d.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            drop(s);
        }
    });
    let p = proxy(&format!(
        "upstreams:\n  u:\n    servers:\n      - {{address: '{}', max_fails: 1, fail_timeout: 60s}}\n      - {{address: '{}', max_fails: 1, fail_timeout: 60s}}\n",
        flaky_addr, a.addr
    ))
    .await;
    for _ in 0..50 {
        let (s, _, body) = get(p.addr, "/").await;
        assert_eq!(s, 200);
        assert_eq!(body, "a");
    }
    assert_eq!(
        dials.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "the failing server must be tried once, then left alone for fail_timeout"
    );
}

#[tokio::test]
async fn refused_server_is_skipped_transparently() {
    let a = named("a").await;
    let dead = dead_port();
    let p = proxy(&format!(
        "upstreams:\n  u:\n    servers:\n      - address: '{}'\n      - address: '{}'\n",
        dead.addr, a.addr
    ))
    .await;
    for _ in 0..20 {
        let (s, _, body) = get(p.addr, "/").await;
        assert_eq!((s.as_u16(), &body[..]), (200, &b"a"[..]));
    }
}

#[tokio::test]
async fn all_servers_down_gives_502_at_once() {
    let (d1, d2) = (dead_port(), dead_port());
    let p = proxy(&format!(
        "upstreams:\n  u:\n    servers:\n      - address: '{}'\n      - address: '{}'\n",
        d1.addr, d2.addr
    ))
    .await;
    let t = Instant::now();
    let (s, _, body) = get(p.addr, "/").await;
    assert_eq!(s, 502);
    assert!(body.len() < 100, "short body: {body:?}");
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "refused connects fail fast"
    );
    // Both are now failed out: the next request is answered without dialing ("no live upstreams").
    let (s, _, _) = get(p.addr, "/").await;
    assert_eq!(s, 502);
}

#[tokio::test]
async fn slow_upstream_gives_504_after_read_timeout() {
    let slow = origin(|_req| async {
        tokio::time::sleep(Duration::from_secs(30)).await;
        text(200, "late")
    })
    .await;
    let p = proxy(&format!(
        "upstreams:\n  u:\n    read_timeout: 500ms\n    servers:\n      - address: '{}'\n",
        slow.addr
    ))
    .await;
    let t = Instant::now();
    let (s, _, _) = get(p.addr, "/").await;
    let took = t.elapsed();
    assert_eq!(s, 504);
    assert!(took >= Duration::from_millis(500), "{took:?}");
    assert!(took < Duration::from_secs(10), "{took:?}");
}

#[tokio::test]
async fn keepalive_pool_reuses_upstream_connections() {
    let a = named("a").await;
    let p = proxy(&format!(
        "upstreams:\n  u:\n    keepalive: 8\n    servers:\n      - address: '{}'\n",
        a.addr
    ))
    .await;
    for _ in 0..100 {
        // A new client connection each time: upstream reuse must not depend on the client.
        let (s, _, _) = get(p.addr, "/").await;
        assert_eq!(s, 200);
    }
    assert_eq!(a.requests(), 100);
    assert_eq!(
        a.accepts(),
        1,
        "100 sequential requests must share one upstream connection"
    );
}

#[tokio::test]
async fn keepalive_requests_retires_pooled_connections() {
    let a = named("a").await;
    let p = proxy(&format!(
        "upstreams:\n  u:\n    keepalive_requests: 10\n    servers:\n      - address: '{}'\n",
        a.addr
    ))
    .await;
    let mut c = Conn::open(p.addr).await;
    for _ in 0..30 {
        assert_eq!(c.get("/").await.0, 200);
    }
    assert_eq!(a.accepts(), 3);
}

#[tokio::test]
async fn pooled_connection_closed_by_upstream_is_retried_transparently() {
    // An origin that closes every connection right after each response, without saying so:
    // the pooled connection is dead when it is reused.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                if read_head(&mut s).await.is_none() {
                    return;
                }
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    .await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            });
        }
    });
    let p = proxy(&format!(
        "upstreams:\n  u:\n    servers:\n      - address: '{addr}'\n"
    ))
    .await;
    let mut c = Conn::open(p.addr).await;
    for i in 0..40 {
        let (s, _, body) = c.get("/").await;
        assert_eq!((s.as_u16(), &body[..]), (200, &b"ok"[..]), "request {i}");
        if i % 2 == 0 {
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
    }
}

#[tokio::test]
async fn backup_is_used_only_when_primaries_are_down() {
    let a = named("a").await;
    let b = named("backup").await;
    let p = proxy(&format!(
        "upstreams:\n  u:\n    servers:\n      - address: '{}'\n      - {{address: '{}', backup: true}}\n",
        a.addr, b.addr
    ))
    .await;
    for _ in 0..10 {
        assert_eq!(get(p.addr, "/").await.2, "a");
    }
    a.stop();
    drop(a);
    // Pooled connections to `a` may linger; after they fail, the backup answers.
    for _ in 0..10 {
        let (s, _, body) = get(p.addr, "/").await;
        assert_eq!((s.as_u16(), &body[..]), (200, &b"backup"[..]));
    }
}

#[tokio::test]
async fn routes_pick_upstreams_by_host_and_prefix() {
    let a = named("a").await;
    let b = named("b").await;
    let p = proxy(&format!(
        "upstreams:\n  ua:\n    servers: [{{address: '{}'}}]\n  ub:\n    servers: [{{address: '{}'}}]\nroutes:\n  - {{path_prefix: /api, host: api.example, upstream: ub}}\n  - {{path_prefix: /, upstream: ua}}\n",
        a.addr, b.addr
    ))
    .await;
    let r = raw(
        p.addr,
        b"GET /api/x HTTP/1.1\r\nHost: API.example:8080\r\nConnection: close\r\n\r\n",
        Duration::from_secs(2),
    )
    .await;
    assert!(r.ends_with("b"), "{r}");
    let r = raw(
        p.addr,
        b"GET /api/x HTTP/1.1\r\nHost: other\r\nConnection: close\r\n\r\n",
        Duration::from_secs(2),
    )
    .await;
    assert!(r.ends_with("a"), "{r}");
}

#[tokio::test]
async fn chunked_responses_give_their_connection_back_to_the_pool() {
    // No Content-Length: hyper sends the body chunked.
    let o = origin(|_req| async {
        let (tx, rx) = tokio::sync::mpsc::channel::<
            Result<hyper::body::Frame<bytes::Bytes>, std::convert::Infallible>,
        >(2);
        tokio::spawn(async move {
            let _ = tx
                .send(Ok(hyper::body::Frame::data(bytes::Bytes::from_static(
                    b"chunk",
                ))))
                .await;
        });
        use http_body_util::BodyExt;
        let body = http_body_util::StreamBody::new(futures_util::stream::unfold(
            rx,
            |mut rx| async move { rx.recv().await.map(|f| (f, rx)) },
        ))
        .map_err(|e| match e {})
        .boxed();
        hyper::Response::new(body)
    })
    .await;
    let p = proxy(&one_upstream(o.addr)).await;
    let mut c = Conn::open(p.addr).await;
    for _ in 0..20 {
        let (s, h, body) = c.get("/").await;
        assert_eq!(s, 200);
        assert!(h.get("content-length").is_none());
        assert_eq!(body, "chunk");
    }
    assert_eq!(
        o.accepts(),
        1,
        "chunked responses must not cost a connection each"
    );
}

/// A server that reads each request head, keeps it, and closes without answering: the request
/// reached it and may have been acted on.
async fn swallower() -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::Mutex<Vec<String>>>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let heads = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let h = heads.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let h = h.clone();
            tokio::spawn(async move {
                if let Some(got) = read_head(&mut s).await {
                    h.lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(&got).into_owned());
                }
            });
        }
    });
    (addr, heads)
}

#[tokio::test]
async fn a_get_lost_after_sending_goes_to_the_next_server_under_that_servers_host() {
    let (lost, heads) = swallower().await;
    let b = origin(|req: http::Request<hyper::body::Incoming>| async move {
        let host = req
            .headers()
            .get("host")
            .map_or("none".to_owned(), |v| v.to_str().unwrap().to_owned());
        text(200, host)
    })
    .await;
    let p = proxy(&format!(
        "upstreams:\n  u:\n    servers:\n      - address: '{lost}'\n      - address: '{}'\n",
        b.addr
    ))
    .await;
    // HTTP/1.0 without Host: each server is sent its own address as Host.
    let r = raw(p.addr, b"GET /x HTTP/1.0\r\n\r\n", Duration::from_secs(3)).await;
    assert!(r.starts_with("HTTP/1.0 200"), "{r}");
    assert!(r.ends_with(&b.addr.to_string()), "{r}");
    let heads = heads.lock().unwrap().clone();
    assert_eq!(heads.len(), 1, "{heads:?}");
    assert!(
        heads[0]
            .to_ascii_lowercase()
            .contains(&format!("host: {lost}\r\n")),
        "{}",
        heads[0]
    );
}

#[tokio::test]
async fn a_bodyless_post_lost_after_sending_is_not_sent_again() {
    let (lost, heads) = swallower().await;
    let b = named("b").await;
    let p = proxy(&format!(
        "upstreams:\n  u:\n    servers:\n      - address: '{lost}'\n      - address: '{}'\n",
        b.addr
    ))
    .await;
    let r = raw(
        p.addr,
        b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        Duration::from_secs(3),
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 502"), "{r}");
    assert_eq!(heads.lock().unwrap().len(), 1);
    assert_eq!(
        b.requests(),
        0,
        "a POST the server may have acted on went elsewhere"
    );
}

//! No buffering in either direction, body limits, large bodies intact.

mod common;
use bytes::Bytes;
use common::*;
use http_body_util::BodyExt;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, Mutex};

#[tokio::test]
async fn first_response_chunk_reaches_client_before_upstream_finishes() {
    let (release_tx, release_rx) = oneshot::channel::<()>();
    let release_rx = std::sync::Arc::new(Mutex::new(Some(release_rx)));
    let o = origin(move |_req| {
        let release_rx = release_rx.clone();
        async move {
            let (tx, body) = channel_body();
            tokio::spawn(async move {
                tx.send(Bytes::from_static(b"first")).await.ok();
                if let Some(rx) = release_rx.lock().await.take() {
                    let _ = rx.await;
                }
                tx.send(Bytes::from_static(b"second")).await.ok();
            });
            hyper::Response::new(body)
        }
    })
    .await;
    let p = proxy(&one_upstream(o.addr)).await;
    let mut c = Conn::open(p.addr).await;
    let req = hyper::Request::get("/")
        .header("host", "x")
        .body(empty())
        .unwrap();
    let resp = c.send(req).await.unwrap();
    let mut body = resp.into_body();
    // The upstream is still holding back "second": the first chunk must already be here.
    let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
        .await
        .expect("first chunk must arrive while the upstream is still sending")
        .unwrap()
        .unwrap();
    assert_eq!(frame.into_data().unwrap(), "first");
    release_tx.send(()).unwrap();
    let rest = body.collect().await.unwrap().to_bytes();
    assert_eq!(rest, "second");
}

#[tokio::test]
async fn request_body_streams_upstream_before_client_finishes() {
    let (seen_tx, seen_rx) = mpsc::channel::<Bytes>(1);
    let o = origin(move |req| {
        let seen_tx = seen_tx.clone();
        async move {
            let mut body = req.into_body();
            let mut total = 0;
            let mut first = true;
            while let Some(Ok(f)) = body.frame().await {
                if let Some(d) = f.data_ref() {
                    total += d.len();
                    if first {
                        first = false;
                        seen_tx.send(d.clone()).await.ok();
                    }
                }
            }
            text(200, total.to_string())
        }
    })
    .await;
    let p = proxy(&one_upstream(o.addr)).await;
    let mut c = Conn::open(p.addr).await;
    let (tx, body) = channel_body();
    let req = hyper::Request::post("/up")
        .header("host", "x")
        .body(body)
        .unwrap();
    let resp = tokio::spawn(async move { c.send(req).await.map(|r| r.status()) });
    tx.send(Bytes::from_static(b"part-one")).await.unwrap();
    let mut seen_rx = seen_rx;
    let got = tokio::time::timeout(Duration::from_secs(5), seen_rx.recv())
        .await
        .expect("upstream must see the first bytes while the client is still sending")
        .unwrap();
    assert_eq!(got, "part-one");
    tx.send(Bytes::from_static(b"part-two")).await.unwrap();
    drop(tx);
    assert_eq!(resp.await.unwrap().unwrap(), 200);
}

#[tokio::test]
async fn declared_body_over_limit_is_413_without_contacting_upstream() {
    let o = named("a").await;
    let p = proxy(&format!(
        "client_max_body_size: 1k\n{}",
        one_upstream(o.addr)
    ))
    .await;
    let r = raw(
        p.addr,
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n",
        Duration::from_secs(2),
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 413"), "{r}");
    assert_eq!(o.accepts(), 0);
    // Within the limit passes.
    let r = raw(
        p.addr,
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
        Duration::from_secs(2),
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
}

#[tokio::test]
async fn chunked_body_growing_past_limit_is_refused() {
    let o = body_length_origin().await;
    let p = proxy(&format!(
        "client_max_body_size: 1k\n{}",
        one_upstream(o.addr)
    ))
    .await;
    let chunk = "x".repeat(600);
    let req = format!(
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n258\r\n{chunk}\r\n258\r\n{chunk}\r\n0\r\n\r\n"
    );
    let r = raw(p.addr, req.as_bytes(), Duration::from_secs(3)).await;
    assert!(r.starts_with("HTTP/1.1 413"), "{r}");
}

#[tokio::test]
async fn sixty_four_mib_upload_and_download_arrive_intact() {
    const SIZE: u64 = 64 << 20;
    let up = checksum_origin().await;
    let down = pattern_origin(SIZE).await;
    let p = proxy(&format!(
        "client_max_body_size: 0\nupstreams:\n  up:\n    servers: [{{address: '{}'}}]\n  down:\n    servers: [{{address: '{}'}}]\nroutes:\n  - {{path_prefix: /up, upstream: up}}\n  - {{path_prefix: /, upstream: down}}\n",
        up.addr, down.addr
    ))
    .await;
    upload_pattern(p.addr, "/up", SIZE).await;
    download_pattern(p.addr, "/", SIZE).await;
}

#[tokio::test]
async fn expect_100_continue_is_answered_and_body_forwarded() {
    let o = checksum_origin().await;
    let p = proxy(&one_upstream(o.addr)).await;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(p.addr).await.unwrap();
    s.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let head = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(head.starts_with("HTTP/1.1 100 Continue"), "{head}");
    s.write_all(b"abc").await.unwrap();
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let resp = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(resp.ends_with("3:96354"), "{resp}");
}

#[tokio::test]
async fn uploads_reuse_pooled_upstream_connections() {
    let o = checksum_origin().await;
    let p = proxy(&format!(
        "client_max_body_size: 4m\n{}",
        one_upstream(o.addr)
    ))
    .await;
    let mut c = Conn::open(p.addr).await;
    for _ in 0..5 {
        let req = hyper::Request::post("/up")
            .header("host", "x")
            .body(full(vec![7u8; 1 << 20]))
            .unwrap();
        let (s, _, body) = collect(c.send(req).await.unwrap()).await;
        assert_eq!(s, 200);
        assert!(body.starts_with(b"1048576:"), "{body:?}");
    }
    assert_eq!(
        o.accepts(),
        1,
        "a pooled connection carries the next upload"
    );
}

/// A server that answers as soon as it has the request head, while the client's chunked upload
/// is still coming; the upload then grows past `client_max_body_size`. The exchange is cut at
/// once on both sides: the upstream is not left holding half a body until `read_timeout`, and
/// the client's response ends (cut) instead of hanging.
#[tokio::test]
async fn upload_failing_after_an_early_response_cuts_both_sides() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let oaddr = listener.local_addr().unwrap();
    let (closed_tx, closed_rx) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        read_head(&mut s).await.expect("a request head");
        let mut buf = [0u8; 4096];
        // An early answer whose body never ends; keep reading whatever the proxy sends.
        s.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
            .await
            .unwrap();
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        let _ = closed_tx.send(());
    });
    let p = proxy(&format!(
        "client_max_body_size: 1k\nupstreams:\n  u:\n    read_timeout: 60s\n    servers: [{{address: '{oaddr}'}}]\n"
    ))
    .await;
    let mut c = tokio::net::TcpStream::connect(p.addr).await.unwrap();
    let chunk = "x".repeat(600);
    c.write_all(
        format!(
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n258\r\n{chunk}\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    // The response head comes while the body is still open.
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains("hello") {
        let n = tokio::time::timeout(Duration::from_secs(5), c.read(&mut buf))
            .await
            .expect("early response")
            .unwrap();
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200 "));
    // Now the body grows past the limit.
    let _ = c
        .write_all(format!("258\r\n{chunk}\r\n258\r\n{chunk}\r\n").as_bytes())
        .await;
    tokio::time::timeout(Duration::from_secs(10), closed_rx)
        .await
        .expect("the upstream connection is closed at once, not after read_timeout")
        .unwrap();
    let end = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match c.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(
        end.is_ok(),
        "the client's response must end: {}",
        String::from_utf8_lossy(&got)
    );
    assert!(
        !String::from_utf8_lossy(&got).ends_with("0\r\n\r\n"),
        "cut, not completed: {}",
        String::from_utf8_lossy(&got)
    );
}

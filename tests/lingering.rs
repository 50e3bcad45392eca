//! nginx's `lingering_close`: a response sent before the request body was read (413 and the
//! like) reaches a client that is still sending, instead of being destroyed by the RST the
//! kernel sends when a socket with unread data is closed.

mod common;
use common::*;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Writes `head` and then `body_len` bytes of body (in 64 KiB pieces, or as chunks of that
/// size when `chunked`) without reading anything, as Python's http.client and many SDKs do,
/// and only then reads the answer until EOF or an error. Returns what was read, the read error
/// and the write error, if any: such a client gives up on a write error (EPIPE, ECONNRESET)
/// and never reads the answer.
async fn send_without_waiting(
    addr: std::net::SocketAddr,
    head: String,
    body_len: usize,
    chunked: bool,
) -> (String, Option<std::io::Error>, Option<std::io::Error>) {
    let s = TcpStream::connect(addr).await.unwrap();
    let (mut rd, mut wr) = s.into_split();
    let writer = async move {
        wr.write_all(head.as_bytes()).await?;
        let piece = vec![b'x'; 64 << 10];
        let mut sent = 0;
        while sent < body_len {
            let n = piece.len().min(body_len - sent);
            if chunked {
                wr.write_all(format!("{n:x}\r\n").as_bytes()).await?;
                wr.write_all(&piece[..n]).await?;
                wr.write_all(b"\r\n").await?;
            } else {
                wr.write_all(&piece[..n]).await?;
            }
            sent += n;
        }
        if chunked {
            wr.write_all(b"0\r\n\r\n").await?;
        }
        Ok::<_, std::io::Error>(wr)
    };
    let written = tokio::time::timeout(Duration::from_secs(60), writer)
        .await
        .expect("the body could not be written within 60 s");
    let mut out = Vec::new();
    let mut buf = vec![0u8; 16 << 10];
    let err = loop {
        match tokio::time::timeout(Duration::from_secs(30), rd.read(&mut buf)).await {
            Ok(Ok(0)) => break None,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Ok(Err(e)) => break Some(e),
            Err(_) => panic!(
                "no EOF within 30 s; got {:?}",
                String::from_utf8_lossy(&out)
            ),
        }
    };
    (
        String::from_utf8_lossy(&out).into_owned(),
        err,
        written.err(),
    )
}

async fn oversized_content_length(mib: usize) {
    let o = body_length_origin().await;
    let p = proxy(&one_upstream(o.addr)).await;
    let len = mib << 20;
    let head =
        format!("POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: {len}\r\nContent-Type: application/octet-stream\r\n\r\n");
    let (got, err, werr) = send_without_waiting(p.addr, head, len, false).await;
    assert!(
        werr.is_none(),
        "{mib} MiB: writing the body failed: {werr:?}"
    );
    assert!(
        got.starts_with("HTTP/1.1 413"),
        "{mib} MiB: expected the 413, got {got:?} (read error {err:?})"
    );
    assert!(got.contains("413 Payload Too Large"), "{got:?}");
    assert!(err.is_none(), "{mib} MiB: connection reset: {err:?}");
    assert_eq!(
        o.requests(),
        0,
        "an oversized body never reaches the upstream"
    );
}

#[tokio::test]
async fn client_still_sending_3mib_reads_the_413() {
    oversized_content_length(3).await;
}

#[tokio::test]
async fn client_still_sending_64mib_reads_the_413() {
    oversized_content_length(64).await;
}

#[tokio::test]
async fn chunked_body_growing_past_the_limit_reads_the_413() {
    let o = body_length_origin().await;
    let p = proxy(&format!(
        "client_max_body_size: 1m\n{}",
        one_upstream(o.addr)
    ))
    .await;
    let head = "POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_owned();
    let (got, err, werr) = send_without_waiting(p.addr, head, 8 << 20, true).await;
    assert!(werr.is_none(), "writing the body failed: {werr:?}");
    assert!(
        got.starts_with("HTTP/1.1 413"),
        "expected the 413, got {got:?} (read error {err:?})"
    );
    assert!(err.is_none(), "connection reset: {err:?}");
}

#[tokio::test]
async fn lingering_is_bounded_by_lingering_timeout() {
    // A client that sends more than the limit and then goes quiet without closing: it gets the
    // 413 and a FIN at once; swarmgate then closes after lingering_timeout without data instead
    // of holding the socket for lingering_time (60 s here).
    let o = body_length_origin().await;
    let p = proxy(&format!(
        "lingering_timeout: 1s\nlingering_time: 60s\nclient_max_body_size: 1k\n{}",
        one_upstream(o.addr)
    ))
    .await;
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    s.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
        .await
        .unwrap();
    s.write_all(&[b'x'; 4096]).await.unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(Duration::from_secs(20), s.read(&mut buf)).await {
            Ok(Ok(0)) => break,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            other => panic!(
                "no 413 and FIN: {other:?} after {:?}",
                String::from_utf8_lossy(&out)
            ),
        }
    }
    let got = String::from_utf8_lossy(&out);
    assert!(got.starts_with("HTTP/1.1 413"), "{got:?}");
    // `s` stays open and silent: the lingering ends by lingering_timeout.
    let timed_out = "swarmgate_lingering_closes_total{result=\"timeout\"} 1";
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let m = metrics_text(p.admin.unwrap()).await;
        if m.lines().any(|l| l == timed_out) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "lingering did not end by lingering_timeout:\n{m}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(s);
}

async fn metrics_text(admin: std::net::SocketAddr) -> String {
    let (s, _, b) = get(admin, "/metrics").await;
    assert_eq!(s, 200);
    String::from_utf8_lossy(&b).into_owned()
}

//! Differential: the same bytes, as a server's answer to `GET /` or `HEAD /` (the first input
//! byte chooses), go to swarmgate's own HTTP/1.1 response codec (`swarmgate::h1`) and to hyper's
//! client. Fails when ours accepts a response hyper rejects, or both accept it and disagree on
//! the status or the body.
//!
//! Not compared (known limits of this target): keep-alive decisions, header and trailer values,
//! and the I/O driver (`upstream::h1::H1Conn`; the input is parsed from one buffer, not split
//! across reads — the unit tests feed chunked bodies byte by byte). A response ours finds
//! truncated while hyper reads it whole is not reported: ours is then the stricter one.
//!
//! Stricter on our side, by design (so not checked in that direction): a head with both
//! Transfer-Encoding and Content-Length is accepted by both, but ours drops the length and
//! retires the connection; chunk-size lines longer than 4 KiB are refused by ours.
#![no_main]
#[path = "common.rs"]
mod common;
use bytes::BytesMut;
use http_body_util::BodyExt;
use libfuzzer_sys::fuzz_target;
use swarmgate::h1::response::{self, Framing};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Ours: status and body, or `None` when the response is refused or incomplete.
fn ours(input: &[u8], head_request: bool) -> Option<(u16, Vec<u8>)> {
    let mut buf = BytesMut::from(input);
    let head = loop {
        let (n, head) = response::parse(&buf, head_request).ok()??;
        let _ = buf.split_to(n);
        if head.status.is_informational() && head.status != 101 {
            continue;
        }
        break head;
    };
    if head.status == 101 {
        return None; // an upgrade: hyper's client needs the request to ask for it
    }
    let body = match head.framing {
        Framing::Empty => Vec::new(),
        Framing::Length(n) => {
            let n = usize::try_from(n).ok()?;
            (buf.len() >= n).then(|| buf[..n].to_vec())?
        }
        Framing::Close => buf.to_vec(),
        Framing::Chunked => common::chunked_body(&mut buf)?,
    };
    Some((head.status.as_u16(), body))
}

/// hyper's client over an in-memory pipe; the server side writes `input` and closes.
async fn hyper_client(input: Vec<u8>, head_request: bool) -> Option<(u16, Vec<u8>)> {
    let (client, mut server) = tokio::io::duplex(1 << 20);
    tokio::spawn(async move {
        // Answer only after the request head (hyper refuses bytes on an idle connection).
        let mut head = Vec::new();
        let mut b = [0u8; 256];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match server.read(&mut b).await {
                Ok(0) | Err(_) => return,
                Ok(n) => head.extend_from_slice(&b[..n]),
            }
        }
        let _ = server.write_all(&input).await;
        let _ = server.shutdown().await;
        // Keep reading so that the client's request write never blocks.
        let mut sink = tokio::io::sink();
        let _ = tokio::io::copy(&mut server, &mut sink).await;
    });
    let (mut tx, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(client))
            .await
            .ok()?;
    tokio::spawn(conn);
    let method = if head_request {
        http::Method::HEAD
    } else {
        http::Method::GET
    };
    let req = http::Request::builder()
        .method(method)
        .uri("/")
        .header("host", "x")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .ok()?;
    let resp = match tx.send_request(req).await {
        Ok(r) => r,
        Err(e) => {
            if std::env::var_os("H1_FUZZ_DEBUG").is_some() {
                eprintln!("hyper: {e:?}");
            }
            return None;
        }
    };
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.ok()?.to_bytes().to_vec();
    Some((status, body))
}

fuzz_target!(|input: &[u8]| {
    let Some((&first, data)) = input.split_first() else {
        return;
    };
    let head_request = first & 1 == 1;
    let Some(mine) = ours(data, head_request) else {
        return;
    };
    let theirs = common::runtime().block_on(hyper_client(data.to_vec(), head_request));
    // Both accept or ours is the stricter one: hyper may not refuse what we accept.
    common::compare(mine, theirs, data);
});

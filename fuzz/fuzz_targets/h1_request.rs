//! Differential: the same bytes, as what a client sends on a new connection, go to swarmgate's
//! own HTTP/1.1 request parser (`swarmgate::h1::request`, with the chunked decoder for bodies)
//! and to hyper's HTTP/1.1 server. Fails when ours accepts a first request (head and whole
//! body) that hyper refuses, or both accept it and disagree on method, target, version or body.
//!
//! Stricter on our side by design (not reported): `Transfer-Encoding: chunked, chunked`, chunk
//! lines over 4 KiB, a request ours finds incomplete that hyper reads whole. Not compared:
//! header values and keep-alive decisions.
#![no_main]
#[path = "common.rs"]
mod common;
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use libfuzzer_sys::fuzz_target;
use std::sync::{Arc, Mutex};
use swarmgate::h1::request::{self, BodyFraming};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

type Seen = (String, String, http::Version, Vec<u8>);

fn ours(input: &[u8]) -> Option<Seen> {
    let mut buf = BytesMut::from(input);
    let (n, head) = request::parse(&buf).ok()??;
    let _ = buf.split_to(n);
    let body = match head.framing {
        BodyFraming::None => Vec::new(),
        BodyFraming::Length(n) => {
            let n = usize::try_from(n).ok()?;
            (buf.len() >= n).then(|| buf[..n].to_vec())?
        }
        BodyFraming::Chunked => common::chunked_body(&mut buf)?,
    };
    Some((
        head.method.to_string(),
        head.uri.to_string(),
        head.version,
        body,
    ))
}

/// hyper's server over an in-memory pipe; the client side writes `input`, then reads answers.
async fn hyper_server(input: Vec<u8>) -> Option<Seen> {
    let (mut client, server) = tokio::io::duplex(1 << 20);
    let first: Arc<Mutex<Option<Seen>>> = Arc::default();
    let record = first.clone();
    let svc = hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
        let record = record.clone();
        async move {
            let (parts, body) = req.into_parts();
            if let Ok(b) = body.collect().await {
                let mut r = record.lock().expect("lock");
                if r.is_none() {
                    *r = Some((
                        parts.method.to_string(),
                        parts.uri.to_string(),
                        parts.version,
                        b.to_bytes().to_vec(),
                    ));
                }
            }
            Ok::<_, std::convert::Infallible>(http::Response::new(
                http_body_util::Empty::<Bytes>::new(),
            ))
        }
    });
    // half_close: the client's end of input (it shuts its write side down) must not cut the
    // request it already sent.
    let conn = hyper::server::conn::http1::Builder::new()
        .half_close(true)
        .serve_connection(hyper_util::rt::TokioIo::new(server), svc);
    let writer = async move {
        let _ = client.write_all(&input).await;
        let _ = client.shutdown().await;
        let mut sink = Vec::new();
        let _ = client.read_to_end(&mut sink).await;
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        tokio::join!(conn, writer)
    })
    .await;
    let r = first.lock().expect("lock").take();
    r
}

fuzz_target!(|data: &[u8]| {
    let Some(mine) = ours(data) else {
        return;
    };
    common::compare(
        mine,
        common::runtime().block_on(hyper_server(data.to_vec())),
        data,
    );
});

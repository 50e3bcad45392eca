//! gRPC through swarmgate with a real gRPC stack on both sides (tonic servers and tonic
//! channels). No protoc on the build machines: the test service `test.Echo` is written by hand
//! with prost derives and tonic's generic server/client APIs.
// tonic's `Status` is large; its streams carry it in every item.
#![allow(clippy::result_large_err)]

mod common;
mod obs;
use common::*;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_stream::{Stream, StreamExt};
use tonic::codec::ProstCodec;
use tonic::{Code, Status};

#[derive(Clone, PartialEq, prost::Message)]
struct Msg {
    #[prost(string, tag = "1")]
    text: String,
    #[prost(uint64, tag = "2")]
    seq: u64,
    /// Server-streaming: how many messages to send; unary: milliseconds to wait first.
    #[prost(uint64, tag = "3")]
    n: u64,
}

type MsgStream = Pin<Box<dyn Stream<Item = Result<Msg, Status>> + Send>>;
type BoxFut<T> =
    Pin<Box<dyn std::future::Future<Output = Result<tonic::Response<T>, Status>> + Send>>;

/// `test.Echo` on one replica: `Unary` answers the replica's name (after `n` ms),
/// `ServerStream` sends `n` numbered messages, `Bidi` echoes every message.
#[derive(Clone)]
struct Echo {
    name: &'static str,
    calls: Arc<AtomicUsize>,
}

impl tonic::server::NamedService for Echo {
    const NAME: &'static str = "test.Echo";
}

struct Unary(Echo);
impl tonic::server::UnaryService<Msg> for Unary {
    type Response = Msg;
    type Future = BoxFut<Msg>;
    fn call(&mut self, req: tonic::Request<Msg>) -> Self::Future {
        let name = self.0.name;
        Box::pin(async move {
            let m = req.into_inner();
            tokio::time::sleep(Duration::from_millis(m.n)).await;
            Ok(tonic::Response::new(Msg {
                text: name.into(),
                seq: m.seq,
                n: 0,
            }))
        })
    }
}

struct ServerStream;
impl tonic::server::ServerStreamingService<Msg> for ServerStream {
    type Response = Msg;
    type ResponseStream = MsgStream;
    type Future = BoxFut<MsgStream>;
    fn call(&mut self, req: tonic::Request<Msg>) -> Self::Future {
        let m = req.into_inner();
        Box::pin(async move {
            let gap = Duration::from_millis(m.seq); // `seq` doubles as the pause between messages
            let s = tokio_stream::iter(0..m.n).then(move |i| async move {
                if !gap.is_zero() {
                    tokio::time::sleep(gap).await;
                }
                Ok(Msg {
                    text: format!("m{i}"),
                    seq: i,
                    n: 0,
                })
            });
            Ok(tonic::Response::new(Box::pin(s) as MsgStream))
        })
    }
}

struct Bidi;
impl tonic::server::StreamingService<Msg> for Bidi {
    type Response = Msg;
    type ResponseStream = MsgStream;
    type Future = BoxFut<MsgStream>;
    fn call(&mut self, req: tonic::Request<tonic::Streaming<Msg>>) -> Self::Future {
        let s = req.into_inner().map(|m| {
            m.map(|m| Msg {
                text: m.text,
                seq: m.seq,
                n: 1,
            })
        });
        Box::pin(async move { Ok(tonic::Response::new(Box::pin(s) as MsgStream)) })
    }
}

impl tonic::codegen::Service<http::Request<tonic::body::BoxBody>> for Echo {
    type Response = http::Response<tonic::body::BoxBody>;
    type Error = std::convert::Infallible;
    type Future =
        Pin<Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<tonic::body::BoxBody>) -> Self::Future {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let me = self.clone();
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(ProstCodec::<Msg, Msg>::default());
            Ok(match req.uri().path() {
                "/test.Echo/Unary" => grpc.unary(Unary(me), req).await,
                "/test.Echo/ServerStream" => grpc.server_streaming(ServerStream, req).await,
                "/test.Echo/Bidi" => grpc.streaming(Bidi, req).await,
                _ => Status::unimplemented("no such method").into_http(),
            })
        })
    }
}

/// A tonic server on 127.0.0.1 serving `test.Echo` and `grpc.health.v1.Health`, on a runtime
/// of its own so that [`Replica::kill`] can end it abruptly, connections included.
struct Replica {
    addr: SocketAddr,
    calls: Arc<AtomicUsize>,
    health: tonic_health::server::HealthReporter,
    rt: Option<tokio::runtime::Runtime>,
}

impl Replica {
    /// A dead replica: every socket closes at once, in-flight calls get no answer.
    fn kill(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn replica(name: &'static str) -> Replica {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let (health, health_svc) = tonic_health::server::health_reporter();
    let echo = Echo {
        name,
        calls: calls.clone(),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.spawn(async move {
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        let _ = tonic::transport::Server::builder()
            .add_service(echo)
            .add_service(health_svc)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await;
    });
    Replica {
        addr,
        calls,
        health,
        rt: Some(rt),
    }
}

/// `upstreams: {kusciaapi: {protocol: h2c, servers: ...}}` plus `extra` upstream keys.
fn grpc_upstream(servers: &[(SocketAddr, u32)], extra: &str) -> String {
    let list: Vec<String> = servers
        .iter()
        .map(|(a, w)| format!("{{address: '{a}', weight: {w}}}"))
        .collect();
    format!(
        "upstreams:\n  kusciaapi:\n    protocol: h2c\n    servers: [{}]\n{extra}",
        list.join(", ")
    )
}

/// ONE tonic channel (one HTTP/2 connection) to swarmgate.
async fn channel(addr: SocketAddr) -> tonic::client::Grpc<tonic::transport::Channel> {
    let ch = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    tonic::client::Grpc::new(ch)
}

async fn unary(
    c: &mut tonic::client::Grpc<tonic::transport::Channel>,
    msg: Msg,
    timeout: Option<Duration>,
) -> Result<Msg, Status> {
    c.ready()
        .await
        .map_err(|e| Status::unknown(e.to_string()))?;
    let mut req = tonic::Request::new(msg);
    if let Some(t) = timeout {
        req.set_timeout(t);
    }
    let path = http::uri::PathAndQuery::from_static("/test.Echo/Unary");
    c.unary(req, path, ProstCodec::<Msg, Msg>::default())
        .await
        .map(tonic::Response::into_inner)
}

/// `ServerStream`: `n` messages, `gap_ms` apart.
async fn server_stream(
    c: &mut tonic::client::Grpc<tonic::transport::Channel>,
    n: u64,
    gap_ms: u64,
) -> tonic::Streaming<Msg> {
    c.ready().await.unwrap();
    let req = tonic::Request::new(Msg {
        text: String::new(),
        seq: gap_ms,
        n,
    });
    let path = http::uri::PathAndQuery::from_static("/test.Echo/ServerStream");
    c.server_streaming(req, path, ProstCodec::<Msg, Msg>::default())
        .await
        .unwrap()
        .into_inner()
}

fn msg(seq: u64) -> Msg {
    Msg {
        text: String::new(),
        seq,
        n: 0,
    }
}

#[tokio::test]
async fn unary_calls_on_one_channel_are_spread_per_weight() {
    let (a, b, c) = (replica("a").await, replica("b").await, replica("c").await);
    let p = proxy(&grpc_upstream(&[(a.addr, 3), (b.addr, 2), (c.addr, 1)], "")).await;
    let client = channel(p.addr).await;
    let mut tasks = Vec::new();
    for i in 0..300 {
        let mut client = client.clone();
        tasks.push(tokio::spawn(async move {
            unary(&mut client, msg(i), None).await
        }));
    }
    let mut counts = std::collections::HashMap::new();
    for (i, t) in tasks.into_iter().enumerate() {
        let m = t.await.unwrap().unwrap();
        assert_eq!(m.seq, i as u64);
        *counts.entry(m.text).or_insert(0) += 1;
    }
    assert_eq!(counts["a"], 150, "{counts:?}");
    assert_eq!(counts["b"], 100, "{counts:?}");
    assert_eq!(counts["c"], 50, "{counts:?}");
}

#[tokio::test]
async fn server_streaming_and_bidi_of_10000_messages_arrive_intact() {
    let r = replica("a").await;
    let p = proxy(&grpc_upstream(&[(r.addr, 1)], "")).await;
    let mut c = channel(p.addr).await;

    let mut s = server_stream(&mut c, 10_000, 0).await;
    let mut next = 0u64;
    while let Some(m) = s.message().await.unwrap() {
        assert_eq!(
            (m.seq, m.text.as_str()),
            (next, format!("m{next}").as_str())
        );
        next += 1;
    }
    assert_eq!(next, 10_000);

    c.ready().await.unwrap();
    let out = tokio_stream::iter(0..10_000u64).map(|i| Msg {
        text: format!("b{i}"),
        seq: i,
        n: 0,
    });
    let path = http::uri::PathAndQuery::from_static("/test.Echo/Bidi");
    let mut s = c
        .streaming(
            tonic::Request::new(out),
            path,
            ProstCodec::<Msg, Msg>::default(),
        )
        .await
        .unwrap()
        .into_inner();
    let mut next = 0u64;
    while let Some(m) = s.message().await.unwrap() {
        assert_eq!((m.seq, m.n), (next, 1));
        assert_eq!(m.text, format!("b{next}"));
        next += 1;
    }
    assert_eq!(next, 10_000);
}

#[tokio::test]
async fn no_live_upstream_is_unavailable_and_a_deadline_is_deadline_exceeded() {
    let dead = dead_port();
    let p = proxy(&grpc_upstream(&[(dead.addr, 1)], "")).await;
    let mut c = channel(p.addr).await;
    for _ in 0..3 {
        let e = unary(&mut c, msg(1), None).await.unwrap_err();
        assert_eq!(e.code(), Code::Unavailable, "{e:?}");
    }
    // Metrics carry the protocol and the grpc-status (the registry is per process: other
    // tests add to the same series, so at least).
    let m = obs::scrape(&p).await;
    let at_least = |name: &str, labels: &[(&str, &str)], n: f64| {
        let v = obs::sample(&m, name, labels).unwrap_or(0.0);
        assert!(v >= n, "{name} {labels:?} = {v}\n{m}");
    };
    at_least(
        "swarmgate_grpc_responses_total",
        &[("upstream", "kusciaapi"), ("grpc_status", "14")],
        3.0,
    );
    at_least(
        "swarmgate_client_requests_total",
        &[("protocol", "h2")],
        3.0,
    );

    // The server takes 10 s. With `read_timeout: 300ms` swarmgate gives up: the gRPC client
    // reads DEADLINE_EXCEEDED, not a 504 page.
    let r = replica("slow").await;
    let p = proxy(&grpc_upstream(&[(r.addr, 1)], "    read_timeout: 300ms\n")).await;
    let mut c = channel(p.addr).await;
    let slow = Msg {
        text: String::new(),
        seq: 1,
        n: 10_000,
    };
    let e = unary(&mut c, slow.clone(), None).await.unwrap_err();
    assert_eq!(e.code(), Code::DeadlineExceeded, "{e:?}");
    // The channel is still good.
    assert_eq!(unary(&mut c, msg(2), None).await.unwrap().text, "slow");

    // `grpc-timeout: 300m` bounds the wait too (read_timeout 60 s here). A raw HTTP/2 client:
    // tonic's channel would enforce the deadline itself before swarmgate answered.
    let p = proxy(&grpc_upstream(&[(r.addr, 1)], "")).await;
    let mut h2 = H2Conn::open(p.addr).await;
    let mut body = vec![0u8];
    let encoded = prost::Message::encode_to_vec(&slow);
    body.extend_from_slice(&(encoded.len() as u32).to_be_bytes());
    body.extend_from_slice(&encoded);
    let req = http::Request::post("http://kuscia/test.Echo/Unary")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("grpc-timeout", "300m")
        .body(full(body))
        .unwrap();
    let (s, h, b) = collect(h2.send(req).await.unwrap()).await;
    assert_eq!(s, 200);
    assert_eq!(h["grpc-status"], "4", "{h:?}");
    assert_eq!(h["content-type"], "application/grpc");
    assert!(
        b.is_empty(),
        "trailers-only: the server's answer (status 0) never came"
    );
}

#[tokio::test]
async fn grpc_health_check_takes_a_not_serving_replica_out_and_back() {
    let (a, mut b) = (replica("a").await, replica("b").await);
    let p = proxy(&grpc_upstream(
        &[(a.addr, 1), (b.addr, 1)],
        "    health_check: {type: grpc, service: \"\", interval: 100ms, rise: 1, fall: 1, timeout: 2s}\n",
    ))
    .await;
    let mut c = channel(p.addr).await;
    b.health
        .set_service_status("", tonic_health::ServingStatus::NotServing)
        .await;
    // Wait (bounded) until b is out: 20 calls in a row answered by a.
    let mut run = 0;
    let t = std::time::Instant::now();
    while run < 20 {
        assert!(t.elapsed() < Duration::from_secs(20), "b never taken out");
        let m = unary(&mut c, msg(0), None).await.unwrap();
        run = if m.text == "a" { run + 1 } else { 0 };
    }
    let before = b.calls.load(Ordering::SeqCst);
    for _ in 0..30 {
        assert_eq!(unary(&mut c, msg(0), None).await.unwrap().text, "a");
    }
    // Health probes are not calls of test.Echo.
    assert_eq!(b.calls.load(Ordering::SeqCst), before);

    b.health
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    let t = std::time::Instant::now();
    loop {
        assert!(t.elapsed() < Duration::from_secs(20), "b never came back");
        if unary(&mut c, msg(0), None).await.unwrap().text == "b" {
            break;
        }
    }
}

#[tokio::test]
async fn a_replica_killed_during_calls_fails_only_its_in_flight_calls_with_unavailable() {
    let (a, b, mut c) = (replica("a").await, replica("b").await, replica("c").await);
    let p = proxy(&grpc_upstream(&[(a.addr, 1), (b.addr, 1), (c.addr, 1)], "")).await;
    let client = channel(p.addr).await;
    // 30 slow calls (20 s each unless their replica dies), 10 per replica.
    let mut tasks = Vec::new();
    for i in 0..30 {
        let mut client = client.clone();
        let m = Msg {
            text: String::new(),
            seq: i,
            n: 20_000,
        };
        tasks.push(tokio::spawn(
            async move { unary(&mut client, m, None).await },
        ));
    }
    let t = std::time::Instant::now();
    while c.calls.load(Ordering::SeqCst) < 10 {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "calls never reached c"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    c.kill();
    // c's ten in-flight calls fail with UNAVAILABLE (a gRPC status, not a transport error);
    // the others are still running on a and b.
    let mut running: futures_util::stream::FuturesUnordered<_> = tasks.into_iter().collect();
    for _ in 0..10 {
        let done = tokio::time::timeout(Duration::from_secs(15), running.next())
            .await
            .expect("c's calls did not fail")
            .unwrap()
            .unwrap();
        let e = done.expect_err("a slow call finished early");
        assert_eq!(e.code(), Code::Unavailable, "{e:?}");
    }
    assert_eq!(running.len(), 20, "a's and b's calls still running");
    // New calls all succeed, on a and b.
    let mut fresh = channel(p.addr).await;
    for i in 0..20 {
        let m = unary(&mut fresh, msg(i), None).await.unwrap();
        assert!(m.text == "a" || m.text == "b", "{m:?}");
    }
}

#[tokio::test]
async fn a_stream_cut_by_a_dying_replica_ends_with_unavailable() {
    let mut r = replica("a").await;
    let p = proxy(&grpc_upstream(&[(r.addr, 1)], "")).await;
    let mut c = channel(p.addr).await;
    let mut s = server_stream(&mut c, 10_000, 20).await;
    assert_eq!(s.message().await.unwrap().unwrap().seq, 0);
    r.kill();
    let e = loop {
        match s.message().await {
            Ok(Some(_)) => continue, // already in flight
            Ok(None) => panic!("stream ended cleanly"),
            Err(e) => break e,
        }
    };
    assert_eq!(e.code(), Code::Unavailable, "{e:?}");
}

#[tokio::test]
async fn sigterm_lets_a_stream_in_flight_finish() {
    let r = replica("a").await;
    let mut sg = start_swarmgate("grpc-term", &grpc_upstream(&[(r.addr, 1)], "")).await;
    let mut c = channel(sg.addr).await;
    let mut s = server_stream(&mut c, 40, 25).await;
    assert_eq!(s.message().await.unwrap().unwrap().seq, 0);
    signal(sg.child(), "-TERM");
    let mut next = 1;
    while let Some(m) = s.message().await.unwrap() {
        assert_eq!(m.seq, next);
        next += 1;
    }
    assert_eq!(
        next, 40,
        "every message after SIGTERM arrived, and status OK"
    );
    let (status, _) = sg.wait_exit(Duration::from_secs(30)).await;
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn a_call_over_client_max_body_size_is_resource_exhausted() {
    let r = replica("a").await;
    let p = proxy(&format!(
        "client_max_body_size: 1k\n{}",
        grpc_upstream(&[(r.addr, 1)], "")
    ))
    .await;
    let mut c = channel(p.addr).await;
    let big = Msg {
        text: "z".repeat(4096),
        seq: 1,
        n: 0,
    };
    let e = unary(&mut c, big, None).await.unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    // Small calls on the same channel still work.
    assert_eq!(unary(&mut c, msg(2), None).await.unwrap().text, "a");
}

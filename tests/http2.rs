//! HTTP/2 on the client side: h2c with prior knowledge on the plain listener (HTTP/1.1 clients
//! keep working on the same port), h2 over TLS by ALPN, translation to an HTTP/1.1 upstream
//! (RFC 9113 §8), and curl when it is installed.

mod common;
mod obs;
use common::*;
use http::Request;
use std::time::Duration;

#[tokio::test]
async fn h2c_prior_knowledge_and_http11_share_the_plain_port() {
    let o = echo_origin().await;
    let p = proxy(&one_upstream(o.addr)).await;

    let mut h2 = H2Conn::open(p.addr).await;
    let req = Request::post("http://kuscia.local/api/x?y=1")
        .header("te", "trailers")
        .header("content-type", "application/json")
        .body(full("{\"k\":1}"))
        .unwrap();
    let (s, h, b) = collect(h2.send(req).await.unwrap()).await;
    assert_eq!(s, 200);
    assert_eq!(&b[..], b"{\"k\":1}");
    assert_eq!(
        h["x-seen-version"], "HTTP/1.1",
        "the upstream speaks HTTP/1.1"
    );
    assert_eq!(h["x-seen-host"], "kuscia.local", ":authority becomes Host");
    assert_eq!(h["x-seen-path"], "/api/x?y=1");
    assert_eq!(h["x-seen-method"], "POST");
    assert_eq!(h["x-seen-te"], "trailers", "TE: trailers survives");
    assert_eq!(h["x-seen-proto"], "http");

    // Many streams at once on the one connection, all answered.
    let mut tasks = Vec::new();
    for i in 0..50 {
        let mut c = h2.clone();
        tasks.push(tokio::spawn(async move { c.get(&format!("/s/{i}")).await }));
    }
    for (i, t) in tasks.into_iter().enumerate() {
        let (s, h, _) = t.await.unwrap();
        assert_eq!(s, 200);
        assert_eq!(h["x-seen-path"], format!("/s/{i}").as_str());
    }

    // HTTP/1.1 on the same port.
    let (s, h, _) = get(p.addr, "/h1").await;
    assert_eq!(s, 200);
    assert_eq!(h["x-seen-path"], "/h1");
}

#[tokio::test]
async fn h2_over_tls_by_alpn_to_an_http11_upstream() {
    let pki = pki("h2alpn");
    let o = echo_origin().await;
    let p = proxy(&format!("{}{}", pki.listener_yaml(), one_upstream(o.addr))).await;
    let mut h2 = H2Conn::open_tls(p.addr, &pki).await;
    let (s, h, _) = h2.get("/over-tls").await;
    assert_eq!(s, 200);
    assert_eq!(h["x-seen-proto"], "https");
    assert_eq!(h["x-seen-host"], "test.local");
    assert_eq!(h["x-seen-version"], "HTTP/1.1");
    assert!(h.get("connection").is_none());

    // A client offering only http/1.1 still gets HTTP/1.1 on the same listener.
    let tcp = tokio::net::TcpStream::connect(p.addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(pki.client_config(&[b"http/1.1"]))
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
}

#[tokio::test]
async fn h2_errors_have_no_connection_header_and_the_connection_survives() {
    // No upstream server alive: 502, and the HTTP/2 connection keeps serving.
    let dead = dead_port();
    let p = proxy(&one_upstream(dead.addr)).await;
    let mut h2 = H2Conn::open(p.addr).await;
    for _ in 0..3 {
        let (s, h, _) = h2.get("/").await;
        assert_eq!(s, 502);
        assert!(h.get("connection").is_none());
        // Generated here, so swarmgate dates it (RFC 9110 §6.6.1), as over HTTP/1.1.
        assert!(h.get("date").is_some());
    }
}

#[tokio::test]
async fn idle_h2_connection_before_any_request_is_closed_after_the_header_timeout() {
    let o = echo_origin().await;
    let p = proxy(&format!(
        "client_header_timeout: 300ms\n{}",
        one_upstream(o.addr)
    ))
    .await;
    let h2 = H2Conn::open(p.addr).await;
    // The preface and SETTINGS came, but no request: the connection is closed.
    let mut tx = h2.tx.clone();
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        while !tx.is_closed() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(closed.is_ok(), "connection still open");
    let _ = tx.ready().await;
}

/// curl with `--http2-prior-knowledge` (plain) and `--http2` (TLS, ALPN). Skipped without
/// curl unless CI=true.
#[tokio::test]
async fn curl_http2_prior_knowledge_and_alpn() {
    if std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "curl missing in CI"
        );
        eprintln!("curl not installed; skipped");
        return;
    }
    let pki = pki("h2curl");
    let o = echo_origin().await;
    let plain = proxy(&one_upstream(o.addr)).await;
    let tls = proxy(&format!("{}{}", pki.listener_yaml(), one_upstream(o.addr))).await;
    let ca = pki.dir.join("ca.pem");
    // The response head, lower-cased (stderr appended for failure messages).
    let run = |args: Vec<String>| async move {
        let out = tokio::task::spawn_blocking(move || {
            std::process::Command::new("curl")
                .args(["-sS", "-D", "-", "-o", "/dev/null", "--max-time", "20"])
                .args(&args)
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        let head = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
        (head, String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (head, err) = run(vec![
        "--http2-prior-knowledge".into(),
        format!("http://{}/pk", plain.addr),
    ])
    .await;
    assert!(head.starts_with("http/2 200"), "{head} {err}");
    assert!(head.contains("x-seen-path: /pk"), "{head}");

    let (head, err) = run(vec![
        "--http2".into(),
        "--cacert".into(),
        ca.display().to_string(),
        "--resolve".into(),
        format!("localhost:{}:127.0.0.1", tls.addr.port()),
        format!("https://localhost:{}/alpn", tls.addr.port()),
    ])
    .await;
    assert!(head.starts_with("http/2 200"), "{head} {err}");
    assert!(head.contains("x-seen-proto: https"), "{head}");

    // Plain curl without HTTP/2 on the plain port: HTTP/1.1.
    let (head, err) = run(vec![format!("http://{}/h1", plain.addr)]).await;
    assert!(head.starts_with("http/1.1 200"), "{head} {err}");
}

/// `upstreams: {u: {protocol: h2c, servers: [...]}}` with these (address, weight) servers.
fn h2c_upstream(servers: &[(std::net::SocketAddr, u32)]) -> String {
    let list: Vec<String> = servers
        .iter()
        .map(|(a, w)| format!("{{address: '{a}', weight: {w}}}"))
        .collect();
    format!(
        "upstreams:\n  u:\n    protocol: h2c\n    servers: [{}]\n",
        list.join(", ")
    )
}

#[tokio::test]
async fn http11_client_to_an_h2c_upstream() {
    let o = origin_h2c(|req: Request<hyper::body::Incoming>| async move {
        let mut r = text(200, format!("{:?} {}", req.version(), req.uri()));
        let host = req
            .uri()
            .authority()
            .map(|a| a.to_string())
            .unwrap_or_default();
        r.headers_mut().insert("x-authority", host.parse().unwrap());
        r.headers_mut().insert(
            "x-host-header",
            req.headers()
                .contains_key("host")
                .to_string()
                .parse()
                .unwrap(),
        );
        r
    })
    .await;
    let p = proxy(&h2c_upstream(&[(o.addr, 1)])).await;
    let mut c = Conn::open(p.addr).await;
    for _ in 0..20 {
        let (s, h, b) = c.get("/x?y=2").await;
        assert_eq!(s, 200);
        assert_eq!(&b[..], b"HTTP/2.0 http://test.local/x?y=2");
        assert_eq!(h["x-authority"], "test.local", "Host became :authority");
        assert_eq!(h["x-host-header"], "false");
    }
    assert_eq!(o.accepts(), 1, "one multiplexed connection");
}

#[tokio::test]
async fn streams_of_one_h2_client_are_balanced_per_request_over_few_connections() {
    let a = named_h2c("a").await;
    let b = named_h2c("b").await;
    let c = named_h2c("c").await;
    let p = proxy(&format!(
        "http2: {{max_concurrent_streams: 8}}\n{}",
        h2c_upstream(&[(a.addr, 3), (b.addr, 2), (c.addr, 1)])
    ))
    .await;
    // Three client connections; each first learns swarmgate's SETTINGS (8 streams at most),
    // then keeps 8 requests in flight.
    let mut counts = std::collections::HashMap::new();
    let mut count = |h: &http::HeaderMap| {
        *counts
            .entry(h["x-origin"].to_str().unwrap().to_owned())
            .or_insert(0) += 1;
    };
    let mut clients = Vec::new();
    for _ in 0..3 {
        let mut h2 = H2Conn::open(p.addr).await;
        let (s, h, _) = h2.get("/warm").await;
        assert_eq!(s, 200);
        count(&h);
        clients.push(h2);
    }
    let mut tasks = Vec::new();
    for i in 0..117 {
        let mut h2 = clients[i % 3].clone();
        tasks.push(tokio::spawn(async move { h2.get("/").await }));
    }
    for t in tasks {
        let (s, h, _) = t.await.unwrap();
        assert_eq!(s, 200);
        count(&h);
    }
    assert_eq!(counts["a"], 60, "{counts:?}");
    assert_eq!(counts["b"], 40, "{counts:?}");
    assert_eq!(counts["c"], 20, "{counts:?}");
    for o in [&a, &b, &c] {
        // At most 8 streams per connection: 120 concurrent streams need a few, not 120.
        assert!(
            o.accepts() >= 1 && o.accepts() <= 8,
            "{} connections",
            o.accepts()
        );
    }
}

/// An h2c origin answering `name` with header `x-origin: name`.
async fn named_h2c(name: &'static str) -> Origin {
    origin_h2c(move |_req| async move {
        // Slow enough that requests overlap and connections fill up.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let mut r = text(200, name);
        r.headers_mut().insert("x-origin", name.parse().unwrap());
        r
    })
    .await
}

/// An h2c server (the h2 crate directly) that refuses every stream with REFUSED_STREAM.
async fn refusing_h2c() -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let refused = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let n = refused.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            let n = n.clone();
            tokio::spawn(async move {
                let Ok(mut conn) = h2::server::handshake(s).await else {
                    return;
                };
                while let Some(Ok((_req, mut respond))) = conn.accept().await {
                    n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    respond.send_reset(h2::Reason::REFUSED_STREAM);
                }
            });
        }
    });
    (addr, refused)
}

#[tokio::test]
async fn refused_streams_go_to_another_server_whatever_the_method() {
    let (bad, refused) = refusing_h2c().await;
    let good = named_h2c("good").await;
    let p = proxy(&h2c_upstream(&[(bad, 1), (good.addr, 1)])).await;
    let mut c = Conn::open(p.addr).await;
    for _ in 0..6 {
        let req = Request::post("/nonidempotent")
            .header("host", "x")
            .body(empty())
            .unwrap();
        let (s, h, _) = collect(c.send(req).await.unwrap()).await;
        assert_eq!(s, 200);
        assert_eq!(h["x-origin"], "good");
    }
    assert!(refused.load(std::sync::atomic::Ordering::SeqCst) >= 1);
    // A refusal is not a server failure: the refusing server stays in rotation (max_fails 1
    // would otherwise have banned it after the first) and keeps being asked.
    assert!(refused.load(std::sync::atomic::Ordering::SeqCst) >= 3);
}

#[tokio::test]
async fn rapid_reset_flood_is_cut_off_while_another_client_keeps_being_served() {
    let o = echo_origin().await;
    let p = proxy(&one_upstream(o.addr)).await;
    let mut good = H2Conn::open(p.addr).await;
    assert_eq!(good.get("/before").await.0, 200);

    // CVE-2023-44487: open a stream and reset it at once, in a loop; when swarmgate cuts the
    // connection off, open another and go on, until the other client is done.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flooding = stop.clone();
    let addr = p.addr;
    let flood = tokio::spawn(async move {
        let mut cut = Vec::new();
        while !flooding.load(std::sync::atomic::Ordering::SeqCst) {
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            let (mut client, conn) = h2::client::handshake(tcp).await.unwrap();
            tokio::spawn(conn);
            let mut sent = 0u32;
            let err = loop {
                if sent >= 100_000 {
                    panic!("a flooding connection was never cut off");
                }
                client = match client.ready().await {
                    Ok(c) => c,
                    Err(e) => break e,
                };
                let req = Request::get("http://test.local/flood").body(()).unwrap();
                match client.send_request(req, true) {
                    Ok((_resp, mut stream)) => stream.send_reset(h2::Reason::CANCEL),
                    Err(e) => break e,
                }
                sent += 1;
                if sent % 64 == 0 {
                    tokio::task::yield_now().await;
                }
            };
            cut.push((sent, err.to_string()));
        }
        cut
    });
    // Meanwhile the other client's requests keep succeeding.
    for i in 0..200 {
        let (s, h, _) = good.get(&format!("/during/{i}")).await;
        assert_eq!(s, 200);
        assert_eq!(h["x-seen-path"], format!("/during/{i}").as_str());
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let cut = flood.await.unwrap();
    assert!(!cut.is_empty());
    for (sent, err) in &cut {
        assert!(
            err.contains("too_many_resets")
                || err.contains("ENHANCE_YOUR_CALM")
                || err.contains("excessive"),
            "cut after {sent}: {err}"
        );
    }
    assert_eq!(good.get("/after").await.0, 200);
}

#[tokio::test]
async fn a_bursts_extra_upstream_connections_close_after_keepalive_timeout() {
    let o = named_h2c("a").await;
    let p = proxy(&format!(
        "http2: {{max_concurrent_streams: 4}}\n{}    keepalive_timeout: 1s\n",
        h2c_upstream(&[(o.addr, 1)])
    ))
    .await;
    // 4 client connections x 4 streams of 20 ms: more than one upstream connection.
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let mut h2 = H2Conn::open(p.addr).await;
        assert_eq!(h2.get("/warm").await.0, 200);
        for _ in 0..8 {
            let mut h2 = h2.clone();
            tasks.push(tokio::spawn(async move { h2.get("/").await.0 }));
        }
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    assert!(o.accepts() > 1, "{} connections", o.accepts());
    let server = o.addr.to_string();
    let labels = [
        ("upstream", "u"),
        ("server", server.as_str()),
        ("state", "active"),
    ];
    let t = std::time::Instant::now();
    loop {
        let m = obs::scrape(&p).await;
        if obs::sample(&m, "swarmgate_upstream_connections", &labels) == Some(1.0) {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "idle connections never closed\n{m}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The one kept still serves.
    let mut h2 = H2Conn::open(p.addr).await;
    assert_eq!(h2.get("/again").await.0, 200);
}

#[tokio::test]
async fn a_refused_request_with_a_small_body_goes_to_another_server_with_its_body() {
    let (bad, refused) = refusing_h2c().await;
    let good = origin_h2c(|req: Request<hyper::body::Incoming>| async move {
        use http_body_util::BodyExt as _;
        let b = req.into_body().collect().await.unwrap().to_bytes();
        text(200, b)
    })
    .await;
    let p = proxy(&h2c_upstream(&[(bad, 1), (good.addr, 1)])).await;
    let mut c = Conn::open(p.addr).await;
    for i in 0..6 {
        let body = format!("call {i}: {}", "x".repeat(1000));
        let req = Request::post("/grpc-like")
            .header("host", "x")
            .body(full(body.clone()))
            .unwrap();
        let (s, _, b) = collect(c.send(req).await.unwrap()).await;
        assert_eq!(s, 200);
        assert_eq!(
            b,
            body.as_bytes(),
            "the body arrived whole at the other server"
        );
    }
    assert!(refused.load(std::sync::atomic::Ordering::SeqCst) >= 3);

    // Above the replay limit (64 KiB) the body was not kept: the refusal is the answer (502).
    let mut saw_502 = false;
    for _ in 0..4 {
        let req = Request::post("/big")
            .header("host", "x")
            .body(full(vec![b'y'; 200 << 10]))
            .unwrap();
        let (s, h, b) = collect(c.send(req).await.unwrap()).await;
        match s.as_u16() {
            200 => assert_eq!(b.len(), 200 << 10),
            502 => {
                saw_502 = true;
                // When the refusal came before the whole upload was read, the rest never will
                // be: the connection ends after this response, and the response says so.
                if h.get("connection").is_some_and(|v| v == "close") {
                    c = Conn::open(p.addr).await;
                }
            }
            other => panic!("{other}"),
        }
    }
    assert!(
        saw_502,
        "a big body refused by the first server is not replayed"
    );
}

#[tokio::test]
async fn trailers_from_an_h2c_upstream_reach_an_http11_client_that_accepts_them() {
    use http_body_util::BodyExt as _;
    let o = origin_h2c(|_req| async move {
        let mut trailers = http::HeaderMap::new();
        trailers.insert("grpc-status", "0".parse().unwrap());
        trailers.insert("grpc-message", "fine".parse().unwrap());
        let frames = vec![
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(hyper::body::Frame::data(
                bytes::Bytes::from_static(b"payload"),
            )),
            Ok(hyper::body::Frame::trailers(trailers)),
        ];
        let body = http_body_util::StreamBody::new(futures_util::stream::iter(frames)).boxed();
        let mut r = hyper::Response::new(body);
        r.headers_mut()
            .insert("content-type", "application/grpc".parse().unwrap());
        r
    })
    .await;
    let p = proxy(&h2c_upstream(&[(o.addr, 1)])).await;
    let mut c = Conn::open(p.addr).await;
    let req = Request::post("/svc/Method")
        .header("host", "x")
        .header("te", "trailers")
        .header("content-type", "application/grpc")
        .body(full("req"))
        .unwrap();
    let resp = c.send(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let collected = resp.into_body().collect().await.unwrap();
    let trailers = collected.trailers().cloned().expect("trailers");
    assert_eq!(trailers["grpc-status"], "0");
    assert_eq!(trailers["grpc-message"], "fine");
    assert_eq!(&collected.to_bytes()[..], b"payload");
}

/// An HTTPS origin answering with the HTTP version it got; ALPN offers `alpn`.
async fn tls_version_origin(pki: &Pki, alpn: &[&[u8]]) -> std::net::SocketAddr {
    let acceptor = tokio_rustls::TlsAcceptor::from(pki.server_config(alpn));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(s).await else {
                    return;
                };
                let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
                let svc =
                    hyper::service::service_fn(|req: Request<hyper::body::Incoming>| async move {
                        Ok::<_, std::convert::Infallible>(text(200, format!("{:?}", req.version())))
                    });
                let io = hyper_util::rt::TokioIo::new(tls);
                if h2 {
                    let _ = hyper::server::conn::http2::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .serve_connection(io, svc)
                    .await;
                } else {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, svc)
                        .await;
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn protocol_h2_and_auto_over_tls_follow_alpn() {
    let pki = pki("h2up");
    let h2_origin = tls_version_origin(&pki, &[b"h2", b"http/1.1"]).await;
    let h1_origin = tls_version_origin(&pki, &[b"http/1.1"]).await;
    let up = |protocol: &str, addr: std::net::SocketAddr| {
        format!(
            "upstreams:\n  u:\n    scheme: https\n    tls_verify: false\n    protocol: {protocol}\n    servers: [{{address: '{addr}'}}]\n"
        )
    };
    for (protocol, addr, want) in [
        ("h2", h2_origin, "HTTP/2.0"),
        ("auto", h2_origin, "HTTP/2.0"),
        ("auto", h1_origin, "HTTP/1.1"),
        ("http1", h2_origin, "HTTP/1.1"),
    ] {
        let p = proxy(&up(protocol, addr)).await;
        let mut c = Conn::open(p.addr).await;
        for _ in 0..3 {
            let (s, _, b) = c.get("/").await;
            assert_eq!(s, 200, "{protocol}");
            assert_eq!(&b[..], want.as_bytes(), "protocol {protocol}");
        }
    }
}

#[tokio::test]
async fn http_health_checks_speak_http2_to_an_h2c_upstream() {
    let sick = origin_h2c(|req: Request<hyper::body::Incoming>| async move {
        let status = if req.uri().path() == "/hc" { 500 } else { 200 };
        let mut r = text(status, "sick");
        r.headers_mut().insert("x-origin", "sick".parse().unwrap());
        r
    })
    .await;
    let well = named_h2c("well").await;
    let p = proxy(&format!(
        "{}    health_check: {{path: /hc, interval: 100ms, rise: 1, fall: 1, timeout: 2s}}\n",
        h2c_upstream(&[(sick.addr, 1), (well.addr, 1)])
    ))
    .await;
    let mut c = Conn::open(p.addr).await;
    let t = std::time::Instant::now();
    let mut run = 0;
    while run < 20 {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "sick never taken out"
        );
        let (s, h, _) = c.get("/").await;
        assert_eq!(s, 200);
        run = if h["x-origin"] == "well" { run + 1 } else { 0 };
    }
    assert!(sick.requests() > 0, "the probe reached the h2c server");
}

/// What [`frame_h2c`] saw.
#[derive(Default)]
struct FrameStats {
    pings: std::sync::atomic::AtomicUsize,
    ended: std::sync::atomic::AtomicUsize,
    /// Most HEADERS frames (new streams) that arrived on one connection before the server
    /// sent its SETTINGS.
    early_streams: std::sync::atomic::AtomicUsize,
}

/// An h2c server written frame by frame: it sends its (empty) SETTINGS after `settings_delay`,
/// every request gets an empty 200, a PING is counted and never answered.
async fn frame_h2c(settings_delay: Duration) -> (std::net::SocketAddr, std::sync::Arc<FrameStats>) {
    use std::sync::atomic::Ordering::SeqCst;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stats = std::sync::Arc::new(FrameStats::default());
    let st = stats.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            let st = st.clone();
            tokio::spawn(async move {
                let (rd, mut wr) = s.into_split();
                // What the client sent before our SETTINGS (it may not exceed 100 streams
                // then, RFC 9113 §6.5.2's recommended minimum).
                tokio::time::sleep(settings_delay).await;
                let mut early = Vec::new();
                let mut chunk = vec![0u8; 64 << 10];
                while let Ok(n) = rd.try_read(&mut chunk) {
                    if n == 0 {
                        break;
                    }
                    early.extend_from_slice(&chunk[..n]);
                }
                let (mut at, mut streams) = (24, 0);
                while at + 9 <= early.len() {
                    let len = u32::from_be_bytes([0, early[at], early[at + 1], early[at + 2]]);
                    streams += usize::from(early[at + 3] == 1);
                    at += 9 + len as usize;
                }
                st.early_streams.fetch_max(streams, SeqCst);
                let mut rd = std::io::Cursor::new(early).chain(rd);
                let mut preface = [0u8; 24];
                let ok = rd.read_exact(&mut preface).await.is_ok()
                    && wr.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).await.is_ok();
                if !ok {
                    st.ended.fetch_add(1, SeqCst);
                    return;
                }
                loop {
                    let mut head = [0u8; 9];
                    if rd.read_exact(&mut head).await.is_err() {
                        break;
                    }
                    let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
                    let mut payload = vec![0u8; len];
                    if rd.read_exact(&mut payload).await.is_err() {
                        break;
                    }
                    let (kind, flags, stream) = (head[3], head[4], &head[5..9]);
                    let reply: Vec<u8> = match (kind, flags & 1) {
                        // SETTINGS: acknowledged.
                        (4, 0) => vec![0, 0, 0, 4, 1, 0, 0, 0, 0],
                        // HEADERS: `:status: 200` (static table index 8), ending the stream.
                        (1, _) => [&[0, 0, 1, 1, 5][..], stream, &[0x88]].concat(),
                        // PING: counted, never answered.
                        (6, 0) => {
                            st.pings.fetch_add(1, SeqCst);
                            continue;
                        }
                        _ => continue,
                    };
                    if wr.write_all(&reply).await.is_err() {
                        break;
                    }
                }
                st.ended.fetch_add(1, SeqCst);
            });
        }
    });
    (addr, stats)
}

#[tokio::test]
async fn an_upstream_connection_whose_pings_go_unanswered_is_closed_and_replaced() {
    use std::sync::atomic::Ordering::SeqCst;
    let (addr, stats) = frame_h2c(Duration::ZERO).await;
    let (pings, ended) = (&stats.pings, &stats.ended);
    let p = proxy(&format!(
        "http2: {{keepalive_interval: 1s, keepalive_timeout: 1s}}\n{}",
        h2c_upstream(&[(addr, 1)])
    ))
    .await;
    let mut c = Conn::open(p.addr).await;
    let get = || Request::get("/").header("host", "x").body(empty()).unwrap();
    assert_eq!(c.send(get()).await.unwrap().status(), 200);
    let t = std::time::Instant::now();
    while ended.load(SeqCst) == 0 {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "the connection outlived an unanswered PING ({} PINGs)",
            pings.load(SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(pings.load(SeqCst) >= 1, "closed without a PING");
    // The next request dials a new connection.
    assert_eq!(c.send(get()).await.unwrap().status(), 200);
}

#[tokio::test]
async fn an_upstream_connection_that_answers_pings_stays_open() {
    let o = named_h2c("a").await;
    let p = proxy(&format!(
        "http2: {{keepalive_interval: 1s, keepalive_timeout: 1s}}\n{}",
        h2c_upstream(&[(o.addr, 1)])
    ))
    .await;
    let mut c = Conn::open(p.addr).await;
    let get = || Request::get("/").header("host", "x").body(empty()).unwrap();
    assert_eq!(c.send(get()).await.unwrap().status(), 200);
    // Several PING rounds pass while the connection is idle.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert_eq!(c.send(get()).await.unwrap().status(), 200);
    assert_eq!(o.accepts(), 1, "the answered connection was kept");
}

/// An h2c server (the h2 crate) that answers one request per connection, then shuts the
/// connection down gracefully (GOAWAY). Returns its address and the connections accepted.
async fn one_per_connection_h2c() -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepts = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let n = accepts.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(async move {
                let Ok(mut conn) = h2::server::handshake(s).await else {
                    return;
                };
                if let Some(Ok((_req, mut respond))) = conn.accept().await {
                    let _ = respond.send_response(http::Response::new(()), true);
                    conn.graceful_shutdown();
                }
                while let Some(Ok((_req, mut respond))) = conn.accept().await {
                    let _ = respond.send_response(http::Response::new(()), true);
                }
            });
        }
    });
    (addr, accepts)
}

#[tokio::test]
async fn after_an_upstream_goaway_the_next_request_goes_on_a_new_connection() {
    let (addr, accepts) = one_per_connection_h2c().await;
    let p = proxy(&h2c_upstream(&[(addr, 1)])).await;
    let mut c = Conn::open(p.addr).await;
    for i in 1..=3 {
        let req = Request::get("/").header("host", "x").body(empty()).unwrap();
        assert_eq!(c.send(req).await.unwrap().status(), 200, "request {i}");
        // Time for the GOAWAY to reach swarmgate (a request racing it would be refused, and
        // this upstream has no other server to take it).
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(accepts.load(std::sync::atomic::Ordering::SeqCst), 3);
}

#[tokio::test]
async fn before_a_new_upstream_connections_settings_at_most_100_streams_go_on_it() {
    use std::sync::atomic::Ordering::SeqCst;
    let (addr, stats) = frame_h2c(Duration::from_millis(500)).await;
    let p = proxy(&h2c_upstream(&[(addr, 1)])).await;
    // 120 requests at once (one client connection): more than 100, fewer than the 128 streams
    // swarmgate would put on one connection once the server allows it.
    let h2 = H2Conn::open(p.addr).await;
    let mut tasks = Vec::new();
    for _ in 0..120 {
        let mut h2 = h2.clone();
        tasks.push(tokio::spawn(async move { h2.get("/").await.0 }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    let early = stats.early_streams.load(SeqCst);
    assert!(early > 0, "the burst went out before the SETTINGS");
    assert!(
        early <= 100,
        "{early} streams opened on one connection before the server's SETTINGS"
    );
}

/// A client that resets its stream (a cancelled gRPC call, a closed browser tab) while the
/// upstream works on it: swarmgate drops the upstream request, so the upstream connection
/// closes at once rather than when the server answers or `read_timeout` passes.
#[tokio::test]
async fn a_stream_reset_by_the_client_cancels_its_upstream_request() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // An HTTP/1.1 origin that reads a request and never answers; it reports when swarmgate
    // closes the connection.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = listener.local_addr().unwrap();
    let (seen_tx, mut seen) = tokio::sync::mpsc::unbounded_channel::<&'static str>();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            let seen_tx = seen_tx.clone();
            tokio::spawn(async move {
                let head = read_head(&mut s).await;
                if head.is_some_and(|h| h.starts_with(b"GET /warm ")) {
                    let _ = s
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                        )
                        .await;
                    return;
                }
                let _ = seen_tx.send("request");
                let mut buf = [0u8; 64];
                while matches!(s.read(&mut buf).await, Ok(n) if n > 0) {}
                let _ = seen_tx.send("closed");
            });
        }
    });
    let p = proxy(&format!("{}    read_timeout: 60s\n", one_upstream(origin))).await;

    let tcp = tokio::net::TcpStream::connect(p.addr).await.unwrap();
    let (client, conn) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(conn);
    let mut client = client.ready().await.unwrap();
    let warm = Request::get("http://test.local/warm").body(()).unwrap();
    let (resp, _) = client.send_request(warm, true).unwrap();
    assert_eq!(resp.await.unwrap().status(), 200);

    let mut client = client.ready().await.unwrap();
    let req = Request::get("http://test.local/hold").body(()).unwrap();
    let (_resp, mut stream) = client.send_request(req, true).unwrap();
    let within = Duration::from_secs(10);
    let got = tokio::time::timeout(within, seen.recv()).await;
    assert_eq!(got.expect("no request upstream"), Some("request"));
    stream.send_reset(h2::Reason::CANCEL);
    // Without the cancellation the origin would wait for read_timeout (60 s).
    let got = tokio::time::timeout(within, seen.recv()).await;
    assert_eq!(got.expect("upstream connection still open"), Some("closed"));
    // The client connection is still fine.
    let mut client = client.ready().await.unwrap();
    let again = Request::get("http://test.local/warm").body(()).unwrap();
    let (resp, _) = client.send_request(again, true).unwrap();
    assert_eq!(resp.await.unwrap().status(), 200);
}

/// A client that stops answering PINGs is sent a GOAWAY and closed after
/// `http2.keepalive_timeout` (not just dropped: the GOAWAY says why).
#[tokio::test]
async fn a_client_that_does_not_answer_pings_gets_goaway_and_is_closed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let o = echo_origin().await;
    let p = proxy(&format!(
        "http2: {{keepalive_interval: 300ms, keepalive_timeout: 300ms}}\n{}",
        one_upstream(o.addr)
    ))
    .await;
    let mut s = tokio::net::TcpStream::connect(p.addr).await.unwrap();
    // The preface and an empty SETTINGS frame; then silence (no PING is ever answered).
    s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .unwrap();
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut got)).await;
    assert!(read.is_ok(), "connection still open after 10 s");
    // Walk the frames: a PING (type 6) and then a GOAWAY (type 7).
    let mut types = Vec::new();
    let mut at = 0;
    while at + 9 <= got.len() {
        let len = u32::from_be_bytes([0, got[at], got[at + 1], got[at + 2]]) as usize;
        types.push(got[at + 3]);
        at += 9 + len;
    }
    let ping = types.iter().position(|&t| t == 6);
    let goaway = types.iter().position(|&t| t == 7);
    assert!(
        matches!((ping, goaway), (Some(p), Some(g)) if p < g),
        "frame types: {types:?}"
    );
}

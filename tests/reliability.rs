//! Reliability under faults, in-process: a replica dying under load, pooled connections closed
//! under the proxy, truncated and reset responses, admin reloads under traffic, and a server
//! that stops reading the request body (`send_timeout`).

mod common;
mod reliability_support;
use common::*;
use http_body_util::BodyExt;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use reliability_support::*;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// An origin that counts POSTs by their `x-id` and can be killed: listener closed and every
/// open socket reset (SO_LINGER 0), like a replica killed with SIGKILL.
struct Killable {
    addr: std::net::SocketAddr,
    kill: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Killable {
    fn kill(&self) {
        self.task.abort();
        let _ = self.kill.send(true);
    }
}

impl Drop for Killable {
    fn drop(&mut self) {
        self.kill();
    }
}

type Posts = Arc<Mutex<HashMap<String, Vec<&'static str>>>>;

/// POSTs whose id starts with `victim` hang on origin `a` (they are in flight when it dies).
async fn killable(name: &'static str, posts: Posts) -> Killable {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (kill, kill_rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let _ = stream.set_zero_linger();
            let posts = posts.clone();
            let mut kill_rx = kill_rx.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let posts = posts.clone();
                    async move {
                        if req.method() == hyper::Method::POST {
                            let id = req
                                .headers()
                                .get("x-id")
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("")
                                .to_owned();
                            let victim = id.starts_with("victim") && name == "a";
                            posts.lock().unwrap().entry(id).or_default().push(name);
                            let _ = req.into_body().collect().await;
                            let pause = if victim { 30_000 } else { 30 };
                            tokio::time::sleep(Duration::from_millis(pause)).await;
                        } else {
                            tokio::time::sleep(Duration::from_millis(2)).await;
                        }
                        Ok::<_, std::convert::Infallible>(text(200, name))
                    }
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc);
                tokio::select! {
                    _ = conn => {}
                    _ = kill_rx.wait_for(|k| *k) => {}
                }
            });
        }
    });
    Killable { addr, kill, task }
}

/// Item 1: a replica dies under 4 keepalive GET loops and a POST loop. No GET fails; a POST
/// already sent gets 502 (or succeeded before), and no POST ever reaches an origin twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_killed_under_load_fails_no_idempotent_request_and_replays_no_post() {
    let posts: Posts = Arc::default();
    let a = killable("a", posts.clone()).await;
    let b = killable("b", posts.clone()).await;
    let p = proxy(&format!(
        "upstreams:\n  kill_load:\n    servers:\n      - address: '{}'\n      - address: '{}'\n",
        a.addr, b.addr
    ))
    .await;
    let addr = p.addr;
    let stop = Arc::new(AtomicBool::new(false));
    let gets = GetLoops::start(addr, 4, "/");
    let post_stop = stop.clone();
    let poster = tokio::spawn(async move {
        let mut c = Conn::open(addr).await;
        let mut statuses: HashMap<u16, u32> = HashMap::new();
        let mut i = 0u32;
        while !post_stop.load(Ordering::Relaxed) {
            i += 1;
            let req = hyper::Request::post("/p")
                .header("host", "t")
                .header("x-id", i.to_string())
                .body(full(vec![b'x'; 1000]))
                .unwrap();
            let status = match c.send(req).await {
                Ok(r) => collect(r).await.0.as_u16(),
                Err(_) => {
                    // The proxy closed the connection after an error answer: reconnect.
                    c = Conn::open(addr).await;
                    0
                }
            };
            *statuses.entry(status).or_default() += 1;
            if status == 502 {
                c = Conn::open(addr).await;
            }
        }
        (i, statuses)
    });
    tokio::time::sleep(Duration::from_millis(400)).await;
    // Victim POSTs, each on its own connection, until one is in flight on `a`.
    let mut victims = Vec::new();
    let victim_on_a = 'found: {
        for v in 0..20 {
            let id = format!("victim-{v}");
            let vid = id.clone();
            victims.push((
                id.clone(),
                tokio::spawn(async move {
                    let mut c = Conn::open(addr).await;
                    let req = hyper::Request::post("/v")
                        .header("host", "t")
                        .header("x-id", vid)
                        .body(full(vec![b'v'; 1000]))
                        .unwrap();
                    match c.send(req).await {
                        Ok(r) => collect(r).await.0.as_u16(),
                        Err(_) => 0,
                    }
                }),
            ));
            for _ in 0..50 {
                tokio::time::sleep(Duration::from_millis(5)).await;
                if posts
                    .lock()
                    .unwrap()
                    .get(&id)
                    .is_some_and(|o| o.contains(&"a"))
                {
                    break 'found id;
                }
            }
        }
        panic!("no victim POST landed on a");
    };
    a.kill();
    tokio::time::sleep(Duration::from_millis(900)).await;
    stop.store(true, Ordering::Relaxed);
    let (ok, failed) = gets.finish().await;
    assert!(failed.is_empty(), "failed GETs: {failed:?}");
    let (sent, statuses) = poster.await.unwrap();
    assert!(ok > 100, "{ok} GETs");
    assert!(sent > 5, "{sent} POSTs");
    for s in statuses.keys() {
        assert!(*s == 200 || *s == 502, "POST statuses {statuses:?}");
    }
    let mut victim_statuses = HashMap::new();
    for (id, v) in victims {
        victim_statuses.insert(id, v.await.unwrap());
    }
    assert_eq!(
        victim_statuses[&victim_on_a], 502,
        "the POST in flight on the killed replica: {victim_statuses:?}"
    );
    for (id, s) in &victim_statuses {
        assert!(*s == 200 || id == &victim_on_a, "{victim_statuses:?}");
    }
    let posts = posts.lock().unwrap();
    let twice: Vec<_> = posts.iter().filter(|(_, o)| o.len() > 1).collect();
    assert!(twice.is_empty(), "POSTs replayed: {twice:?}");
    // Every POST answered 200 reached an origin exactly once.
    assert!(posts.len() as u32 >= statuses.get(&200).copied().unwrap_or(0));
    eprintln!(
        "GET ok {ok}; POST statuses {statuses:?}; victim {victim_on_a} -> 502; distinct POSTs at origins {}",
        posts.len()
    );
}

/// Item 2: the origin closes each connection right after its response, without saying so.
/// Requests that land on such a pooled connection are retried transparently, and counted.
#[tokio::test]
async fn pooled_connection_closed_under_reuse_is_retried_and_counted() {
    let o = raw_origin(|_| Reply::CloseLater(ok("ok"), Duration::from_millis(20))).await;
    let upstream = "retry_count";
    let p = proxy(&format!(
        "upstreams:\n  {upstream}:\n    servers:\n      - address: '{}'\n",
        o.addr
    ))
    .await;
    let retries = || {
        swarmgate::metrics::metrics()
            .retries_total
            .with_label_values(&[upstream])
            .get()
    };
    let before = retries();
    let mut c = Conn::open(p.addr).await;
    for i in 0..40 {
        let (s, _, body) = c.get("/").await;
        assert_eq!((s.as_u16(), &body[..]), (200, &b"ok"[..]), "request {i}");
    }
    let counted = retries() - before;
    // The raw origin answers one request per connection and records what else arrived before
    // it closed: each such lost request is one retry.
    let lost: usize = o
        .received()
        .iter()
        .map(|c| split_all(c).len().saturating_sub(1))
        .sum();
    eprintln!(
        "retries counted {counted}, requests lost on closed connections {lost}, accepts {}",
        o.accepts()
    );
    assert!(lost > 0, "the test must make the race happen");
    assert_eq!(counted as usize, lost, "every retry is counted once");
    assert_eq!(o.accepts(), 40, "one connection per answered request");
}

/// Item 3: the origin truncates or resets mid-response. The client sees the response cut
/// (connection closed, no clean end), never a hang, and the proxy keeps serving.
#[tokio::test]
async fn truncated_or_reset_responses_are_cut_never_hang() {
    let half = vec![b'x'; 500];
    let mut cl_short = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n".to_vec();
    cl_short.extend_from_slice(&half);
    let chunked_open =
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n5\r\nworld\r\n"
            .to_vec();
    let cases: Vec<(&str, Reply)> = vec![
        (
            "content-length short, then FIN",
            Reply::Close(cl_short.clone()),
        ),
        (
            "content-length short, then RST",
            Reply::Reset(cl_short.clone()),
        ),
        (
            "chunked without last chunk, then FIN",
            Reply::Close(chunked_open.clone()),
        ),
        (
            "chunked without last chunk, then RST",
            Reply::Reset(chunked_open.clone()),
        ),
        (
            "content-length short, then silence",
            Reply::Stall(cl_short.clone()),
        ),
        ("chunked, then silence", Reply::Stall(chunked_open.clone())),
    ];
    for (what, reply) in cases {
        let reply = Arc::new(Mutex::new(Some(reply)));
        let o = raw_origin(move |_| {
            reply
                .lock()
                .unwrap()
                .take()
                .unwrap_or(Reply::Keep(ok("fine")))
        })
        .await;
        let p = proxy(&format!(
            "upstreams:\n  u:\n    read_timeout: 1s\n    servers:\n      - address: '{}'\n",
            o.addr
        ))
        .await;
        let t = Instant::now();
        let mut s = TcpStream::connect(p.addr).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let (got, closed) = read_until_quiet(&mut s, Duration::from_secs(5)).await;
        let text = String::from_utf8_lossy(&got);
        assert!(closed, "{what}: must be closed, not hang: {text}");
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "{what}: {:?}",
            t.elapsed()
        );
        assert!(text.starts_with("HTTP/1.1 200 "), "{what}: {text}");
        if text.to_ascii_lowercase().contains("content-length: 1000") {
            let body = got.len() - (text.find("\r\n\r\n").unwrap() + 4);
            assert!(body < 1000, "{what}: {body} bytes");
        } else {
            assert!(
                !text.ends_with("0\r\n\r\n"),
                "{what}: no clean last chunk: {text}"
            );
        }
        // The broken connection was not pooled; the next request gets a fresh one and works.
        let (st, _, body) = get(p.addr, "/").await;
        assert_eq!((st.as_u16(), &body[..]), (200, &b"fine"[..]), "{what}");
        assert_eq!(o.accepts(), 2, "{what}");
    }
}

/// swarmgate started from a config file (so that `POST /api/reload` re-reads it).
async fn proxy_from_file(
    path: &std::path::Path,
) -> (
    Arc<swarmgate::app::App>,
    std::net::SocketAddr,
    std::net::SocketAddr,
    tokio::task::JoinHandle<()>,
) {
    let cfg = swarmgate::config::Config::load(path).unwrap();
    let app = swarmgate::app::App::new(cfg, Some(path.to_path_buf())).unwrap();
    let a = app.clone();
    let task = tokio::spawn(async move {
        swarmgate::app::run(a).await.unwrap();
    });
    let bound = app.bound().await;
    (app, bound.proxy[0], bound.admin.unwrap(), task)
}

async fn admin_reload(admin: std::net::SocketAddr) -> (u16, String) {
    let r = raw(
        admin,
        b"POST /api/reload HTTP/1.1\r\nHost: admin\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    let status = r.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, r)
}

/// Item 4: `POST /api/reload` under traffic: no request fails on connections open across the
/// reloads; a bad config is refused (422) and the old one keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_reload_under_traffic_loses_nothing_and_bad_config_keeps_old() {
    let a = named("a").await;
    let b = named("b").await;
    let dir = tmpdir("admin-reload");
    let path = dir.join("swarmgate.yaml");
    let write = |o: &Origin| {
        let tmp = path.with_extension("tmp");
        std::fs::write(
            &tmp,
            format!(
                "listen: 127.0.0.1:0\nadmin: {{listen: '127.0.0.1:0'}}\naccess_log: false\nkeepalive_requests: 0\n{}",
                one_upstream(o.addr)
            ),
        )
        .unwrap();
        std::fs::rename(&tmp, &path).unwrap();
    };
    write(&a);
    let (app, addr, admin, task) = proxy_from_file(&path).await;
    let loops = GetLoops::start(addr, 4, "/");
    for i in 0..8 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        write(if i % 2 == 0 { &b } else { &a });
        let (s, r) = admin_reload(admin).await;
        assert_eq!(s, 200, "{r}");
    }
    // Now on `a`. A broken config is refused and `a` keeps serving.
    std::fs::write(
        &path,
        "listen: 127.0.0.1:0\nupstreams:\n  u:\n    servers: [{address: 'bad address'}]\n",
    )
    .unwrap();
    let (s, r) = admin_reload(admin).await;
    assert_eq!(s, 422, "{r}");
    assert!(r.contains("invalid address"), "{r}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (ok, failed) = loops.finish().await;
    assert!(failed.is_empty(), "{ok} ok, failed: {failed:?}");
    assert!(ok > 100, "{ok}");
    assert!(a.requests() > 0 && b.requests() > 0);
    assert_eq!(get(addr, "/").await.2, "a");
    app.stop();
    let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
}

/// Item 8: a server that reads the request head and then stops reading the body: 504 after
/// `send_timeout`, not a hang (the body never finishes, so `read_timeout` alone never fires).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_that_stops_reading_the_body_is_cut_by_send_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let oaddr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let acc = accepted.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut s, _)) = listener.accept().await {
            acc.fetch_add(1, Ordering::SeqCst);
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await; // the head, then nothing more
            held.push(s);
        }
    });
    let p = proxy(&format!(
        "client_max_body_size: 0\nupstreams:\n  u:\n    send_timeout: 500ms\n    read_timeout: 600s\n    servers:\n      - address: '{oaddr}'\n"
    ))
    .await;
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    let total: usize = 256 << 20;
    s.write_all(
        format!("POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: {total}\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let (mut rd, mut wr) = s.into_split();
    let writer = tokio::spawn(async move {
        let chunk = vec![b'x'; 64 << 10];
        let mut sent = 0usize;
        while sent < total {
            match tokio::time::timeout(Duration::from_secs(20), wr.write_all(&chunk)).await {
                Ok(Ok(())) => sent += chunk.len(),
                _ => break,
            }
        }
        sent
    });
    let t = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(Duration::from_secs(20), rd.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => {
                got.extend_from_slice(&buf[..n]);
                if got.windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
        }
    }
    let took = t.elapsed();
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 504 "), "{text} after {took:?}");
    assert!(took < Duration::from_secs(15), "{took:?}");
    assert!(
        text.to_ascii_lowercase().contains("connection: close"),
        "{text}"
    );
    writer.abort();
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "a body already sent is never replayed"
    );
}

/// A slow client uploading (pauses shorter than client_body_timeout) is not mistaken for a
/// stalled server by send_timeout.
#[tokio::test]
async fn slow_upload_is_not_a_send_timeout() {
    let o = body_length_origin().await;
    let p = proxy(&format!(
        "client_body_timeout: 5s\nupstreams:\n  u:\n    send_timeout: 200ms\n    read_timeout: 200ms\n    servers:\n      - address: '{}'\n",
        o.addr
    ))
    .await;
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    s.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        s.write_all(b"xx").await.unwrap();
    }
    let (got, _) = read_until_quiet(&mut s, Duration::from_secs(5)).await;
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200 "), "{text}");
    assert!(text.ends_with("10"), "{text}");
}

//! Test harness: real origins on 127.0.0.1 ephemeral ports (hyper servers that count their TCP
//! accepts and requests), swarmgate in-process on ephemeral ports, and small HTTP clients.
#![allow(dead_code)]

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Empty, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use swarmgate::app::App;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

pub type Body = BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

pub fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).map_err(|e| match e {}).boxed()
}

pub fn empty() -> Body {
    Empty::new().map_err(|e| match e {}).boxed()
}

pub fn text(status: u16, b: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(full(b));
    *r.status_mut() = StatusCode::from_u16(status).unwrap();
    r
}

/// A real HTTP/1.1 origin server.
pub struct Origin {
    pub addr: SocketAddr,
    pub accepts: Arc<AtomicUsize>,
    pub requests: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
    kill: tokio::sync::watch::Sender<bool>,
}

impl Origin {
    pub fn accepts(&self) -> usize {
        self.accepts.load(Ordering::SeqCst)
    }
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
    /// Stops accepting and closes every open connection (a dead replica).
    pub fn stop(&self) {
        self.task.abort();
        let _ = self.kill.send(true);
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.stop();
    }
}

pub async fn origin<F, Fut>(handler: F) -> Origin
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    origin_speaking("127.0.0.1", false, handler).await
}

/// An origin on an ephemeral port of `ip` (any 127.0.0.0/8 address works on Linux).
pub async fn origin_at<F, Fut>(ip: &str, handler: F) -> Origin
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    origin_speaking(ip, false, handler).await
}

/// A real HTTP/2 (h2c, prior knowledge) origin server.
pub async fn origin_h2c<F, Fut>(handler: F) -> Origin
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    origin_speaking("127.0.0.1", true, handler).await
}

async fn origin_speaking<F, Fut>(ip: &str, h2c: bool, handler: F) -> Origin
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let listener = TcpListener::bind((ip, 0)).await.unwrap();
    serve_origin(listener, h2c, handler)
}

/// An HTTP/1.1 origin on exactly `addr` (e.g. the same port on 127.0.0.1 and 127.0.0.2), or
/// `None` when that address is taken.
pub async fn origin_on<F, Fut>(addr: SocketAddr, handler: F) -> Option<Origin>
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let listener = TcpListener::bind(addr).await.ok()?;
    Some(serve_origin(listener, false, handler))
}

fn serve_origin<F, Fut>(listener: TcpListener, h2c: bool, handler: F) -> Origin
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let addr = listener.local_addr().unwrap();
    let accepts = Arc::new(AtomicUsize::new(0));
    let requests = Arc::new(AtomicUsize::new(0));
    let (a, r) = (accepts.clone(), requests.clone());
    let (kill, kill_rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            a.fetch_add(1, Ordering::SeqCst);
            let h = handler.clone();
            let r = r.clone();
            let mut kill_rx = kill_rx.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    r.fetch_add(1, Ordering::SeqCst);
                    let fut = h(req);
                    async move { Ok::<_, std::convert::Infallible>(fut.await) }
                });
                let io = TokioIo::new(stream);
                let conn: std::pin::Pin<Box<dyn Future<Output = _> + Send>> = if h2c {
                    Box::pin(
                        hyper::server::conn::http2::Builder::new(
                            hyper_util::rt::TokioExecutor::new(),
                        )
                        .serve_connection(io, svc),
                    )
                } else {
                    Box::pin(
                        hyper::server::conn::http1::Builder::new()
                            .serve_connection(io, svc)
                            .with_upgrades(),
                    )
                };
                tokio::select! {
                    _ = conn => {}
                    _ = kill_rx.wait_for(|k| *k) => {}
                }
            });
        }
    });
    Origin {
        addr,
        accepts,
        requests,
        task,
        kill,
    }
}

/// An origin answering `name` with header `x-origin: name`.
pub async fn named(name: &'static str) -> Origin {
    origin(move |_req| async move {
        let mut r = text(200, name);
        r.headers_mut().insert("x-origin", name.parse().unwrap());
        r
    })
    .await
}

/// An origin on `ip` that answers an upgrade request with 101 and then echoes every byte
/// upper-cased (a WebSocket stand-in; see [`upgrade_roundtrip`]).
pub async fn upgrade_echo_at(ip: &str) -> Origin {
    origin_at(ip, |mut req| async move {
        let up = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            if let Ok(u) = up.await {
                let mut io = TokioIo::new(u);
                let mut buf = [0u8; 1024];
                while let Ok(n) = io.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    let upper = buf[..n].to_ascii_uppercase();
                    if io.write_all(&upper).await.is_err() {
                        break;
                    }
                }
            }
        });
        let mut r = Response::new(empty());
        *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        r.headers_mut()
            .insert("upgrade", "websocket".parse().unwrap());
        r.headers_mut()
            .insert("connection", "upgrade".parse().unwrap());
        r
    })
    .await
}

/// Sends a WebSocket upgrade for `path` to `addr`, expects 101, then two messages that come
/// back upper-cased (from [`upgrade_echo_at`] behind the proxy).
pub async fn upgrade_roundtrip(addr: SocketAddr, path: &str) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = vec![0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let head = String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: websocket"), "{head}");
    for msg in ["hello", "second message"] {
        s.write_all(msg.as_bytes()).await.unwrap();
        let mut got = Vec::new();
        while got.len() < msg.len() {
            let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
                .await
                .unwrap()
                .unwrap();
            assert!(n > 0, "tunnel closed early");
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, msg.to_ascii_uppercase().as_bytes());
    }
}

/// A port that refuses connections: bound (so nobody else gets it) but not listening.
pub struct DeadPort {
    pub addr: SocketAddr,
    _socket: tokio::net::TcpSocket,
}

pub fn dead_port() -> DeadPort {
    let s = tokio::net::TcpSocket::new_v4().unwrap();
    s.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    DeadPort {
        addr: s.local_addr().unwrap(),
        _socket: s,
    }
}

/// swarmgate running in-process on ephemeral ports.
pub struct Proxy {
    pub addr: SocketAddr,
    pub admin: Option<SocketAddr>,
    pub app: Arc<App>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.app.stop();
        self.task.abort();
    }
}

/// Starts swarmgate with `yaml` (listen and admin default to 127.0.0.1:0).
pub async fn proxy(yaml: &str) -> Proxy {
    let mut text = String::new();
    if !yaml.contains("\nlisten:") && !yaml.starts_with("listen:") {
        text.push_str("listen: 127.0.0.1:0\n");
    }
    if !yaml.contains("admin:") {
        text.push_str("admin: {listen: '127.0.0.1:0'}\n");
    }
    text.push_str("access_log: false\n");
    let top_level_set =
        yaml.starts_with("keepalive_requests:") || yaml.contains("\nkeepalive_requests:");
    if !top_level_set {
        // Long request loops in tests must not be cut by the 1000-request default.
        text.push_str("keepalive_requests: 0\n");
    }
    text.push_str(yaml);
    let cfg = swarmgate::config::parse_config(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let app = App::new(cfg, None).unwrap();
    let a = app.clone();
    let task = tokio::spawn(async move {
        swarmgate::app::run(a).await.unwrap();
    });
    let bound = app.bound().await;
    Proxy {
        addr: bound.proxy[0],
        admin: bound.admin,
        app,
        task,
    }
}

/// A keepalive HTTP/1.1 client connection.
pub struct Conn {
    tx: hyper::client::conn::http1::SendRequest<Body>,
}

impl Conn {
    pub async fn open(addr: SocketAddr) -> Conn {
        let s = TcpStream::connect(addr).await.unwrap();
        let (tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s))
            .await
            .unwrap();
        tokio::spawn(async move {
            let _ = conn.with_upgrades().await;
        });
        Conn { tx }
    }

    pub async fn send(&mut self, req: Request<Body>) -> hyper::Result<Response<Incoming>> {
        self.tx.ready().await?;
        self.tx.send_request(req).await
    }

    /// GET `path`; returns status, headers and the whole body.
    pub async fn get(&mut self, path: &str) -> (StatusCode, http::HeaderMap, Bytes) {
        let req = Request::get(path)
            .header("host", "test.local")
            .body(empty())
            .unwrap();
        let resp = self.send(req).await.unwrap();
        collect(resp).await
    }
}

pub async fn collect(resp: Response<Incoming>) -> (StatusCode, http::HeaderMap, Bytes) {
    let (parts, body) = resp.into_parts();
    let b = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    (parts.status, parts.headers, b)
}

/// One GET on a new connection.
pub async fn get(addr: SocketAddr, path: &str) -> (StatusCode, http::HeaderMap, Bytes) {
    Conn::open(addr).await.get(path).await
}

/// Reads up to the end of a request head (the blank line); `None` if the peer goes first.
pub async fn read_head(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    Some(got)
}

/// Writes raw bytes and reads until the server closes or `wait` passes without data.
pub async fn raw(addr: SocketAddr, bytes: &[u8], wait: Duration) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match tokio::time::timeout(wait, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `upstreams: {u: {servers: [addr]}}`: one upstream with one server.
pub fn one_upstream(addr: impl std::fmt::Display) -> String {
    format!("upstreams:\n  u:\n    servers: [{{address: '{addr}'}}]\n")
}

/// Test certificates written to `dir` as ca.pem, cert.pem and key.pem.
pub struct Pki {
    pub dir: std::path::PathBuf,
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

/// A CA and a server certificate for `localhost` / 127.0.0.1 signed by it.
/// `tls:` for a listener serving `p`'s certificate, followed by `rest`.
pub fn tls_listener(p: &Pki, rest: &str) -> String {
    format!(
        "tls: {{cert: '{}', key: '{}'}}\n{rest}",
        p.dir.join("cert.pem").display(),
        p.dir.join("key.pem").display(),
    )
}

pub fn pki(tag: &str) -> Pki {
    pki_for(tag, &["localhost", "127.0.0.1"])
}

impl Pki {
    /// A client configuration trusting this CA and offering `alpn`.
    pub fn client_config(&self, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls::pki_types::CertificateDer::pem_slice_iter(self.ca_pem.as_bytes()) {
            roots.add(c.unwrap()).unwrap();
        }
        let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(cfg)
    }

    /// A server configuration with this certificate, offering `alpn` (none: no ALPN, like
    /// Kuscia's gateway).
    pub fn server_config(&self, alpn: &[&[u8]]) -> Arc<rustls::ServerConfig> {
        use rustls::pki_types::pem::PemObject;
        let certs = rustls::pki_types::CertificateDer::pem_slice_iter(self.cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key =
            rustls::pki_types::PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).unwrap();
        let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
        cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(cfg)
    }

    /// `tls: {cert, key}` for swarmgate's listener.
    pub fn listener_yaml(&self) -> String {
        format!(
            "tls: {{cert: '{}', key: '{}'}}\n",
            self.dir.join("cert.pem").display(),
            self.dir.join("key.pem").display()
        )
    }
}

/// A temporary directory unique to this test process and `tag`.
pub fn tmpdir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("swarmgate-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A free port, reserved only until the caller binds it.
pub fn free_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// Sends `sig` (e.g. `-HUP`) to a child process.
pub fn signal(child: &std::process::Child, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

/// A response other than 200 seen by [`GetLoops`]: status, headers, body.
pub type Failed = (StatusCode, http::HeaderMap, Bytes);

/// Keep-alive clients for "nothing may fail while …" tests: `n` connections, each sending
/// `GET path` back to back until [`GetLoops::finish`]. Losing a client connection panics: under
/// these tests the proxy must never close one.
pub struct GetLoops {
    stop: Arc<std::sync::atomic::AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<(u32, Vec<Failed>)>>,
}

impl GetLoops {
    pub fn start(addr: SocketAddr, n: usize, path: &'static str) -> GetLoops {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let tasks = (0..n)
            .map(|_| {
                let stop = stop.clone();
                tokio::spawn(async move {
                    let mut c = Conn::open(addr).await;
                    let (mut ok, mut failed) = (0u32, Vec::new());
                    while !stop.load(Ordering::Relaxed) {
                        let req = Request::get(path)
                            .header("host", "test.local")
                            .body(empty())
                            .unwrap();
                        let resp = match c.send(req).await {
                            Ok(r) => r,
                            Err(e) => panic!("client connection lost after {ok} responses: {e}"),
                        };
                        let (status, headers, body) = collect(resp).await;
                        if status == StatusCode::OK {
                            ok += 1;
                        } else {
                            failed.push((status, headers, body));
                        }
                    }
                    (ok, failed)
                })
            })
            .collect();
        GetLoops { stop, tasks }
    }

    /// Stops the loops; returns the number of 200s and every other response.
    pub async fn finish(self) -> (u32, Vec<Failed>) {
        self.stop.store(true, Ordering::Relaxed);
        let (mut ok, mut failed) = (0, Vec::new());
        for t in self.tasks {
            let (o, f) = t.await.unwrap();
            ok += o;
            failed.extend(f);
        }
        (ok, failed)
    }
}

/// Reads a request body to the end; its length (0 if it failed).
pub async fn body_len(body: Incoming) -> usize {
    body.collect()
        .await
        .map(|b| b.to_bytes().len())
        .unwrap_or(0)
}

/// An origin that reads each request body to the end and answers 200 with its length.
pub async fn body_length_origin() -> Origin {
    origin(|req: Request<Incoming>| async move {
        text(200, body_len(req.into_body()).await.to_string())
    })
    .await
}

/// Runs `swarmgate check --config` on `yaml`; returns success and stdout + stderr.
pub fn swarmgate_check(yaml: &str, tag: &str) -> (bool, String) {
    let path = tmpdir(tag).join("c.yaml");
    std::fs::write(&path, yaml).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_swarmgate"))
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// A child process, killed and reaped when dropped.
pub struct Proc(pub std::process::Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits up to 10 s for `addr` to accept connections.
pub async fn wait_listening(addr: SocketAddr) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(addr).await.is_err() {
        assert!(std::time::Instant::now() < deadline, "{addr} did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The swarmgate binary, as operators run it, with the config file it was started from.
pub struct Running {
    pub proc: Proc,
    pub addr: SocketAddr,
    pub config: std::path::PathBuf,
}

impl Running {
    pub fn child(&self) -> &std::process::Child {
        &self.proc.0
    }

    /// Replaces the config file atomically (same listener), for a reload.
    pub fn rewrite(&self, body: &str) {
        let tmp = self.config.with_extension("tmp");
        std::fs::write(&tmp, process_config(self.addr, body)).unwrap();
        std::fs::rename(&tmp, &self.config).unwrap();
    }

    /// Waits for the process to exit; panics after `within`.
    pub async fn wait_exit(&mut self, within: Duration) -> (std::process::ExitStatus, Duration) {
        let t = std::time::Instant::now();
        loop {
            if let Some(s) = self.proc.0.try_wait().unwrap() {
                return (s, t.elapsed());
            }
            assert!(t.elapsed() < within, "did not exit within {within:?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

fn process_config(addr: SocketAddr, body: &str) -> String {
    format!("listen: '{addr}'\nadmin: {{listen: ''}}\naccess_log: false\n{body}")
}

/// Starts the swarmgate binary on a free port (no admin listener, no access log) with `body`
/// appended to its config; returns once it listens. `SG_TEST_LOG=debug` shows its log.
pub async fn start_swarmgate(tag: &str, body: &str) -> Running {
    let config = tmpdir(tag).join("swarmgate.yaml");
    let addr = free_port();
    std::fs::write(&config, process_config(addr, body)).unwrap();
    let log = std::env::var("SG_TEST_LOG").ok();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_swarmgate"))
        .arg("--config")
        .arg(&config)
        .env("RUST_LOG", log.as_deref().unwrap_or("warn"))
        .stdout(if log.is_some() {
            std::process::Stdio::inherit()
        } else {
            std::process::Stdio::null()
        })
        .spawn()
        .unwrap();
    let proc = Proc(child);
    wait_listening(addr).await;
    Running { proc, addr, config }
}

/// A body fed through the returned channel, chunk by chunk.
pub fn channel_body() -> (mpsc::Sender<Bytes>, Body) {
    let (tx, rx) = mpsc::channel::<Bytes>(4);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| {
            (
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(Frame::data(b)),
                rx,
            )
        })
    });
    (tx, StreamBody::new(stream).boxed())
}

/// An origin that reads the request body and answers `length:checksum` (see [`pattern`]).
pub async fn checksum_origin() -> Origin {
    origin(|req| async move {
        let mut body = req.into_body();
        let (mut n, mut sum) = (0u64, 0u64);
        while let Some(Ok(f)) = body.frame().await {
            if let Some(d) = f.data_ref() {
                for &b in d.iter() {
                    sum = sum.wrapping_mul(31).wrapping_add(u64::from(b));
                }
                n += d.len() as u64;
            }
        }
        text(200, format!("{n}:{sum}"))
    })
    .await
}

/// Byte `i` of the test pattern used by the large-body helpers.
pub fn pattern(i: u64) -> u8 {
    (i.wrapping_mul(2654435761) >> 7) as u8
}

/// An origin answering every request with `size` bytes of [`pattern`], streamed.
pub async fn pattern_origin(size: u64) -> Origin {
    origin(move |_req| async move {
        let (tx, body) = channel_body();
        tokio::spawn(async move {
            let mut i = 0u64;
            while i < size {
                let chunk: Vec<u8> = (i..(i + 65536).min(size)).map(pattern).collect();
                i += chunk.len() as u64;
                if tx.send(Bytes::from(chunk)).await.is_err() {
                    return;
                }
            }
        });
        Response::new(body)
    })
    .await
}

/// POSTs `size` bytes of [`pattern`] to `path` (a [`checksum_origin`] behind `addr`) and
/// checks the length and checksum it saw.
pub async fn upload_pattern(addr: SocketAddr, path: &str, size: u64) {
    let (tx, body) = channel_body();
    let mut c = Conn::open(addr).await;
    let req = Request::post(path).header("host", "x").body(body).unwrap();
    let send = tokio::spawn(async move { collect(c.send(req).await.unwrap()).await });
    let mut expect = 0u64;
    let mut i = 0u64;
    while i < size {
        let chunk: Vec<u8> = (i..(i + 65536).min(size)).map(pattern).collect();
        for &b in &chunk {
            expect = expect.wrapping_mul(31).wrapping_add(u64::from(b));
        }
        i += chunk.len() as u64;
        tx.send(Bytes::from(chunk)).await.unwrap();
    }
    drop(tx);
    let (status, _, body) = send.await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(body, format!("{size}:{expect}"));
}

/// GETs `path` (a [`pattern_origin`] behind `addr`) and checks every byte of the `size`.
pub async fn download_pattern(addr: SocketAddr, path: &str, size: u64) {
    let mut c = Conn::open(addr).await;
    let resp = c
        .send(
            Request::get(path)
                .header("host", "x")
                .body(empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let mut n = 0u64;
    while let Some(f) = body.frame().await {
        let f = f.unwrap();
        if let Some(d) = f.data_ref() {
            for (k, &b) in d.iter().enumerate() {
                assert_eq!(b, pattern(n + k as u64), "byte {}", n + k as u64);
            }
            n += d.len() as u64;
        }
    }
    assert_eq!(n, size);
}

/// Like [`pki`], for the server names (DNS names or IPs) `names`.
pub fn pki_for(tag: &str, names: &[&str]) -> Pki {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "swarmgate test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params =
        rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "replica");
    let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
    let dir = std::env::temp_dir().join(format!("swarmgate-tls-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = Pki {
        dir,
        ca_pem: ca.pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    };
    std::fs::write(p.dir.join("ca.pem"), &p.ca_pem).unwrap();
    std::fs::write(p.dir.join("cert.pem"), &p.cert_pem).unwrap();
    std::fs::write(p.dir.join("key.pem"), &p.key_pem).unwrap();
    p
}

/// An HTTP/2 client connection (hyper's client): h2c with prior knowledge or h2 over TLS.
#[derive(Clone)]
pub struct H2Conn {
    pub tx: hyper::client::conn::http2::SendRequest<Body>,
}

impl H2Conn {
    /// h2c: the preface right away on a plain connection.
    pub async fn open(addr: SocketAddr) -> H2Conn {
        let s = TcpStream::connect(addr).await.unwrap();
        H2Conn::handshake(s).await
    }

    /// h2 over TLS; panics unless ALPN picked h2.
    pub async fn open_tls(addr: SocketAddr, pki: &Pki) -> H2Conn {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let tls = tokio_rustls::TlsConnector::from(pki.client_config(&[b"h2", b"http/1.1"]))
            .connect("localhost".try_into().unwrap(), tcp)
            .await
            .unwrap();
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        H2Conn::handshake(tls).await
    }

    async fn handshake<T>(io: T) -> H2Conn
    where
        T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (tx, conn) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            TokioIo::new(io),
        )
        .await
        .unwrap();
        tokio::spawn(async move {
            let _ = conn.await;
        });
        H2Conn { tx }
    }

    pub async fn send(&mut self, req: Request<Body>) -> hyper::Result<Response<Incoming>> {
        self.tx.ready().await?;
        self.tx.send_request(req).await
    }

    /// GET `http://test.local{path}`; status, headers and the whole body.
    pub async fn get(&mut self, path: &str) -> (StatusCode, http::HeaderMap, Bytes) {
        let req = Request::get(format!("http://test.local{path}"))
            .body(empty())
            .unwrap();
        collect(self.send(req).await.unwrap()).await
    }
}

/// An origin that describes the request it got in `x-seen-*` headers and echoes its body.
pub async fn echo_origin() -> Origin {
    origin(|req: Request<Incoming>| async move {
        let seen = |name: &str| {
            req.headers()
                .get(name)
                .map(|v| v.to_str().unwrap_or("?").to_owned())
                .unwrap_or_default()
        };
        let head = [
            ("x-seen-host", seen("host")),
            ("x-seen-te", seen("te")),
            ("x-seen-proto", seen("x-forwarded-proto")),
            ("x-seen-connection", seen("connection")),
            ("x-seen-version", format!("{:?}", req.version())),
            ("x-seen-method", req.method().to_string()),
            ("x-seen-path", req.uri().to_string()),
        ];
        let body = req
            .into_body()
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        let mut r = Response::new(full(body));
        for (k, v) in head {
            r.headers_mut().insert(k, v.parse().unwrap());
        }
        r
    })
    .await
}

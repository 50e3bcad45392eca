//! A tiny stand-in for a Kuscia gateway replica, for tests and benchmarks.
//!
//! Usage: `swarmgate-replica [LISTEN]` (default `$LISTEN`, else `0.0.0.0:1080`), or
//! `swarmgate-replica healthcheck [PORT]` (default `$HEALTHCHECK_PORT`, else the port of
//! `$LISTEN`, else 1080): GET
//! `http://127.0.0.1:PORT/healthz`, exit 0 on 200, else 1 (for a `HEALTHCHECK` in a scratch image).
//!
//! The replica name is `$REPLICA_NAME`, else the hostname (`/etc/hostname`, else `$HOSTNAME`).
//! Routes: `GET /` → 401 like Kuscia's gateway; `/healthz` → 200 `ok`; `/slow?ms=N` → 200 after
//! N ms (capped at 10 min); anything else → 200 echo of method, path, headers and body length.
//! Every response carries `x-replica: <name>`.
//!
//! `TLS=1` (or `true`/`yes`): the listener also speaks TLS, like Kuscia's HTTPS gateway on 1080,
//! with a self-signed certificate generated at start (rcgen; no ALPN, as Kuscia's listener). Each
//! connection is sniffed: a first byte of 0x16 (TLS handshake record) means TLS, anything else
//! plain HTTP, so the plain-HTTP `healthcheck` and clients keep working on the same port.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

const DEFAULT_LISTEN: &str = "0.0.0.0:1080";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("swarmgate-replica: runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if args.first().map(String::as_str) == Some("healthcheck") {
        let port = args
            .get(1)
            .cloned()
            .or_else(|| std::env::var("HEALTHCHECK_PORT").ok())
            .or_else(|| listen_from_env().and_then(|l| l.rsplit(':').next().map(str::to_owned)))
            .unwrap_or_else(|| "1080".to_owned());
        return rt.block_on(healthcheck(&port));
    }
    let listen = args
        .first()
        .cloned()
        .or_else(listen_from_env)
        .unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
    match rt.block_on(serve(&listen)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("swarmgate-replica: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Whether `$TLS` asks for the TLS mode.
fn tls_from_env() -> bool {
    std::env::var("TLS").is_ok_and(|v| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "1" | "true" | "yes" | "on"
        )
    })
}

/// A TLS acceptor with a fresh self-signed certificate for `name` and `localhost`.
fn self_signed_acceptor(name: &str) -> Result<TlsAcceptor, String> {
    let ck = rcgen::generate_simple_self_signed(vec![name.to_owned(), "localhost".to_owned()])
        .map_err(|e| format!("self-signed certificate: {e}"))?;
    let key = rustls::pki_types::PrivatePkcs8KeyDer::from(ck.key_pair.serialize_der());
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("tls: {e}"))?
        .with_no_client_auth()
        .with_single_cert(vec![ck.cert.der().clone()], key.into())
        .map_err(|e| format!("tls: {e}"))?;
    Ok(TlsAcceptor::from(Arc::new(cfg)))
}

fn listen_from_env() -> Option<String> {
    std::env::var("LISTEN").ok().filter(|s| !s.is_empty())
}

fn replica_name() -> String {
    if let Ok(n) = std::env::var("REPLICA_NAME") {
        if !n.is_empty() {
            return n;
        }
    }
    if let Ok(h) = std::fs::read_to_string("/etc/hostname") {
        let h = h.trim();
        if !h.is_empty() {
            return h.to_owned();
        }
    }
    std::env::var("HOSTNAME").unwrap_or_else(|_| "replica".to_owned())
}

async fn healthcheck(port: &str) -> ExitCode {
    let probe = async {
        let mut s = TcpStream::connect(format!("127.0.0.1:{port}")).await?;
        s.write_all(b"GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n")
            .await?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await?;
        Ok::<bool, std::io::Error>(
            buf.starts_with(b"HTTP/1.0 200") || buf.starts_with(b"HTTP/1.1 200"),
        )
    };
    match tokio::time::timeout(Duration::from_secs(3), probe).await {
        Ok(Ok(true)) => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    }
}

async fn serve(listen: &str) -> std::io::Result<()> {
    let listener = TcpListener::bind(listen).await?;
    let name: Arc<str> = replica_name().into();
    let tls = if tls_from_env() {
        Some(self_signed_acceptor(&name).map_err(std::io::Error::other)?)
    } else {
        None
    };
    let mode = if tls.is_some() { "https+http" } else { "http" };
    eprintln!("swarmgate-replica {name} listening on {listen} ({mode})");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        // PID 1 in a container gets no default SIGTERM handling: exit promptly on it.
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = term.recv() => return Ok(()),
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                eprintln!("accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let name = name.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| handle(req, name.clone(), peer));
            let http = http1::Builder::new();
            let acceptor = match tls {
                Some(a) if looks_like_tls(&stream).await => Some(a),
                _ => None,
            };
            if let Some(acceptor) = acceptor {
                if let Ok(Ok(s)) =
                    tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await
                {
                    let _ = http.serve_connection(TokioIo::new(s), svc).await;
                }
            } else {
                let _ = http.serve_connection(TokioIo::new(stream), svc).await;
            }
        });
    }
}

/// Whether the client's first byte is a TLS handshake record (waits up to 10 s for it).
async fn looks_like_tls(stream: &TcpStream) -> bool {
    let mut b = [0u8; 1];
    matches!(
        tokio::time::timeout(Duration::from_secs(10), stream.peek(&mut b)).await,
        Ok(Ok(1))
    ) && b[0] == 0x16
}

type Resp = Response<Full<Bytes>>;

fn response(status: StatusCode, name: &str, ctype: &str, body: impl Into<Bytes>) -> Resp {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    if let Ok(v) = name.parse() {
        h.insert("x-replica", v);
    }
    if let Ok(v) = ctype.parse() {
        h.insert(hyper::header::CONTENT_TYPE, v);
    }
    resp
}

async fn handle(
    req: Request<Incoming>,
    name: Arc<str>,
    peer: SocketAddr,
) -> Result<Resp, std::convert::Infallible> {
    let path = req.uri().path().to_owned();
    if req.method() == Method::GET && path == "/" {
        let _ = req.into_body().collect().await;
        let body = format!(
            r#"{{"domain":"alice","instance":"{name}","kuscia":"swarmgate-replica","reason":"unauthorized"}}"#
        );
        let mut r = response(StatusCode::UNAUTHORIZED, &name, "application/json", body);
        let msg = format!("Domain alice.{name}<--{} return http code 401.", peer.ip());
        if let Ok(v) = msg.parse() {
            r.headers_mut().insert("kuscia-error-message", v);
        }
        return Ok(r);
    }
    if path == "/healthz" {
        let _ = req.into_body().collect().await;
        return Ok(response(StatusCode::OK, &name, "text/plain", "ok"));
    }
    if path == "/slow" {
        let ms = req
            .uri()
            .query()
            .unwrap_or("")
            .split('&')
            .find_map(|kv| kv.strip_prefix("ms="))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
            .min(600_000);
        let _ = req.into_body().collect().await;
        tokio::time::sleep(Duration::from_millis(ms)).await;
        return Ok(response(
            StatusCode::OK,
            &name,
            "text/plain",
            format!("slept {ms} ms\n"),
        ));
    }
    let mut text = format!("{} {}\n", req.method(), req.uri());
    for (k, v) in req.headers() {
        text.push_str(&format!(
            "{}: {}\n",
            k,
            String::from_utf8_lossy(v.as_bytes())
        ));
    }
    let mut body = req.into_body();
    let mut len: u64 = 0;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => {
                if let Some(d) = f.data_ref() {
                    len += d.len() as u64;
                }
            }
            Err(e) => {
                text.push_str(&format!("body-error: {e}\n"));
                break;
            }
        }
    }
    text.push_str(&format!("body-length: {len}\n"));
    Ok(response(StatusCode::OK, &name, "text/plain", text))
}

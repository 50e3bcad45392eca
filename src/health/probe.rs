//! One active probe of one server, bounded by the check's `timeout`. `tcp`: the connection is
//! established. `http`: `method path` over HTTP/1.1, or HTTP/2 when the upstream speaks it (TLS
//! with the upstream's client config when the upstream is `https`), `Host` = the check's `host`
//! or the probed address, alive when the status matches `expect_status`. `grpc`:
//! `grpc.health.v1.Health/Check` for `service` over HTTP/2, alive when the answer is SERVING.
//! Probes use their own short-lived connection: they never take one from, or add one to, the
//! request path's pool.

use crate::config::{HealthCheckConfig, HealthCheckKind, Protocol};
use crate::tls;
use crate::upstream::{Server, Settings};
use bytes::Bytes;
use http::{header, HeaderValue, Method, Request};
use http_body_util::Empty;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};

/// The result of one probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub ok: bool,
    /// Short human-readable reason, e.g. `HTTP 200`, `HTTP 500 not expected`, `timed out`.
    pub detail: String,
}

impl Outcome {
    fn fail(detail: impl Into<String>) -> Self {
        Outcome {
            ok: false,
            detail: detail.into(),
        }
    }
}

const USER_AGENT: &str = concat!("swarmgate-health-check/", env!("CARGO_PKG_VERSION"));

/// Probes `server` once according to `hc`; never takes longer than `hc.timeout`.
pub async fn probe(server: &Server, settings: &Settings, hc: &HealthCheckConfig) -> Outcome {
    match tokio::time::timeout(hc.timeout, attempt(server, settings, hc)).await {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(detail)) => Outcome::fail(detail),
        Err(_) => Outcome::fail(format!("timed out after {:?}", hc.timeout)),
    }
}

async fn attempt(
    server: &Server,
    settings: &Settings,
    hc: &HealthCheckConfig,
) -> Result<Outcome, String> {
    let tcp = match crate::upstream::transport::open(server, hc.port).await {
        Ok(s) => s,
        Err(e) => {
            server.forget_resolution();
            return Err(match e {
                crate::upstream::transport::TransportError::Resolve(e) => {
                    format!("resolve: {}", io_reason(&e))
                }
                crate::upstream::transport::TransportError::Io(e) => {
                    format!("connect: {}", io_reason(&e))
                }
                e => e.to_string(),
            });
        }
    };
    if hc.kind == HealthCheckKind::Tcp {
        return Ok(Outcome {
            ok: true,
            detail: "TCP connect ok".into(),
        });
    }
    let host = match &hc.host {
        Some(h) => h.clone(),
        None => crate::config::ServerAddress {
            port: hc.port.unwrap_or(server.address.port),
            ..server.address.clone()
        }
        .to_string(),
    };
    let h2 = matches!(settings.config.protocol, Protocol::H2 | Protocol::H2c);
    match &settings.tls {
        None => on_connection(tcp, h2, hc, &host).await,
        Some(cfg) => {
            let sni = settings.config.tls.as_ref().and_then(|t| t.sni.as_deref());
            let name = tls::server_name(sni, &server.address.host)
                .ok_or_else(|| format!("tls: invalid server name {:?}", server.address.host))?;
            let stream = tokio_rustls::TlsConnector::from(cfg.clone())
                .connect(name, tcp)
                .await
                .map_err(|e| format!("tls: {e}"))?;
            let h2 = h2 || stream.get_ref().1.alpn_protocol() == Some(b"h2");
            on_connection(stream, h2, hc, &host).await
        }
    }
}

/// The `http` or `grpc` probe on an established connection.
async fn on_connection<T>(
    io: T,
    h2: bool,
    hc: &HealthCheckConfig,
    host: &str,
) -> Result<Outcome, String>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    if hc.kind == HealthCheckKind::Grpc {
        if !h2 {
            return Err("grpc check: the server does not speak HTTP/2".into());
        }
        return grpc_check(io, hc, host).await;
    }
    let status = if h2 {
        let req = probe_request(hc, host, false)?;
        h2_send(io, req).await?.status().as_u16()
    } else {
        http_status(io, hc, host).await?
    };
    let ok = hc.expect_status.iter().any(|m| m.matches(status));
    Ok(Outcome {
        ok,
        detail: if ok {
            format!("HTTP {status}")
        } else {
            format!("HTTP {status} not expected")
        },
    })
}

/// The probe request: `method path` with `Host` (HTTP/1.1: `Connection: close`).
fn probe_request(
    hc: &HealthCheckConfig,
    host: &str,
    h1: bool,
) -> Result<Request<Empty<Bytes>>, String> {
    let method = Method::from_bytes(hc.method.as_bytes()).map_err(|e| e.to_string())?;
    let hv = HeaderValue::from_str(host).map_err(|_| format!("invalid Host {host:?}"))?;
    let mut b = Request::builder()
        .method(method)
        .header(header::USER_AGENT, USER_AGENT);
    b = if h1 {
        b.uri(hc.path.as_str())
            .header(header::HOST, hv)
            .header(header::CONNECTION, "close")
    } else {
        b.uri(format!("http://{host}{}", hc.path))
    };
    b.body(Empty::<Bytes>::new())
        .map_err(|e| format!("request: {e}"))
}

/// Sends `req` on a new HTTP/2 connection over `io`; the connection ends with the probe.
async fn h2_send<T, B>(
    io: T,
    req: Request<B>,
) -> Result<hyper::Response<hyper::body::Incoming>, String>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (mut tx, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io))
            .await
            .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(conn);
    tx.send_request(req)
        .await
        .map_err(|e| format!("http2: {e}"))
}

/// `grpc.health.v1.Health/Check`: up when the response says SERVING (1).
async fn grpc_check<T>(io: T, hc: &HealthCheckConfig, host: &str) -> Result<Outcome, String>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    use http_body_util::BodyExt as _;
    let req = Request::post(format!("http://{host}/grpc.health.v1.Health/Check"))
        .header(header::CONTENT_TYPE, "application/grpc")
        .header(header::TE, "trailers")
        .header(header::USER_AGENT, USER_AGENT)
        .body(http_body_util::Full::new(grpc_health_request(&hc.service)))
        .map_err(|e| format!("request: {e}"))?;
    let resp = h2_send(io, req).await?;
    if resp.status() != http::StatusCode::OK {
        return Ok(Outcome::fail(format!("HTTP {}", resp.status().as_u16())));
    }
    let head_status = grpc_status(resp.headers());
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("grpc: {e}"))?;
    let code = body.trailers().and_then(grpc_status).or(head_status);
    if code != Some(0) {
        return Ok(Outcome::fail(format!(
            "grpc-status {}",
            code.map_or_else(|| "missing".to_owned(), |c| c.to_string())
        )));
    }
    let serving = grpc_health_status(&body.to_bytes());
    Ok(Outcome {
        ok: serving == Some(1),
        detail: match serving {
            Some(1) => "SERVING".into(),
            Some(2) => "NOT_SERVING".into(),
            Some(3) => "SERVICE_UNKNOWN".into(),
            Some(n) => format!("status {n}"),
            None => "UNKNOWN".into(),
        },
    })
}

fn grpc_status(h: &http::HeaderMap) -> Option<u32> {
    h.get("grpc-status")?.to_str().ok()?.parse().ok()
}

/// A length-prefixed `HealthCheckRequest { string service = 1; }`.
fn grpc_health_request(service: &str) -> Bytes {
    let mut msg = Vec::with_capacity(service.len() + 6);
    if !service.is_empty() {
        msg.push(0x0a); // field 1, length-delimited
        put_varint(&mut msg, service.len() as u64);
        msg.extend_from_slice(service.as_bytes());
    }
    let mut out = Vec::with_capacity(5 + msg.len());
    out.push(0); // not compressed
    out.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    out.extend_from_slice(&msg);
    out.into()
}

fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// The `status` (field 1, varint) of the first length-prefixed `HealthCheckResponse`;
/// `Some(0)` (UNKNOWN) when the message omits it, `None` when there is no message.
fn grpc_health_status(body: &[u8]) -> Option<u64> {
    let len = u32::from_be_bytes(body.get(1..5)?.try_into().ok()?) as usize;
    let mut msg = body.get(5..5 + len)?;
    while let Some((&key, rest)) = msg.split_first() {
        let (value, rest) = varint(rest)?;
        match key {
            0x08 => return Some(value),
            k if k & 7 == 0 => msg = rest,
            k if k & 7 == 2 => msg = rest.get(value as usize..)?,
            _ => return None,
        }
    }
    Some(0)
}

fn varint(b: &[u8]) -> Option<(u64, &[u8])> {
    let mut n = 0u64;
    for (i, &byte) in b.iter().enumerate().take(10) {
        n |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((n, &b[i + 1..]));
        }
    }
    None
}

/// An I/O error without the `(os error N)` suffix, for short status lines.
fn io_reason(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_owned(),
        None => s,
    }
}

/// Sends the probe request on `io` and returns the response status (the body is not read).
async fn http_status<T>(io: T, hc: &HealthCheckConfig, host: &str) -> Result<u16, String>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let req = probe_request(hc, host, true)?;
    let mut conn = std::pin::pin!(conn);
    let mut send = std::pin::pin!(tx.send_request(req));
    // The connection may finish (`Connection: close`) before `send` is polled again: the
    // response is then already delivered, so `send` is awaited either way.
    let resp = tokio::select! {
        biased;
        r = &mut send => r,
        _ = &mut conn => send.await,
    };
    Ok(resp.map_err(|e| format!("http: {e}"))?.status().as_u16())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_request_and_response_encoding() {
        assert_eq!(&grpc_health_request("")[..], &[0, 0, 0, 0, 0]);
        assert_eq!(
            &grpc_health_request("kuscia")[..],
            b"\0\0\0\0\x08\x0a\x06kuscia"
        );
        assert_eq!(grpc_health_status(&[0, 0, 0, 0, 2, 0x08, 1]), Some(1));
        assert_eq!(grpc_health_status(&[0, 0, 0, 0, 2, 0x08, 2]), Some(2));
        assert_eq!(grpc_health_status(&[0, 0, 0, 0, 0]), Some(0));
        assert_eq!(grpc_health_status(&[]), None);
    }
}

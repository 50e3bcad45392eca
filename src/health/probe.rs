//! One active probe of one server, bounded by the check's `timeout`. `tcp`: the connection is
//! established. `http`: `method path` over HTTP/1.1 (TLS with the upstream's client config when
//! the upstream is `https`), `Host` = the check's `host` or the probed address, alive when the
//! status matches `expect_status`. Probes use their own short-lived connection: they never take
//! one from, or add one to, the request path's pool.

use crate::config::{HealthCheckConfig, HealthCheckKind};
use crate::tls;
use crate::upstream::{Server, Settings};
use bytes::Bytes;
use http::{header, HeaderValue, Method, Request};
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
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
    let status = match &settings.tls {
        None => http_status(tcp, hc, &host).await?,
        Some(cfg) => {
            let sni = settings.config.tls.as_ref().and_then(|t| t.sni.as_deref());
            let name = tls::server_name(sni, &server.address.host)
                .ok_or_else(|| format!("tls: invalid server name {:?}", server.address.host))?;
            let stream = tokio_rustls::TlsConnector::from(cfg.clone())
                .connect(name, tcp)
                .await
                .map_err(|e| format!("tls: {e}"))?;
            http_status(stream, hc, &host).await?
        }
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
    let method = Method::from_bytes(hc.method.as_bytes()).map_err(|e| e.to_string())?;
    let host = HeaderValue::from_str(host).map_err(|_| format!("invalid Host {host:?}"))?;
    let req = Request::builder()
        .method(method)
        .uri(hc.path.as_str())
        .header(header::HOST, host)
        .header(header::USER_AGENT, USER_AGENT)
        .header(header::CONNECTION, "close")
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("request: {e}"))?;
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

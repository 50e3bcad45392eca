//! `swarmgate agent`: dial the hub over TLS (one connection per address of the hub name), send
//! the hello, then serve the hub's HTTP/2 CONNECT streams: each names a `host:port` that is
//! resolved here and dialled only when the address lies inside `allow` (403 otherwise), then
//! bytes are piped both ways. A lost or refused connection is retried with jittered exponential
//! backoff, 1 s doubling to 30 s, reset after a connection that was accepted. The hub name is
//! looked up again every 30 s: new addresses get a connection, vanished ones lose theirs.

use super::wire::{self, Answer, Hello};
use super::REASON_HEADER;
use crate::config::agent::{AgentConfig, Cidr};
use crate::config::UpstreamTls;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;

/// Time for TCP connect, TLS handshake and the hub's answer; also for dialling a target.
const DIAL_TIMEOUT: Duration = Duration::from_secs(10);
/// Backoff bounds between connection attempts.
const BACKOFF_MIN: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// How often the hub name is looked up again.
const RESOLVE_INTERVAL: Duration = Duration::from_secs(30);
/// Read buffer per direction of a piped stream.
const COPY_BUF: usize = 64 << 10;
/// Streams the hub may open at once on one connection.
const MAX_STREAMS: u32 = 4096;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("agent.token_file {path}: {source}")]
    Token {
        path: String,
        source: std::io::Error,
    },
    #[error("agent.tls_ca: {0}")]
    Tls(#[from] crate::tls::TlsError),
    #[error("agent.hub {0:?}: invalid host name for TLS")]
    ServerName(String),
}

/// Why one connection attempt ended.
#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error("connect: {0}")]
    Connect(std::io::Error),
    #[error("connect timed out")]
    Timeout,
    #[error("TLS: {0}")]
    Tls(std::io::Error),
    #[error("hello: {0}")]
    Hello(std::io::Error),
    #[error("refused by hub: {0}")]
    Refused(String),
}

struct Shared {
    cfg: AgentConfig,
    token: String,
    tls: tokio_rustls::TlsConnector,
    server_name: rustls::pki_types::ServerName<'static>,
}

/// Runs the agent until the process is stopped.
pub async fn run(cfg: AgentConfig) -> Result<(), AgentError> {
    let token = wire::read_token(&cfg.token_file).map_err(|source| AgentError::Token {
        path: cfg.token_file.display().to_string(),
        source,
    })?;
    let tls = crate::tls::client_config(
        &UpstreamTls {
            verify: true,
            ca: cfg.tls_ca.clone(),
            sni: None,
        },
        crate::config::Protocol::H2,
    )?;
    let host = crate::config::strip_port(&cfg.hub).trim_matches(['[', ']']);
    let server_name = crate::tls::server_name(None, host)
        .ok_or_else(|| AgentError::ServerName(cfg.hub.clone()))?;
    let shared = Arc::new(Shared {
        token,
        tls: tokio_rustls::TlsConnector::from(tls),
        server_name,
        cfg,
    });
    tracing::info!(agent = %shared.cfg.name, hub = %shared.cfg.hub, allow = ?shared.cfg.allow.iter().map(Cidr::to_string).collect::<Vec<_>>(), "tunnel agent starting");
    // One connection per address of the hub name, re-resolved every RESOLVE_INTERVAL: loops
    // start for new addresses and stop for vanished ones (a failed lookup changes nothing).
    let mut loops: HashMap<SocketAddr, tokio::task::JoinHandle<()>> = HashMap::new();
    let mut backoff = Backoff::default();
    loop {
        let wait = match tokio::net::lookup_host(shared.cfg.hub.as_str()).await {
            Ok(a) => {
                let addrs: Vec<SocketAddr> = a.collect();
                loops.retain(|addr, task| {
                    let keep = addrs.contains(addr);
                    if !keep {
                        tracing::info!(hub = %addr, "hub address gone; closing its tunnel");
                        task.abort();
                    }
                    keep
                });
                for addr in addrs {
                    loops
                        .entry(addr)
                        .or_insert_with(|| tokio::spawn(hub_loop(shared.clone(), addr)));
                }
                if loops.is_empty() {
                    tracing::warn!(hub = %shared.cfg.hub, "hub name resolved to no address");
                    backoff.next_delay()
                } else {
                    backoff.attempts = 0;
                    RESOLVE_INTERVAL
                }
            }
            Err(e) => {
                tracing::warn!(hub = %shared.cfg.hub, error = %e, "cannot resolve hub");
                if loops.is_empty() {
                    backoff.next_delay()
                } else {
                    RESOLVE_INTERVAL
                }
            }
        };
        tokio::time::sleep(wait).await;
    }
}

/// Keeps one connection to `addr` up.
async fn hub_loop(shared: Arc<Shared>, addr: SocketAddr) {
    let mut backoff = Backoff::default();
    let mut last_error = String::new();
    loop {
        match session(&shared, addr).await {
            Ok(ended) => {
                tracing::warn!(hub = %addr, reason = %ended, "tunnel to hub lost; reconnecting");
                backoff.attempts = 0;
                last_error.clear();
            }
            Err(e) => {
                let e = e.to_string();
                if e != last_error {
                    tracing::warn!(hub = %addr, error = %e, "tunnel to hub failed; retrying with backoff");
                    last_error = e;
                } else {
                    tracing::debug!(hub = %addr, error = %e, "tunnel to hub failed again");
                }
            }
        }
        tokio::time::sleep(backoff.next_delay()).await;
    }
}

/// One connection: Ok(reason it ended) once it had been accepted by the hub.
async fn session(shared: &Arc<Shared>, addr: SocketAddr) -> Result<String, SessionError> {
    let dial = async {
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(SessionError::Connect)?;
        let _ = tcp.set_nodelay(true);
        let mut tls = shared
            .tls
            .connect(shared.server_name.clone(), tcp)
            .await
            .map_err(SessionError::Tls)?;
        let hello = Hello {
            name: shared.cfg.name.clone(),
            token: shared.token.clone(),
        };
        wire::write_frame(&mut tls, &hello)
            .await
            .map_err(SessionError::Hello)?;
        let answer: Answer = wire::read_frame(&mut tls)
            .await
            .map_err(SessionError::Hello)?;
        if !answer.ok {
            return Err(SessionError::Refused(answer.reason));
        }
        Ok(tls)
    };
    let tls = tokio::time::timeout(DIAL_TIMEOUT, dial)
        .await
        .map_err(|_| SessionError::Timeout)??;
    tracing::info!(hub = %addr, agent = %shared.cfg.name, "tunnel to hub up");
    let ping = super::ping_interval(shared.cfg.keepalive_timeout);
    let svc_shared = shared.clone();
    let service = hyper::service::service_fn(move |req| {
        let shared = svc_shared.clone();
        async move { Ok::<_, std::convert::Infallible>(stream(&shared, req).await) }
    });
    let result = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(ping))
        .keep_alive_timeout(ping)
        .max_concurrent_streams(MAX_STREAMS)
        .initial_stream_window_size(super::STREAM_WINDOW)
        .initial_connection_window_size(super::CONN_WINDOW)
        .max_frame_size(super::MAX_FRAME)
        .serve_connection(TokioIo::new(tls), service)
        .await;
    Ok(result.map_or_else(|e| e.to_string(), |()| "closed by hub".to_owned()))
}

fn refuse(status: StatusCode, reason: String) -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(Bytes::from(reason.clone())));
    *res.status_mut() = status;
    if let Ok(v) = http::HeaderValue::from_str(&reason) {
        res.headers_mut().insert(REASON_HEADER, v);
    }
    res
}

/// One stream the hub opened: check, dial, answer, pipe.
async fn stream(shared: &Shared, req: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    if req.method() != http::Method::CONNECT {
        return refuse(StatusCode::METHOD_NOT_ALLOWED, "CONNECT only".into());
    }
    let Some(target) = req.uri().authority().map(|a| a.as_str().to_owned()) else {
        return refuse(StatusCode::BAD_REQUEST, "no target host:port".into());
    };
    let resolved: Vec<SocketAddr> = match tokio::net::lookup_host(target.as_str()).await {
        Ok(a) => a.collect(),
        Err(e) => return refuse(StatusCode::BAD_GATEWAY, format!("resolve {target}: {e}")),
    };
    // Only resolved addresses are checked, so a name cannot talk its way around `allow`.
    let Some(addr) = resolved
        .iter()
        .copied()
        .find(|a| shared.cfg.allow.iter().any(|n| n.contains(a.ip())))
    else {
        let reason = format!("target {target} is outside this agent's allow list");
        tracing::warn!(agent = %shared.cfg.name, target = %target, "tunnel stream refused: not in allow");
        return refuse(StatusCode::FORBIDDEN, reason);
    };
    let mut tcp = match tokio::time::timeout(DIAL_TIMEOUT, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return refuse(StatusCode::BAD_GATEWAY, format!("connect {addr}: {e}")),
        Err(_) => {
            return refuse(
                StatusCode::GATEWAY_TIMEOUT,
                format!("connect {addr} timed out"),
            )
        }
    };
    let _ = tcp.set_nodelay(true);
    tokio::spawn(async move {
        match hyper::upgrade::on(req).await {
            Ok(up) => {
                let mut up = TokioIo::new(up);
                if let Err(e) =
                    tokio::io::copy_bidirectional_with_sizes(&mut up, &mut tcp, COPY_BUF, COPY_BUF)
                        .await
                {
                    tracing::debug!(target = %addr, error = %e, "tunnel stream ended");
                }
            }
            Err(e) => tracing::debug!(target = %addr, error = %e, "tunnel stream upgrade failed"),
        }
    });
    Response::new(Full::new(Bytes::new()))
}

/// Jittered exponential backoff: each delay is drawn from [d/2, d], d doubling from 1 s to 30 s.
#[derive(Debug)]
struct Backoff {
    attempts: u32,
    rng: rand::rngs::SmallRng,
}

impl Default for Backoff {
    fn default() -> Self {
        use rand::SeedableRng;
        Backoff {
            attempts: 0,
            rng: rand::rngs::SmallRng::from_os_rng(),
        }
    }
}

impl Backoff {
    fn next_delay(&mut self) -> Duration {
        let d = BACKOFF_MIN
            .saturating_mul(1u32 << self.attempts.min(5))
            .min(BACKOFF_MAX);
        self.attempts = self.attempts.saturating_add(1);
        let jitter: f64 = rand::Rng::random_range(&mut self.rng, 0.5..=1.0);
        d.mul_f64(jitter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_cap_with_jitter() {
        let mut b = Backoff::default();
        let d: Vec<Duration> = (0..8).map(|_| b.next_delay()).collect();
        assert!(d[0] >= Duration::from_millis(500) && d[0] <= BACKOFF_MIN);
        assert!(d[1] >= Duration::from_secs(1) && d[1] <= Duration::from_secs(2));
        assert!(d[7] >= BACKOFF_MAX / 2 && d[7] <= BACKOFF_MAX);
    }
}

//! The hub's tunnel listener: TLS, the agent's hello (name + token, compared in constant time),
//! then an HTTP/2 client connection over it, registered under the agent's name until it ends.
//! Refusals are logged once per source address and reason, so a misconfigured agent retrying
//! with backoff does not flood the log.

use super::wire::{self, Answer, Hello};
use crate::config::TunnelConfig;
use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Sources whose last refusal reason is remembered (for logging each once).
const MAX_REMEMBERED_SOURCES: usize = 4096;
/// Time an agent has for its TLS handshake and hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error("tunnel.agents.{agent}.token_file {path}: {source}")]
    Token {
        agent: String,
        path: String,
        source: std::io::Error,
    },
    #[error("tunnel.tls: {0}")]
    Tls(#[from] crate::tls::TlsError),
    #[error("cannot listen on {addr} (tunnel.listen): {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A bound hub, ready to [`Hub::serve`].
pub struct Hub {
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    tokens: Arc<HashMap<String, String>>,
    keepalive: Duration,
    /// Last refusal reason logged per source address.
    refusals: Arc<Mutex<HashMap<IpAddr, String>>>,
}

impl Hub {
    /// Reads the token files and the certificate, and binds `tunnel.listen`.
    pub async fn bind(cfg: &TunnelConfig) -> Result<Hub, HubError> {
        let mut tokens = HashMap::new();
        for (agent, path) in &cfg.agents {
            let t = wire::read_token(path).map_err(|source| HubError::Token {
                agent: agent.clone(),
                path: path.display().to_string(),
                source,
            })?;
            tokens.insert(agent.clone(), t);
        }
        let tls = crate::tls::server_config(&cfg.tls)?;
        let listener = TcpListener::bind(cfg.listen)
            .await
            .map_err(|source| HubError::Bind {
                addr: cfg.listen,
                source,
            })?;
        Ok(Hub {
            listener,
            acceptor: tokio_rustls::TlsAcceptor::from(tls),
            tokens: Arc::new(tokens),
            keepalive: cfg.keepalive_timeout,
            refusals: Arc::default(),
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Accepts agents until `stop` turns true.
    pub async fn serve(self, mut stop: watch::Receiver<bool>) {
        let this = Arc::new(self);
        loop {
            let accepted = tokio::select! {
                a = this.listener.accept() => a,
                _ = stop.changed() => return,
            };
            match accepted {
                Ok((tcp, peer)) => {
                    let _ = tcp.set_nodelay(true);
                    tokio::spawn(this.clone().session(tcp, peer));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "tunnel accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    fn refuse_log(&self, peer: SocketAddr, reason: &str) {
        let mut seen = self.refusals.lock().unwrap_or_else(|e| e.into_inner());
        if seen.get(&peer.ip()).map(String::as_str) != Some(reason) {
            tracing::warn!(source = %peer.ip(), reason, "tunnel agent refused");
            if seen.len() >= MAX_REMEMBERED_SOURCES {
                seen.clear(); // bounded memory under a scan from many addresses
            }
            seen.insert(peer.ip(), reason.to_owned());
        } else {
            tracing::debug!(source = %peer.ip(), reason, "tunnel agent refused");
        }
    }

    async fn session(self: Arc<Self>, tcp: TcpStream, peer: SocketAddr) {
        let mut tls = match tokio::time::timeout(HELLO_TIMEOUT, self.acceptor.accept(tcp)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return self.refuse_log(peer, &format!("TLS handshake: {e}")),
            Err(_) => return self.refuse_log(peer, "TLS handshake timed out"),
        };
        let hello: Hello =
            match tokio::time::timeout(HELLO_TIMEOUT, wire::read_frame(&mut tls)).await {
                Ok(Ok(h)) => h,
                Ok(Err(e)) => return self.refuse_log(peer, &format!("bad hello: {e}")),
                Err(_) => return self.refuse_log(peer, "no hello in time"),
            };
        let verdict = match self.tokens.get(&hello.name) {
            None => Err(format!("unknown agent name {:?}", hello.name)),
            Some(t) if !wire::constant_time_eq(t.as_bytes(), hello.token.as_bytes()) => {
                Err(format!("wrong token for agent {:?}", hello.name))
            }
            Some(_) => Ok(()),
        };
        let answer = Answer {
            ok: verdict.is_ok(),
            reason: verdict.clone().err().unwrap_or_default(),
        };
        if let Err(reason) = verdict {
            self.refuse_log(peer, &reason);
            let _ = wire::write_frame(&mut tls, &answer).await;
            return;
        }
        if wire::write_frame(&mut tls, &answer).await.is_err() {
            return;
        }
        self.refusals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&peer.ip());
        let ping = super::ping_interval(self.keepalive);
        let hs = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .keep_alive_interval(ping)
            .keep_alive_timeout(ping)
            .keep_alive_while_idle(true)
            .initial_stream_window_size(super::STREAM_WINDOW)
            .initial_connection_window_size(super::CONN_WINDOW)
            .max_frame_size(super::MAX_FRAME)
            .handshake::<_, Empty<Bytes>>(TokioIo::new(tls))
            .await;
        let (tx, conn) = match hs {
            Ok(x) => x,
            Err(e) => return self.refuse_log(peer, &format!("HTTP/2 handshake: {e}")),
        };
        let registry = super::registry();
        let id = registry.add(&hello.name, tx);
        tracing::info!(agent = %hello.name, source = %peer, connections = registry.count(&hello.name), "tunnel agent connected");
        let result = conn.await;
        registry.remove(&hello.name, id);
        tracing::warn!(agent = %hello.name, source = %peer, reason = %result.err().map_or_else(|| "closed".to_owned(), |e| e.to_string()), "tunnel agent disconnected");
    }
}

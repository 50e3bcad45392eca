//! The hub's connected agents by name (process-wide: the upstream dialer reaches it without
//! being handed it), and opening one proxied stream through them. Several connections under
//! one name (several agents, or one agent connected to several hubs' addresses) are used in
//! turn; a stream that cannot be opened on one moves on to the next.

use super::{TunnelError, TunnelStream, REASON_HEADER};
use bytes::Bytes;
use http_body_util::Empty;
use hyper::client::conn::http2::SendRequest;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{LazyLock, Mutex};

#[derive(Debug, Clone)]
struct Session {
    id: u64,
    tx: SendRequest<Empty<Bytes>>,
}

#[derive(Debug, Default)]
pub struct Registry {
    agents: Mutex<HashMap<String, Vec<Session>>>,
    next: AtomicUsize,
    ids: AtomicU64,
}

static REGISTRY: LazyLock<Registry> = LazyLock::new(Registry::default);

/// The process-wide registry (empty unless this process runs a hub).
pub fn registry() -> &'static Registry {
    &REGISTRY
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Session>>> {
        self.agents.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether at least one live connection of agent `name` is registered.
    pub fn connected(&self, name: &str) -> bool {
        self.lock()
            .get(name)
            .is_some_and(|v| v.iter().any(|s| !s.tx.is_closed()))
    }

    /// Live connections of agent `name`.
    pub fn count(&self, name: &str) -> usize {
        self.lock()
            .get(name)
            .map_or(0, |v| v.iter().filter(|s| !s.tx.is_closed()).count())
    }

    /// Registers an authenticated agent connection; returns its id for [`Registry::remove`].
    pub fn add(&self, name: &str, tx: SendRequest<Empty<Bytes>>) -> u64 {
        let id = self.ids.fetch_add(1, Ordering::Relaxed);
        let mut agents = self.lock();
        let list = agents.entry(name.to_owned()).or_default();
        list.push(Session { id, tx });
        crate::metrics::metrics()
            .tunnel_agents
            .with_label_values(&[name])
            .set(list.len() as i64);
        id
    }

    pub fn remove(&self, name: &str, id: u64) {
        let mut agents = self.lock();
        let left = match agents.get_mut(name) {
            Some(list) => {
                list.retain(|s| s.id != id);
                list.len()
            }
            None => 0,
        };
        if left == 0 {
            agents.remove(name);
        }
        crate::metrics::metrics()
            .tunnel_agents
            .with_label_values(&[name])
            .set(left as i64);
    }

    /// Opens a stream to `authority` (`host:port`, resolved and checked by the agent) through
    /// a connection of agent `name`.
    pub async fn open(&self, name: &str, authority: &str) -> Result<TunnelStream, TunnelError> {
        let sessions: Vec<Session> = self
            .lock()
            .get(name)
            .map(|v| v.iter().filter(|s| !s.tx.is_closed()).cloned().collect())
            .unwrap_or_default();
        let streams = &crate::metrics::metrics().tunnel_streams_total;
        if sessions.is_empty() {
            streams.with_label_values(&[name, "no_agent"]).inc();
            return Err(TunnelError::NoAgent(name.to_owned()));
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let mut last = None;
        for k in 0..sessions.len() {
            let mut tx = sessions[(start + k) % sessions.len()].tx.clone();
            match connect(&mut tx, authority).await {
                Ok(Ok(io)) => {
                    streams.with_label_values(&[name, "opened"]).inc();
                    return Ok(TunnelStream::new(io, name));
                }
                Ok(Err(reason)) => {
                    streams.with_label_values(&[name, "refused"]).inc();
                    return Err(TunnelError::Refused {
                        agent: name.to_owned(),
                        reason,
                    });
                }
                // This connection is going away: try the next one of the same name.
                Err(e) => last = Some(e),
            }
        }
        streams.with_label_values(&[name, "failed"]).inc();
        match last {
            Some(source) => Err(TunnelError::Stream {
                agent: name.to_owned(),
                source,
            }),
            None => Err(TunnelError::NoAgent(name.to_owned())),
        }
    }
}

/// One CONNECT on one agent connection: the upgraded stream, or the agent's refusal reason.
async fn connect(
    tx: &mut SendRequest<Empty<Bytes>>,
    authority: &str,
) -> Result<Result<hyper::upgrade::Upgraded, String>, hyper::Error> {
    tx.ready().await?;
    let req = match http::Request::builder()
        .method(http::Method::CONNECT)
        .uri(authority)
        .body(Empty::new())
    {
        Ok(r) => r,
        Err(e) => return Ok(Err(format!("invalid target {authority:?}: {e}"))),
    };
    let res = tx.send_request(req).await?;
    if res.status() != http::StatusCode::OK {
        let reason = res
            .headers()
            .get(REASON_HEADER)
            .and_then(|v| v.to_str().ok())
            .map_or_else(|| format!("status {}", res.status()), str::to_owned);
        return Ok(Err(reason));
    }
    hyper::upgrade::on(res).await.map(Ok)
}

//! Reverse tunnel (KubeSphere Tower's job): an agent inside a network the hub cannot dial opens
//! one long-lived TLS connection OUT to the hub, proves its name with its token, and then the
//! roles reverse: the hub is the HTTP/2 client on that connection and opens one `CONNECT host:port`
//! stream per proxied TCP connection; the agent dials the target only if it lies inside its
//! `allow` and pipes bytes both ways. HTTP/2 (hyper, already linked for the proxy) gives stream
//! multiplexing, per-stream flow control and PINGs for liveness without another crate.
//!
//! - [`wire`]: the hello (name + token) exchanged before HTTP/2 starts.
//! - [`registry`]: connected agents by name, and opening a stream through one of them.
//! - [`hub`]: the hub's TLS listener.
//! - [`agent`]: `swarmgate agent`: connect, authenticate, serve streams, reconnect with backoff.

pub mod agent;
pub mod hub;
pub mod registry;
mod stream;
pub mod wire;

pub use registry::{registry, Registry};
pub use stream::TunnelStream;

/// Why a stream through the tunnel could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum TunnelError {
    #[error("tunnel down: no agent {0:?} connected")]
    NoAgent(String),
    #[error("refused by agent {agent:?}: {reason}")]
    Refused { agent: String, reason: String },
    #[error("tunnel to agent {agent:?}: {source}")]
    Stream { agent: String, source: hyper::Error },
}

/// HTTP/2 flow-control windows and largest frame on tunnel connections (both sides): a stream
/// may have 4 MiB in flight, the connection 16 MiB, in frames of up to 256 KiB.
pub(crate) const STREAM_WINDOW: u32 = 4 << 20;
pub(crate) const CONN_WINDOW: u32 = 16 << 20;
pub(crate) const MAX_FRAME: u32 = 256 << 10;

/// Header on a refused CONNECT answer carrying the agent's reason.
pub const REASON_HEADER: &str = "swarmgate-tunnel-reason";

/// The HTTP/2 PING interval for a `keepalive_timeout`: a PING every half of it, each allowed
/// the other half to be answered, so a dead peer is noticed within `keepalive_timeout`.
pub fn ping_interval(keepalive_timeout: std::time::Duration) -> std::time::Duration {
    keepalive_timeout / 2
}

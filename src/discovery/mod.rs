//! Service discovery: sources that tell which replicas exist. A source publishes the whole set
//! it sees as a [`DiscoverySnapshot`] on a `tokio::sync::watch` channel (latest wins, so bursts
//! are coalesced and the request path never waits); `crate::upstream` applies snapshots to the
//! live server sets.

mod apply;
pub mod dns;
pub mod dns_wire;
pub mod docker;
pub mod docker_filter;

pub use apply::DiscoveryManager;

use std::net::SocketAddr;

/// One replica found by a discovery source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveredBackend {
    /// Address to dial: the replica's IP on the configured network and its port.
    pub addr: SocketAddr,
    /// Weight override (label `swarmgate.weight`); `None` = the discovery's default weight.
    pub weight: Option<u32>,
    /// Upstream override (label `swarmgate.upstream`); `None` = the upstream that configured
    /// the discovery.
    pub upstream: Option<String>,
    /// Container or task name, for logs and the admin API.
    pub name: String,
}

/// Everything a source currently knows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiscoverySnapshot {
    /// The replicas; while the source is down this is the last known set.
    pub backends: Vec<DiscoveredBackend>,
    /// Whether the last attempt to talk to the source succeeded.
    pub up: bool,
    /// Why the source is down, when it is.
    pub error: Option<String>,
}

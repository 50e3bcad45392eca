//! Docker Engine discovery (containers and swarm modes). Implemented in the discovery issue.

use super::DiscoverySnapshot;
use crate::config::DockerDiscoveryConfig;
use tokio::sync::watch;

/// Publishes the replicas found through the Docker API until every receiver is gone.
pub async fn run(_cfg: DockerDiscoveryConfig, tx: watch::Sender<DiscoverySnapshot>) {
    tx.closed().await;
}

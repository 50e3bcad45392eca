//! swarmgate: a load-balancing front for clustered Kuscia replicas on a Docker Swarm overlay.

pub mod config;
pub mod discovery;

//! Docker Engine discovery (containers and swarm modes). Implemented in the discovery issue.

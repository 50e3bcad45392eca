//! swarmgate: a load-balancing front for clustered Kuscia replicas on a Docker Swarm overlay.
//!
//! Layout: `config` (YAML → validated config), `discovery` (Docker), `balance` (pure selectors),
//! `upstream` (live server sets, pools, dialing), `h1` (our HTTP/1.1 codec, no I/O), `proxy` (listeners, handler, forwarding),
//! `body` (the request body, below `proxy` and `upstream`), `timer` (lazily moved deadlines),
//! `route` (route kinds that compute their target per request, e.g. `gateway`),
//! `runtime` (routes + upstreams, swapped on reload), `app` (lifecycle), `health` (active checks),
//! `admin`, `metrics`, `tls`.

pub mod admin;
pub mod app;
pub mod balance;
pub mod batch;
pub mod body;
pub mod cli;
pub mod config;
pub mod discovery;
pub mod h1;
pub mod h2ping;
pub mod health;
pub mod import;
pub mod metrics;
pub mod proxy;
pub mod route;
pub mod runtime;
pub mod timer;
pub mod tls;
pub mod tunnel;
pub mod upstream;

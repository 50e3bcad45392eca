//! Active health checks (nginx_upstream_check_module semantics): a supervisor task probes every
//! server of every upstream that has a `health_check`, and flips [`crate::upstream::Health`]
//! after `rise` consecutive successes or `fall` consecutive failures. The request path only
//! reads the resulting flag; it never waits for a probe.

mod counter;
mod probe;
mod supervisor;

pub use counter::RiseFall;
pub use probe::{probe, Outcome};
pub use supervisor::run;

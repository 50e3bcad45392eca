//! The `table` route kind: `<prefix><key>/<rest>` goes to the target stored under `key` (the
//! openresty + Redis workspace proxy, JupyterHub's configurable-http-proxy). The upstream gets
//! `/<rest>` and the query; `<prefix><key>` without the slash is redirected (308) to
//! `<prefix><key>/`. Keys are 1-256 of `A-Z a-z 0-9 . _ - ~` (not `.` or `..`).
//!
//! Targets come from the store (`store.rs`: embedded redb or a Redis hash), must be in the
//! route's `allow` networks and are never swarmgate's own listeners. Each target gets a
//! one-server upstream from a bounded cache ([`DynamicUpstreams`]); metrics name the table
//! (`table/<name>`), never the key or the target.

pub mod embedded;
pub mod redis;
mod resp;
pub mod store;

use crate::config::{ServerAddress, TableConfig};
use crate::tls::TlsError;
use crate::upstream::dynamic::DEFAULT_MAX_TARGETS;
use crate::upstream::{DynamicUpstreams, Settings, Upstream};
use http::Uri;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
pub use store::{Lookup, Store};

/// `last_activity` of embedded tables is written back this often.
const FLUSH_EVERY: Duration = Duration::from_secs(10);

/// A store that cannot answer, or an entry it holds that is not a target.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("{0}")]
    Unavailable(String),
    #[error("stored entry is not a target: {0}")]
    BadEntry(String),
}

/// Why a table request is not forwarded.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    /// `<prefix><key>` without the slash: redirect to this location (308).
    #[error("redirect to {0}")]
    Redirect(String),
    /// Not a valid key (400).
    #[error("malformed table path: {0}")]
    Malformed(&'static str),
    /// No such key (404).
    #[error("unknown key")]
    UnknownKey,
    /// The store cannot answer and the key is not cached (503).
    #[error("table store unavailable: {0}")]
    Unavailable(StoreError),
    /// The stored target is not allowed (403).
    #[error("table target refused: {0}")]
    Refused(&'static str),
}

/// Whether `key` is a table key: 1-256 of `A-Z a-z 0-9 . _ - ~`, not `.` or `..`.
pub fn valid_key(key: &str) -> bool {
    (1..=256).contains(&key.len())
        && key != "."
        && key != ".."
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'~'))
}

/// A live table route.
#[derive(Debug)]
pub struct Table {
    prefix: String,
    config: TableConfig,
    store: Store,
    targets: DynamicUpstreams,
    metric_name: String,
    /// Unix seconds of the last `last_activity` flush.
    flushed_at: AtomicU64,
}

impl Table {
    /// The table route under `prefix` (ending in `/`). Opens or reuses the store (blocking for
    /// the embedded one).
    pub fn new(
        prefix: &str,
        config: &TableConfig,
        state_dir: &Path,
    ) -> Result<Table, TableBuildError> {
        let template = Settings::new(&config.upstream_template())?;
        let store = Store::open(config, state_dir)?;
        Ok(Table {
            prefix: prefix.to_owned(),
            config: config.clone(),
            store,
            targets: DynamicUpstreams::new(
                template,
                1,
                Duration::from_secs(10),
                DEFAULT_MAX_TARGETS,
            ),
            metric_name: format!("table/{}", config.name),
            flushed_at: AtomicU64::new(embedded::now_secs()),
        })
    }

    /// Whether this table was built from the same route (a reload keeps it and its pools).
    pub fn same(&self, prefix: &str, config: &TableConfig) -> bool {
        self.prefix == prefix && self.config == *config
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    pub fn config(&self) -> &TableConfig {
        &self.config
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The upstream for the request's key and the request target to send it, or why not.
    pub async fn resolve(
        &self,
        uri: &Uri,
        own: &[SocketAddr],
    ) -> Result<(Arc<Upstream>, Uri), TableError> {
        let tail = uri
            .path()
            .strip_prefix(self.prefix.as_str())
            .ok_or(TableError::Malformed("path outside the route's prefix"))?;
        let (key, rest) = match tail.find('/') {
            Some(i) => tail.split_at(i),
            None if tail.is_empty() => return Err(TableError::UnknownKey),
            None => {
                if !valid_key(tail) {
                    return Err(TableError::Malformed("invalid key"));
                }
                let mut loc = format!("{}{tail}/", self.prefix);
                if let Some(q) = uri.query() {
                    loc.push('?');
                    loc.push_str(q);
                }
                return Err(TableError::Redirect(loc));
            }
        };
        if !valid_key(key) {
            return Err(TableError::Malformed("invalid key"));
        }
        let (found, how) = self.store.lookup(key).await;
        crate::metrics::metrics()
            .table_lookups_total
            .with_label_values(&[self.config.name.as_str(), how.label()])
            .inc();
        let target = found
            .map_err(|e| match e {
                // Hostnames and the like: refused as the admin API refuses them.
                StoreError::BadEntry(_) => {
                    TableError::Refused("stored target is not an ip:port address")
                }
                e => TableError::Unavailable(e),
            })?
            .ok_or(TableError::UnknownKey)?;
        if !self.config.allows(target.ip()) {
            return Err(TableError::Refused("target outside the table's allow list"));
        }
        if super::is_own_listener(target.ip(), target.port(), own) {
            return Err(TableError::Refused("target is swarmgate itself"));
        }
        let target_uri = super::rest_with_query(rest, uri)
            .ok_or(TableError::Malformed("invalid request target"))?;
        let upstream = self
            .targets
            .get(&self.metric_name, ServerAddress::from_socket(target));
        Ok((upstream, target_uri))
    }

    /// Drops idle pooled connections and targets unused for 60 s; every 10 s, writes the
    /// embedded table's `last_activity` values back (off the async threads).
    pub fn reap(self: &Arc<Self>, now: Instant) {
        self.targets.reap(now);
        let secs = embedded::now_secs();
        let last = self.flushed_at.load(Ordering::Relaxed);
        if secs.saturating_sub(last) >= FLUSH_EVERY.as_secs()
            && self
                .flushed_at
                .compare_exchange(last, secs, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            if let Store::Embedded(t) = &self.store {
                let t = t.clone();
                tokio::task::spawn_blocking(move || {
                    if let Err(e) = t.flush() {
                        tracing::warn!(error = %e, "table last_activity flush failed");
                    }
                });
            }
        }
    }

    /// Writes the embedded table's `last_activity` values back now (blocking; at shutdown).
    pub fn flush(&self) {
        if let Store::Embedded(t) = &self.store {
            if let Err(e) = t.flush() {
                tracing::warn!(table = %self.config.name, error = %e, "table last_activity flush failed");
            }
        }
    }
}

/// Why a table route cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum TableBuildError {
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

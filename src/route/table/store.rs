//! A table's store: embedded (redb, writable through the admin API) or Redis (read only).

use super::embedded::EmbeddedTable;
use super::redis::{RedisTable, Source};
use super::StoreError;
use crate::config::{TableConfig, TableStore};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

#[derive(Debug, Clone)]
pub enum Store {
    Embedded(Arc<EmbeddedTable>),
    Redis(Arc<RedisTable>),
}

/// How a lookup was answered (the `result` label of `swarmgate_table_lookups_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// From memory (the embedded table or the Redis cache).
    Hit,
    /// Asked Redis, which had it.
    Miss,
    /// No such key.
    Unknown,
    /// The store could not answer.
    Error,
}

impl Lookup {
    pub const ALL: [Lookup; 4] = [Lookup::Hit, Lookup::Miss, Lookup::Unknown, Lookup::Error];

    pub fn label(self) -> &'static str {
        match self {
            Lookup::Hit => "hit",
            Lookup::Miss => "miss",
            Lookup::Unknown => "unknown",
            Lookup::Error => "error",
        }
    }
}

impl Store {
    /// Opens (or reuses) the store of `config` (blocking for the embedded store).
    pub fn open(config: &TableConfig, state_dir: &Path) -> Result<Store, StoreError> {
        Ok(match &config.store {
            TableStore::Embedded => Store::Embedded(EmbeddedTable::open(state_dir, &config.name)?),
            TableStore::Redis(url) => {
                Store::Redis(RedisTable::open(url, &config.name, config.cache_ttl))
            }
        })
    }

    /// The target under `key`, and how it was found.
    pub async fn lookup(&self, key: &str) -> (Result<Option<SocketAddr>, StoreError>, Lookup) {
        match self {
            Store::Embedded(t) => match t.lookup(key) {
                Some(a) => (Ok(Some(a)), Lookup::Hit),
                None => (Ok(None), Lookup::Unknown),
            },
            Store::Redis(t) => match t.lookup(key).await {
                Ok((None, _)) => (Ok(None), Lookup::Unknown),
                Ok((Some(a), Source::Cache)) => (Ok(Some(a)), Lookup::Hit),
                Ok((Some(a), Source::Redis)) => (Ok(Some(a)), Lookup::Miss),
                Err(e) => (Err(e), Lookup::Error),
            },
        }
    }

    /// Whether the store answers (an embedded store always does).
    pub fn is_up(&self) -> bool {
        match self {
            Store::Embedded(_) => true,
            Store::Redis(t) => t.is_up(),
        }
    }

    /// Entries known: all of an embedded table, the cached ones of a Redis table.
    pub fn entries(&self) -> usize {
        match self {
            Store::Embedded(t) => t.len(),
            Store::Redis(t) => t.cached_entries(),
        }
    }
}

//! `routes[i].table` → [`TableConfig`]: `name` required, `redis` required with `store: redis`
//! (and only then), `cache_ttl` default 2 s.

use super::super::gateway::valid_cluster_id;
use super::super::raw::RawTable;
use super::super::{ConfigError, RedisUrl, Scheme, TableConfig, TableStore, TableStoreKind};
use super::Validator;
use std::time::Duration;

impl Validator<'_> {
    pub(super) fn table(
        &self,
        i: usize,
        path_prefix: &str,
        t: RawTable,
    ) -> Result<TableConfig, ConfigError> {
        let key = |k: &str| format!("routes[{i}].table.{k}");
        let err = |k: &str, line_key: &str, msg: String| self.invalid(key(k), line_key, None, msg);
        self.prefix_is_dir(i, path_prefix, "table", "e.g. /ws/")?;
        let name = match t.name {
            Some(n) if valid_cluster_id(&n) => n,
            Some(n) => {
                return Err(err(
                    "name",
                    "name",
                    format!("invalid table name {n:?} (1-64 of A-Z a-z 0-9 . _ -)"),
                ))
            }
            None => return Err(err("name", "table", "required (e.g. hosts)".into())),
        };
        let store = match (t.store.unwrap_or(TableStoreKind::Embedded), t.redis) {
            (TableStoreKind::Embedded, None) => TableStore::Embedded,
            (TableStoreKind::Embedded, Some(_)) => {
                return Err(err("redis", "redis", "needs `store: redis`".into()))
            }
            (TableStoreKind::Redis, Some(url)) => TableStore::Redis(
                RedisUrl::parse(url.trim()).map_err(|e| err("redis", "redis", e))?,
            ),
            (TableStoreKind::Redis, None) => {
                return Err(err(
                    "redis",
                    "store",
                    "required with `store: redis` (e.g. redis://127.0.0.1:6379/0)".into(),
                ))
            }
        };
        let cache_ttl = t.cache_ttl.map_or(Duration::from_secs(2), |d| d.0);
        if t.allow.as_ref().is_some_and(Vec::is_empty) {
            return Err(err(
                "allow",
                "allow",
                "must list at least one network (omit it to allow any target)".into(),
            ));
        }
        Ok(TableConfig {
            name,
            store,
            cache_ttl,
            allow: t.allow.unwrap_or_default(),
            scheme: t.scheme.unwrap_or(Scheme::Http),
        })
    }
}

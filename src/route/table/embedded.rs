//! The embedded table store: `<state_dir>/tables.redb` (redb: transactional, crash-safe), one
//! redb table per route table, key → (target, created, last_activity) with times in Unix
//! seconds.
//!
//! Reads come from an in-memory copy loaded at open. A write commits its redb transaction
//! (durable on return) before the memory copy changes and before the API answers.
//! `last_activity` is kept in memory and written back by [`EmbeddedTable::flush`] (every 10 s
//! and at shutdown).

use super::StoreError;
use redb::{Database, ReadableTable, TableDefinition};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{SystemTime, UNIX_EPOCH};

/// The file in `state_dir`.
pub const FILE: &str = "tables.redb";

/// Stored value: (target, created, last_activity).
type Row<'a> = (&'a str, u64, u64);

/// One entry as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryView {
    pub key: String,
    pub target: SocketAddr,
    pub created: u64,
    pub last_activity: u64,
}

#[derive(Debug)]
struct Entry {
    target: SocketAddr,
    created: u64,
    last_activity: AtomicU64,
    /// `last_activity` as last written to the file.
    flushed: AtomicU64,
}

#[derive(Debug)]
pub struct EmbeddedTable {
    db: Arc<Database>,
    name: String,
    entries: RwLock<HashMap<String, Arc<Entry>>>,
    /// Serialises writers, so that the file and the memory copy change in the same order.
    write: Mutex<()>,
}

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn db_err(e: impl Into<redb::Error>) -> StoreError {
    StoreError::Unavailable(format!("embedded store: {}", e.into()))
}

type Dbs = Mutex<HashMap<PathBuf, Weak<Database>>>;
type Tables = Mutex<HashMap<(PathBuf, String), Weak<EmbeddedTable>>>;

/// redb allows one open per file per process: databases and tables are shared by path.
fn dbs() -> &'static Dbs {
    static R: std::sync::OnceLock<Dbs> = std::sync::OnceLock::new();
    R.get_or_init(Default::default)
}

fn tables() -> &'static Tables {
    static R: std::sync::OnceLock<Tables> = std::sync::OnceLock::new();
    R.get_or_init(Default::default)
}

fn open_db(state_dir: &Path) -> Result<(PathBuf, Arc<Database>), StoreError> {
    std::fs::create_dir_all(state_dir).map_err(|e| {
        StoreError::Unavailable(format!(
            "cannot create state_dir {}: {e}",
            state_dir.display()
        ))
    })?;
    let path = state_dir.join(FILE);
    let key = std::fs::canonicalize(state_dir).map_or_else(|_| path.clone(), |d| d.join(FILE));
    let mut reg = dbs().lock().unwrap_or_else(|e| e.into_inner());
    reg.retain(|_, w| w.strong_count() > 0);
    if let Some(db) = reg.get(&key).and_then(Weak::upgrade) {
        return Ok((key, db));
    }
    let db =
        Arc::new(Database::create(&path).map_err(|e| {
            StoreError::Unavailable(format!("cannot open {}: {e}", path.display()))
        })?);
    reg.insert(key.clone(), Arc::downgrade(&db));
    Ok((key, db))
}

impl EmbeddedTable {
    /// The table `name` in `state_dir`, loaded into memory (shared with any live route that
    /// uses the same one). Blocking: call at start or reload.
    pub fn open(state_dir: &Path, name: &str) -> Result<Arc<EmbeddedTable>, StoreError> {
        let (path, db) = open_db(state_dir)?;
        let mut reg = tables().lock().unwrap_or_else(|e| e.into_inner());
        reg.retain(|_, w| w.strong_count() > 0);
        let key = (path, name.to_owned());
        if let Some(t) = reg.get(&key).and_then(Weak::upgrade) {
            return Ok(t);
        }
        let mut entries = HashMap::new();
        let txn = db.begin_read().map_err(db_err)?;
        match txn.open_table(Self::def(name)) {
            Ok(t) => {
                for row in t.iter().map_err(db_err)? {
                    let (k, v) = row.map_err(db_err)?;
                    let (target, created, last) = v.value();
                    let Ok(target) = crate::config::table::parse_target(target) else {
                        tracing::warn!(table = name, key = k.value(), "skipping unparsable entry");
                        continue;
                    };
                    entries.insert(
                        k.value().to_owned(),
                        Arc::new(Entry {
                            target,
                            created,
                            last_activity: AtomicU64::new(last),
                            flushed: AtomicU64::new(last),
                        }),
                    );
                }
            }
            Err(redb::TableError::TableDoesNotExist(_)) => {}
            Err(e) => return Err(db_err(e)),
        }
        let t = Arc::new(EmbeddedTable {
            db,
            name: name.to_owned(),
            entries: RwLock::new(entries),
            write: Mutex::new(()),
        });
        reg.insert(key, Arc::downgrade(&t));
        Ok(t)
    }

    fn def(name: &str) -> TableDefinition<'_, &'static str, Row<'static>> {
        TableDefinition::new(name)
    }

    /// The target under `key`; records the activity.
    pub fn lookup(&self, key: &str) -> Option<SocketAddr> {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        let e = entries.get(key)?;
        e.last_activity.store(now_secs(), Ordering::Relaxed);
        Some(e.target)
    }

    pub fn len(&self) -> usize {
        self.entries.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn view(key: &str, e: &Entry) -> EntryView {
        EntryView {
            key: key.to_owned(),
            target: e.target,
            created: e.created,
            last_activity: e.last_activity.load(Ordering::Relaxed),
        }
    }

    pub fn get(&self, key: &str) -> Option<EntryView> {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        entries.get(key).map(|e| Self::view(key, e))
    }

    /// Every entry, sorted by key.
    pub fn list(&self) -> Vec<EntryView> {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<_> = entries.iter().map(|(k, e)| Self::view(k, e)).collect();
        v.sort_by(|a, b| a.key.cmp(&b.key));
        v
    }

    /// Sets `key` → `target` (durable on return; blocking). Returns the entry and whether it
    /// is new. An existing key keeps its `created`.
    pub fn put(&self, key: &str, target: SocketAddr) -> Result<(EntryView, bool), StoreError> {
        let _w = self.write.lock().unwrap_or_else(|e| e.into_inner());
        let now = now_secs();
        let old = self
            .entries
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .cloned();
        let created = old.as_ref().map_or(now, |e| e.created);
        let text = target.to_string();
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            let mut t = txn.open_table(Self::def(&self.name)).map_err(db_err)?;
            t.insert(key, (text.as_str(), created, now))
                .map_err(db_err)?;
        }
        txn.commit().map_err(db_err)?;
        let entry = Arc::new(Entry {
            target,
            created,
            last_activity: AtomicU64::new(now),
            flushed: AtomicU64::new(now),
        });
        let view = Self::view(key, &entry);
        self.entries
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.to_owned(), entry);
        Ok((view, old.is_none()))
    }

    /// Removes `key` (durable on return; blocking). Whether it existed.
    pub fn delete(&self, key: &str) -> Result<bool, StoreError> {
        let _w = self.write.lock().unwrap_or_else(|e| e.into_inner());
        let txn = self.db.begin_write().map_err(db_err)?;
        let existed = {
            let mut t = txn.open_table(Self::def(&self.name)).map_err(db_err)?;
            let removed = t.remove(key).map_err(db_err)?;
            removed.is_some()
        };
        txn.commit().map_err(db_err)?;
        self.entries
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
        Ok(existed)
    }

    /// Writes changed `last_activity` values to the file (blocking). Returns how many.
    pub fn flush(&self) -> Result<usize, StoreError> {
        let _w = self.write.lock().unwrap_or_else(|e| e.into_inner());
        let changed: Vec<(String, Arc<Entry>)> = self
            .entries
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|(_, e)| {
                e.last_activity.load(Ordering::Relaxed) != e.flushed.load(Ordering::Relaxed)
            })
            .map(|(k, e)| (k.clone(), e.clone()))
            .collect();
        if changed.is_empty() {
            return Ok(0);
        }
        let txn = self.db.begin_write().map_err(db_err)?;
        let mut written = Vec::with_capacity(changed.len());
        {
            let mut t = txn.open_table(Self::def(&self.name)).map_err(db_err)?;
            for (k, e) in &changed {
                let last = e.last_activity.load(Ordering::Relaxed);
                let text = e.target.to_string();
                t.insert(k.as_str(), (text.as_str(), e.created, last))
                    .map_err(db_err)?;
                written.push(last);
            }
        }
        txn.commit().map_err(db_err)?;
        for ((_, e), last) in changed.iter().zip(written) {
            e.flushed.store(last, Ordering::Relaxed);
        }
        Ok(changed.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn survives_reopen_and_shares_one_database() {
        let dir = std::env::temp_dir().join(format!("swarmgate-embedded-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let t = EmbeddedTable::open(&dir, "hosts").unwrap();
        let other = EmbeddedTable::open(&dir, "other").unwrap();
        let a: SocketAddr = "10.0.0.1:80".parse().unwrap();
        assert!(t.put("k1", a).unwrap().1);
        assert!(!t.put("k1", a).unwrap().1);
        t.put("k2", a).unwrap();
        assert!(t.delete("k2").unwrap());
        assert!(!t.delete("k2").unwrap());
        assert_eq!(t.lookup("k1"), Some(a));
        assert_eq!(other.lookup("k1"), None);
        assert!(Arc::ptr_eq(
            &t,
            &EmbeddedTable::open(&dir, "hosts").unwrap()
        ));
        t.entries.read().unwrap()["k1"]
            .last_activity
            .store(42, Ordering::Relaxed);
        assert_eq!(t.flush().unwrap(), 1);
        drop((t, other));
        let t = EmbeddedTable::open(&dir, "hosts").unwrap();
        assert_eq!(t.list().len(), 1);
        assert_eq!(t.get("k1").unwrap().last_activity, 42);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

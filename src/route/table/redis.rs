//! A Redis-backed table: `HGET <name> <key>` → `host:port`, exactly the openresty seed's layout.
//!
//! Lookups are cached for `cache_ttl`. A watcher connection subscribes to the hash's keyspace
//! notifications (`__keyspace@<db>__:<name>`, enabled with `CONFIG SET notify-keyspace-events
//! Kh` where the server allows it) and invalidates the cache on every change. The watcher
//! reconnects with backoff (1 s doubling to 30 s) and its state is the table's "store up".
//! While Redis is unreachable, cached targets keep being served past their ttl; keys never
//! seen are answered 503.

use super::resp::{Conn, Reply};
use super::StoreError;
use crate::config::RedisUrl;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// Connect and command timeout (as the seed's Lua script: 1 s).
const TIMEOUT: Duration = Duration::from_secs(1);
/// Idle command connections kept.
const MAX_IDLE: usize = 8;
/// Cached keys at most; beyond it the cache is cleared.
const MAX_CACHED: usize = 100_000;
/// Watcher: a PING when the subscription was silent this long; dead after twice as long.
const WATCH_IDLE: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
struct Cached {
    /// `None`: Redis answered nil.
    target: Option<SocketAddr>,
    fetched: Instant,
    generation: u64,
}

/// Where an answer came from (for the lookup metric).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Cache,
    Redis,
}

#[derive(Debug)]
pub struct RedisTable {
    url: RedisUrl,
    name: String,
    ttl: Duration,
    cache: Mutex<HashMap<String, Cached>>,
    idle: Mutex<Vec<Conn>>,
    up: AtomicBool,
    /// Bumped on every invalidation: cached answers of an older generation are stale.
    generation: AtomicU64,
}

type Registry = Mutex<HashMap<(RedisUrl, String), Weak<RedisTable>>>;

/// Live Redis tables by (url, name): a reload reuses the cache and the watcher.
fn registry() -> &'static Registry {
    static R: std::sync::OnceLock<Registry> = std::sync::OnceLock::new();
    R.get_or_init(Default::default)
}

impl RedisTable {
    /// The table `name` in `url`, shared with any live route using the same one. Starts the
    /// watcher (needs a Tokio runtime; without one, the cache works by ttl only).
    pub fn open(url: &RedisUrl, name: &str, ttl: Duration) -> Arc<RedisTable> {
        let mut reg = registry().lock().unwrap_or_else(|e| e.into_inner());
        reg.retain(|_, w| w.strong_count() > 0);
        let key = (url.clone(), name.to_owned());
        if let Some(live) = reg.get(&key).and_then(Weak::upgrade) {
            if live.ttl == ttl {
                return live;
            }
        }
        let t = Arc::new(RedisTable {
            url: url.clone(),
            name: name.to_owned(),
            ttl,
            cache: Mutex::new(HashMap::new()),
            idle: Mutex::new(Vec::new()),
            up: AtomicBool::new(false),
            generation: AtomicU64::new(0),
        });
        reg.insert(key, Arc::downgrade(&t));
        if let Ok(h) = tokio::runtime::Handle::try_current() {
            h.spawn(watch(Arc::downgrade(&t)));
        }
        t
    }

    /// Whether the watcher is connected.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Cached keys that have a target.
    pub fn cached_entries(&self) -> usize {
        self.lock_cache()
            .values()
            .filter(|c| c.target.is_some())
            .count()
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, HashMap<String, Cached>> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::Relaxed);
    }

    /// The target stored under `key` (`None`: no such key), and where the answer came from.
    pub async fn lookup(&self, key: &str) -> Result<(Option<SocketAddr>, Source), StoreError> {
        let generation = self.generation.load(Ordering::Relaxed);
        let cached = self.lock_cache().get(key).cloned();
        if let Some(c) = &cached {
            let fresh = c.generation == generation && c.fetched.elapsed() < self.ttl;
            // Stale while unavailable: a known target keeps serving while Redis is down.
            if fresh || (!self.is_up() && c.target.is_some()) {
                return Ok((c.target, Source::Cache));
            }
        }
        match self.hget(key).await {
            Ok(target) => {
                let mut cache = self.lock_cache();
                if cache.len() >= MAX_CACHED {
                    cache.clear();
                }
                cache.insert(
                    key.to_owned(),
                    Cached {
                        target,
                        fetched: Instant::now(),
                        generation,
                    },
                );
                Ok((target, Source::Redis))
            }
            Err(e) => match cached.and_then(|c| c.target) {
                Some(t) => Ok((Some(t), Source::Cache)),
                None => Err(e),
            },
        }
    }

    async fn hget(&self, key: &str) -> Result<Option<SocketAddr>, StoreError> {
        let unavailable = |e: std::io::Error| StoreError::Unavailable(e.to_string());
        let args: [&[u8]; 3] = [b"HGET", self.name.as_bytes(), key.as_bytes()];
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        // An idle connection may have died with a Redis restart: then once more on a new one.
        let (conn, reply) = match idle {
            Some(mut c) => match c.call(&args, TIMEOUT).await {
                Ok(r) => (c, r),
                Err(_) => {
                    let mut c = Conn::connect(&self.url, TIMEOUT)
                        .await
                        .map_err(unavailable)?;
                    let r = c.call(&args, TIMEOUT).await.map_err(unavailable)?;
                    (c, r)
                }
            },
            None => {
                let mut c = Conn::connect(&self.url, TIMEOUT)
                    .await
                    .map_err(unavailable)?;
                let r = c.call(&args, TIMEOUT).await.map_err(unavailable)?;
                (c, r)
            }
        };
        let result = match reply {
            Reply::Bulk(None) => Ok(None),
            Reply::Bulk(Some(v)) => {
                let s = String::from_utf8_lossy(&v);
                crate::config::table::parse_target(s.trim())
                    .map(Some)
                    .map_err(StoreError::BadEntry)
            }
            Reply::Error(e) => Err(StoreError::Unavailable(format!("redis: {e}"))),
            _ => Err(StoreError::Unavailable(
                "redis: unexpected reply to HGET".into(),
            )),
        };
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(conn);
        }
        result
    }

    /// Connects the watcher: enables keyspace events for hashes (best effort) and subscribes.
    async fn subscribe(&self) -> std::io::Result<Conn> {
        let mut c = Conn::connect(&self.url, TIMEOUT).await?;
        // Managed Redis often refuses CONFIG: then the ttl alone bounds staleness.
        if let Ok(Reply::Error(e)) = c
            .call(
                &[b"CONFIG", b"SET", b"notify-keyspace-events", b"Kh"],
                TIMEOUT,
            )
            .await
        {
            tracing::info!(table = %self.name, error = %e, "redis: cannot enable keyspace notifications; relying on cache_ttl");
        }
        let channel = format!("__keyspace@{}__:{}", self.url.db, self.name);
        match c.call(&[b"SUBSCRIBE", channel.as_bytes()], TIMEOUT).await? {
            Reply::Array(Some(_)) => Ok(c),
            other => Err(std::io::Error::other(format!(
                "redis: unexpected reply to SUBSCRIBE: {other:?}"
            ))),
        }
    }
}

/// The watcher: subscribed while the table lives; reconnects with backoff.
async fn watch(table: Weak<RedisTable>) {
    let mut backoff = Duration::from_secs(1);
    loop {
        let Some(t) = table.upgrade() else { return };
        match t.subscribe().await {
            Ok(mut conn) => {
                backoff = Duration::from_secs(1);
                t.invalidate(); // whatever changed while we were not listening
                t.up.store(true, Ordering::Relaxed);
                tracing::info!(table = %t.name, redis = %t.url.authority(), "redis table store up");
                drop(t);
                let why = listen(&table, &mut conn).await;
                let Some(t) = table.upgrade() else { return };
                t.up.store(false, Ordering::Relaxed);
                // Idle command connections went down with the server, most likely.
                t.idle.lock().unwrap_or_else(|e| e.into_inner()).clear();
                tracing::warn!(table = %t.name, error = %why, "redis table store down; serving cached entries");
            }
            Err(e) => {
                t.up.store(false, Ordering::Relaxed);
                tracing::debug!(table = %t.name, error = %e, retry_in = ?backoff, "redis table store unreachable");
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

/// Reads notifications until the connection fails (the reason) or the table is gone.
async fn listen(table: &Weak<RedisTable>, conn: &mut Conn) -> String {
    let mut ping_pending = false;
    loop {
        match tokio::time::timeout(WATCH_IDLE, conn.read()).await {
            Ok(Ok(reply)) => {
                ping_pending = false;
                let Some(t) = table.upgrade() else {
                    return "table removed".into();
                };
                if let Reply::Array(Some(items)) = &reply {
                    if items.first() == Some(&Reply::Bulk(Some(b"message".to_vec()))) {
                        t.invalidate();
                    }
                }
            }
            Ok(Err(e)) => return e.to_string(),
            Err(_) if ping_pending => return "no answer to PING".into(),
            Err(_) => {
                if table.strong_count() == 0 {
                    return "table removed".into();
                }
                if let Err(e) = conn.send(&[b"PING"]).await {
                    return e.to_string();
                }
                ping_pending = true;
            }
        }
    }
}

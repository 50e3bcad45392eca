//! Multiplexed HTTP/2 connections to one server (`protocol: h2 | h2c`, or `auto` when ALPN picked
//! h2). A request takes a stream slot on the first live connection with room (fewer than
//! `http2.max_concurrent_streams`, or the server's own lower limit) and gives it back when its
//! response ends; when every connection is full another is dialed. So a server gets a few
//! long-lived connections, and every request is still balanced across servers on its own.
//! Connections idle for the upstream's `keepalive_timeout` are closed (all but one).

use bytes::Bytes;
use h2::client::SendRequest;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

#[derive(Debug)]
struct H2Conn {
    tx: SendRequest<Bytes>,
    /// Streams in use (requests whose response has not ended).
    active: AtomicUsize,
    /// When `active` last dropped to 0 (milliseconds after `H2Pool::base`).
    idle_since: AtomicU64,
    /// The connection's driver and keepalive state, shared with its task (`h2conn`).
    shared: Arc<ConnShared>,
    base: Instant,
}

/// What a connection's driver task tells the pool about it.
#[derive(Debug)]
pub struct ConnShared {
    /// The server's SETTINGS_MAX_CONCURRENT_STREAMS, as last seen by the driver.
    pub peer_limit: AtomicUsize,
    /// The connection ended, or a request found it unusable (GOAWAY, broken): no new stream.
    pub closed: AtomicBool,
}

impl Default for ConnShared {
    fn default() -> Self {
        ConnShared {
            // Until the server's SETTINGS arrive, assume the RFC's recommended minimum.
            peer_limit: AtomicUsize::new(super::h2conn::INITIAL_MAX_STREAMS),
            closed: AtomicBool::new(false),
        }
    }
}

impl H2Conn {
    fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }
}

/// One stream slot on a multiplexed connection; the slot is free again when this is dropped.
#[derive(Debug)]
pub struct H2Stream {
    conn: Arc<H2Conn>,
    pub tx: SendRequest<Bytes>,
}

impl H2Stream {
    /// No further stream goes on this connection (it refused one, or is broken).
    pub fn mark_closed(&self) {
        self.conn.shared.closed.store(true, Ordering::Release);
    }
}

impl Drop for H2Stream {
    fn drop(&mut self) {
        if self.conn.active.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.conn
                .idle_since
                .store(millis_since(self.conn.base), Ordering::Relaxed);
        }
    }
}

fn millis_since(base: Instant) -> u64 {
    base.elapsed().as_millis() as u64
}

#[derive(Debug)]
pub struct H2Pool {
    base: Instant,
    conns: Mutex<Vec<Arc<H2Conn>>>,
    /// Held while a connection is dialed, so that a burst of requests to a server with no
    /// connection yet opens one, not one each.
    dialing: tokio::sync::Mutex<()>,
    /// Dials finished so far, and whether the last one failed: requests that waited for a dial
    /// that failed fail at once instead of each dialing (and timing out) in turn.
    dials: AtomicU64,
    last_dial_failed: AtomicBool,
}

impl Default for H2Pool {
    fn default() -> Self {
        H2Pool {
            base: Instant::now(),
            conns: Mutex::default(),
            dialing: tokio::sync::Mutex::default(),
            dials: AtomicU64::new(0),
            last_dial_failed: AtomicBool::new(false),
        }
    }
}

impl H2Pool {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Arc<H2Conn>>> {
        self.conns.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A stream slot on a live connection with room, dropping closed connections on the way.
    pub fn checkout(&self, max_streams: u32) -> Option<H2Stream> {
        let mut conns = self.lock();
        conns.retain(|c| !c.is_closed());
        for c in conns.iter() {
            let peer = c.shared.peer_limit.load(Ordering::Relaxed).max(1);
            let room = (max_streams as usize).min(peer);
            let taken = c
                .active
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                    (n < room).then_some(n + 1)
                })
                .is_ok();
            if taken {
                return Some(H2Stream {
                    conn: c.clone(),
                    tx: c.tx.clone(),
                });
            }
        }
        None
    }

    /// Adds a freshly dialed connection and takes its first stream slot.
    pub fn insert(&self, tx: SendRequest<Bytes>, shared: Arc<ConnShared>) -> H2Stream {
        let conn = Arc::new(H2Conn {
            tx: tx.clone(),
            active: AtomicUsize::new(1),
            idle_since: AtomicU64::new(0),
            base: self.base,
            shared,
        });
        self.lock().push(conn.clone());
        H2Stream { conn, tx }
    }

    /// Forgets every connection (they close once their streams end).
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// Closes connections that carried no stream for `idle_timeout` (a burst's extra
    /// connections do not stay open for ever), keeping one.
    pub fn reap(&self, idle_timeout: std::time::Duration) {
        let now = millis_since(self.base);
        let limit = idle_timeout.as_millis() as u64;
        let mut conns = self.lock();
        conns.retain(|c| !c.is_closed());
        let mut kept_idle = false;
        conns.retain(|c| {
            let idle = c.active.load(Ordering::Acquire) == 0
                && now.saturating_sub(c.idle_since.load(Ordering::Relaxed)) >= limit;
            if idle && !kept_idle {
                kept_idle = true;
                return true;
            }
            !idle
        });
    }

    /// Waits until no other request is dialing this server. Returns the guard and whether a
    /// dial that ended while waiting failed (then the caller should not dial again).
    pub async fn wait_dial(&self) -> (tokio::sync::MutexGuard<'_, ()>, bool) {
        let before = self.dials.load(Ordering::Acquire);
        let guard = self.dialing.lock().await;
        let failed = self.dials.load(Ordering::Acquire) != before
            && self.last_dial_failed.load(Ordering::Acquire);
        (guard, failed)
    }

    /// Records the end of a dial (made while holding [`H2Pool::wait_dial`]'s guard).
    pub fn dialed(&self, ok: bool) {
        self.last_dial_failed.store(!ok, Ordering::Release);
        self.dials.fetch_add(1, Ordering::AcqRel);
    }
}

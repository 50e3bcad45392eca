//! Per-server keepalive pool of upstream HTTP/1.1 connections (nginx `keepalive`,
//! `keepalive_timeout`, `keepalive_requests`). LIFO checkout keeps the hottest connections busy
//! and lets the coldest expire; the oldest idle one is evicted when the pool is full.

use super::h1::H1Conn;
use super::sender::Sender;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A connection (HTTP/1.1) or a stream slot on one (HTTP/2) ready to carry a request.
#[derive(Debug)]
pub struct Conn {
    pub tx: Sender,
    /// Requests already sent on it.
    pub uses: u64,
    /// Taken from the pool (as opposed to freshly dialed).
    pub reused: bool,
}

#[derive(Debug)]
struct Idle {
    conn: Box<H1Conn>,
    since: Instant,
    uses: u64,
}

/// Limits of a pool, from the upstream's settings.
#[derive(Debug, Clone, Copy)]
pub struct PoolLimits {
    pub max_idle: usize,
    pub idle_timeout: Duration,
    /// 0 = unlimited.
    pub max_requests: u64,
}

#[derive(Debug, Default)]
pub struct Pool {
    idle: Mutex<Vec<Idle>>,
}

impl Pool {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Idle>> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The most recently used live connection, dropping expired and closed ones on the way
    /// (each candidate is probed with a non-blocking read: the server may have closed it).
    pub fn checkout(&self, now: Instant, idle_timeout: Duration) -> Option<Conn> {
        let mut idle = self.lock();
        let expired = idle
            .iter()
            .take_while(|c| now.saturating_duration_since(c.since) >= idle_timeout)
            .count();
        idle.drain(..expired);
        while let Some(mut c) = idle.pop() {
            if !c.conn.is_closed() {
                return Some(Conn {
                    tx: Sender::H1(Some(c.conn)),
                    uses: c.uses,
                    reused: true,
                });
            }
        }
        None
    }

    /// Returns a connection whose last response is complete. Dropped instead when it has served
    /// `max_requests` or pooling is off (a server's close is seen at the next checkout or reap). An HTTP/2 stream slot is simply freed (its
    /// connection stays in the server's `H2Pool`).
    ///
    /// Idle connections above `max_idle` are not closed at once but by the next [`Pool::reap`]
    /// (within a second): under high concurrency many responses finish in one burst and the next
    /// burst of requests reuses them instead of dialing again (measured at 256 client
    /// connections over 2 servers with `keepalive: 32`: p99 35 ms → 17 ms). A hard bound of
    /// 4 × `max_idle` still holds at every moment; the oldest idle connection makes room.
    pub fn checkin(&self, conn: Conn, limits: PoolLimits, now: Instant) {
        let Sender::H1(Some(c)) = conn.tx else {
            return;
        };
        if limits.max_idle == 0 || (limits.max_requests != 0 && conn.uses >= limits.max_requests) {
            return;
        }
        let mut idle = self.lock();
        if idle.len() >= limits.max_idle.saturating_mul(4) {
            idle.remove(0);
        }
        idle.push(Idle {
            conn: c,
            since: now,
            uses: conn.uses,
        });
    }

    /// Closes every idle connection.
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// Closes idle connections older than `idle_timeout` or closed by the server, and trims the pool to `max_idle`, oldest first.
    pub fn reap(&self, now: Instant, limits: PoolLimits) {
        let mut idle = self.lock();
        idle.retain_mut(|c| {
            now.saturating_duration_since(c.since) < limits.idle_timeout && !c.conn.is_closed()
        });
        let excess = idle.len().saturating_sub(limits.max_idle);
        idle.drain(..excess);
    }

    pub fn idle_count(&self) -> usize {
        self.lock().len()
    }
}

//! Multiplexed HTTP/2 connections to one server (`protocol: h2 | h2c`, or `auto` when ALPN picked
//! h2). A request takes a stream slot on the first live connection with room (fewer than
//! `http2.max_concurrent_streams`, or the server's own lower limit) and gives it back when its
//! response ends; when every connection is full another is dialed. So a server gets a few
//! long-lived connections, and every request is still balanced across servers on its own.
//! Connections idle for the upstream's `keepalive_timeout` are closed (all but one).

use super::pool::Conn;
use super::sender::Sender;
use super::server::Server;
use super::ConnectError;
use crate::body::ReqBody;
use crate::config::Http2Settings;
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

#[derive(Debug)]
struct H2Conn {
    tx: SendRequest<ReqBody>,
    /// Streams in use (requests whose response has not ended).
    active: AtomicUsize,
    /// When `active` last dropped to 0 (milliseconds after `H2Pool::base`).
    idle_since: AtomicU64,
    /// The server's SETTINGS_MAX_CONCURRENT_STREAMS, as last seen by the connection's driver.
    peer_limit: Arc<AtomicUsize>,
    base: Instant,
}

/// One stream slot on a multiplexed connection; the slot is free again when this is dropped.
#[derive(Debug)]
pub struct H2Stream {
    conn: Arc<H2Conn>,
    pub tx: SendRequest<ReqBody>,
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
        conns.retain(|c| !c.tx.is_closed());
        for c in conns.iter() {
            let peer = c.peer_limit.load(Ordering::Relaxed).max(1);
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
    fn insert(&self, tx: SendRequest<ReqBody>, peer_limit: Arc<AtomicUsize>) -> H2Stream {
        let conn = Arc::new(H2Conn {
            tx: tx.clone(),
            active: AtomicUsize::new(1),
            idle_since: AtomicU64::new(0),
            base: self.base,
            peer_limit,
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
        conns.retain(|c| !c.tx.is_closed());
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

/// hyper's HTTP/2 client builder for upstream connections.
pub fn client_builder(h2: &Http2Settings) -> hyper::client::conn::http2::Builder<TokioExecutor> {
    let mut b = hyper::client::conn::http2::Builder::new(TokioExecutor::new());
    b.timer(TokioTimer::new())
        .initial_stream_window_size(h2.initial_stream_window)
        .initial_connection_window_size(
            h2.initial_stream_window
                .saturating_mul(4)
                .min(u32::MAX >> 1),
        )
        .keep_alive_interval(h2.keepalive_interval)
        .keep_alive_timeout(h2.keepalive_timeout)
        .keep_alive_while_idle(true)
        .max_header_list_size(h2.max_header_list_size)
        .max_send_buf_size(h2.initial_stream_window as usize)
        .max_concurrent_reset_streams(256);
    b
}

/// The HTTP/2 handshake on a dialed connection: its driver task keeps the server's open
/// connection count, the connection joins the server's pool, and its first stream slot is the
/// caller's.
pub async fn handshake<T>(
    server: &Arc<Server>,
    h2: &Http2Settings,
    io: T,
) -> Result<Conn, ConnectError>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (tx, conn) = client_builder(h2)
        .handshake(io)
        .await
        .map_err(ConnectError::Handshake)?;
    server.open_conns.fetch_add(1, Ordering::Relaxed);
    let s = server.clone();
    // Until the server's SETTINGS arrive, assume the RFC's recommended minimum.
    let peer_limit = Arc::new(AtomicUsize::new(100));
    let limit = peer_limit.clone();
    tokio::spawn(async move {
        let mut conn = Box::pin(conn);
        let driven = std::future::poll_fn(|cx| {
            let r = conn.as_mut().poll(cx);
            limit.store(conn.current_max_send_streams(), Ordering::Relaxed);
            r
        });
        if let Err(e) = driven.await {
            tracing::debug!(server = %s.label, error = %e, "upstream HTTP/2 connection ended");
        }
        s.open_conns.fetch_sub(1, Ordering::Relaxed);
    });
    Ok(Conn {
        tx: Sender::H2(server.h2.insert(tx, peer_limit)),
        uses: 0,
        reused: false,
    })
}

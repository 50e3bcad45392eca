//! An upstream HTTP/2 connection on the `h2` crate directly: the handshake, and the task that
//! drives the connection and keeps it alive (a PING every `http2.keepalive_interval`; no PONG
//! within `http2.keepalive_timeout` closes it, failing its streams). Requests go on it from
//! their own tasks (`h2send`), so a call needs no task of its own.

use super::h2pool::ConnShared;
use super::io::Io;
use super::pool::Conn;
use super::sender::Sender;
use super::server::Server;
use super::ConnectError;
use crate::config::Http2Settings;
use crate::h2ping::KeepAlive;
use bytes::Bytes;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::Poll;

/// Streams assumed allowed before the server's SETTINGS say (RFC 9113 §6.5.2 recommends at
/// least 100; hyper's client assumed 100 too).
pub const INITIAL_MAX_STREAMS: usize = 100;

/// Streams reset by the peer that h2 remembers (to tell late frames from protocol errors).
const MAX_RESET_STREAMS: usize = 256;

/// The client builder for upstream connections: windows from `initial_stream_window` (the
/// connection's is 4 ×), and no more than one window buffered per stream on the way out.
fn builder(h2: &Http2Settings) -> h2::client::Builder {
    let mut b = h2::client::Builder::new();
    b.initial_window_size(h2.initial_stream_window)
        .initial_connection_window_size(
            h2.initial_stream_window
                .saturating_mul(4)
                .min(u32::MAX >> 1),
        )
        .max_header_list_size(h2.max_header_list_size)
        .max_send_buffer_size(h2.initial_stream_window as usize)
        .max_concurrent_reset_streams(MAX_RESET_STREAMS)
        // Until the server's SETTINGS arrive (h2's own default is no limit): a burst on a new
        // connection must not open more streams than a common server allows.
        .initial_max_send_streams(INITIAL_MAX_STREAMS)
        .enable_push(false);
    b
}

/// The HTTP/2 handshake on a dialed connection: its driver task keeps the server's open
/// connection count, the connection joins the server's pool, and its first stream slot is the
/// caller's.
pub async fn handshake(
    server: &Arc<Server>,
    h2: &Http2Settings,
    io: Io,
) -> Result<Conn, ConnectError> {
    let (tx, mut conn) = builder(h2)
        .handshake::<_, Bytes>(io)
        .await
        .map_err(ConnectError::Handshake)?;
    server.open_conns.fetch_add(1, Ordering::Relaxed);
    let shared = Arc::new(ConnShared::default());
    let keepalive = conn
        .ping_pong()
        .map(|p| KeepAlive::new(p, h2.keepalive_interval, h2.keepalive_timeout));
    let s = server.clone();
    let task_shared = shared.clone();
    tokio::spawn(async move {
        let ended = drive(conn, keepalive, &task_shared).await;
        task_shared.closed.store(true, Ordering::Release);
        match ended {
            Ended::Closed => {}
            Ended::Error(e) => {
                tracing::debug!(server = %s.label, error = %e, "upstream HTTP/2 connection ended")
            }
            Ended::KeepAliveTimeout => {
                tracing::warn!(server = %s.label, "upstream HTTP/2 connection closed: PING not answered within keepalive_timeout")
            }
        }
        s.open_conns.fetch_sub(1, Ordering::Relaxed);
    });
    Ok(Conn {
        tx: Sender::H2(server.h2.insert(tx, shared)),
        uses: 0,
        reused: false,
    })
}

enum Ended {
    Closed,
    Error(h2::Error),
    KeepAliveTimeout,
}

/// Polls the connection (and its keepalive) until it ends, stepping aside once per wake-up;
/// dropping it then fails what is still open on it.
async fn drive(
    mut conn: h2::client::Connection<Io, Bytes>,
    mut keepalive: Option<KeepAlive>,
    shared: &ConnShared,
) -> Ended {
    let driven = std::future::poll_fn(|cx| {
        match Pin::new(&mut conn).poll(cx) {
            Poll::Ready(Ok(())) => return Poll::Ready(Ended::Closed),
            Poll::Ready(Err(e)) => return Poll::Ready(Ended::Error(e)),
            Poll::Pending => {}
        }
        let limit = conn.max_concurrent_send_streams();
        if shared.peer_limit.load(Ordering::Relaxed) != limit {
            shared.peer_limit.store(limit, Ordering::Relaxed);
        }
        if crate::h2ping::poll_timed_out(&mut keepalive, cx) {
            Poll::Ready(Ended::KeepAliveTimeout)
        } else {
            Poll::Pending
        }
    });
    // Steps aside once per wake-up, so that one write carries the frames of every request
    // task that ran meanwhile (see `crate::batch`).
    let driven = std::pin::pin!(driven);
    crate::batch::Batched::new(driven).await
}

//! Listeners: accept, optional TLS, serve HTTP/1.1 (`h1`) or HTTP/2 (`h2`; ALPN on TLS, the
//! preface on plain TCP) with the connection timeouts of `conn`, and drain
//! gracefully on shutdown (HTTP/1.1: keepalive off; HTTP/2: GOAWAY; in-flight requests finish).

use super::conn::{ConnState, ConnTimeouts, TimedIo};
use super::h2::Sniffed;
use super::handler::ConnCtx;
use crate::metrics::metrics;
use crate::runtime::Shared;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify, OwnedSemaphorePermit, Semaphore};

/// Counts live client connections so that shutdown can wait for them.
#[derive(Debug, Default)]
pub struct Drain {
    live: AtomicUsize,
    idle: Notify,
}

struct DrainToken(Arc<Drain>);

impl Drain {
    fn enter(self: &Arc<Self>) -> DrainToken {
        self.live.fetch_add(1, Ordering::SeqCst);
        metrics().client_connections.inc();
        DrainToken(self.clone())
    }

    pub fn live(&self) -> usize {
        self.live.load(Ordering::SeqCst)
    }

    /// Resolves when no connection is left.
    pub async fn wait(&self) {
        loop {
            let notified = self.idle.notified();
            if self.live() == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for DrainToken {
    fn drop(&mut self) {
        metrics().client_connections.dec();
        if self.0.live.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// What every accept loop shares.
#[derive(Clone)]
pub struct ListenerCtx {
    /// The listener's address as configured (routes name it in `listen`).
    pub listen: std::net::SocketAddr,
    pub shared: Arc<Shared>,
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    pub shutdown: watch::Receiver<bool>,
    pub drain: Arc<Drain>,
    /// `max_connections`, when set.
    pub limit: Option<Arc<Semaphore>>,
}

/// Accepts until shutdown is signalled.
pub async fn accept_loop(listener: TcpListener, mut ctx: ListenerCtx) {
    loop {
        let permit = match &ctx.limit {
            Some(sem) => tokio::select! {
                p = sem.clone().acquire_owned() => p.ok(),
                _ = ctx.shutdown.changed() => return,
            },
            None => None,
        };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = ctx.shutdown.changed() => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                let token = ctx.drain.enter();
                let ctx = ctx.clone();
                tokio::spawn(async move {
                    serve(stream, peer, ctx, permit).await;
                    drop(token);
                });
            }
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// One client connection. Every connection's task is as large as the largest state of this
/// future, so only the plain HTTP/1.1 path is inline (an idle keep-alive connection is what it
/// holds there); sniffing, TLS and HTTP/2 are boxed. Not an `async fn`: those keep a second
/// copy of their arguments.
#[allow(clippy::manual_async_fn)] // see the doc comment
fn serve(
    stream: TcpStream,
    peer: std::net::SocketAddr,
    ctx: ListenerCtx,
    permit: Option<OwnedSemaphorePermit>,
) -> impl std::future::Future<Output = ()> + Send {
    async move {
        let limits = ctx.shared.runtime_full().client.clone();
        let sniffed = match ctx.tls {
            // A connection that has sent nothing yet is closed on shutdown.
            None => {
                let mut shutdown = ctx.shutdown.clone();
                let timeout = limits.header_timeout;
                Box::pin(async {
                    tokio::select! {
                        s = super::h2::sniff(&stream, timeout) => s,
                        _ = shutdown.changed() => Sniffed::Nothing,
                    }
                })
                .await
            }
            Some(_) => Sniffed::Http1, // ALPN decides after the handshake
        };
        if sniffed == Sniffed::Nothing {
            return;
        }
        let state = Arc::new(ConnState::new());
        let stream = super::linger::LingerOnDrop::new(stream, state.clone(), limits.lingering);
        let io = TimedIo::new(
            stream,
            state.clone(),
            ConnTimeouts {
                header: limits.header_timeout,
                keepalive: limits.keepalive_timeout,
            },
        );
        let proto = if ctx.tls.is_some() { "https" } else { "http" };
        let cx = Arc::new(ConnCtx {
            shared: ctx.shared.clone(),
            listener: ctx.listen,
            peer,
            proto,
            client_ip: super::headers::ip_value(peer.ip()),
            state,
        });
        match ctx.tls {
            None if sniffed == Sniffed::H2 => {
                let h2 = ctx.shared.runtime_full().config.http2;
                Box::pin(drive_h2(io, cx, &h2, &limits, ctx.shutdown)).await
            }
            None => super::h1::serve(io, cx, &limits, ctx.shutdown).await,
            Some(acceptor) => {
                Box::pin(serve_tls(acceptor, io, cx, limits, ctx.shutdown)).await;
            }
        }
        drop(permit);
    }
}

/// The TLS handshake (ALPN picks the protocol), then the connection.
async fn serve_tls(
    acceptor: tokio_rustls::TlsAcceptor,
    io: TimedIo<super::linger::LingerOnDrop>,
    cx: Arc<ConnCtx>,
    limits: Arc<crate::config::ClientLimits>,
    shutdown: watch::Receiver<bool>,
) {
    let peer = cx.peer;
    let h2 = cx.shared.runtime_full().config.http2;
    match tokio::time::timeout(limits.header_timeout, acceptor.accept(io)).await {
        Ok(Ok(tls)) if tls.get_ref().1.alpn_protocol() == Some(b"h2") => {
            drive_h2(tls, cx, &h2, &limits, shutdown).await
        }
        Ok(Ok(tls)) => super::h1::serve(tls, cx, &limits, shutdown).await,
        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
    }
}

/// Serves an HTTP/2 connection; on shutdown it sends GOAWAY and lets open streams finish.
async fn drive_h2<I>(
    io: I,
    cx: Arc<ConnCtx>,
    h2: &crate::config::Http2Settings,
    limits: &crate::config::ClientLimits,
    mut shutdown: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin,
{
    let state = cx.state.clone();
    state.set_multiplexed();
    let peer = cx.peer;
    let conn = match super::h2::handshake(io, cx, h2, limits).await {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(%peer, error = %e, "HTTP/2 handshake failed");
            return;
        }
    };
    tokio::pin!(conn);
    let conn = crate::batch::Batched::new(conn);
    tokio::pin!(conn);
    let graceful = |c: Pin<&mut crate::batch::Batched<'_, super::h2::Conn<I>>>| {
        c.get_mut().conn().get_mut().graceful_shutdown()
    };
    let ended = until_done(conn, graceful, &state, &mut shutdown, peer).await;
    if let Err(super::h2::ConnError::H2(e)) = &ended {
        if e.is_go_away() && !e.is_remote() {
            // swarmgate sent GOAWAY with an error (a flood, a protocol error) while the client
            // may still be sending: a plain close would reset the connection and the GOAWAY
            // could be lost with it.
            state.set_linger();
        }
    }
}

/// Drives a client connection to its end; on shutdown it is told to finish gracefully
/// (`graceful`: HTTP/1.1 stops keepalive, HTTP/2 sends GOAWAY) and open requests complete.
/// Returns how the connection ended (the connection itself, and so the socket, is dropped by
/// the caller afterwards).
async fn until_done<C, E>(
    mut conn: Pin<&mut C>,
    graceful: impl FnOnce(Pin<&mut C>),
    state: &ConnState,
    shutdown: &mut watch::Receiver<bool>,
    peer: std::net::SocketAddr,
) -> Result<(), E>
where
    C: std::future::Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let res = tokio::select! {
        r = conn.as_mut() => r,
        _ = shutdown.changed() => {
            state.set_closing();
            graceful(conn.as_mut());
            conn.as_mut().await
        }
    };
    if let Err(e) = &res {
        tracing::debug!(%peer, error = %e, "client connection ended");
    }
    res
}

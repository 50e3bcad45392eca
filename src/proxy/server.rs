//! Listeners: accept, optional TLS, serve HTTP/1.1 or HTTP/2 (ALPN on TLS, the preface on plain
//! TCP) with the connection timeouts of `conn`, and drain gracefully on shutdown (HTTP/1.1:
//! keepalive off; HTTP/2: GOAWAY; in-flight requests finish).

use super::conn::{ConnState, ConnTimeouts, TimedIo};
use super::handler::{self, ConnCtx};
use super::http2::Sniffed;
use crate::metrics::metrics;
use crate::runtime::Shared;
use hyper::rt::{Read, Write};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
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

async fn serve(
    stream: TcpStream,
    peer: std::net::SocketAddr,
    ctx: ListenerCtx,
    _permit: Option<OwnedSemaphorePermit>,
) {
    let rt = ctx.shared.runtime_full();
    let limits = rt.client.clone();
    let h2 = rt.config.http2;
    drop(rt);
    let mut shutdown = ctx.shutdown.clone();
    let sniffed = match ctx.tls {
        // A connection that has sent nothing yet is closed on shutdown.
        None => tokio::select! {
            s = super::http2::sniff(&stream, limits.header_timeout) => s,
            _ = shutdown.changed() => Sniffed::Nothing,
        },
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
        state: state.clone(),
    });
    match &ctx.tls {
        None if sniffed == Sniffed::H2 => {
            drive_h2(TokioIo::new(io), cx, &h2, &limits, ctx.shutdown).await
        }
        None => drive(TokioIo::new(io), cx, &limits, ctx.shutdown).await,
        Some(acceptor) => {
            match tokio::time::timeout(limits.header_timeout, acceptor.accept(io)).await {
                Ok(Ok(tls)) if tls.get_ref().1.alpn_protocol() == Some(b"h2") => {
                    drive_h2(TokioIo::new(tls), cx, &h2, &limits, ctx.shutdown).await
                }
                Ok(Ok(tls)) => drive(TokioIo::new(tls), cx, &limits, ctx.shutdown).await,
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        }
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
    I: Read + Write + Unpin + Send + 'static,
{
    let state = cx.state.clone();
    state.set_multiplexed();
    let peer = cx.peer;
    let svc = service_fn(move |req| handler::handle(req, cx.clone()));
    let conn = super::http2::server_builder(h2, limits).serve_connection(io, svc);
    tokio::pin!(conn);
    let graceful = |c: Pin<&mut _>| hyper::server::conn::http2::Connection::graceful_shutdown(c);
    let _ = until_done(conn, graceful, &state, &mut shutdown, peer).await;
}

async fn drive<I>(
    io: I,
    cx: Arc<ConnCtx>,
    limits: &crate::config::ClientLimits,
    mut shutdown: watch::Receiver<bool>,
) where
    I: Read + Write + Unpin + Send + 'static,
{
    let state = cx.state.clone();
    let peer = cx.peer;
    let svc = service_fn(move |req| handler::handle(req, cx.clone()));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .header_read_timeout(None)
        .keep_alive(true)
        .max_headers(limits.max_headers)
        .max_header_size(limits.max_header_size)
        .max_buf_size(limits.max_header_size.max(limits.read_buffer_size));
    let conn = builder.serve_connection(io, svc).with_upgrades();
    tokio::pin!(conn);
    let graceful =
        |c: Pin<&mut _>| hyper::server::conn::http1::UpgradeableConnection::graceful_shutdown(c);
    if let Err(e) = until_done(conn, graceful, &state, &mut shutdown, peer).await {
        // hyper rejected the request head (400, 431): the client may still be sending it.
        if e.is_parse() || e.is_parse_too_large() {
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

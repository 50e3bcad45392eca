//! Dialing a server: a byte stream from [`super::transport`] (TCP, or the reverse tunnel) within
//! `connect_timeout`, optional TLS, and the HTTP/1.1 or HTTP/2 handshake (`protocol`; HTTP/2
//! connections join the server's `H2Pool`). The connection is driven by its own task, which keeps the server's open
//! connection count.

use super::h2pool;
use super::pool::Conn;
use super::sender::Sender;
use super::server::Server;
use super::transport::{self, Stream, TransportError};
use super::Settings;
use crate::config::Protocol;
use crate::tls;
use hyper_util::rt::TokioIo;
use std::sync::atomic::Ordering;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("resolve: {0}")]
    Resolve(std::io::Error),
    #[error("connect timed out")]
    Timeout,
    #[error("connect: {0}")]
    Io(std::io::Error),
    #[error("tls: {0}")]
    Tls(std::io::Error),
    #[error("tls: invalid server name {0:?}")]
    ServerName(String),
    #[error("handshake: {0}")]
    Handshake(hyper::Error),
    #[error("connect failed (a dial to this server that this request waited for failed)")]
    SharedDialFailed,
    #[error("{0}")]
    Tunnel(crate::tunnel::TunnelError),
}

impl From<TransportError> for ConnectError {
    fn from(e: TransportError) -> Self {
        match e {
            TransportError::Resolve(e) => ConnectError::Resolve(e),
            TransportError::Io(e) => ConnectError::Io(e),
            TransportError::Tunnel(e) => ConnectError::Tunnel(e),
        }
    }
}

/// Opens a new connection to `server`.
pub async fn connect(server: &Arc<Server>, settings: &Settings) -> Result<Conn, ConnectError> {
    let cfg = &settings.config;
    let dial = async {
        let tcp = transport::open(server, None).await?;
        match &settings.tls {
            None => Ok(Io::Plain(tcp)),
            Some(tls_cfg) => {
                let sni = cfg.tls.as_ref().and_then(|t| t.sni.as_deref());
                let name = tls::server_name(sni, &server.address.host)
                    .ok_or_else(|| ConnectError::ServerName(server.address.host.clone()))?;
                let stream = tokio_rustls::TlsConnector::from(tls_cfg.clone())
                    .connect(name, tcp)
                    .await
                    .map_err(ConnectError::Tls)?;
                Ok(Io::Tls(Box::new(stream)))
            }
        }
    };
    let io = match tokio::time::timeout(cfg.connect_timeout, dial).await {
        Ok(Ok(io)) => io,
        Ok(Err(e)) => {
            server.forget_resolution();
            return Err(e);
        }
        Err(_) => {
            server.forget_resolution();
            return Err(ConnectError::Timeout);
        }
    };
    if speaks_h2(&io, cfg.protocol) {
        return match io {
            Io::Plain(s) => h2pool::handshake(server, &cfg.http2, TokioIo::new(s)).await,
            Io::Tls(s) => h2pool::handshake(server, &cfg.http2, TokioIo::new(s)).await,
        };
    }
    let mut builder = hyper::client::conn::http1::Builder::new();
    builder
        .max_header_size(cfg.max_response_header_size)
        .max_buf_size(cfg.max_response_header_size.max(cfg.read_buffer_size));
    let tx = match io {
        Io::Plain(s) => spawn_driver(server, builder.handshake(TokioIo::new(s)).await),
        Io::Tls(s) => spawn_driver(server, builder.handshake(TokioIo::new(s)).await),
    }?;
    Ok(Conn {
        tx: Sender::H1(tx),
        uses: 0,
        reused: false,
    })
}

/// Whether the new connection speaks HTTP/2: always for `h2`/`h2c`, by ALPN for `auto`.
fn speaks_h2(io: &Io, protocol: Protocol) -> bool {
    match (protocol, io) {
        (Protocol::H2 | Protocol::H2c, _) => true,
        (Protocol::Auto, Io::Tls(s)) => s.get_ref().1.alpn_protocol() == Some(b"h2"),
        _ => false,
    }
}

enum Io {
    Plain(Stream),
    Tls(Box<tokio_rustls::client::TlsStream<Stream>>),
}

type Handshake<T> = Result<
    (
        hyper::client::conn::http1::SendRequest<crate::body::ReqBody>,
        hyper::client::conn::http1::Connection<TokioIo<T>, crate::body::ReqBody>,
    ),
    hyper::Error,
>;

fn spawn_driver<T>(
    server: &Arc<Server>,
    hs: Handshake<T>,
) -> Result<hyper::client::conn::http1::SendRequest<crate::body::ReqBody>, ConnectError>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (tx, conn) = hs.map_err(ConnectError::Handshake)?;
    server.open_conns.fetch_add(1, Ordering::Relaxed);
    let server = server.clone();
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(server = %server.label, error = %e, "upstream connection ended");
        }
        server.open_conns.fetch_sub(1, Ordering::Relaxed);
    });
    Ok(tx)
}

//! Dialing a server: a byte stream from [`super::transport`] (TCP, or the reverse tunnel) within
//! `connect_timeout`, optional TLS, then by `protocol` an HTTP/2 handshake (the connection joins
//! the server's `H2Pool`, driven by its own task) or an HTTP/1.1 connection on our own codec
//! (`h1`: no task; it counts itself in the server's open connections while it lives).

use super::h1;
use super::h2conn;
use super::io::Io;
use super::pool::Conn;
use super::sender::Sender;
use super::server::Server;
use super::transport::{self, TransportError};
use super::Settings;
use crate::config::Protocol;
use crate::tls;
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
    Handshake(h2::Error),
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
        return h2conn::handshake(server, &cfg.http2, io).await;
    }
    let limits = h1::Limits {
        max_head: cfg.max_response_header_size,
        max_read: cfg.read_buffer_size,
    };
    Ok(Conn {
        tx: Sender::H1(Some(Box::new(h1::H1Conn::new(server, io, limits)))),
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

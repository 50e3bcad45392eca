//! The byte stream under an upstream connection: TCP to the server's address, or a stream
//! through the reverse tunnel when the server has `via: <agent>` (the agent resolves and dials
//! the address on its side). TLS and HTTP run on top of either unchanged.

use super::server::Server;
use crate::tunnel::{TunnelError, TunnelStream};
use tokio::net::TcpStream;

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("resolve: {0}")]
    Resolve(std::io::Error),
    #[error("connect: {0}")]
    Io(std::io::Error),
    #[error("{0}")]
    Tunnel(#[from] TunnelError),
}

#[derive(Debug)]
pub enum Stream {
    Tcp(TcpStream),
    Tunnel(Box<TunnelStream>),
}

/// Opens a byte stream to `server`, at `port` instead of its own when given (health checks).
pub async fn open(server: &Server, port: Option<u16>) -> Result<Stream, TransportError> {
    match &server.config.via {
        Some(agent) => {
            let authority = match port {
                None => server.label.clone(),
                Some(p) => crate::config::ServerAddress {
                    port: p,
                    ..server.address.clone()
                }
                .to_string(),
            };
            let s = crate::tunnel::registry().open(agent, &authority).await?;
            Ok(Stream::Tunnel(Box::new(s)))
        }
        None => {
            let mut addr = server.resolve().await.map_err(TransportError::Resolve)?;
            if let Some(p) = port {
                addr.set_port(p);
            }
            let tcp = TcpStream::connect(addr).await.map_err(TransportError::Io)?;
            let _ = tcp.set_nodelay(true);
            Ok(Stream::Tcp(tcp))
        }
    }
}

super::io::delegate_io!(Stream { Tcp, Tunnel });
